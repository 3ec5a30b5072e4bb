/**
 * A malformed message of every frontend type closes only that client (issue 10, finding 6).
 *
 * After login, a Parse whose statement name has no terminating zero (`'P' int32(9) 'stmt1'`, then Sync) threw
 * `RangeError: unterminated string in message` out of pgmux's message decoding; nothing caught it and the Node
 * process exited, dropping every client. Any logged-in user could do this. Here pgmux runs as its own process
 * (so a crash shows as an exited process, not as a dead test worker), in transaction mode and in session mode,
 * and for each frontend message type (Q P B E D C S H F d c f X p, and unknown type bytes) a malformed body is
 * sent by a logged-in client, idle or inside a transaction block. Then:
 *
 * - the pgmux process is still running, and a new client logs in and runs a query;
 * - the bad client either got ErrorResponse 08P01 (protocol violation) and was closed, or got exactly what
 *   PostgreSQL answers directly to the same bytes (PostgreSQL reports most of these as an ERROR and keeps the
 *   connection; it ignores CopyData/CopyDone/CopyFail outside COPY; each case is run directly too and compared);
 * - a bystander running transactions through the same pool all along saw only correct results;
 * - no backend of the database is left `idle in transaction`.
 */
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { adminClient, createTestDatabase, dropTestDatabase, pgInfo } from './harness/context.js';
import { startPgmuxProcess } from './harness/pgmux-process.js';
import { freePort } from './harness/postgres.js';
import { canConnect, waitListening, type ChildProc } from './harness/process.js';
import { TRUST_ROLE } from './harness/roles.js';
import { waitFor, withTimeout } from './harness/wait.js';
import { message, parseErrorFields, queryMessage, RawConnection, startupPacket, type BackendMessage } from './harness/wire.js';
import { normalise } from './harness/wire-client.js';

let db: string;
let admin: pg.Client;
let configFile: string;
let port = 0;
let proc: ChildProc | null = null;
/** Output of pgmux processes that exited during the run (shown when a case finds pgmux gone). */
const deaths: string[] = [];

const MODES = { transaction: 'tx', session: 'sess' } as const;
type Mode = keyof typeof MODES;

async function startProcess(): Promise<void> {
  port = await freePort();
  const info = pgInfo();
  const database = (mode: Mode) => ({ host: info.host, port: info.port, dbname: db, pool_mode: mode, pool_size: 3 });
  writeFileSync(
    configFile,
    stringify({
      listen_addr: '127.0.0.1',
      listen_port: port,
      metrics_port: 0,
      auth_type: 'trust',
      max_client_conn: 100,
      query_wait_timeout: '10s',
      log_level: 'warn',
      databases: { [MODES.transaction]: database('transaction'), [MODES.session]: database('session') },
    }),
  );
  proc = startPgmuxProcess({ args: ['--config', configFile] });
  await waitListening(proc, port);
}

beforeAll(async () => {
  db = await createTestDatabase('malformed');
  admin = await adminClient(db);
  await admin.query('CREATE TABLE t (a int)');
  await admin.query(`GRANT SELECT, INSERT ON t TO ${TRUST_ROLE.name}`);
  configFile = path.join(mkdtempSync(path.join(tmpdir(), 'pgmux-malformed-')), 'pgmux.yaml');
  await startProcess();
}, 60_000);

/** A pgmux that died in an earlier case is started again, so each case is judged on its own. */
beforeEach(async () => {
  if (proc !== null && (!proc.running() || !(await canConnect(port)))) {
    deaths.push(proc.output());
    await proc.stop('SIGKILL');
    await startProcess();
  }
}, 60_000);

afterAll(async () => {
  if (proc !== null && proc.running()) await proc.stop('SIGINT');
  await admin?.end();
  if (db !== undefined) await dropTestDatabase(db);
});

// ---- building malformed messages ----

const int16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const cat = (...parts: Array<Buffer | string>): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)));
/** A message with a declared length that may lie: `declared` counts itself, as the protocol's length does. */
const rawMessage = (code: string, declared: number, body: Buffer | string = Buffer.alloc(0)): Buffer => cat(code, int32(declared), body);

interface Case {
  name: string;
  /** Sent (and answered) before the bad bytes: e.g. BEGIN, or a COPY FROM STDIN. */
  setup?: Buffer;
  /** How many ReadyForQuery / CopyInResponse the setup is answered with before the bad bytes go out. */
  setupWait?: { code: string; count: number };
  bad: Buffer;
}

const BEGIN = { setup: queryMessage('BEGIN'), setupWait: { code: 'Z', count: 1 } };
const COPY_IN = { setup: queryMessage('COPY t FROM STDIN'), setupWait: { code: 'G', count: 1 } };

const CASES: Case[] = [
  // The exact repro from the issue: statement name without its terminating zero, then Sync.
  { name: "Parse 'P' int32(9) 'stmt1' then Sync (the issue's repro)", bad: cat(rawMessage('P', 9, 'stmt1'), message('S')) },
  { name: 'Parse: the issue\'s repro inside a transaction block', ...BEGIN, bad: cat(rawMessage('P', 9, 'stmt1'), message('S')) },
  { name: 'Parse: query text without its terminating zero', bad: message('P', cat('stmt2\0', 'select 1')) },
  { name: 'Parse: empty body', bad: message('P') },
  { name: 'Parse: says 5 parameter types, has none', bad: message('P', cat('stmt3\0select $1\0', int16(5))) },
  { name: 'Parse: parameter type count cut short', bad: message('P', cat('\0select 1\0', Buffer.from([0]))) },
  { name: 'Query: no terminating zero', bad: message('Q', 'select 1') },
  { name: 'Query: no terminating zero, inside a transaction block', ...BEGIN, bad: message('Q', 'select 1') },
  { name: 'Query: empty body', bad: message('Q') },
  { name: 'Bind: portal name without its terminating zero', bad: message('B', 'portal') },
  { name: 'Bind: statement name without its terminating zero', bad: message('B', cat('\0', 'stmt')) },
  { name: 'Bind: says 3 parameter formats, has none', bad: message('B', cat('\0\0', int16(3))) },
  { name: 'Bind: a value longer than the message', bad: message('B', cat('\0\0', int16(0), int16(1), int32(100), 'ab')) },
  { name: 'Bind: statement name without zero, inside a transaction block', ...BEGIN, bad: message('B', cat('\0', 'stmt')) },
  { name: 'Execute: portal name without its terminating zero', bad: message('E', 'p') },
  { name: 'Execute: no row limit', bad: message('E', '\0') },
  { name: 'Describe: statement name without its terminating zero', bad: message('D', 'Sname') },
  { name: 'Describe: unknown kind', bad: message('D', 'X\0') },
  { name: 'Describe: empty body', bad: message('D') },
  { name: 'Describe: name without zero, inside a transaction block', ...BEGIN, bad: message('D', 'Pname') },
  {
    name: 'Describe without its terminating zero after a valid Parse and Bind (batch not synced yet)',
    bad: cat(message('P', cat('\0select 1\0', int16(0))), message('B', cat('\0\0', int16(0), int16(0), int16(0))), message('D', 'Pname')),
  },
  { name: 'Close: statement name without its terminating zero', bad: message('C', 'Sname') },
  { name: 'Close: unknown kind', bad: message('C', 'Z\0') },
  { name: 'Close: empty body', bad: message('C') },
  { name: 'Sync: with a body', bad: message('S', 'xx') },
  { name: 'Flush: with a body', bad: message('H', 'xx') },
  { name: 'FunctionCall: only a function OID', bad: message('F', int32(1299)) },
  { name: 'FunctionCall: says 2 arguments, has none', bad: message('F', cat(int32(1299), int16(0), int16(2))) },
  { name: 'CopyData outside COPY', bad: message('d', 'junk') },
  { name: 'CopyDone with a body, outside COPY', bad: message('c', 'junk') },
  { name: 'CopyFail without its terminating zero, outside COPY', bad: message('f', 'oops') },
  { name: 'CopyFail without its terminating zero, during COPY FROM STDIN', ...COPY_IN, bad: message('f', 'oops') },
  { name: 'CopyDone with a body, during COPY FROM STDIN', ...COPY_IN, bad: cat(message('d', '1\n'), message('c', 'junk')) },
  { name: 'Terminate with a body', bad: message('X', 'junk') },
  { name: 'PasswordMessage after login', bad: message('p', 'secret\0') },
  { name: 'PasswordMessage after login, without its terminating zero', bad: message('p', 'secret') },
  { name: "unknown message type 'z'", bad: message('z', 'abc') },
  { name: 'unknown message type 0x00', bad: cat(Buffer.from([0]), int32(4)) },
  { name: 'length below 4 (Query, length 3)', bad: rawMessage('Q', 3) },
  { name: 'negative length (Parse, length -1)', bad: rawMessage('P', -1) },
];

/** What follows the bad bytes, so an answer (or silence) can be told apart from a hang: Sync, then a query. */
const PROBE = cat(message('S'), queryMessage("select 'still here' as probe"));

interface Outcome {
  /** Messages after login, setup answers excluded. */
  messages: string[];
  closed: boolean;
  /** SQLSTATEs of the ErrorResponses received. */
  errors: string[];
}

async function runCase(targetPort: number, database: string, c: Case): Promise<Outcome> {
  const conn = await RawConnection.connect(targetPort);
  try {
    await conn.write(startupPacket({ user: TRUST_ROLE.name, database, application_name: 'malformed' }));
    await conn.untilMessage('Z', 10_000);
    conn.take(conn.data.length);
    if (c.setup !== undefined && c.setupWait !== undefined) {
      const wait = c.setupWait;
      await conn.write(c.setup);
      await conn.untilMessage(wait.code, 10_000, wait.count);
      conn.take(conn.data.length);
    }
    await conn.write(cat(c.bad, PROBE)).catch(() => undefined);
    // Answered (two ReadyForQuery: the Sync's and the query's) or closed; anything else is a hang.
    await conn.until((x) => x.closed || x.messages.filter((m) => m.code === 'Z').length >= 2, 10_000, `an answer to "${c.name}" or a close`);
    if (!conn.closed) {
      // Anything more than the probe's answer (a late FATAL, a close) comes right after it.
      await new Promise((r) => setTimeout(r, 50));
    }
    const messages: BackendMessage[] = conn.messages;
    return {
      messages: normalise(messages),
      closed: conn.closed,
      errors: messages.filter((m) => m.code === 'E').map((m) => parseErrorFields(m.body).C),
    };
  } finally {
    conn.destroy();
  }
}

/** A bystander of the same pool running transactions whose results it checks. */
function startBystander(database: string): { stop(): Promise<string[]> } {
  const problems: string[] = [];
  let running = true;
  const loop = (async () => {
    const c = new pg.Client({ host: '127.0.0.1', port, user: TRUST_ROLE.name, database, connectionTimeoutMillis: 10_000 });
    c.on('error', () => undefined);
    try {
      await c.connect();
      for (let k = 0; running; k++) {
        await c.query('BEGIN');
        const r = await c.query<{ k: number; n: string }>('select $1::int as k, (select count(*) from t where a = -1)::text as n', [k]);
        await c.query('COMMIT');
        if (r.rows[0].k !== k || r.rows[0].n !== '0') problems.push(`iteration ${k}: ${JSON.stringify(r.rows)}`);
      }
    } catch (err) {
      problems.push(`${(err as { code?: string }).code ?? ''} ${(err as Error).message}`);
    } finally {
      await c.end().catch(() => undefined);
    }
  })();
  return {
    async stop() {
      running = false;
      await withTimeout(loop, 15_000, 'the bystander to stop');
      return problems;
    },
  };
}

async function healthy(database: string): Promise<string> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: TRUST_ROLE.name, database, connectionTimeoutMillis: 10_000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return (await c.query<{ v: string }>("select 'fine' as v")).rows[0].v;
  } finally {
    await c.end().catch(() => undefined);
  }
}

const directOutcomes = new Map<string, Outcome>();

async function direct(c: Case): Promise<Outcome> {
  let found = directOutcomes.get(c.name);
  if (found === undefined) {
    found = await runCase(pgInfo().port, db, c);
    directOutcomes.set(c.name, found);
  }
  return found;
}

for (const mode of Object.keys(MODES) as Mode[]) {
  describe(`${mode} mode: a malformed message closes only that client`, () => {
    it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
      const want = await direct(c);
      const database = MODES[mode];
      const bystander = startBystander(database);
      let got: Outcome | null = null;
      let runError: unknown = null;
      try {
        // The bystander is logged in and running before the bad client sends anything.
        await waitFor(async () => (await healthy(database)) === 'fine', 'pgmux to serve a client', 10_000);
        got = await runCase(port, database, c).catch((err: unknown) => {
          runError = err;
          return null;
        });
      } finally {
        const problems = await bystander.stop();
        expect.soft(problems, 'what the bystander saw').toEqual([]);
      }
      expect(proc?.running(), `pgmux is still running\n${proc?.output().slice(-3000) ?? ''}`).toBe(true);
      expect(await healthy(database), 'a new client after the bad one').toBe('fine');
      if (runError !== null) throw runError;
      const outcome = got as Outcome;
      // Either: a protocol violation and the client closed ...
      const closedWith08P01 = outcome.closed && outcome.errors[0] === '08P01';
      // ... or exactly what PostgreSQL answers to the same bytes.
      const asDirect = outcome.closed === want.closed && JSON.stringify(outcome.messages) === JSON.stringify(want.messages);
      expect(
        closedWith08P01 || asDirect,
        `neither "08P01 and closed" nor the direct answer.\nthrough pgmux (closed=${outcome.closed}): ${JSON.stringify(outcome.messages, null, 1)}\n` +
          `directly (closed=${want.closed}): ${JSON.stringify(want.messages, null, 1)}`,
      ).toBe(true);
      // Nothing left open on the server for the bad client's transaction.
      await waitFor(async () => {
        const r = await admin.query<{ n: number }>(
          "select count(*)::int as n from pg_stat_activity where datname = $1 and state like 'idle in transaction%'",
          [db],
        );
        return r.rows[0].n === 0;
      }, `no backend of ${db} left idle in transaction`, 10_000);
    }, 60_000);
  });
}

describe('the direct answers these cases are compared with', () => {
  it('PostgreSQL reports the malformed messages it reads as 08P01', async () => {
    // Documents what PostgreSQL itself does, so the comparison above is against something known.
    const repro = await direct(CASES[0]);
    expect(repro.errors[0]).toBe('08P01');
    expect(repro.closed).toBe(false);
    const unknown = await direct(CASES.find((c) => c.name === "unknown message type 'z'") as Case);
    expect(unknown).toMatchObject({ closed: true, errors: ['08P01'] });
    const copyData = await direct(CASES.find((c) => c.name === 'CopyData outside COPY') as Case);
    expect(copyData.errors).toEqual([]);
  });
});
