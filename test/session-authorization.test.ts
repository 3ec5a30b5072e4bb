/**
 * Privilege changes follow the client exactly (issue 10, finding 8): SET SESSION AUTHORIZATION, SET ROLE,
 * RESET ROLE and RESET SESSION AUTHORIZATION by a superuser client in transaction mode, on a pool of 2 whose
 * servers bystanders keep busy, so each statement may run on another server.
 *
 * In PostgreSQL's parallel regression schedule through pgmux, `privileges` ran `SET SESSION AUTHORIZATION
 * regress_priv_user7` and then `UPDATE pg_catalog.pg_class SET relname = '123'`, which must be refused for that
 * user; the UPDATE ran as the superuser the pool logs in with and the upstream cluster ended in a PANIC loop.
 * Here the same pattern, with statements that are harmless should they run as the superuser (`WHERE false`, a
 * scratch role): each must be refused exactly as on a direct connection, and `current_user, session_user` after
 * each privilege change must be what PostgreSQL says. Bystanders (the same superuser) must never see another
 * identity than their own.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCheckedLoad } from './harness/checked-load.js';
import { adminClient, createTestDatabase, dropTestDatabase, pgInfo } from './harness/context.js';
import { startPgmux, transactionPool, type TestPgmux } from './harness/pgmux.js';

const tag = randomBytes(3).toString('hex');
const R1 = `f8_user_${tag}`;
const R2 = `f8_role_${tag}`;
const SCRATCH = `f8_scratch_${tag}`;
const LATE = `f8_late_${tag}`;
const DROPPED = `f8_dropped_${tag}`;
const NEXT = `f8_next_${tag}`;

let db: string;
let px: TestPgmux;
/** Transaction mode, pool of 1. */
let px1: TestPgmux;
let superuser: string;

beforeAll(async () => {
  db = await createTestDatabase('session_auth');
  const info = pgInfo();
  superuser = info.superuser;
  px1 = await startPgmux({ settings: transactionPool(1), databases: { [db]: { dbname: db } }, users: { [info.superuser]: { password: info.password } } });
  px = await startPgmux({
    settings: transactionPool(2),
    databases: { [db]: { dbname: db } },
    users: { [info.superuser]: { password: info.password } },
  });
});

async function dropRoles(): Promise<void> {
  const c = await adminClient();
  try {
    for (const role of [SCRATCH, LATE, R2, R1, DROPPED, NEXT]) await c.query(`DROP ROLE IF EXISTS ${role}`);
  } finally {
    await c.end();
  }
}

afterAll(async () => {
  await px?.stop();
  await px1?.stop();
  if (db !== undefined) await dropTestDatabase(db);
  await dropRoles();
});

async function connect(port: number): Promise<pg.Client> {
  const info = pgInfo();
  const c = new pg.Client({ host: '127.0.0.1', port, user: info.superuser, password: info.password, database: db, connectionTimeoutMillis: 20_000 });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

const WHO = "select current_user, session_user, current_setting('is_superuser') as is_superuser";
/** Refused for a non-superuser; as a superuser it changes nothing (WHERE false). */
const CATALOG_UPDATE = 'UPDATE pg_catalog.pg_class SET relname = relname WHERE false';

/** Each entry a separate statement (simple query), in order. */
function script(): string[] {
  return [
    `CREATE ROLE ${R1}`,
    `CREATE ROLE ${R2}`,
    `GRANT ${R2} TO ${R1}`,
    `SET SESSION AUTHORIZATION ${R1}`,
    WHO,
    CATALOG_UPDATE,
    `CREATE ROLE ${SCRATCH}`,
    WHO,
    WHO,
    `SET ROLE ${R2}`,
    WHO,
    CATALOG_UPDATE,
    WHO,
    'RESET ROLE',
    WHO,
    CATALOG_UPDATE,
    `SET ROLE ${R2}`,
    'RESET SESSION AUTHORIZATION',
    WHO,
    CATALOG_UPDATE,
    WHO,
    // The privileges test's pattern: a role created, then taken on at once, then a refused statement.
    `CREATE ROLE ${LATE}`,
    `SET SESSION AUTHORIZATION ${LATE}`,
    CATALOG_UPDATE,
    WHO,
    'SET SESSION AUTHORIZATION DEFAULT',
    WHO,
    // Inside transaction blocks: committed, rolled back, SET LOCAL.
    `BEGIN; SET SESSION AUTHORIZATION ${R1}; COMMIT`,
    WHO,
    CATALOG_UPDATE,
    'BEGIN; SET SESSION AUTHORIZATION DEFAULT; ROLLBACK',
    WHO,
    `BEGIN; SET LOCAL ROLE ${R2}; COMMIT`,
    WHO,
    'RESET ALL', // leaves session_authorization and role alone
    WHO,
    CATALOG_UPDATE,
    'DISCARD ALL', // resets both
    WHO,
    CATALOG_UPDATE,
    `select set_config('session_authorization', '${R1}', false) is not null as set`,
    WHO,
    CATALOG_UPDATE,
    'RESET SESSION AUTHORIZATION',
    WHO,
  ];
}

/** One line per statement: rows, or the error's SQLSTATE and message. */
async function run(c: pg.Client, statements: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const sql of statements) {
    try {
      const r = (await c.query({ text: sql, rowMode: 'array' })) as unknown as pg.QueryResult | pg.QueryResult[];
      const results = Array.isArray(r) ? r : [r];
      out.push(results.map((x) => `${x.command} ${x.rowCount ?? ''} ${JSON.stringify(x.rows)}`).join('; '));
    } catch (err) {
      out.push(`ERROR ${(err as { code?: string }).code} ${(err as Error).message}`);
    }
  }
  return out;
}

describe('SET SESSION AUTHORIZATION and SET ROLE in transaction mode, moving between servers', () => {
  it('every statement runs with the privileges PostgreSQL gives it directly; bystanders stay themselves', async () => {
    const statements = script();
    const direct = await connect(pgInfo().port);
    const want = await run(direct, statements).finally(() => direct.end());
    await dropRoles();
    // Sanity: directly, the catalog UPDATE and CREATE ROLE are refused after SET SESSION AUTHORIZATION.
    expect(want[5]).toMatch(/^ERROR 42501 permission denied for table pg_class/);
    expect(want[6]).toMatch(/^ERROR 42501 /);
    expect(want[4]).toBe(`SELECT 1 ${JSON.stringify([[R1, R1, 'off']])}`);
    expect(want[statements.indexOf('RESET SESSION AUTHORIZATION') + 1]).toBe(`SELECT 1 ${JSON.stringify([[superuser, superuser, 'on']])}`);

    const load = await startCheckedLoad(() => connect(px.port), {
      sql: "select current_user, session_user, current_setting('is_superuser')",
      expected: () => [[superuser, superuser, 'on']],
    });
    let got: string[];
    try {
      const c = await connect(px.port);
      got = await run(c, statements).finally(() => c.end());
    } finally {
      await load.stop();
    }
    statements.forEach((sql, i) => expect.soft(got[i], `statement ${i}: ${sql}`).toBe(want[i]));
    expect(load.problems, 'what the bystanders saw').toEqual([]);

    // Afterwards a fresh client is itself, and the scratch role was never created by a statement that had to fail.
    const fresh = await connect(px.port);
    expect((await run(fresh, [WHO]).finally(() => fresh.end()))[0]).toBe(`SELECT 1 ${JSON.stringify([[superuser, superuser, 'on']])}`);
    const check = await adminClient();
    try {
      const r = await check.query('select count(*)::int as n from pg_roles where rolname = $1', [SCRATCH]);
      expect(r.rows[0].n, `role ${SCRATCH} created by a statement PostgreSQL refuses`).toBe(0);
    } finally {
      await check.end();
    }
  }, 60_000);
});

describe('a client that leaves after SET SESSION AUTHORIZATION', () => {
  it('leaves nothing behind: a fresh client is the superuser, even after that role is dropped, and can take on another role', async () => {
    const admin = await adminClient();
    try {
      await admin.query(`CREATE ROLE ${DROPPED}`);
      await admin.query(`CREATE ROLE ${NEXT}`);
    } finally {
      await admin.end();
    }
    const a = await connect(px1.port);
    expect(await run(a, [`SET SESSION AUTHORIZATION ${DROPPED}`, WHO])).toEqual(['SET  []', `SELECT 1 ${JSON.stringify([[DROPPED, DROPPED, 'off']])}`]);
    await a.end();
    // The test that created the role drops it when done (as the regression tests do).
    const dropper = await adminClient();
    try {
      await dropper.query(`DROP ROLE ${DROPPED}`);
    } finally {
      await dropper.end();
    }
    const b = await connect(px1.port);
    const got = await run(b, [WHO, CATALOG_UPDATE, `SET SESSION AUTHORIZATION ${NEXT}`, WHO, CATALOG_UPDATE, 'RESET SESSION AUTHORIZATION', WHO]).finally(() => b.end());
    expect(got).toEqual([
      `SELECT 1 ${JSON.stringify([[superuser, superuser, 'on']])}`,
      'UPDATE 0 []',
      'SET  []',
      `SELECT 1 ${JSON.stringify([[NEXT, NEXT, 'off']])}`,
      'ERROR 42501 permission denied for table pg_class',
      'RESET  []',
      `SELECT 1 ${JSON.stringify([[superuser, superuser, 'on']])}`,
    ]);
  }, 30_000);
});

describe('a superuser-only setting on a server, and a client whose role is not a superuser', () => {
  it('the setting another client left is undone before the role is taken on: the client sees what a fresh backend has', async () => {
    const admin = await adminClient();
    try {
      await admin.query(`DROP ROLE IF EXISTS ${SCRATCH}`);
      await admin.query(`CREATE ROLE ${SCRATCH}`);
    } finally {
      await admin.end();
    }
    // Pool of 1: both clients' statements take turns on one server connection.
    const b = await connect(px1.port);
    const a = await connect(px1.port);
    const ask = "SELECT current_user AS u, current_setting('session_replication_role') AS r";
    try {
      await b.query(`SET ROLE ${SCRATCH}`);
      // session_replication_role is superuser-only: set by A as the superuser, it cannot be reset under B's role.
      await a.query('SET session_replication_role = replica');
      expect((await b.query(ask)).rows).toEqual([{ u: SCRATCH, r: 'origin' }]);
      expect((await a.query(ask)).rows).toEqual([{ u: superuser, r: 'replica' }]);
      expect((await b.query(ask)).rows).toEqual([{ u: SCRATCH, r: 'origin' }]);
      // And the other way: B, as the superuser, sets it, then takes on the role; A resets it meanwhile.
      await b.query('RESET ROLE');
      await b.query("SET session_replication_role = 'local'");
      await b.query(`SET ROLE ${SCRATCH}`);
      await a.query('RESET session_replication_role');
      expect((await b.query(ask)).rows).toEqual([{ u: SCRATCH, r: 'local' }]);
      expect((await a.query(ask)).rows).toEqual([{ u: superuser, r: 'origin' }]);
    } finally {
      await a.end();
      await b.end();
    }
  }, 30_000);
});
