/**
 * Differential test: one scripted conversation, sent byte for byte over raw sockets directly to
 * PostgreSQL and through pgmux (transaction mode, pool of 2, 20 other clients keeping both servers
 * busy so the scripted client moves between them). After login, every step must get the same
 * backend messages both ways; only what must differ is normalised: errors and notices are compared
 * by severity, SQLSTATE and message (not position/file/line/routine), and BackendKeyData is ignored.
 */
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient, startLoad } from './harness/clients.js';
import { adminClient, createTestDatabase, pgInfo } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { TRUST_ROLE } from './harness/roles.js';
import { parseErrorFields, RawConnection, splitMessages, startupPacket, type BackendMessage } from './harness/wire.js';

let px: TestPgmux;
let db: string;
let admin: pg.Client;

beforeAll(async () => {
  db = await createTestDatabase('differential');
  admin = await adminClient(db);
  await admin.query('CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL)');
  await admin.query("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g");
  await admin.query(`GRANT SELECT ON items TO ${TRUST_ROLE.name}`);
  px = await startPgmux({
    settings: { default_pool_size: 2, auth_type: 'trust', max_client_conn: 200, log_connections: false, log_disconnections: false },
    // Same name as the real database, so current_database() and friends agree.
    databases: { [db]: { dbname: db } },
  });
});

afterAll(async () => {
  await px?.stop();
  await admin?.end();
});

// ---- the conversation ----

const S = 'S' as const;
const P = 'P' as const;
const parse = (name: string, text: string, types: number[] = []): Buffer => serialize.parse({ name, text, types });
const bind = (statement: string, values: Array<string | null> = [], portal = ''): Buffer => serialize.bind({ statement, values, portal });
const describeMsg = (type: 'S' | 'P', name = ''): Buffer => serialize.describe({ type, name });
const execute = (portal = '', rows = 0): Buffer => serialize.execute({ portal, rows });
const sync = (): Buffer => serialize.sync();
const close = (type: 'S' | 'P', name: string): Buffer => serialize.close({ type, name });
const q = (sql: string): Buffer => serialize.query(sql);

interface Step {
  name: string;
  send: Buffer[];
}

const step = (name: string, ...send: Buffer[]): Step => ({ name, send });

const SCRIPT: Step[] = [
  step('simple query', q("select 1 as one, 'two'::text as two, null::int as three")),
  step('several statements in one query', q("select 1 as a; select 'b' as b; select id from items where id < 3 order by id")),
  step('simple query error', q('select 1/0')),
  step('an error stops the rest of a multi-statement query', q('select 1 as x; select 1/0; select 3 as y')),
  step('empty query', q('')),
  step('notice', q("DO $$ BEGIN RAISE NOTICE 'hello %', 1; END $$")),
  step('unnamed statement', parse('', 'select $1::int + 1 as v'), bind('', ['41']), describeMsg(P), execute(), sync()),
  step('named statement: prepare and describe', parse('s1', 'select id, label from items where id = $1'), describeMsg(S, 's1'), sync()),
  step('named statement: bound twice in one batch', bind('s1', ['1']), execute(), bind('s1', ['2']), execute(), sync()),
  step('named statement: used again later', bind('s1', ['3']), describeMsg(P), execute(), sync()),
  step(
    'error inside a pipeline: the rest is skipped up to Sync',
    parse('bad', 'select 10/$1::int as v'),
    bind('bad', ['0']),
    execute(),
    parse('', 'select 42 as never'),
    bind(''),
    execute(),
    bind('s1', ['4']),
    execute(),
    sync(),
  ),
  step(
    'error during Execute after some rows, then more messages before Sync',
    parse('', 'select 1/(g - 3) as r from generate_series(1, 5) g'),
    bind(''),
    execute(),
    bind('s1', ['5']),
    execute(),
    sync(),
  ),
  step('after the pipeline error: the statement parsed before it exists', bind('bad', ['5']), execute(), sync()),
  step('named statements survive a simple query', q('select 7 as seven'), bind('s1', ['6']), execute(), sync()),
  step('two pipelines in one write', bind('s1', ['7']), execute(), sync(), bind('bad', ['0']), execute(), sync(), bind('s1', ['8']), execute(), sync()),
  step('portal with a row limit', parse('', 'select g from generate_series(1, 5) g'), bind('', [], 'p1'), execute('p1', 2), execute('p1', 2), execute('p1', 0), sync()),
  step('SET', q('SET search_path TO pg_catalog, public')),
  step('SHOW after SET', q('SHOW search_path')),
  step('SET of a reported parameter', q("SET application_name = 'diff-set'")),
  step('SHOW reported parameter', q('SHOW application_name')),
  step('SET in the extended protocol', parse('', "SET statement_timeout = '4321ms'"), bind(''), execute(), sync()),
  step('SHOW after extended SET', q('SHOW statement_timeout')),
  step('BEGIN', q('BEGIN')),
  step('SET LOCAL', q("SET LOCAL statement_timeout = '1234ms'")),
  step('SHOW inside the transaction', q('SHOW statement_timeout')),
  step('COMMIT', q('COMMIT')),
  step('SHOW after COMMIT: SET LOCAL is gone', q('SHOW statement_timeout')),
  step('SET inside a rolled-back transaction', q('BEGIN'), q("SET statement_timeout = '999ms'"), q('ROLLBACK'), q('SHOW statement_timeout')),
  step('error in a transaction block', q('BEGIN'), q('select 1/0'), q('select 1'), q('ROLLBACK'), q('select 2 as after')),
  step('RESET and SHOW in one write', q("SET statement_timeout = '3s'"), q('RESET statement_timeout'), q('SHOW statement_timeout')),
  step('SET search_path again', q('SET search_path TO pg_catalog')),
  step('RESET search_path', q('RESET search_path')),
  step('SHOW after RESET search_path', q('SHOW search_path')),
  step('RESET statement_timeout', q("SET statement_timeout = '3s'"), q('RESET statement_timeout')),
  step('SHOW after RESET statement_timeout', q('SHOW statement_timeout')),
  // Known difference, left out: RESET of a parameter the client gave at startup returns to the server
  // connection's default through pgmux (PostgreSQL returns to the startup value). See the closing note of issue 4.
  step('DEALLOCATE name', q('DEALLOCATE s1')),
  step('the deallocated statement is gone', bind('s1', ['1']), execute(), sync()),
  step('re-preparing the name after DEALLOCATE', parse('s1', 'select 99 as v, $1::text as t'), describeMsg(S, 's1'), bind('s1', ['x']), execute(), sync()),
  step('the re-prepared statement, used again', bind('s1', ['y']), execute(), sync()),
  step('DEALLOCATE ALL', q('DEALLOCATE ALL')),
  step('after DEALLOCATE ALL nothing is prepared', describeMsg(S, 's1'), sync()),
  step('after DEALLOCATE ALL: the other statement is gone too', bind('bad', ['1']), execute(), sync()),
  step('prepare again after DEALLOCATE ALL', parse('s2', 'select $1::int * 2 as doubled'), sync()),
  step('use it', bind('s2', ['21']), execute(), sync()),
  step('Close statement message', close(S, 's2'), sync()),
  step('the closed statement is gone', bind('s2', ['1']), execute(), sync()),
  step('Close of a statement that does not exist', close(S, 'never_prepared'), sync()),
  step('SQL PREPARE / EXECUTE / DEALLOCATE', q('PREPARE sq(int) AS select $1 * 3 as tripled'), q('EXECUTE sq(14)'), q('DEALLOCATE sq'), q('EXECUTE sq(1)')),
  step('state before DISCARD ALL', q("SET search_path TO pg_catalog"), q("SET statement_timeout = '2s'"), parse('s3', 'select 3 as three'), sync()),
  step('DISCARD ALL', q('DISCARD ALL')),
  step('after DISCARD ALL: settings are back', q('SHOW search_path'), q('SHOW statement_timeout'), q('SHOW application_name')),
  step('after DISCARD ALL: statements are gone', bind('s3'), execute(), sync()),
  step('prepare a name used before DISCARD ALL', parse('s3', 'select 33 as thirty_three'), bind('s3'), execute(), sync()),
];

/** Steps outside the main script: known to behave differently through pgmux; kept apart so each is reported on its own. */
const EDGE_SCRIPTS: Array<{ name: string; steps: Step[]; skip?: boolean }> = [
  {
    // Deliberate difference: a named Parse+Sync from an idle client is answered by pgmux and prepared at first
    // use (what lets pgbench -M prepared run with more clients than servers), so a bad Parse fails at first use.
    skip: true,
    name: 'a named statement whose Parse failed does not exist afterwards',
    steps: [
      step('Parse error inside a pipeline', parse('err1', 'selec 1'), bind('err1'), execute(), sync()),
      step('the statement that failed to parse does not exist', describeMsg(S, 'err1'), sync()),
      step('and cannot be bound', bind('err1'), execute(), sync()),
    ],
  },
  {
    skip: true, // the same deliberate difference as above
    name: 'a Parse error is reported at Parse, not at first use',
    steps: [step('Parse of bad SQL then Sync', parse('err2', 'select * from no_such_table'), sync()), step('first use', bind('err2'), execute(), sync())],
  },
  {
    name: 'Parse of a name already in use fails with 42P05',
    steps: [
      step('prepare', parse('dup', 'select 1 as one'), sync()),
      step('prepare the same name again', parse('dup', 'select 2 as two'), sync()),
      step('the first definition is still the one used', bind('dup'), execute(), sync()),
    ],
  },
  {
    name: 'DISCARD ALL after a SET of a reported parameter reports the reset value',
    steps: [step('SET application_name', q("SET application_name = 'before-discard'")), step('DISCARD ALL', q('DISCARD ALL')), step('SHOW', q('SHOW application_name'))],
  },
];

// ---- running a conversation ----

async function login(port: number): Promise<RawConnection> {
  const conn = await RawConnection.connect(port);
  await conn.write(startupPacket({ user: TRUST_ROLE.name, database: db, application_name: 'diff', client_encoding: 'UTF8' }));
  await conn.untilMessage('Z', 5000);
  conn.take(conn.data.length);
  return conn;
}

function requestCount(buffers: Buffer[]): number {
  let n = 0;
  for (const buf of buffers) if (buf[0] === 0x51 /* Q */ || buf[0] === 0x53 /* S */) n++;
  return n;
}

/** Sends one step and returns the messages up to its last ReadyForQuery. */
async function runStep(conn: RawConnection, s: Step): Promise<BackendMessage[]> {
  const want = requestCount(s.send);
  await conn.write(Buffer.concat(s.send));
  await conn.until((c) => c.messages.filter((m) => m.code === 'Z').length >= want, 5000, `${want} ReadyForQuery for "${s.name}"`);
  const out: BackendMessage[] = [];
  let bytes = 0;
  let seen = 0;
  for (const m of conn.messages) {
    out.push({ code: m.code, body: Buffer.from(m.body) });
    bytes += 5 + m.body.length;
    if (m.code === 'Z' && ++seen === want) break;
  }
  conn.take(bytes);
  return out;
}

/** What must be equal: errors and notices by severity, SQLSTATE and message; everything else byte for byte. */
function normalise(messages: BackendMessage[]): string[] {
  return messages
    .filter((m) => m.code !== 'K')
    .map((m) => {
      switch (m.code) {
        case 'E':
        case 'N': {
          const f = parseErrorFields(m.body);
          return `${m.code} ${f.S}/${f.V} ${f.C} ${f.M}`;
        }
        case 'S':
        case 'C':
          return `${m.code} ${m.body.toString('utf8').replace(/\0/g, '|')}`;
        case 'Z':
          return `Z ${m.body.toString('latin1')}`;
        case 'D': {
          const cols: Array<string | null> = [];
          const n = m.body.readInt16BE(0);
          let pos = 2;
          for (let i = 0; i < n; i++) {
            const len = m.body.readInt32BE(pos);
            pos += 4;
            cols.push(len < 0 ? null : m.body.toString('utf8', pos, pos + len));
            if (len > 0) pos += len;
          }
          return `D ${JSON.stringify(cols)}`;
        }
        default:
          return `${m.code} ${m.body.toString('hex')}`;
      }
    });
}

const PROBE: Step = step('probe', q('select pg_backend_pid() as pid'));

function probePid(messages: BackendMessage[]): number {
  const row = messages.find((m) => m.code === 'D');
  if (row === undefined) throw new Error(`probe got no row: ${normalise(messages).join(' ')}`);
  return Number(row.body.toString('utf8', 6, 6 + row.body.readInt32BE(2)));
}

interface Transcript {
  direct: string[][];
  pgmux: string[][];
  pids: Set<number>;
}

async function converse(steps: Step[]): Promise<Transcript> {
  const direct = await login(pgInfo().port);
  const viaPgmux = await login(px.port);
  const t: Transcript = { direct: [], pgmux: [], pids: new Set() };
  try {
    for (const s of steps) {
      t.direct.push(normalise(await runStep(direct, s)));
      t.pgmux.push(normalise(await runStep(viaPgmux, s)));
      // Not compared: which backend served the step (shows the client moved between servers).
      await runStep(direct, PROBE);
      t.pids.add(probePid(await runStep(viaPgmux, PROBE)));
    }
    // Nothing more arrives afterwards on either connection.
    await new Promise((r) => setTimeout(r, 100));
    expect(direct.data.length, 'stray bytes from Postgres').toBe(0);
    expect(splitMessages(viaPgmux.data).messages.map((m) => m.code), 'stray messages from pgmux').toEqual([]);
  } finally {
    direct.destroy();
    viaPgmux.destroy();
  }
  return t;
}

describe('the same conversation directly and through pgmux', () => {
  it('gives the same backend messages at every step, while the client moves between servers', async () => {
    // 20 clients of the same pool running short queries, so the scripted client changes servers.
    const load = await startLoad(() => connectClient(px, { database: db, role: TRUST_ROLE, ignoreErrors: true }), { sql: 'select pg_sleep(0.001)' });
    let t: Transcript;
    try {
      t = await converse(SCRIPT);
    } finally {
      await load.stop();
    }
    SCRIPT.forEach((s, i) => expect.soft(statusRunsSorted(t.pgmux[i]), `step ${i}: ${s.name}`).toEqual(statusRunsSorted(t.direct[i])));
    // Sanity: the script did what it means to (the direct side is PostgreSQL's own behaviour).
    const codes = (name: string): string => t.direct[SCRIPT.findIndex((s) => s.name.startsWith(name))].map((m) => m.slice(0, 1)).join('');
    // (10/$1 with $1 = 0 is folded when the plan is made, so it fails at Bind.)
    expect(codes('error inside a pipeline')).toBe('1EZ');
    expect(codes('error during Execute')).toBe('12DDEZ');
    expect(t.pids.size, 'the scripted client used both servers').toBeGreaterThanOrEqual(2);
  }, 30_000);

  it.each(EDGE_SCRIPTS.filter((e) => !e.skip).map((e) => [e.name, e.steps] as const))('%s', async (_name, steps) => {
    const t = await converse(steps);
    steps.forEach((s, i) => expect.soft(statusRunsSorted(t.pgmux[i]), `step ${i}: ${s.name}`).toEqual(statusRunsSorted(t.direct[i])));
  });
});

/**
 * Normalised messages with each run of consecutive ParameterStatus lines sorted: the order PostgreSQL reports
 * several parameters in at once (after RESET ALL, DISCARD ALL) is its own internal one, by name up to 15 and by its
 * GUC hash table from 16 on, and nothing a client can act on. Everything else stays byte for byte and in order.
 */
function statusRunsSorted(lines: readonly string[] | undefined): string[] | undefined {
  if (lines === undefined) return undefined;
  const out: string[] = [];
  let run: string[] = [];
  const flush = (): void => {
    out.push(...run.sort());
    run = [];
  };
  for (const line of lines) {
    if (line.startsWith('S ')) run.push(line);
    else {
      flush();
      out.push(line);
    }
  }
  flush();
  return out;
}
