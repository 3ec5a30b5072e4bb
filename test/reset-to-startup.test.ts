/**
 * RESET of a parameter the client gave at startup returns to the client's startup value, as in PostgreSQL
 * (issue 10, finding 7): `RESET TimeZone`, `RESET datestyle`, `SET ... TO DEFAULT`, `RESET ALL`, for startup
 * parameters in the startup packet (canonical and lower case) and in `options`.
 *
 * - Transaction mode, pool of 2 with six bystanders keeping both servers busy: the client moves between servers
 *   after every statement, and every answer (rows, tags, errors, the ParameterStatus values reported) equals a
 *   direct connection's. The bystanders see their own settings throughout.
 * - Session mode, pool of 2, clients with different startup values one after another (so each server is reused
 *   by clients that asked for other values): the same comparison.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCheckedLoad } from './harness/checked-load.js';
import { createTestDatabase, dropTestDatabase, pgInfo } from './harness/context.js';
import { connectClient } from './harness/clients.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { TRUST_ROLE } from './harness/roles.js';
import { normaliseWithFinalParameters, parameterStatuses, rowsOf, WireClient } from './harness/wire-client.js';

let db: string;
let tx: TestPgmux;
let session: TestPgmux;

function pgmuxSettings(mode: 'transaction' | 'session'): Record<string, unknown> {
  return {
    pool_mode: mode,
    default_pool_size: 2,
    auth_type: 'trust',
    max_client_conn: 200,
    query_wait_timeout: '30s',
    log_connections: false,
    log_disconnections: false,
  };
}

beforeAll(async () => {
  db = await createTestDatabase('reset_startup');
  tx = await startPgmux({ settings: pgmuxSettings('transaction'), databases: { [db]: { dbname: db } } });
  session = await startPgmux({ settings: pgmuxSettings('session'), databases: { [db]: { dbname: db } } });
});

afterAll(async () => {
  await tx?.stop();
  await session?.stop();
  if (db !== undefined) await dropTestDatabase(db);
});

interface Login {
  name: string;
  params: Record<string, string>;
  /** What the direct connection must show at login (sanity of the test itself). */
  timeZone: string;
}

const LOGINS: Login[] = [
  {
    name: 'canonical TimeZone / DateStyle in the startup packet',
    params: { TimeZone: 'America/Los_Angeles', DateStyle: 'Postgres, MDY', IntervalStyle: 'postgres_verbose', search_path: 'pg_catalog, public', extra_float_digits: '-3', application_name: 'reset-canonical' },
    timeZone: 'America/Los_Angeles',
  },
  {
    name: 'lower-case timezone / datestyle in the startup packet (libpq)',
    params: { timezone: 'Asia/Kathmandu', datestyle: 'SQL, DMY', intervalstyle: 'sql_standard', statement_timeout: '123s', extra_float_digits: '0', application_name: 'reset-lower' },
    timeZone: 'Asia/Kathmandu',
  },
  {
    name: 'options -c TimeZone / -c datestyle',
    params: { options: '-c TimeZone=Europe/Helsinki -c datestyle=German -c intervalstyle=iso_8601 -c search_path=public', application_name: "reset-options it's a \\ b" },
    timeZone: 'Europe/Helsinki',
  },
];

/** Each a separate Query (autocommit); every one may run on another server in transaction mode. */
const STATEMENTS = [
  'show TimeZone',
  'show datestyle',
  "SET TimeZone = 'Asia/Tokyo'",
  "SET datestyle = 'ISO, YMD'",
  'show timezone',
  'show DateStyle',
  'RESET TimeZone',
  'show TimeZone',
  "select '2024-01-01 00:00:00+00'::timestamptz as printed, extract(epoch from '2024-07-01 12:00:00'::timestamptz) as parsed",
  'RESET datestyle',
  'show DateStyle',
  "select '04/05/06'::date as ambiguous",
  "SET TIMEZONE TO 'Pacific/Auckland'",
  'SET timezone TO DEFAULT',
  'show timezone',
  "SET TimeZone = 'Asia/Tokyo'",
  "SET DateStyle = 'Postgres, DMY'",
  "SET IntervalStyle = 'postgres'",
  'SET search_path = pg_catalog',
  'SET extra_float_digits = 2',
  "SET statement_timeout = '7s'",
  "SET application_name = 'changed'",
  'RESET ALL',
  'show TimeZone',
  'show DateStyle',
  'show IntervalStyle',
  'show search_path',
  'show extra_float_digits',
  'show statement_timeout',
  'show application_name',
  "select '2024-01-01 00:00:00+00'::timestamptz as t, interval '1 day 02:03:04' as iv, 0.1::float8 as f",
  // RESET inside a transaction block, committed and rolled back.
  "SET TimeZone = 'Asia/Tokyo'",
  'BEGIN',
  'RESET TimeZone',
  'show TimeZone',
  'COMMIT',
  'show TimeZone',
  "SET DateStyle = 'SQL, MDY'",
  'BEGIN',
  'RESET ALL',
  'ROLLBACK',
  'show DateStyle',
  'RESET ALL',
  'show DateStyle',
  // RESET in a multi-statement Query, then on its own.
  "SET TimeZone = 'Asia/Tokyo'; RESET TimeZone; show TimeZone",
  "SET datestyle = 'ISO, DMY'",
  "RESET datestyle; select '04/05/06'::date",
  // An error after the RESET: its position is counted in the client's text (fuzzer seed 818181).
  'RESET ALL; select * from no_such_table',
  "RESET datestyle; select '03/04/2005'::date + nope",
  // The startup values are put back without a snapshot: the transaction's characteristics can still be set
  // (fuzzer seed 919193).
  'RESET ALL; BEGIN ISOLATION LEVEL REPEATABLE READ; show transaction_isolation',
  'COMMIT',
  'BEGIN; RESET TimeZone; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; show transaction_isolation; COMMIT',
  // Values with quotes and backslashes, whatever standard_conforming_strings says.
  'SET standard_conforming_strings = off',
  'RESET application_name; show application_name',
  'RESET ALL; show application_name',
];

const PROBE = 'select pg_backend_pid()';

/** Runs STATEMENTS on a fresh login; returns one normalised answer per statement, and the backends used. */
async function converse(port: number, login: Login): Promise<{ welcome: Record<string, string>; answers: string[][]; pids: Set<string> }> {
  const { client, welcome } = await WireClient.login(port, { user: TRUST_ROLE.name, database: db, ...login.params });
  const pids = new Set<string>();
  const answers: string[][] = [];
  try {
    for (const [i, sql] of STATEMENTS.entries()) {
      answers.push(normaliseWithFinalParameters(await client.request(sql)));
      // Now and then: which backend serves the client (to show it moved; not compared).
      if (i % 4 === 3) pids.add(String(rowsOf(await client.request(PROBE))[0][0]));
    }
  } finally {
    client.destroy();
  }
  const reported = parameterStatuses(welcome);
  return { welcome: { TimeZone: reported.TimeZone, DateStyle: reported.DateStyle, IntervalStyle: reported.IntervalStyle, application_name: reported.application_name }, answers, pids };
}

function compare(label: string, got: { welcome: Record<string, string>; answers: string[][] }, want: { welcome: Record<string, string>; answers: string[][] }): void {
  expect.soft(got.welcome, `${label}: ParameterStatus at login`).toEqual(want.welcome);
  STATEMENTS.forEach((sql, i) => expect.soft(got.answers[i], `${label}, statement ${i}: ${sql}`).toEqual(want.answers[i]));
}

const directAnswers = new Map<string, { welcome: Record<string, string>; answers: string[][] }>();

async function direct(login: Login): Promise<{ welcome: Record<string, string>; answers: string[][] }> {
  let found = directAnswers.get(login.name);
  if (found === undefined) {
    found = await converse(pgInfo().port, login);
    // Sanity: PostgreSQL itself returns to the startup value.
    expect(found.welcome.TimeZone).toBe(login.timeZone);
    expect(found.answers[7].join(' ')).toContain(login.timeZone);
    directAnswers.set(login.name, found);
  }
  return found;
}

describe('transaction mode, moving between servers with bystanders busy', () => {
  it.each(LOGINS.map((l) => [l.name, l] as const))('%s: RESET returns to the startup value, as directly', async (_name, login) => {
    const want = await direct(login);
    const load = await startCheckedLoad(
      () => connectClient(tx, { database: db, role: TRUST_ROLE, ignoreErrors: true }),
      { sql: "select current_setting('TimeZone'), current_setting('DateStyle'), current_setting('IntervalStyle'), current_setting('search_path'), current_setting('application_name')" },
    );
    let got: Awaited<ReturnType<typeof converse>>;
    try {
      got = await converse(tx.port, login);
    } finally {
      await load.stop();
    }
    compare(`through pgmux (${login.name})`, got, want);
    expect.soft(load.problems, 'what the bystanders saw').toEqual([]);
    expect(got.pids.size, 'servers the client used').toBeGreaterThanOrEqual(2);
  }, 60_000);
});

describe('session mode, servers reused by clients with other startup values', () => {
  it('each client, one after another and twice over, gets the answers it gets directly', async () => {
    const wants = await Promise.all(LOGINS.map((l) => direct(l)));
    for (let round = 0; round < 2; round++) {
      for (const [i, login] of LOGINS.entries()) {
        compare(`session mode, round ${round + 1} (${login.name})`, await converse(session.port, login), wants[i]);
      }
    }
  }, 60_000);
});
