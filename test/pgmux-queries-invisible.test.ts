/**
 * No answer to a query pgmux sends on its own behalf ever reaches a client (issue 10, finding 4).
 *
 * In transaction mode pgmux asks the server about session state when a transaction that may have changed it
 * ends (settings after a SET, pins after DECLARE ... WITH HOLD / CLOSE and the like). PostgreSQL's regression
 * tests `portals`, `join` and `select_parallel` showed that check's row (`count | count | count | count | count`)
 * in the client's output right after `begin;` or after a WITH HOLD cursor's `commit;`, or instead of the result of
 * the client's next SELECT: the client's next query arrives while the check is still running.
 *
 * - psql running a script file (as pg_regress does; psql sends each statement when the previous answer is in):
 *   the output equals psql's directly, byte for byte.
 * - a raw client that sends each next query in the same tick the previous ReadyForQuery arrives: every answer
 *   equals the direct one, message for message.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLoad } from './harness/clients.js';
import { adminClient, createTestDatabase, dropTestDatabase, pgInfo } from './harness/context.js';
import { startPgmux, transactionPool, type TestPgmux } from './harness/pgmux.js';
import { runPsqlScript } from './harness/psql-script.js';
import { TRUST_ROLE } from './harness/roles.js';
import { normalise, WireClient } from './harness/wire-client.js';

let px: TestPgmux;
let db: string;

beforeAll(async () => {
  db = await createTestDatabase('own_queries');
  const admin = await adminClient(db);
  try {
    await admin.query('CREATE TABLE t (a int PRIMARY KEY, b text NOT NULL)');
    await admin.query("INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 24) g");
    await admin.query(`GRANT SELECT ON t TO ${TRUST_ROLE.name}`);
  } finally {
    await admin.end();
  }
  px = await startPgmux({
    settings: transactionPool(2),
    databases: { [db]: { dbname: db } },
  });
});

afterAll(async () => {
  await px?.stop();
  if (db !== undefined) await dropTestDatabase(db);
});

/**
 * One round of statements after which pgmux asks the server about session state, each followed at once by the
 * client's next. The transactions that both SET something and create or drop pinning state make pgmux run two
 * queries of its own in a row (settings, then pins): the client's next query then arrives between them.
 */
function round(i: number): string[] {
  return [
    // portals: a WITH HOLD cursor outlives its transaction (pgmux checks for it after COMMIT).
    'BEGIN',
    `DECLARE c${i} CURSOR WITH HOLD FOR SELECT a, b FROM t ORDER BY a`,
    `FETCH 2 FROM c${i}`,
    'COMMIT',
    'BEGIN',
    `FETCH 2 FROM c${i}`,
    'SELECT count(*) AS n, sum(a) AS s FROM t',
    'COMMIT',
    `FETCH 1 FROM c${i}`,
    `CLOSE c${i}`,
    // A cursor and a SET in one transaction: settings and pins are both asked about after COMMIT.
    'BEGIN',
    `DECLARE h${i} CURSOR WITH HOLD FOR SELECT a FROM t WHERE a > 20 ORDER BY a`,
    "SET work_mem = '3MB'",
    'COMMIT',
    // join: the SELECT right after; its answer must be its own.
    'SELECT x.a, y.b FROM t x JOIN t y ON y.a = x.a + 1 WHERE x.a < 4 ORDER BY x.a',
    `FETCH ALL FROM h${i}`,
    // While pinned by the cursor: SET and CLOSE in one request, then at once the next.
    `SET enable_hashjoin = off; CLOSE h${i}`,
    'SELECT x.a FROM t x JOIN t y USING (a) WHERE x.a <= 2 ORDER BY 1',
    "SELECT current_setting('work_mem') AS work_mem, current_setting('enable_hashjoin') AS hashjoin",
    // A temporary table (pins) created together with a SET, then dropped together with a RESET.
    `CREATE TEMP TABLE tt${i} AS SELECT a FROM t WHERE a <= 3; SET enable_mergejoin = off`,
    `SELECT count(*) AS temp_rows FROM tt${i}`,
    `DROP TABLE tt${i}; RESET enable_mergejoin`,
    'SELECT 1 AS one',
    // A SET on its own (pgmux captures settings after it), then at once other statements.
    "SET work_mem = '2MB'",
    "SELECT current_setting('work_mem') AS work_mem",
    'BEGIN',
    'SELECT 2 AS two',
    'ROLLBACK',
    'RESET work_mem',
    'RESET enable_hashjoin',
    // A cursor declared WITH HOLD and closed in one request.
    `BEGIN; DECLARE d${i} CURSOR WITH HOLD FOR SELECT 1; COMMIT`,
    `CLOSE d${i}`,
    'SELECT 3 AS three',
  ];
}

const ROUNDS = 4;

function allStatements(): string[] {
  return Array.from({ length: ROUNDS }, (_, i) => round(i)).flat();
}

describe('psql -f, as pg_regress runs a test', () => {
  it('the output equals psql\'s directly, byte for byte', async () => {
    const script = allStatements().map((s) => `${s};\n`).join('');
    const options = { database: db, user: TRUST_ROLE.name, env: { PGAPPNAME: 'pg_regress/portals' } };
    const direct = await runPsqlScript(script, { ...options, port: pgInfo().port });
    expect(direct.code, direct.output).toBe(0);
    expect(direct.output).not.toMatch(/ERROR|count \| count/);
    for (let run = 0; run < 3; run++) {
      const viaPgmux = await runPsqlScript(script, { ...options, port: px.port });
      expect(viaPgmux.output, `run ${run + 1} through pgmux`).toBe(direct.output);
      expect(viaPgmux.code).toBe(0);
    }
  }, 60_000);
});

describe('a client that sends its next query the moment ReadyForQuery arrives', () => {
  async function backToBack(port: number): Promise<string[][]> {
    const { client } = await WireClient.login(port, { user: TRUST_ROLE.name, database: db, application_name: 'back-to-back' });
    try {
      return (await client.runBackToBack(allStatements())).map((m) => normalise(m));
    } finally {
      client.destroy();
    }
  }

  it.each([
    ['alone on the pool', 0],
    ['with other clients busy on the pool', 6],
  ])('%s: every answer equals the direct one, message for message', async (_name, bystanders) => {
    const statements = allStatements();
    const want = await backToBack(pgInfo().port);
    const load =
      bystanders > 0
        ? await startLoad(
            async () => {
              const c = new pg.Client({ host: '127.0.0.1', port: px.port, user: TRUST_ROLE.name, database: db });
              c.on('error', () => undefined);
              await c.connect();
              return c;
            },
            { clients: bystanders, sql: 'select pg_sleep(0.001)' },
          )
        : null;
    let got: string[][];
    try {
      got = await backToBack(px.port);
    } finally {
      await load?.stop();
    }
    statements.forEach((sql, i) => expect.soft(got[i], `statement ${i}: ${sql}`).toEqual(want[i]));
    expect(got).toHaveLength(statements.length);
  }, 60_000);
});
