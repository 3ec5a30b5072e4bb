/** SHOW LISTS, VERSION, STATE and HELP (PgBouncer 1.25's columns). */
import { ClientState } from '../client/client-state.js';
import { noticeResponse } from '../protocol/backend-messages.js';
import { commandComplete } from '../protocol/backend-messages.js';
import type { AdminHost } from './admin-host.js';
import { int4, ResultSet, text } from './result-set.js';

export function showLists(host: AdminHost): Buffer {
  const { registry, config } = host;
  const users = new Set<string>(Object.keys(config.users));
  for (const pool of registry.pools.values()) users.add(pool.user);
  let login = 0;
  for (const c of registry.clients) if (c.state === ClientState.Startup || c.state === ClientState.Authenticating) login++;
  const rs = new ResultSet([text('list'), int4('items')]);
  const rows: Array<[string, number]> = [
    ['databases', Object.keys(config.databases).length + 1], // + the admin console, as PgBouncer counts it
    ['users', users.size],
    ['peers', 0],
    ['pools', registry.pools.size],
    ['peer_pools', 0],
    ['free_clients', 0],
    ['used_clients', registry.clients.size],
    ['login_clients', login],
    ['free_servers', 0],
    ['used_servers', registry.serverCount],
    ['dns_names', 0],
    ['dns_zones', 0],
    ['dns_queries', 0],
    ['dns_pending', 0],
  ];
  for (const r of rows) rs.row(r);
  return rs.finish();
}

export function showVersion(host: AdminHost): Buffer {
  return new ResultSet([text('version')]).row([`pgmux ${host.version}`]).finish();
}

/** active / paused / suspended, as PgBouncer reports its global pause mode (PAUSE without a name). */
export function showState(host: AdminHost): Buffer {
  const paused = host.registry.pausedDatabases().includes('*');
  return new ResultSet([text('key'), text('value')])
    .row(['active', paused ? 'no' : 'yes'])
    .row(['paused', paused ? 'yes' : 'no'])
    .row(['suspended', 'no'])
    .finish();
}

export const HELP_TEXT = [
  '',
  '\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION',
  '\tSHOW LISTS|STATE',
  '\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS',
  '\tSET key = arg',
  '\tRELOAD',
  '\tPAUSE [<db>]',
  '\tRESUME [<db>]',
  '\tDISABLE <db>',
  '\tENABLE <db>',
  '\tRECONNECT [<db>]',
  '\tKILL [<db>]',
  '\tKILL_CLIENT <client_id>',
  '\tSHUTDOWN',
  '\tWAIT_CLOSE [<db>]',
].join('\n');

export function showHelp(): Buffer {
  return Buffer.concat([noticeResponse({ severity: 'NOTICE', code: '00000', message: 'Console usage', detail: HELP_TEXT }), commandComplete('SHOW')]);
}
