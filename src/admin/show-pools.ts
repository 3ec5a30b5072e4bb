/**
 * SHOW POOLS: one row per (database, user) pool, counted from the pool's containers.
 *
 * Columns and types are PgBouncer 1.25's (admin.c admin_show_pools), then pgmux's own at the end
 * (appending keeps pgbouncer_exporter and scripts that read by position working):
 * `pinned` clients held on their server by session state, `prepared_statements` held by the
 * pool's server connections, `login_failures` (server logins failed in a row, 0 once one succeeds)
 * and `last_login_error` (SQLSTATE and message of the latest of them, while they go on).
 */
import { ADMIN_DATABASES } from '../config/checks.js';
import type { Pool } from '../pool/pool.js';
import type { PoolRegistry } from '../pool/pool-registry.js';
import { int4, ResultSet, text } from './result-set.js';

export const POOLS_COLUMNS = [
  text('database'),
  text('user'),
  int4('cl_active'),
  int4('cl_waiting'),
  int4('cl_active_cancel_req'),
  int4('cl_waiting_cancel_req'),
  int4('sv_active'),
  int4('sv_active_cancel'),
  int4('sv_being_canceled'),
  int4('sv_idle'),
  int4('sv_used'),
  int4('sv_tested'),
  int4('sv_login'),
  int4('maxwait'),
  int4('maxwait_us'),
  text('pool_mode'),
  text('load_balance_hosts'),
  // pgmux
  int4('pinned'),
  int4('prepared_statements'),
  int4('login_failures'),
  text('last_login_error'),
];

/**
 * Idle servers split as PgBouncer does: `used` ones have been idle longer than server_check_delay
 * and get server_check_query before their next client.
 */
export function idleSplit(pool: Pool, now: number): { idle: number; used: number } {
  const s = pool.settings;
  let used = 0;
  if (s.checkQuery !== null) for (const server of pool.idle) if (now - server.idleSince >= s.checkDelayMs) used++;
  return { idle: pool.idle.length - used, used };
}

export function showPools(registry: PoolRegistry, now: number = Date.now()): Buffer {
  const rs = new ResultSet(POOLS_COLUMNS);
  for (const pool of registry.pools.values()) {
    const head = pool.waiting.peek();
    const waitedUs = head === undefined ? 0 : Math.max(0, now - head.waitingSince) * 1000;
    const { idle, used } = idleSplit(pool, now);
    let pinned = 0;
    for (const client of pool.clients) if (client.pinned) pinned++;
    let prepared = 0;
    let cancels = 0;
    for (const set of [pool.idle, pool.active, pool.resetting, pool.closing]) {
      for (const server of set) {
        if (set !== pool.closing) prepared += server.statements.size;
        cancels += server.activeCancels;
      }
    }
    // Released servers held back until the cancel sent for their last client has been acted on (ServerConnection.cancel).
    let beingCanceled = 0;
    for (const server of pool.resetting) if (server.beingCanceled) beingCanceled++;
    rs.row([
      pool.database,
      pool.user,
      Math.max(0, pool.clients.size - pool.waiting.length),
      pool.waiting.length,
      pool.cancelRequestsInFlight,
      0, // a cancel for a queued client is answered at once (57014), never waits for a server
      pool.active.size,
      cancels,
      beingCanceled,
      idle,
      used,
      pool.resetting.size - beingCanceled,
      pool.connecting.size,
      Math.floor(waitedUs / 1_000_000),
      Math.floor(waitedUs % 1_000_000),
      pool.settings.mode,
      null,
      pinned,
      prepared,
      pool.logins.failures,
      pool.logins.lastError === null ? null : `${pool.logins.lastError.sqlstate} ${pool.logins.lastError.message}`,
    ]);
  }
  // The admin console's own pool, as PgBouncer lists "pgbouncer/pgbouncer" (its clients are the console sessions).
  let admins = 0;
  for (const c of registry.clients) if (c.isAdmin) admins++;
  rs.row([ADMIN_DATABASES[0], ADMIN_DATABASES[0], admins, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'statement', null, 0, 0, 0, null]);
  return rs.finish();
}
