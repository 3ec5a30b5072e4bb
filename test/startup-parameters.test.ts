/**
 * Startup parameters follow every client, whichever server connection it is given (issue 10, finding 1).
 *
 * GUC names are case-insensitive: libpq sends `timezone` and `datestyle` (lower case) for PGTZ and PGDATESTYLE,
 * JDBC sends `TimeZone`, and `options=-c name=value` sets them too. Whatever the spelling, a client must see its
 * own values in every transaction, exactly as on a direct connection: otherwise timestamptz values are parsed and
 * printed in the wrong zone.
 *
 * - psql with PGTZ / PGDATESTYLE, run several times through pgmux, answers as psql directly.
 * - 30 concurrent clients over a pool of 5 (transaction mode), each with its own TimeZone, DateStyle,
 *   IntervalStyle, search_path, statement_timeout, application_name and extra_float_digits, given in the startup
 *   packet in canonical case, in lower case, through `options`, mixed, or by node-postgres: every answer of every
 *   transaction equals the answer the same client gets alone on a direct connection.
 */
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countBackends, watchBackends } from './harness/backends.js';
import { adminClient, createTestDatabase, dropTestDatabase, pgInfo } from './harness/context.js';
import { startPgmux, transactionPool, type TestPgmux } from './harness/pgmux.js';
import { libpqEnv, runProcess } from './harness/process.js';
import { TRUST_ROLE } from './harness/roles.js';
import { waitFor } from './harness/wait.js';
import { normalise, parameterStatuses, WireClient } from './harness/wire-client.js';

let px: TestPgmux;
let db: string;

beforeAll(async () => {
  db = await createTestDatabase('startup_params');
  px = await startPgmux({
    settings: transactionPool(5, { max_client_conn: 200, query_wait_timeout: '30s' }),
    // Same name as the real database, so both sides answer current_database() alike.
    databases: { [db]: { dbname: db } },
  });
});

afterAll(async () => {
  await px?.stop();
  if (db !== undefined) await dropTestDatabase(db);
});

// ---- psql with PGTZ / PGDATESTYLE ----

async function psqlWithEnv(port: number, extraEnv: Record<string, string>, commands: string[]): Promise<string> {
  const env = { ...libpqEnv(), ...extraEnv };
  const conninfo = `host=127.0.0.1 port=${port} dbname=${db} user=${TRUST_ROLE.name}`;
  const r = await runProcess(path.join(pgInfo().binDir, 'psql'), ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', conninfo, ...commands.flatMap((c) => ['-c', c])], {
    env,
    timeoutMs: 20_000,
  });
  if (r.code !== 0) throw new Error(`psql failed (${r.code ?? r.signal}): ${r.output}`);
  return r.stdout;
}

describe('psql with PGTZ and PGDATESTYLE (libpq sends lower-case timezone / datestyle)', () => {
  it('every run through pgmux shows the values asked for, as directly', async () => {
    const env = { PGTZ: 'America/Los_Angeles', PGDATESTYLE: 'Postgres, MDY', PGOPTIONS: '-c intervalstyle=postgres_verbose' };
    const commands = ['show timezone', 'show datestyle', 'show intervalstyle', "select '2024-07-01 12:00:00+00'::timestamptz, interval '1 day 02:03:04'"];
    const direct = await psqlWithEnv(pgInfo().port, env, commands);
    expect(direct).toBe('America/Los_Angeles\nPostgres, MDY\npostgres_verbose\nMon Jul 01 05:00:00 2024 PDT|@ 1 day 2 hours 3 mins 4 secs\n');
    // The first run logs in a server with these values; the later ones reuse it or another.
    for (let run = 0; run < 4; run++) {
      expect(await psqlWithEnv(px.port, env, commands), `run ${run + 1} through pgmux`).toBe(direct);
    }
    // A client with other values in between, on the same pool.
    const other = { PGTZ: 'Asia/Tokyo', PGDATESTYLE: 'SQL, DMY' };
    const otherDirect = await psqlWithEnv(pgInfo().port, other, commands);
    for (let run = 0; run < 2; run++) {
      expect(await psqlWithEnv(px.port, other, commands), `other client, run ${run + 1}`).toBe(otherDirect);
      expect(await psqlWithEnv(px.port, env, commands), `first client again, run ${run + 1}`).toBe(direct);
    }
  }, 60_000);
});

// ---- 30 clients, each with its own settings ----

const ZONES = [
  'America/Los_Angeles', 'Europe/Berlin', 'Asia/Tokyo', 'Australia/Adelaide', 'America/Sao_Paulo', 'Asia/Kolkata',
  'Pacific/Auckland', 'Africa/Cairo', 'America/New_York', 'Europe/London', 'Asia/Kathmandu', 'America/St_Johns',
  'Pacific/Honolulu', 'Asia/Shanghai', 'Europe/Moscow', 'America/Chicago', 'America/Denver', 'Atlantic/Azores',
  'Asia/Tehran', 'Asia/Dubai', 'Europe/Helsinki', 'America/Anchorage', 'Asia/Singapore', 'Africa/Johannesburg',
  'America/Caracas', 'Pacific/Chatham', 'Asia/Yangon', 'Europe/Lisbon', 'America/Halifax', 'Etc/GMT+5',
];
const DATESTYLES = ['ISO, MDY', 'ISO, DMY', 'ISO, YMD', 'SQL, MDY', 'SQL, DMY', 'Postgres, MDY', 'Postgres, DMY', 'Postgres, YMD', 'German, DMY'];
const INTERVALSTYLES = ['postgres', 'postgres_verbose', 'sql_standard', 'iso_8601'];
const SPELLINGS = ['canonical', 'lower', 'options', 'mixed', 'node-postgres'] as const;
type Spelling = (typeof SPELLINGS)[number];

interface ClientSpec {
  index: number;
  spelling: Spelling;
  settings: {
    TimeZone: string;
    DateStyle: string;
    IntervalStyle: string;
    search_path: string;
    statement_timeout: string;
    application_name: string;
    extra_float_digits: string;
  };
}

function specs(): ClientSpec[] {
  return Array.from({ length: 30 }, (_, i) => ({
    index: i,
    spelling: SPELLINGS[i % SPELLINGS.length],
    settings: {
      TimeZone: ZONES[i],
      DateStyle: DATESTYLES[i % DATESTYLES.length],
      IntervalStyle: INTERVALSTYLES[i % INTERVALSTYLES.length],
      search_path: `s${i}, public`,
      statement_timeout: `${100 + i}s`,
      application_name: `startup-client-${i}`,
      extra_float_digits: String((i % 19) - 15),
    },
  }));
}

/** `-c name=value` for the options startup parameter: spaces (and backslashes) escaped with a backslash. */
function optionSwitch(name: string, value: string): string {
  return `-c ${name}=${value.replace(/\\/g, '\\\\').replace(/ /g, '\\ ')}`;
}

/** The startup packet of a raw-wire client of this spelling. */
function startupParams(spec: ClientSpec): Record<string, string> {
  const s = spec.settings;
  const base = { user: TRUST_ROLE.name, database: db };
  switch (spec.spelling) {
    case 'canonical':
      return { ...base, ...s };
    case 'lower':
      return {
        ...base,
        timezone: s.TimeZone,
        datestyle: s.DateStyle,
        intervalstyle: s.IntervalStyle,
        search_path: s.search_path,
        statement_timeout: s.statement_timeout,
        application_name: s.application_name,
        extra_float_digits: s.extra_float_digits,
      };
    case 'options':
      return { ...base, options: Object.entries(s).map(([k, v]) => optionSwitch(k, v)).join(' ') };
    case 'mixed':
      // Some in the packet in lower case, the others in options in canonical case; nothing given twice.
      return {
        ...base,
        timezone: s.TimeZone,
        search_path: s.search_path,
        extra_float_digits: s.extra_float_digits,
        application_name: s.application_name,
        options: [optionSwitch('DateStyle', s.DateStyle), optionSwitch('IntervalStyle', s.IntervalStyle), optionSwitch('statement_timeout', s.statement_timeout)].join(' '),
      };
    case 'node-postgres':
      throw new Error('node-postgres clients build their own startup packet');
  }
}

/** What each transaction asks: every setting, and values whose parsing or printing depends on them. */
const PROBE_SELECT =
  "SELECT '2024-07-01 12:34:56'::timestamptz AS parsed_here," +
  " extract(epoch FROM '2024-07-01 12:34:56'::timestamptz) AS parsed_epoch," +
  " '2024-01-15 08:00:00+00'::timestamptz AS printed_here," +
  " '2024-01-15 08:00:00'::timestamp AS plain_timestamp," +
  " '04/05/06'::date AS ambiguous_date," +
  " interval '1 year 2 months 3 days 04:05:06.789' AS iv," +
  " interval '-1 day +02:00' AS iv_mixed," +
  ' 0.1::float8 AS f8, (1/3.0)::float4 AS f4,' +
  ' current_setting($$TimeZone$$) AS tz_setting, current_schemas(true)::text AS schemas';
const SHOWS = ['SHOW TimeZone', 'SHOW DateStyle', 'SHOW IntervalStyle', 'SHOW search_path', 'SHOW statement_timeout', 'SHOW application_name', 'SHOW extra_float_digits'];

/** One transaction as a list of simple queries (each entry one Query message). */
function transactions(): string[][] {
  return [
    // Implicit transaction: one multi-statement Query.
    [[...SHOWS, PROBE_SELECT].join('; ')],
    // Explicit transaction, one statement per Query.
    ['BEGIN', ...SHOWS, PROBE_SELECT, 'COMMIT'],
    // Autocommit statements, each its own transaction.
    [...SHOWS, PROBE_SELECT],
    [[...SHOWS, PROBE_SELECT].join('; ')],
  ];
}

/** A client of either kind, answering each Query with comparable text. */
interface ProbeClient {
  welcome: Record<string, string>;
  query(sql: string): Promise<string[]>;
  close(): Promise<void>;
}

const REPORTED = ['TimeZone', 'DateStyle', 'IntervalStyle', 'application_name'];

function pick(params: Record<string, string>): Record<string, string> {
  return Object.fromEntries(REPORTED.map((n) => [n, params[n]]));
}

async function openWire(port: number, spec: ClientSpec): Promise<ProbeClient> {
  const { client, welcome } = await WireClient.login(port, startupParams(spec), undefined, 30_000);
  return {
    welcome: pick(parameterStatuses(welcome)),
    query: async (sql) => normalise(await client.request(sql, 30_000)),
    close: async () => client.destroy(),
  };
}

/** node-postgres: application_name and statement_timeout as its own startup keys, the rest in lower case in options. */
async function openNodePostgres(port: number, spec: ClientSpec): Promise<ProbeClient> {
  const s = spec.settings;
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    user: TRUST_ROLE.name,
    database: db,
    application_name: s.application_name,
    statement_timeout: parseInt(s.statement_timeout, 10) * 1000,
    options: [
      optionSwitch('timezone', s.TimeZone),
      optionSwitch('datestyle', s.DateStyle),
      optionSwitch('intervalstyle', s.IntervalStyle),
      optionSwitch('search_path', s.search_path),
      optionSwitch('extra_float_digits', s.extra_float_digits),
    ].join(' '),
    connectionTimeoutMillis: 30_000,
  });
  client.on('error', () => undefined);
  const reported: Record<string, string> = {};
  const connection = (client as unknown as { connection: NodeJS.EventEmitter }).connection;
  connection.on('parameterStatus', (m: { parameterName: string; parameterValue: string }) => (reported[m.parameterName] = m.parameterValue));
  await client.connect();
  const raw = { getTypeParser: () => (v: string) => v };
  const welcome = pick(reported);
  return {
    welcome,
    query: async (sql) => {
      try {
        const result = (await client.query({ text: sql, types: raw, rowMode: 'array' })) as unknown as pg.QueryResult | pg.QueryResult[];
        const results = Array.isArray(result) ? result : [result];
        return results.flatMap((r) => [`T ${r.fields.map((f) => f.name).join(',')}`, ...r.rows.map((row) => `D ${JSON.stringify(row)}`), `C ${r.command} ${r.rowCount ?? ''}`]);
      } catch (err) {
        return [`E ${(err as { code?: string }).code} ${(err as Error).message}`];
      }
    },
    close: () => client.end().catch(() => undefined),
  };
}

function open(port: number, spec: ClientSpec): Promise<ProbeClient> {
  return spec.spelling === 'node-postgres' ? openNodePostgres(port, spec) : openWire(port, spec);
}

interface Transcript {
  welcome: Record<string, string>;
  /** [transaction][query] → messages */
  answers: string[][][];
}

async function runClient(port: number, spec: ClientSpec): Promise<Transcript> {
  const client = await open(port, spec);
  try {
    const answers: string[][][] = [];
    for (const tx of transactions()) {
      const answer: string[][] = [];
      for (const sql of tx) answer.push(await client.query(sql));
      answers.push(answer);
    }
    return { welcome: client.welcome, answers };
  } finally {
    await client.close();
  }
}

describe('30 concurrent clients with their own startup settings, over a pool of 5', () => {
  it('every client gets, in every transaction, the answers it gets alone on a direct connection', async () => {
    const all = specs();
    // Directly, one client at a time (each alone on its own connection).
    const direct: Transcript[] = [];
    for (const spec of all) direct.push(await runClient(pgInfo().port, spec));

    // Sanity: the direct answers show what each client asked for.
    for (const spec of all) {
      const t = direct[spec.index];
      expect(t.welcome, `client ${spec.index} (${spec.spelling}) direct welcome`).toMatchObject({ TimeZone: spec.settings.TimeZone, application_name: spec.settings.application_name });
      expect(t.answers[1][1], `client ${spec.index} direct SHOW TimeZone`).toContain(`D ${JSON.stringify([spec.settings.TimeZone])}`);
      expect(t.answers[1][4].join(' '), `client ${spec.index} direct SHOW search_path`).toContain(spec.settings.search_path);
    }

    // Through pgmux, all at once, never more than 5 server connections (as Postgres counts them).
    const admin = await adminClient();
    let viaPgmux: Transcript[];
    let peak: number;
    try {
      await waitFor(async () => (await countBackends(admin, { database: db })) <= 5, 'the direct connections to be gone');
      const watch = watchBackends(admin, { database: db });
      try {
        viaPgmux = await Promise.all(all.map((spec) => runClient(px.port, spec)));
      } finally {
        peak = await watch.stop();
      }
    } finally {
      await admin.end();
    }
    expect(peak, 'server connections at once').toBeLessThanOrEqual(5);
    for (const spec of all) {
      const label = `client ${spec.index} (${spec.spelling}, ${spec.settings.TimeZone}, ${spec.settings.DateStyle})`;
      expect.soft(viaPgmux[spec.index].welcome, `${label}: ParameterStatus at login`).toEqual(direct[spec.index].welcome);
      direct[spec.index].answers.forEach((tx, t) =>
        tx.forEach((answer, q) => expect.soft(viaPgmux[spec.index].answers[t][q], `${label}, transaction ${t}, query ${q}`).toEqual(answer)),
      );
    }
  }, 120_000);
});
