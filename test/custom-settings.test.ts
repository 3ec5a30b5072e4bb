/**
 * Settings pg_settings does not show, in transaction mode: custom (placeholder) settings such as
 * `app.tenant`, which multi-tenant applications read in row-level-security policies, and settings
 * changed by code pgmux cannot read (a DO block). Each follows the client that set it, as on a
 * direct connection, and never reaches another client of the same server.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, createTestDatabase, pgInfo } from './harness/context.js';
import { startPgmux, transactionPool, type TestPgmux } from './harness/pgmux.js';
import { TRUST_ROLE } from './harness/roles.js';

let db: string;
let one: TestPgmux;
let two: TestPgmux;

// max_client_conn and query_wait_timeout at their defaults, as the test was written.
const settings = (size: number) => transactionPool(size, { max_client_conn: 5000, query_wait_timeout: '2min' });

beforeAll(async () => {
  db = await createTestDatabase('custom_settings');
  const admin = await adminClient(db);
  await admin.query(`CREATE TABLE stats_src (x int, y int); ALTER TABLE stats_src OWNER TO ${TRUST_ROLE.name}`);
  await admin.end();
  one = await startPgmux({ settings: settings(1), databases: { [db]: { dbname: db } } });
  two = await startPgmux({ settings: settings(2), databases: { [db]: { dbname: db } } });
});

afterAll(async () => {
  await one?.stop();
  await two?.stop();
});

async function connect(port: number): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port, database: db, user: TRUST_ROLE.name });
  await c.connect();
  return c;
}

const read = async (c: pg.Client, sql: string): Promise<unknown> => (await c.query(sql)).rows[0];
const TENANT = "select current_setting('app.tenant', true) as tenant";
const BITMAP = 'show enable_bitmapscan';

describe('a custom setting', () => {
  it('is not seen by the next client of the same server (pool of 1)', async () => {
    const a = await connect(one.port);
    await a.query("SET app.tenant = 'tenant-a'");
    await a.query("select set_config('app.user_id', '42', false)");
    await a.end();
    const b = await connect(one.port);
    try {
      const seen = (await read(b, "select current_setting('app.tenant', true) as tenant, current_setting('app.user_id', true) as uid")) as { tenant: string | null; uid: string | null };
      // A fresh backend says NULL; a reused one can only say '' (PostgreSQL keeps a placeholder defined).
      expect([null, '']).toContain(seen.tenant);
      expect([null, '']).toContain(seen.uid);
    } finally {
      await b.end();
    }
  });

  it('follows its client to another server, and is seen by nobody else', async () => {
    const direct = await connect(pgInfo().port);
    const a = await connect(two.port);
    const others = await Promise.all([connect(two.port), connect(two.port)]);
    try {
      const script = ["SET app.tenant = 'tenant-a'", TENANT, 'select pg_sleep(0.01)', TENANT, "SET app.tenant = 'tenant-b'", TENANT, 'RESET app.tenant', TENANT];
      const want: unknown[] = [];
      for (const sql of script) want.push(await read(direct, sql));
      let stop = false;
      const seenByOthers: unknown[] = [];
      const load = others.map(async (c) => {
        while (!stop) seenByOthers.push(await read(c, TENANT));
      });
      const got: unknown[] = [];
      for (const sql of script) got.push(await read(a, sql));
      stop = true;
      await Promise.all(load);
      expect(got).toEqual(want);
      expect(seenByOthers.length).toBeGreaterThan(0);
      for (const seen of seenByOthers) expect([null, '']).toContain((seen as { tenant: string | null }).tenant);
    } finally {
      await Promise.all([direct.end(), a.end(), ...others.map((c) => c.end())]);
    }
  });
});

describe('a setting changed inside a DO block', () => {
  it('stays with its client and does not reach the next client of the server', async () => {
    const a = await connect(one.port);
    await a.query('DO $x$ BEGIN SET enable_bitmapscan = off; END $x$');
    expect(await read(a, BITMAP)).toEqual({ enable_bitmapscan: 'off' });
    await a.end();
    const b = await connect(one.port);
    try {
      expect(await read(b, BITMAP)).toEqual({ enable_bitmapscan: 'on' });
    } finally {
      await b.end();
    }
  });
});

describe('an object created in the temporary schema by name', () => {
  it('pins its client, so dropping it finds it (CREATE STATISTICS pg_temp.x)', async () => {
    const a = await connect(two.port);
    const busy = await connect(two.port);
    try {
      await a.query('CREATE STATISTICS pg_temp.s_temp ON x, y FROM stats_src');
      for (let i = 0; i < 5; i++) await busy.query('select 1');
      await expect(a.query('DROP STATISTICS pg_temp.s_temp')).resolves.toBeDefined();
    } finally {
      await Promise.all([a.end(), busy.end()]);
    }
  });
});
