/**
 * Runs a conversation twice and compares: each client's script alone on its own direct connection to PostgreSQL
 * (the oracle), then all scripts at once through a fresh pgmux in transaction mode with a pool smaller than the
 * number of clients (each client sends its next step when the answers to the previous one are in, so servers
 * change hands between transactions). Every backend message of every step must be the same, and so must each
 * client's table afterwards.
 *
 * The direct runs go concurrently too: the scripts touch disjoint objects (model.ts), so running them side by side
 * cannot change what any of them sees, and it halves the time.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { diffLines } from './diff.js';
import {
  EPILOGUE,
  FUZZ_PASSWORD,
  renderStep,
  startupParams,
  waitsFor,
  DEFAULT_OPTIONS,
  describeStartup,
  formatConversation,
  type ClientSpec,
  type Conversation,
  type Options,
} from './model.js';
import { FuzzConnection, type Endpoint } from './connection.js';
import { formatBackend, formatFront, relNumbering, type BackendMessage, type Front } from './protocol.js';
import { connectAdmin, resetClientObjects, snapshot, waitForQuietDatabase } from './setup.js';
import { startPgmuxFor, type FuzzTarget } from './target.js';

/**
 * Differences already reported that a long run may be told to look past, so that it finds the next ones. The
 * vitest run tolerates none.
 */
export const TOLERABLE = {
  /** At login pgmux reports ParameterStatus for names PostgreSQL does not report (spelled as the client did). */
  'login-extra-parameter-status': 'ParameterStatus at login for names PostgreSQL does not report',
  /**
   * docs/architecture.md, known differences: in an aborted transaction, a Describe of a statement the server lacks
   * gets 25P02 where PostgreSQL describes it (ParameterDescription) and goes on; the rest of that step differs.
   */
  'aborted-describe': 'a Describe in an aborted transaction of a statement the server lacks: 25P02 instead of ParameterDescription',
  /**
   * docs/architecture.md, known differences: an unnamed `FETCH ... FROM c` parsed while cursor c existed, described after
   * c is gone: PostgreSQL fails the Describe (34000, it re-checks the cursor it analyzed the statement against); pgmux
   * prepared the statement again on a server without the cursor, where it has no result (NoData).
   */
  'reprepared-fetch': 'a Describe of a FETCH statement whose cursor is gone: NoData instead of 34000',
} as const;

/** Where the two sides first differ. */
function firstDifference(expected: readonly string[], actual: readonly string[]): [expected: string, actual: string] {
  let k = 0;
  while (k < expected.length && k < actual.length && expected[k] === actual[k]) k++;
  return [expected[k] ?? '', actual[k] ?? ''];
}

/** Whether the first difference of a step is the known one: PostgreSQL described a statement, pgmux got 25P02. */
function isAbortedDescribe(expected: readonly string[], actual: readonly string[]): boolean {
  const [e, a] = firstDifference(expected, actual);
  return e.startsWith('ParameterDescription ') && a.startsWith('ErrorResponse ERROR 25P02 ');
}

/** Whether the first difference of a step is the known one: PostgreSQL found the cursor gone, pgmux's statement had no result. */
function isRepreparedFetch(expected: readonly string[], actual: readonly string[]): boolean {
  const [e, a] = firstDifference(expected, actual);
  return /^ErrorResponse ERROR 34000 "cursor .* does not exist"$/.test(e) && a === 'NoData';
}

export type Tolerable = keyof typeof TOLERABLE;

export interface RunnerOptions extends Options {
  /** A step not answered in this time is recorded as a timeout (and the client stops). */
  stepTimeoutMs: number;
  tolerate: ReadonlySet<Tolerable>;
}

export const DEFAULT_RUNNER_OPTIONS: RunnerOptions = { ...DEFAULT_OPTIONS, stepTimeoutMs: 10_000, tolerate: new Set() };

/** What one client saw, as normalised lines per step. */
export interface Transcript {
  login: string[];
  /** Generated steps then the epilogue; a step after a failed one is missing. */
  steps: string[][];
  /** Messages after Terminate, up to the close. */
  after: string[];
}

export interface Mismatch {
  client: number;
  /** Index of the step (generated steps, then epilogue steps), or -1 for the login, or Infinity for the table. */
  step: number;
  where: string;
  sent: string[];
  expected: string[];
  actual: string[];
}

export interface Outcome {
  ok: boolean;
  mismatches: Mismatch[];
  /** The whole report: the mismatches with diffs, then the conversation. */
  report: string;
  /** A short key per mismatch, in the order of `mismatches` (to tell distinct failures apart in long runs). */
  signatures: string[];
  direct: Transcript[];
  pgmux: Transcript[];
  /** Milliseconds spent per phase. */
  timings: Record<'reset' | 'direct' | 'pgmux' | 'compare', number>;
}

function loginLines(messages: BackendMessage[], rel: (oid: number) => string): string[] {
  // BackendKeyData is per connection. ParameterStatus at login come in no particular order.
  const kept = messages.filter((m) => m.code !== 'K');
  const status = kept.filter((m) => m.code === 'S').map((m) => formatBackend(m, rel)).sort();
  return [...status, ...kept.filter((m) => m.code !== 'S').map((m) => formatBackend(m, rel))];
}

function scriptOf(spec: ClientSpec, i: number, options: Options): Front[][] {
  return [...spec.steps.map((s) => renderStep(s, i, options)), ...EPILOGUE];
}

async function runClient(spec: ClientSpec, i: number, to: Endpoint, database: string, options: RunnerOptions): Promise<{ transcript: Transcript; pid: number }> {
  const rel = relNumbering();
  const transcript: Transcript = { login: [], steps: [], after: [] };
  let conn: FuzzConnection;
  try {
    conn = await FuzzConnection.connect(to);
  } catch (err) {
    transcript.login = [`(connect failed: ${(err as Error).message})`];
    return { transcript, pid: 0 };
  }
  try {
    const login = await conn.login(startupParams(spec.startup, i, database), FUZZ_PASSWORD, options.stepTimeoutMs);
    transcript.login = loginLines(login.messages, rel);
    if (!login.complete || login.messages.some((m) => m.code === 'E')) return { transcript, pid: conn.pid };
    const script = scriptOf(spec, i, options);
    for (let n = 0; n < script.length; n++) {
      const pause = n < spec.steps.length ? spec.steps[n].pause : 0;
      if (pause > 0) await new Promise((resolve) => setTimeout(resolve, pause));
      const r = await conn.step(script[n], options.stepTimeoutMs);
      transcript.steps.push(r.messages.map((m) => formatBackend(m, rel)));
      if (!r.complete) return { transcript, pid: conn.pid };
    }
    transcript.after = (await conn.terminate(options.stepTimeoutMs)).map((m) => formatBackend(m, rel));
    return { transcript, pid: conn.pid };
  } finally {
    conn.destroy();
  }
}

function compare(conv: Conversation, direct: Transcript[], viaPgmux: Transcript[], options: RunnerOptions): Mismatch[] {
  const out: Mismatch[] = [];
  conv.clients.forEach((spec, i) => {
    const d = direct[i];
    const p = viaPgmux[i];
    const script = scriptOf(spec, i, options);
    const same = (a: string[], b: string[]) => a.length === b.length && a.every((x, k) => x === b[k]);
    let pLogin = p.login;
    if (options.tolerate.has('login-extra-parameter-status')) {
      const statusName = (l: string) => (l.startsWith('ParameterStatus ') ? l.slice(16).split('=')[0] : null);
      const names = new Set(d.login.map(statusName));
      pLogin = pLogin.filter((l) => statusName(l) === null || names.has(statusName(l)));
    }
    if (!same(d.login, pLogin)) {
      out.push({ client: i, step: -1, where: `login (${describeStartup(spec.startup, i) || 'no startup parameters'})`, sent: [], expected: d.login, actual: p.login });
      return;
    }
    const steps = Math.max(d.steps.length, p.steps.length);
    for (let n = 0; n < steps; n++) {
      const e = d.steps[n] ?? ['(not run)'];
      const a = p.steps[n] ?? ['(not run)'];
      if (!same(e, a)) {
        if (options.tolerate.has('aborted-describe') && isAbortedDescribe(e, a)) continue;
        if (options.tolerate.has('reprepared-fetch') && isRepreparedFetch(e, a)) continue;
        const where = n < spec.steps.length ? `step ${n}` : `epilogue step ${n - spec.steps.length}`;
        out.push({ client: i, step: n, where, sent: script[n].map(formatFront), expected: e, actual: a });
        return;
      }
    }
    if (!same(d.after, p.after)) out.push({ client: i, step: steps, where: 'after Terminate', sent: ['Terminate'], expected: d.after, actual: p.after });
  });
  return out;
}

function formatMismatch(m: Mismatch): string {
  const lines = [`client ${m.client}, ${m.where}:`];
  if (m.sent.length > 0) lines.push(...m.sent.map((s) => `    > ${s}`));
  lines.push('  expected (direct) / actual (pgmux):', ...diffLines(m.expected, m.actual).map((l) => `    ${l}`));
  return lines.join('\n');
}

/** The first differing line on each side, without values, and what was sent: a rough key for "the same bug". */
function signatureOf(m: Mismatch): string {
  const d = diffLines(m.expected, m.actual).filter((l) => !l.startsWith('  '));
  const strip = (l: string) =>
    l
      .replace(/=?"(?:[^"\\]|\\.)*"/g, '')
      .replace(/\[.*\]/g, '[]')
      .replace(/\d+/g, '0')
      .trim();
  const key = (prefix: string) => strip((d.find((l) => l.startsWith(prefix)) ?? '').slice(2));
  const columns = differingColumns(m.expected, m.actual);
  if (columns !== null) return `${sentKey(m)} :: DataRow differs in ${columns}`;
  return `${sentKey(m)} :: - ${key('- ')} :: + ${key('+ ')}`;
}

function sentKey(m: Mismatch): string {
  const first = m.sent.find((s) => s !== 'Sync' && s !== 'Flush');
  if (m.step < 0) return 'login';
  if (first === undefined) return m.where.replace(/\d+/g, 'N');
  return first.startsWith('Query "') ? `Query ${first.slice(7).split(/[\s;"]/)[0].toUpperCase()}` : first.split(' ')[0];
}

const CELL = /NULL|\\x[0-9a-f]*|"(?:[^"\\]|\\.)*"/g;

/**
 * When the first difference is a DataRow against a DataRow of the same shape: the names of the columns that
 * differ (from the RowDescription before it), so that "TimeZone differs" and "current_user differs" are told apart.
 */
function differingColumns(expected: readonly string[], actual: readonly string[]): string | null {
  let k = 0;
  while (k < expected.length && k < actual.length && expected[k] === actual[k]) k++;
  const e = expected[k];
  const a = actual[k];
  if (e === undefined || a === undefined || !e.startsWith('DataRow [') || !a.startsWith('DataRow [')) return null;
  const ec = e.match(CELL) ?? [];
  const ac = a.match(CELL) ?? [];
  if (ec.length !== ac.length) return null;
  const desc = expected.slice(0, k).reverse().find((l) => l.startsWith('RowDescription ['));
  const names = desc === undefined ? [] : desc.slice(16, -1).split(', ').map((c) => c.split(':')[0]);
  const differ = ec.map((x, n) => (x === ac[n] ? null : (names[n] ?? `#${n}`))).filter((x) => x !== null);
  return differ.join(',');
}

/** A PostgreSQL backend crashed while a conversation ran (PostgreSQL's bug, not a difference pgmux made). */
export class ServerCrash extends Error {
  constructor(
    readonly conversation: Conversation,
    readonly serverLog: string,
  ) {
    super(`a PostgreSQL backend crashed while this conversation ran:\n${serverLog}`);
    this.name = 'ServerCrash';
  }
}

export class DifferentialRunner {
  private admin: pg.Client | null = null;
  readonly options: RunnerOptions;

  constructor(
    readonly target: FuzzTarget,
    options: Partial<RunnerOptions> = {},
  ) {
    this.options = { ...DEFAULT_RUNNER_OPTIONS, ...options };
  }

  private async adminClient(): Promise<pg.Client> {
    this.admin ??= await connectAdmin(this.target.pg, this.target.database);
    return this.admin;
  }

  private async quiet(what: string): Promise<void> {
    if (!(await waitForQuietDatabase(await this.adminClient(), this.target.database, 20_000))) {
      throw new Error(`backends still connected to ${this.target.database} 20 s after ${what}`);
    }
  }

  /**
   * Runs `conv` directly and through pgmux. Throws ServerCrash when a PostgreSQL backend crashed meanwhile (the
   * server restarts every backend then, so nothing of the conversation can be compared): that is a bug of
   * PostgreSQL's, whatever sent the bytes (pgmux sends nothing a client could not).
   */
  async run(conv: Conversation): Promise<Outcome> {
    // From where the last look ended: a crash logged just after it belongs to this run's failure.
    const logFrom = this.logCheckedTo;
    let outcome: Outcome | undefined;
    let failure: unknown;
    try {
      outcome = await this.runOnce(conv);
    } catch (err) {
      failure = err;
    }
    const crash = this.crashSince(logFrom);
    if (crash !== null) {
      await this.close();
      await this.waitForServer();
      throw new ServerCrash(conv, crash);
    }
    if (outcome === undefined) throw failure;
    return outcome;
  }

  private logCheckedTo = 0;

  /** What the server logged about a crashed backend since `from`, or null. */
  private crashSince(from: number): string | null {
    if (this.target.serverLog === undefined) return null;
    let text: string;
    try {
      const log = readFileSync(this.target.serverLog);
      this.logCheckedTo = log.length;
      text = log.subarray(from).toString('utf8');
    } catch {
      return null;
    }
    if (!/server process \(PID \d+\) was terminated by signal/.test(text)) return null;
    return text.split('\n').slice(-30).join('\n');
  }

  private async waitForServer(): Promise<void> {
    // Crash recovery replays the WAL since the last checkpoint: on a loaded 2-core machine that took over 30 s.
    const deadline = Date.now() + 180_000;
    for (;;) {
      try {
        await this.adminClient();
        return;
      } catch (err) {
        this.admin = null;
        if (Date.now() > deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }

  private async runOnce(conv: Conversation): Promise<Outcome> {
    const admin = await this.adminClient();
    const { host, port, socketDir } = this.target.pg;
    const db = this.target.database;
    const directly: Endpoint = socketDir === undefined ? { host, port } : { path: path.join(socketDir, `.s.PGSQL.${port}`) };
    const n = conv.clients.length;

    const t0 = Date.now();
    await this.quiet('the previous conversation');
    await resetClientObjects(admin, n);
    const t1 = Date.now();
    const direct = await Promise.all(conv.clients.map((c, i) => runClient(c, i, directly, db, this.options)));
    await this.quiet('the direct run');
    const directTables = await snapshot(admin, n);
    const t2 = Date.now();
    await resetClientObjects(admin, n);
    const t3 = Date.now();

    const px = await startPgmuxFor(this.target, conv.poolSize);
    let viaPgmux: Transcript[];
    try {
      const finished: Array<Promise<unknown>> = [];
      const runs = conv.clients.map((c, i) => {
        const w = waitsFor(conv.clients, i);
        const p = (async () => {
          if (w !== null) await finished[w];
          return runClient(c, i, { host: '127.0.0.1', port: px.port }, db, this.options);
        })();
        finished.push(p.catch(() => undefined));
        return p;
      });
      viaPgmux = (await Promise.all(runs)).map((r) => r.transcript);
    } finally {
      await px.stop();
    }
    await this.quiet('pgmux stopped');
    const pgmuxTables = await snapshot(admin, n);
    const t4 = Date.now();

    const directT = direct.map((r) => r.transcript);
    const mismatches = compare(conv, directT, viaPgmux, this.options);
    for (let i = 0; i < n; i++) {
      if (directTables[i] !== pgmuxTables[i] && !mismatches.some((m) => m.client === i)) {
        mismatches.push({ client: i, step: Infinity, where: `contents of table c${i}.t afterwards`, sent: [], expected: [directTables[i]], actual: [pgmuxTables[i]] });
      }
    }
    for (const [i, r] of direct.entries()) {
      const incomplete = r.transcript.steps.some((s) => s.some((l) => l.startsWith('(no complete answer') || l === '(connection closed)'));
      if (incomplete || r.transcript.login.some((l) => l.startsWith('ErrorResponse'))) {
        // The oracle itself did not get through the script: the generator made something that hangs or fails at login.
        mismatches.unshift({ client: i, step: -2, where: 'the direct run (a fuzzer bug: the script does not complete on PostgreSQL itself)', sent: [], expected: [], actual: r.transcript.steps.flat() });
      }
    }
    mismatches.sort((a, b) => a.step - b.step || a.client - b.client);
    const report =
      mismatches.length === 0
        ? ''
        : [
            `${mismatches.length} client(s) saw something through pgmux that they did not see directly.`,
            ...mismatches.map(formatMismatch),
            'Conversation:',
            formatConversation(conv, this.options, new Map(mismatches.filter((m) => m.step >= 0).map((m) => [m.client, m.step]))),
          ].join('\n\n');
    const timings = { reset: t1 - t0 + (t3 - t2), direct: t2 - t1, pgmux: t4 - t3, compare: Date.now() - t4 };
    return { ok: mismatches.length === 0, mismatches, report, signatures: mismatches.map(signatureOf), direct: directT, pgmux: viaPgmux, timings };
  }

  async close(): Promise<void> {
    await this.admin?.end().catch(() => undefined);
    this.admin = null;
  }
}
