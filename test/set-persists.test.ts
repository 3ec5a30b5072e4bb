/**
 * A SET outside a transaction block stays in force for the next statements (issue 10, finding 2), in transaction
 * mode over a pool of 2 whose servers other clients keep busy, so each statement may run on another server.
 *
 * pg_regress's horology does `set datestyle to ymd;` then `select '97FEB10 5:32:01PM UTC'::timestamp;`, two
 * autocommit statements, having logged in with PGDATESTYLE (libpq sends it as the lower-case `datestyle` startup
 * parameter). Through pgmux the second statement ran with the startup DateStyle again and failed; `show datestyle`
 * showed the value from before the SET. Here the same, and more of the same kind, run as psql scripts (compared
 * with psql directly, byte for byte) and over the raw protocol with startup parameters in each spelling (compared
 * message for message). Bystanders check that none of it reaches them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCheckedLoad, type CheckedLoad } from './harness/checked-load.js';
import { connectClient } from './harness/clients.js';
import { createTestDatabase, dropTestDatabase, pgInfo } from './harness/context.js';
import { startPgmux, transactionPool, type TestPgmux } from './harness/pgmux.js';
import { runPsqlScript } from './harness/psql-script.js';
import { TRUST_ROLE } from './harness/roles.js';
import { normalise, rowsOf, WireClient } from './harness/wire-client.js';

let px: TestPgmux;
let db: string;

beforeAll(async () => {
  db = await createTestDatabase('set_persists');
  px = await startPgmux({
    settings: transactionPool(2, { max_client_conn: 200, query_wait_timeout: '30s' }),
    databases: { [db]: { dbname: db } },
  });
});

afterAll(async () => {
  await px?.stop();
  if (db !== undefined) await dropTestDatabase(db);
});

/** Six clients of the same pool, each checking in a loop that its own DateStyle/TimeZone/IntervalStyle are untouched. */
function bystanders(): Promise<CheckedLoad> {
  return startCheckedLoad(
    () => connectClient(px, { database: db, role: TRUST_ROLE, ignoreErrors: true }),
    { sql: "select current_setting('DateStyle'), current_setting('TimeZone'), current_setting('IntervalStyle'), current_setting('search_path')" },
  );
}

async function withBystanders<T>(body: () => Promise<T>): Promise<T> {
  const load = await bystanders();
  try {
    return await body();
  } finally {
    const queries = await load.stop();
    // Soft: a failure of the body itself must not be hidden by this one.
    expect.soft(load.problems, 'what the bystanders saw').toEqual([]);
    expect.soft(queries).toBeGreaterThan(0);
  }
}

// ---- psql scripts, as pg_regress runs them ----

const HOROLOGY_LIKE = `
set datestyle to ymd;
select '97FEB10 5:32:01PM UTC'::timestamp;
show datestyle;
select '97FEB10 5:32:01PM UTC'::timestamptz;
select '1997-02-10 17:32:01'::timestamp as t, '97/02/10'::date as d;
set datestyle to 'sql, dmy';
select '1997-02-10 17:32:01'::timestamp as t, '10/02/1997'::date as d;
show datestyle;
set timezone to 'Asia/Tokyo';
select '2024-01-01 00:00:00+00'::timestamptz as tokyo;
show timezone;
SET TimeZone = 'America/Sao_Paulo';
show TIMEZONE;
select '2024-01-01 00:00:00+00'::timestamptz as sao_paulo;
select set_config('datestyle', 'German', false);
show datestyle;
select '2024-01-01 00:00:00+00'::timestamptz as german;
set intervalstyle to iso_8601;
select interval '1 day 2 hours' as iv;
show intervalstyle;
set search_path to pg_catalog;
show search_path;
set session characteristics as transaction isolation level serializable;
show transaction_isolation;
show default_transaction_isolation;
select 1 as after_all;
show datestyle;
show timezone;
show intervalstyle;
`;

/** What pg_regress gives psql (see pg_regress.c): PGTZ, PGDATESTYLE, PGOPTIONS with intervalstyle, PGAPPNAME. */
const PG_REGRESS_ENV = { PGTZ: 'PST8PDT', PGDATESTYLE: 'Postgres, MDY', PGOPTIONS: '-c intervalstyle=postgres_verbose', PGAPPNAME: 'pg_regress/horology' };

describe('psql -f, as pg_regress runs a test', () => {
  it.each([
    ['logged in with PGTZ / PGDATESTYLE / PGOPTIONS (pg_regress)', PG_REGRESS_ENV],
    ['logged in with no settings of its own', {}],
  ])('%s: the output equals psql directly', async (_name, env) => {
    const options = { database: db, user: TRUST_ROLE.name, env };
    const direct = await runPsqlScript(HOROLOGY_LIKE, { ...options, port: pgInfo().port });
    expect(direct.code, direct.output).toBe(0);
    // Sanity: the statement that failed through pgmux works directly.
    expect(direct.output).toContain('1997-02-10 17:32:01');
    expect(direct.output).not.toContain('ERROR');
    await withBystanders(async () => {
      for (let run = 0; run < 2; run++) {
        const viaPgmux = await runPsqlScript(HOROLOGY_LIKE, { ...options, port: px.port });
        expect(viaPgmux.output, `run ${run + 1} through pgmux`).toBe(direct.output);
      }
    });
  }, 60_000);
});

// ---- the raw protocol, startup parameters in each spelling ----

const STARTUP_SPELLINGS: Array<[string, Record<string, string>]> = [
  ['no startup settings', {}],
  ['lower-case datestyle / timezone (libpq)', { datestyle: 'Postgres, MDY', timezone: 'PST8PDT' }],
  ['canonical DateStyle / TimeZone (JDBC)', { DateStyle: 'Postgres, MDY', TimeZone: 'PST8PDT' }],
  ['options -c datestyle / -c TimeZone', { options: '-c datestyle=Postgres,\\ MDY -c TimeZone=PST8PDT' }],
];

/** Each a separate Query: autocommit statements, each its own transaction. */
const STATEMENTS = [
  'set datestyle to ymd',
  "select '97FEB10 5:32:01PM UTC'::timestamp",
  'show datestyle',
  "select '2024-01-01 00:00:00+00'::timestamptz as before_tz_set",
  "SET timezone TO 'Asia/Kolkata'",
  "select '2024-01-01 00:00:00+00'::timestamptz as after_tz_set",
  'show TimeZone',
  "select set_config('DateStyle', 'SQL, DMY', false)",
  "select '10/02/1997'::date, '2024-01-01 00:00:00+00'::timestamptz",
  'show DateStyle',
  "BEGIN; SET datestyle = 'German'; COMMIT",
  "select '2024-01-01 00:00:00+00'::timestamptz as german",
  "BEGIN; SET datestyle = 'ISO, YMD'; ROLLBACK",
  'show datestyle',
  'set extra_float_digits = 0',
  'select 0.1::float8 as f8, (1/3.0)::float4 as f4',
  'show extra_float_digits',
];

const PROBE = 'select pg_backend_pid()';

describe('SET statements over the raw protocol', () => {
  it.each(STARTUP_SPELLINGS)('%s: every answer equals a direct connection\'s, while the client moves between servers', async (_name, startup) => {
    const params = { user: TRUST_ROLE.name, database: db, ...startup };
    const direct = (await WireClient.login(pgInfo().port, params)).client;
    const expected: string[][] = [];
    try {
      for (const sql of STATEMENTS) expected.push(normalise(await direct.request(sql)));
    } finally {
      direct.destroy();
    }
    // Sanity: directly, the horology statement works.
    expect(expected[1].some((m) => m.startsWith('E'))).toBe(false);

    await withBystanders(async () => {
      const { client } = await WireClient.login(px.port, params);
      const pids = new Set<string>();
      try {
        for (const [i, sql] of STATEMENTS.entries()) {
          expect.soft(normalise(await client.request(sql)), `statement ${i}: ${sql}`).toEqual(expected[i]);
          pids.add(String(rowsOf(await client.request(PROBE))[0][0]));
        }
      } finally {
        client.destroy();
      }
      // Without moving between servers nothing would have been tested.
      expect(pids.size, 'servers the client used').toBeGreaterThanOrEqual(2);
    });
  }, 60_000);
});
