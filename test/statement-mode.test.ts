/**
 * pool_mode: statement. Each request (a simple Query, or an extended-protocol batch up to Sync)
 * may use a different server connection; a transaction block left open across requests is
 * refused with 25000 and rolled back, as in PgBouncer.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, createTestDatabase } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { APP_ROLE } from './harness/roles.js';

let px: TestPgmux;
let db: string;
let admin: pg.Client;

beforeAll(async () => {
  db = await createTestDatabase('statement_mode');
  admin = await adminClient(db);
  await admin.query(`create table t (id int); grant all on t to ${APP_ROLE.name}`);
  px = await startPgmux({
    settings: { pool_mode: 'statement', default_pool_size: 2, log_connections: false, log_disconnections: false },
    databases: { app: { dbname: db } },
    users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
  });
});

afterAll(async () => {
  await px?.stop();
  await admin?.end();
});

async function connect(): Promise<pg.Client> {
  const c = new pg.Client(px.url('app', APP_ROLE.name, APP_ROLE.password));
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

describe('pool_mode statement', () => {
  it('serves many clients with single statements, parameterised ones included, on a pool of 2', async () => {
    const clients = await Promise.all(Array.from({ length: 10 }, () => connect()));
    await Promise.all(clients.map(async (c, i) => {
      for (let j = 0; j < 20; j++) expect((await c.query('select $1::int + $2::int as v', [i, j])).rows[0].v).toBe(i + j);
    }));
    await Promise.all(clients.map((c) => c.end()));
  });

  it('allows a transaction sent as one request (a multi-statement query)', async () => {
    const c = await connect();
    await c.query('begin; insert into t values (1); commit');
    expect((await admin.query('select count(*)::int as n from t where id = 1')).rows[0].n).toBe(1);
    await c.end();
  });

  it('refuses a transaction block left open with 25000 naming pool_mode, rolls it back, and frees the server', async () => {
    const c = await connect();
    const err = (await c.query('begin; insert into t values (2)').then(
      () => new Error('the open transaction was accepted'),
      (e: unknown) => e,
    )) as Error & { code?: string; hint?: string };
    expect(err.code).toBe('25000');
    expect(err.message).toMatch(/statement pooling mode/);
    expect(err.hint).toMatch(/pool_mode/);
    // Rolled back, and the pool still serves others with both servers.
    expect((await admin.query('select count(*)::int as n from t where id = 2')).rows[0].n).toBe(0);
    const others = await Promise.all([connect(), connect()]);
    for (const o of others) expect((await o.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    await Promise.all(others.map((o) => o.end()));
    const open = await admin.query("select count(*)::int as n from pg_stat_activity where datname = $1 and state like 'idle in transaction%'", [db]);
    expect(open.rows[0].n).toBe(0);
  });
});
