/**
 * What the differential fuzzer generates, as plain data that shrinks well and prints readably: a conversation is
 * a pool size and one script per client; a script is startup parameters and a list of steps; a step is rendered
 * into the frontend messages sent together in one write.
 *
 * Every name that PostgreSQL shares between sessions is the client's own (schema `c<i>`, table `c<i>.t`, LISTEN
 * channels `ch<i>`, advisory lock keys `<i+1>00x`), so a script means the same whether it runs alone or next to
 * the others: that is what makes its run alone on a direct connection an oracle. Session-local names (prepared
 * statements, portals, cursors, temp tables, savepoints) are the same for every client on purpose, so state that
 * leaks from one client's session into another's shows. Nothing per-connection is generated (pg_backend_pid(),
 * now(), txid, random()), and timeouts are never short enough to fire.
 */
import { formatFront, type Front } from './protocol.js';

// ---------------------------------------------------------------------------------------------------------------
// Roles and objects (created by setup.ts)

export const FUZZ_SUPERUSER = 'fuzz_su';
export const FUZZ_PASSWORD = 'fuzz-su-pass';
/** May use every client's table; a member of fuzz_r2. */
export const ROLE_1 = 'fuzz_r1';
/** May use no table. */
export const ROLE_2 = 'fuzz_r2';

export const schemaOf = (i: number): string => `c${i}`;
export const tableOf = (i: number): string => `c${i}.t`;
const lockKey = (i: number, a: number): number => (i + 1) * 1000 + (a % 3);
const channel = (i: number, a: number): string => (a % 4 === 3 ? `ch${i}b` : `ch${i}`);

// ---------------------------------------------------------------------------------------------------------------
// Settings

interface GucValue {
  /** As written after SET name TO. */
  sql: string;
  /** As a string (set_config, startup packet, options). */
  str: string;
}

const v = (sql: string, str = sql.replace(/^'(.*)'$/, '$1')): GucValue => ({ sql, str });

export interface Guc {
  name: string;
  values: GucValue[];
  /** May be given at startup. */
  startup: boolean;
}

export const GUCS: Guc[] = [
  { name: 'TimeZone', startup: true, values: [v("'America/Los_Angeles'"), v("'UTC'"), v("'Asia/Kolkata'"), v("'Europe/Berlin'")] },
  { name: 'DateStyle', startup: true, values: [v("'Postgres, MDY'"), v("'ISO, MDY'"), v("'SQL, DMY'"), v("'German'"), v('ymd')] },
  { name: 'IntervalStyle', startup: true, values: [v('postgres_verbose'), v('postgres'), v('sql_standard'), v('iso_8601')] },
  { name: 'search_path', startup: true, values: [v('c{i}, public'), v('public'), v('"$user", public'), v('pg_catalog')] },
  { name: 'statement_timeout', startup: true, values: [v("'45s'"), v('0'), v("'2min'"), v('123456')] },
  { name: 'application_name', startup: true, values: [v("'fz_a'"), v("'fz_b'"), v("'client {i}'"), v("''")] },
  { name: 'extra_float_digits', startup: true, values: [v('0'), v('1'), v('-3'), v('3')] },
  { name: 'client_min_messages', startup: true, values: [v('warning'), v('notice'), v('error'), v('log')] },
  { name: 'fz.tenant', startup: true, values: [v("'t1'"), v("'t2'"), v("''")] },
  { name: 'work_mem', startup: false, values: [v("'4MB'"), v("'64kB'"), v("'1GB'")] },
  { name: 'bytea_output', startup: false, values: [v('escape'), v('hex')] },
  { name: 'default_transaction_isolation', startup: false, values: [v("'repeatable read'"), v("'read committed'")] },
  { name: 'lock_timeout', startup: false, values: [v("'10s'"), v('0')] },
];

export const STARTUP_GUCS = GUCS.filter((g) => g.startup);

/**
 * canonical | lower case | upper case: GUC names are case-insensitive. A custom (placeholder) name keeps its
 * spelling: PostgreSQL shows a placeholder as it was first spelled in the backend (SHOW's column name), and on
 * a pooled server that may have been another client's spelling (docs/architecture.md, known differences).
 */
export function spell(name: string, spelling: number): string {
  if (name.includes('.')) return name;
  switch (spelling % 3) {
    case 1:
      return name.toLowerCase();
    case 2:
      return name.toUpperCase();
    default:
      return name;
  }
}

const fill = (s: string, i: number): string => s.replaceAll('{i}', String(i));

/** A value of the settings probe that depends on the session's settings but on nothing per-connection. */
export const PROBE_SQL =
  'select current_user as cu, session_user as su, ' +
  GUCS.map((g) => `current_setting('${g.name}', true) as "${g.name}"`).join(', ') +
  ", '2001-02-03 04:05:06+00'::timestamptz as ts, interval '1 day 02:03:04.5' as iv, 0.1::float8 as f";

// ---------------------------------------------------------------------------------------------------------------
// Startup

export type StartupVia = 'packet' | 'options' | 'options-long';

export interface StartupSetting {
  /** Index into STARTUP_GUCS. */
  guc: number;
  value: number;
  via: StartupVia;
  spelling: number;
}

/** Escapes a value for the options parameter: whitespace and backslashes are escaped with a backslash. */
function optionsEscape(s: string): string {
  return s.replace(/([\\\s])/g, '\\$1');
}

export function startupParams(settings: readonly StartupSetting[], i: number, database: string): Array<[string, string]> {
  const params: Array<[string, string]> = [
    ['user', FUZZ_SUPERUSER],
    ['database', database],
  ];
  const options: string[] = [];
  const seen = new Set<string>();
  for (const s of settings) {
    const guc = STARTUP_GUCS[s.guc % STARTUP_GUCS.length];
    // One setting per GUC: two spellings of one name in one packet are ambiguous (last wins in PostgreSQL).
    if (seen.has(guc.name.toLowerCase())) continue;
    seen.add(guc.name.toLowerCase());
    const name = spell(guc.name, s.spelling);
    const value = fill(guc.values[s.value % guc.values.length].str, i);
    if (s.via === 'packet') params.push([name, value]);
    else if (s.via === 'options') options.push(`-c ${name}=${optionsEscape(value)}`);
    else options.push(`--${name}=${optionsEscape(value)}`);
  }
  if (options.length > 0) params.push(['options', options.join(' ')]);
  return params;
}

// ---------------------------------------------------------------------------------------------------------------
// Simple-query statements

/** A statement: a kind and three small numbers choosing its variant (they shrink to the plainest one); c < 6. */
export interface Stmt {
  k: StmtKind;
  a: number;
  b: number;
  c: number;
}

const pick = <T>(xs: readonly T[], n: number): T => xs[n % xs.length];

const VALUES_SQL = [
  "select '2001-02-03 04:05:06+00'::timestamptz as ts",
  "select '03/04/2005'::date as d",
  "select '97FEB10 5:32:01PM UTC'::timestamp as t",
  "select interval '1 year 2 months 3 days 04:05:06.7' as iv",
  'select 0.1::float8 as a, 1e100::float8 as b, 0.3::float4 as c',
  "select '\\x4142ff'::bytea as b",
  "select to_char('2001-02-03 04:05:06+00'::timestamptz, 'YYYY-MM-DD HH24:MI TZ') as c",
  'select current_schemas(false) as s',
];

const ROLE_SQL = [
  `SET ROLE ${ROLE_1}`,
  `SET ROLE ${ROLE_2}`,
  'RESET ROLE',
  'SET ROLE NONE',
  `SET SESSION AUTHORIZATION ${ROLE_1}`,
  `SET SESSION AUTHORIZATION ${ROLE_2}`,
  'RESET SESSION AUTHORIZATION',
  'SET SESSION AUTHORIZATION DEFAULT',
  `SET LOCAL ROLE ${ROLE_1}`,
  `select set_config('role', '${ROLE_2}', false)`,
  `SET SESSION AUTHORIZATION ${FUZZ_SUPERUSER}`,
  `SET LOCAL SESSION AUTHORIZATION ${ROLE_1}`,
];

const WHOAMI_SQL = ['select current_user, session_user', 'show role', 'show session_authorization', 'show is_superuser'];

const TEXTS = ['x', 'y', 'zz', 'w v'];

export const STMT_RENDER = {
  set: (s: Stmt) => {
    const g = pick(GUCS, s.a);
    const val = pick(g.values, s.b);
    const local = s.c >= 4 ? 'LOCAL ' : '';
    return (i: number) => `SET ${local}${spell(g.name, s.c)} ${s.c % 2 === 0 ? 'TO' : '='} ${fill(val.sql, i)}`;
  },
  set_config: (s: Stmt) => {
    const g = pick(GUCS, s.a);
    const val = pick(g.values, s.b);
    return (i: number) => `select set_config('${spell(g.name, s.c)}', '${fill(val.str, i).replaceAll("'", "''")}', ${s.c >= 4})`;
  },
  reset: (s: Stmt) => {
    const g = pick(GUCS, s.a);
    return () => (s.b % 3 === 2 ? `SET ${spell(g.name, s.c)} TO DEFAULT` : `RESET ${spell(g.name, s.c)}`);
  },
  reset_all: () => () => 'RESET ALL',
  show: (s: Stmt) => {
    const g = pick(GUCS, s.a);
    return () => `SHOW ${spell(g.name, s.c)}`;
  },
  probe: () => () => PROBE_SQL,
  values: (s: Stmt) => () => pick(VALUES_SQL, s.a),
  role: (s: Stmt) => () => pick(ROLE_SQL, s.a),
  whoami: (s: Stmt) => () => pick(WHOAMI_SQL, s.a),
  begin: (s: Stmt) => () => pick(['BEGIN', 'BEGIN ISOLATION LEVEL REPEATABLE READ', 'START TRANSACTION', 'BEGIN READ ONLY'], s.a),
  commit: (s: Stmt) => () => pick(['COMMIT', 'END', 'COMMIT', 'COMMIT AND CHAIN'], s.a),
  rollback: (s: Stmt) => () => pick(['ROLLBACK', 'ABORT', 'ROLLBACK', 'ROLLBACK AND CHAIN'], s.a),
  savepoint: (s: Stmt) => () => `SAVEPOINT sp${s.a % 2}`,
  rollback_to: (s: Stmt) => () => `ROLLBACK TO SAVEPOINT sp${s.a % 2}`,
  release: (s: Stmt) => () => `RELEASE SAVEPOINT sp${s.a % 2}`,
  error: (s: Stmt) => (i: number) => pick(['select 1/0', `select * from c${i}.nope`, 'selec 1', "select 'x'::int"], s.a),
  noop: (s: Stmt) => () => pick(['select 1 as one', '', "select 'a'::text as t, null::int as n"], s.a),
  notice: (s: Stmt) => () =>
    pick(["DO $$ BEGIN RAISE NOTICE 'note %', 1; END $$", "DO $$ BEGIN RAISE WARNING 'warn'; END $$", "DO $$ BEGIN RAISE INFO 'info'; END $$"], s.a),
  insert: (s: Stmt) => (i: number) => `insert into ${tableOf(i)} (id, v) values (${(s.a % 6) + 1}, '${pick(TEXTS, s.b)}')`,
  update: (s: Stmt) => (i: number) => `update ${tableOf(i)} set v = '${pick(TEXTS, s.b)}' where id = ${(s.a % 6) + 1}`,
  delete: (s: Stmt) => (i: number) => `delete from ${tableOf(i)} where id = ${(s.a % 6) + 1}`,
  select_t: (s: Stmt) => (i: number) => pick([`select id, v from ${tableOf(i)} order by id`, `select * from ${tableOf(i)} order by id`, `select count(*) from ${tableOf(i)}`], s.a),
  alter: (s: Stmt) => (i: number) =>
    pick([`alter table ${tableOf(i)} add column x${s.b % 2} int default ${s.b % 2}`, `alter table ${tableOf(i)} drop column x${s.b % 2}`, `alter table ${tableOf(i)} add column if not exists x${s.b % 2} int`], s.a),
  prepare: (s: Stmt) => (i: number) =>
    pick([`PREPARE q${s.b % 2}(int) AS select $1 + ${s.c} as r`, `PREPARE q${s.b % 2}(int) AS select id, v from ${tableOf(i)} where id >= $1 order by id`], s.a),
  execute: (s: Stmt) => () => `EXECUTE q${s.b % 2}(${s.a % 4})`,
  deallocate: (s: Stmt) => () => pick([`DEALLOCATE q${s.b % 2}`, 'DEALLOCATE ALL', `DEALLOCATE PREPARE q${s.b % 2}`, `DEALLOCATE s${(s.b % 2) + 1}`], s.a),
  // DISCARD ALL is left out: on a server opened for other startup settings it reports the server's RESET values
  // before pgmux puts the client's back (a known difference, docs/architecture.md).
  discard: (s: Stmt) => () => pick(['DISCARD TEMP', 'DISCARD PLANS', 'DISCARD SEQUENCES'], s.a),
  temp: (s: Stmt) => () =>
    pick(
      [
        'create temp table tt (x int)',
        `insert into tt values (${s.b % 4})`,
        'select x from tt order by x',
        'drop table tt',
        'create temp table if not exists tt (x int)',
        'drop table if exists tt',
        'create temp table tc (x int) on commit drop',
        'create temp table td (x int) on commit delete rows',
      ],
      s.a,
    ),
  cursor: (s: Stmt) => (i: number) =>
    pick(
      [
        `declare hc cursor with hold for select id, v from ${tableOf(i)} order by id`,
        'fetch 1 from hc',
        'close hc',
        'declare hc cursor with hold for select g from generate_series(1, 4) g',
        'fetch all from hc',
        'move 1 in hc',
        'close all',
        'declare nc cursor for select g from generate_series(1, 3) g',
        'fetch 2 from nc',
      ],
      s.a,
    ),
  lock: (s: Stmt) => (i: number) =>
    pick(
      [
        `select pg_try_advisory_lock(${lockKey(i, s.b)})`,
        `select pg_advisory_unlock(${lockKey(i, s.b)})`,
        'select pg_advisory_unlock_all()',
        `select pg_try_advisory_xact_lock(${lockKey(i, s.b)})`,
        `select pg_advisory_lock(${lockKey(i, s.b)})`,
        `select pg_try_advisory_lock_shared(${lockKey(i, s.b)})`,
        `select pg_advisory_unlock_shared(${lockKey(i, s.b)})`,
      ],
      s.a,
    ),
  listen: (s: Stmt) => (i: number) => pick([`LISTEN ${channel(i, s.b)}`, `UNLISTEN ${channel(i, s.b)}`, 'UNLISTEN *'], s.a),
  notify: (s: Stmt) => (i: number) =>
    pick([`NOTIFY ${channel(i, s.b)}, 'p${s.c % 3}'`, `NOTIFY ${channel(i, s.b)}`, `select pg_notify('${channel(i, s.b)}', 'q${s.c % 3}')`], s.a),
  copy_out: (s: Stmt) => (i: number) =>
    pick(
      [
        `copy (select id, v from ${tableOf(i)} order by id) to stdout`,
        `copy (select id, v from ${tableOf(i)} order by id) to stdout with (format csv, header)`,
        `copy (select id, v from ${tableOf(i)} order by id) to stdout with (format binary)`,
      ],
      s.a,
    ),
} satisfies Record<string, (s: Stmt) => (i: number) => string>;

export type StmtKind = keyof typeof STMT_RENDER;

export function renderStmt(s: Stmt, i: number): string {
  return STMT_RENDER[s.k](s)(i);
}

// ---------------------------------------------------------------------------------------------------------------
// Extended-protocol queries

export interface ExtQuery {
  sql: (i: number, v: number) => string;
  /** Parameter values for variant v. */
  params: (v: number, i: number) => Array<string | null>;
  /** Depends on session state that may be missing: never prepared under a name (see README of the fuzzer). */
  unnamedOnly?: boolean;
}

export const EXT_QUERIES: ExtQuery[] = [
  { sql: () => 'select $1::int + 1 as v', params: (v) => [pick(['41', 'x', null], v)] },
  { sql: (i) => `select id, v from ${tableOf(i)} where id >= $1::int order by id`, params: (v) => [pick(['2', '0', '5'], v)] },
  { sql: () => 'select g from generate_series(1, $1::int) g', params: (v) => [pick(['3', '5', '1'], v)] },
  { sql: () => 'select 10 / $1::int as r', params: (v) => [pick(['2', '0'], v)] },
  { sql: (i) => `insert into ${tableOf(i)} (id, v) values ($1::int, $2::text)`, params: (v) => [String(4 + (v % 4)), pick(TEXTS, v)] },
  { sql: () => 'select current_setting($1::text) as s', params: (v) => [pick(['TimeZone', 'DateStyle', 'search_path', 'role', 'application_name'], v)] },
  { sql: () => "select '2001-02-03 04:05:06+00'::timestamptz as ts, interval '1 day 02:03:04' as iv, 0.1::float8 as f", params: () => [] },
  { sql: () => 'select current_user, session_user', params: () => [] },
  { sql: (i, v) => pick(["set timezone to 'Asia/Tokyo'", "set datestyle to 'SQL, DMY'", `set search_path to c${i}`, 'set intervalstyle to iso_8601'], v), params: () => [] },
  { sql: () => 'select 1/(g - 3) as r from generate_series(1, 5) g', params: () => [] },
  { sql: (i) => `copy (select id, v from ${tableOf(i)} order by id) to stdout`, params: () => [] },
  // The key is the client's own whatever the parameter: a re-Parse of the name that fails leaves this statement
  // bound with another query's parameters (seed 70711), and the scripts must stay disjoint.
  { sql: (i) => `select pg_try_advisory_lock(${lockKey(i, 0)} + $1::bigint % 3)`, params: (v) => [String(v % 3)] },
  { sql: () => 'begin', params: () => [] },
  { sql: () => 'commit', params: () => [] },
  { sql: () => 'select x from tt order by x', params: () => [], unnamedOnly: true },
  { sql: () => 'fetch 1 from hc', params: () => [], unnamedOnly: true },
  { sql: (i) => `notify ch${i}, 'ext'`, params: () => [] },
  { sql: (i) => `select * from ${tableOf(i)} order by id`, params: () => [], unnamedOnly: true },
];

/** The query whose result type an ALTER TABLE changes; index into EXT_QUERIES. */
export const STAR_QUERY = 17;
/** A query on the client's table whose result type ALTER TABLE ... ADD COLUMN does not change. */
export const RANGE_QUERY = 1;

const STATEMENT_NAMES = ['', 's1', 's2'];
const PORTAL_NAMES = ['', 'p1', 'hc'];

/** A segment of an extended-protocol batch. */
export interface Seg {
  q: number;
  v: number;
  stmt: number;
  parse: boolean;
  describeS: boolean;
  bind: boolean;
  portal: number;
  describeP: boolean;
  execs: number;
  maxRows: number;
  binary: boolean;
  /** 0 none, 1 the statement, 2 the portal. */
  close: number;
  /** Sync after the segment (the last one follows the step's tail instead). */
  sync: boolean;
}

export interface Options {
  /** Let named statements select `*` from the client's table (then ALTER TABLE changes their result type). */
  starNamed: boolean;
}

export const DEFAULT_OPTIONS: Options = { starNamed: false };

function renderSeg(seg: Seg, i: number, options: Options): Front[] {
  const q = EXT_QUERIES[seg.q % EXT_QUERIES.length];
  const unnamedOnly = q.unnamedOnly === true && !(options.starNamed && seg.q % EXT_QUERIES.length === STAR_QUERY);
  // Statement names are the client's own (c0_s1 ...): where two clients use one name for different queries,
  // pgmux prepares one under a pgmux_<hash> alias, and a server error naming the statement shows the alias
  // (a known difference, docs/architecture.md).
  const named = STATEMENT_NAMES[seg.stmt % 3];
  const stmt = unnamedOnly || named === '' ? '' : `c${i}_${named}`;
  const portal = PORTAL_NAMES[seg.portal % 3];
  const out: Front[] = [];
  if (seg.parse) out.push({ t: 'P', name: stmt, sql: q.sql(i, seg.v) });
  if (seg.describeS) out.push({ t: 'D', kind: 'S', name: stmt });
  if (seg.bind) out.push({ t: 'B', portal, stmt, params: q.params(seg.v, i), binary: seg.binary });
  if (seg.describeP) out.push({ t: 'D', kind: 'P', name: portal });
  for (let n = 0; n < seg.execs; n++) out.push({ t: 'E', portal, rows: seg.maxRows });
  if (seg.close === 1) out.push({ t: 'C', kind: 'S', name: stmt });
  if (seg.close === 2) out.push({ t: 'C', kind: 'P', name: portal });
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// COPY FROM STDIN data

function binaryCopy(rows: ReadonlyArray<readonly [number, string]>): Buffer {
  const parts: Buffer[] = [Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)];
  for (const [id, text] of rows) {
    const t = Buffer.from(text);
    const b = Buffer.alloc(2 + 4 + 4 + 4 + t.length);
    b.writeInt16BE(2, 0);
    b.writeInt32BE(4, 2);
    b.writeInt32BE(id, 6);
    b.writeInt32BE(t.length, 10);
    t.copy(b, 14);
    parts.push(b);
  }
  const end = Buffer.alloc(2);
  end.writeInt16BE(-1);
  parts.push(end);
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------------------------
// Steps

export type StepSpec =
  | { t: 'simple'; stmts: Stmt[]; joined: boolean; pause: number }
  | { t: 'ext'; segs: Seg[]; tail: 'sync' | 'flush' | 'flush+query'; query: Stmt; pause: number }
  | { t: 'copyin'; ext: boolean; format: number; ids: number[]; end: 'done' | 'fail' | 'bad'; pause: number }
  | { t: 'sync'; pause: number };

export function renderStep(step: StepSpec, i: number, options: Options = DEFAULT_OPTIONS): Front[] {
  switch (step.t) {
    case 'simple': {
      const sqls = step.stmts.map((s) => renderStmt(s, i));
      return step.joined ? [{ t: 'Q', sql: sqls.join('; ') }] : sqls.map((sql) => ({ t: 'Q', sql }));
    }
    case 'ext': {
      const out: Front[] = [];
      // Known difference (docs/architecture.md): a named statement Closed and used again in one pipeline,
      // after a message that may fail before the Close. pgmux answers a client's Close itself, so it cannot
      // know in time whether the server would have skipped it. A named Close comes last in a step here.
      // Likewise a named Parse of a name already Parsed earlier in the pipeline: pgmux decides "already exists"
      // when it sends the second, before it knows whether the server ran the first.
      const parsed = new Set<string>();
      step.segs.forEach((seg, n) => {
        const last = n === step.segs.length - 1;
        const rendered = renderSeg(seg, i, options).filter((m) => {
          if (m.t === 'C' && m.kind === 'S' && m.name !== '') return last;
          if (m.t !== 'P' || m.name === '') return true;
          if (parsed.has(m.name)) return false;
          parsed.add(m.name);
          return true;
        });
        out.push(...rendered);
        if (n < step.segs.length - 1 && seg.sync) out.push({ t: 'S' });
      });
      if (step.tail === 'sync') out.push({ t: 'S' });
      else {
        out.push({ t: 'H' });
        if (step.tail === 'flush+query') out.push({ t: 'Q', sql: renderStmt(step.query, i) });
      }
      return out;
    }
    case 'copyin': {
      const format = ['text', 'csv', 'binary'][step.format % 3];
      const sql = `copy ${tableOf(i)} (id, v) from stdin${format === 'text' ? '' : ` with (format ${format})`}`;
      const rows = step.ids.map((id, n) => [id, pick(TEXTS, n)] as const);
      let data: Buffer;
      if (step.end === 'bad') data = Buffer.from(format === 'binary' ? 'PGCOPY\nnot binary' : 'not-a-number\tx\n');
      else if (format === 'binary') data = binaryCopy(rows);
      else data = Buffer.from(rows.map(([id, text]) => (format === 'csv' ? `${id},"${text}"\n` : `${id}\t${text}\n`)).join(''));
      const copy: Front[] = [{ t: 'd', data }, step.end === 'fail' ? { t: 'f', reason: 'client says no' } : { t: 'c' }];
      if (!step.ext) return [{ t: 'Q', sql }, ...copy];
      // The unnamed statement outlives the Sync: a later Bind of it would start this COPY again with no data
      // (the connection then loses protocol sync, directly too). A simple query ends it, as drivers' next query would.
      return [{ t: 'P', name: '', sql }, { t: 'B', portal: '', stmt: '', params: [], binary: false }, { t: 'E', portal: '', rows: 0 }, ...copy, { t: 'S' }, { t: 'Q', sql: 'select 1' }];
    }
    case 'sync':
      return [{ t: 'S' }];
  }
}

/** Sent after every script: end any unsynced batch, then the settings probe (shows state that was lost). */
export const EPILOGUE: Front[][] = [[{ t: 'S' }], [{ t: 'Q', sql: PROBE_SQL }]];

export interface ClientSpec {
  startup: StartupSetting[];
  steps: StepSpec[];
  /** Through pgmux: log in only after client (own index - 1 - startAfter) has finished; null: at once. */
  startAfter: number | null;
}

export interface Conversation {
  poolSize: number;
  clients: ClientSpec[];
}

/** The client this one waits for before it logs in through pgmux, or null. */
export function waitsFor(clients: readonly ClientSpec[], i: number): number | null {
  const after = clients[i].startAfter;
  if (after === null || i === 0) return null;
  return i - 1 - (after % i);
}

export function describeStartup(settings: readonly StartupSetting[], i: number, database = '<db>'): string {
  return startupParams(settings, i, database)
    .slice(2)
    .map(([k, val]) => `${k}=${JSON.stringify(val)}`)
    .join(' ');
}

/**
 * The conversation as text: per client its startup parameters and every step's frontend messages. `upTo` cuts a
 * client's script after a step (the one whose answer differed: nothing after it was sent before that answer).
 */
export function formatConversation(conv: Conversation, options: Options = DEFAULT_OPTIONS, upTo: ReadonlyMap<number, number> = new Map()): string {
  const lines = [`pool_size=${conv.poolSize}, ${conv.clients.length} client(s)`];
  conv.clients.forEach((c, i) => {
    const w = waitsFor(conv.clients, i);
    const startup = describeStartup(c.startup, i);
    lines.push(`client ${i}${startup === '' ? '' : ` startup: ${startup}`}${w === null ? '' : ` (logs in after client ${w} has left)`}`);
    const last = upTo.get(i) ?? Infinity;
    c.steps.forEach((s, n) => {
      if (n > last) return;
      const msgs = renderStep(s, i, options).map(formatFront);
      const pause = s.pause > 0 ? ` (after ${s.pause} ms)` : '';
      lines.push(`  step ${n}${pause}: ${msgs.join(' | ')}`);
    });
    if (last < c.steps.length - 1) lines.push(`  (steps ${last + 1}..${c.steps.length - 1} left out: sent only after the answer that differed)`);
  });
  return lines.join('\n');
}
