/**
 * A server pgmux opens with a client's startup settings is opened only with settings the server reports
 * (differential fuzzer, seed 6060606). search_path is reported from PostgreSQL 18 on: a PostgreSQL 15 server
 * opened with a client's `-c search_path=...` kept that value unseen by pgmux, so a later client with no
 * search_path of its own ran there with the first client's (and a RESET there returned to it).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { adminClient, createTestDatabase, dropTestDatabase } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { TRUST_ROLE } from './harness/roles.js';
import { rowsOf, WireClient } from './harness/wire-client.js';

let db: string;
let px: TestPgmux;
let defaultSearchPath: string;

beforeAll(async () => {
  db = await createTestDatabase('startup_reuse');
  px = await startPgmux({ settings: { pool_mode: 'transaction', default_pool_size: 2, auth_type: 'trust', log_connections: false, log_disconnections: false }, databases: { [db]: { dbname: db } } });
  const admin = await adminClient(db);
  defaultSearchPath = (await admin.query<{ sp: string }>("select current_setting('search_path') as sp")).rows[0].sp;
  await admin.end();
});

afterAll(async () => {
  await px?.stop();
  if (db !== undefined) await dropTestDatabase(db);
});

const login = (params: Record<string, string> = {}) => WireClient.login(px.port, { user: TRUST_ROLE.name, database: db, ...params }).then((r) => r.client);
const PROBE = "select current_setting('search_path') as sp, current_setting('TimeZone') as tz";
const WITH_PATH = { options: '-c search_path=c2,\\ public --TimeZone=America/Los_Angeles' };

it('a client without a search_path never gets the one another client logged in with, on any server', async () => {
  const plain = await login();
  await plain.request('select 1');
  plain.destroy();
  // The first client with these settings logs in through a server (so they are known to be accepted); a second
  // one, while the first holds that server, makes the pool open a server for them.
  const first = await login(WITH_PATH);
  expect(rowsOf(await first.request('BEGIN; ' + PROBE))).toEqual([['c2, public', 'America/Los_Angeles']]);
  const second = await login(WITH_PATH);
  expect(rowsOf(await second.request(PROBE))).toEqual([['c2, public', 'America/Los_Angeles']]);
  await first.request('COMMIT');
  // Clients asking for the same TimeZone but no search_path, holding both servers at once.
  const others = [await login({ TimeZone: 'America/Los_Angeles' }), await login({ TimeZone: 'America/Los_Angeles' })];
  const seen = [];
  for (const c of others) seen.push(rowsOf(await c.request('BEGIN; ' + PROBE)));
  for (const c of others) await c.request('RESET search_path; ' + PROBE + '; COMMIT').then((answer) => seen.push(rowsOf(answer)));
  for (const c of [first, second, ...others]) c.destroy();
  expect(seen).toEqual([0, 1, 2, 3].map(() => [[defaultSearchPath, 'America/Los_Angeles']]));
});
