/**
 * SCRAM login cost, in process (no sockets): how many microseconds of pgmux's own work one SCRAM-SHA-256 login
 * takes, per kind of stored secret. Only pgmux's side of each exchange is timed (constructing ClientAuth, start(),
 * and the two onMessage calls; or, for pgmux logging in to PostgreSQL, ScramClientSession's three calls): the
 * client's (or PostgreSQL's) half is computed outside the timed sections, from keys derived once.
 *
 *   npx tsx bench/scram-login.ts [--logins 20000] [--rounds 7] [--only verifier,unknown]
 *
 * Each scenario runs `rounds` rounds of `logins` logins after a warm-up round. Two figures: cpu, the process's CPU
 * time inside the timed sections per login (median of the rounds, with their range), which a busy neighbour on a
 * shared machine hardly moves; and wall p50, the median login's wall time in those sections. A login that waits for
 * a key derivation (the 'pending' step) counts only pgmux's synchronous work in wall time: the PBKDF2 runs in
 * libuv's threadpool (its CPU shows in the cpu column only where it overlaps a timed section), and the HMACs that
 * turn its output into keys (~7 µs) run in its callback, untimed.
 *
 * Last measured (2-CPU machine at load average 7-11 from other jobs, so ranges over runs; cpu column, µs per login),
 * HEAD before issue 13 part 5 -> after: verifier 16-26 -> 11-17; verifier-wrong 19-31 -> 13-20; plaintext 20-32 ->
 * 14-26; plain-verifier 700-1000 -> 7-11; server-password 740-1220 -> 16-29; server-passthru 24-32 -> 13-21;
 * plain-wrong-wait 700-900 -> 20-40 µs of event-loop wall time (the PBKDF2 in the threadpool).
 *
 * Against a copy of older sources (e.g. `git worktree` or a copied src/ next to this file) the same script gives
 * the "before" figures; an older ClientAuth ignores `mayWait`, so its -wait rows are the plain rows again.
 *
 * Scenarios (`-wait`: ClientAuth with `mayWait`, the caller handling 'pending' steps; without it a derivation the
 * exchange needs at once runs on the event loop):
 *   verifier              auth_file/auth_query/users: a SCRAM verifier (what bench/login-storm.ts and PgBouncer do)
 *   verifier-wrong        the same with a wrong password (28P01)
 *   unknown               a user pgmux does not know: the mock challenge (28P01)
 *   plaintext             a plaintext password in users: (SCRAM secret derived by pgmux), seen before
 *   plaintext-new(-wait)  a plaintext password's first login (a new user each login: the PBKDF2 is not cached yet)
 *   plain-verifier        auth_type plain against a SCRAM verifier, the right password
 *   plain-wrong(-wait)    auth_type plain against a SCRAM verifier, a wrong password (a PBKDF2 each time, not cached)
 *   server-password       pgmux logging in to PostgreSQL with a plaintext password (ScramClientSession)
 *   server-passthru       pgmux logging in to PostgreSQL with the ClientKey recovered from a client (passthrough)
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { formatScramVerifier, makeScramSecret, ScramClientSession, ScramServerSession } from '../src/auth/scram.js';
import { ClientAuth, ScramSecretCache, type AuthStep } from '../src/client/client-auth.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const LOGINS = Number(arg('logins', '20000'));
const ROUNDS = Number(arg('rounds', '7'));
const ONLY = arg('only', '').split(',').filter((s) => s !== '');

const USER = 'bench_user';
const PASSWORD = 'bench-password-1234';
const ITERATIONS = 4096;

// ---- the client's half, computed outside the timed sections ----

function passwordMessage(body: Buffer): Buffer {
  const buf = Buffer.alloc(5 + body.length);
  buf.write('p', 0, 'latin1');
  buf.writeInt32BE(4 + body.length, 1);
  body.copy(buf, 5);
  return buf;
}

function saslInitial(data: string): Buffer {
  const length = Buffer.alloc(4);
  length.writeInt32BE(Buffer.byteLength(data, 'latin1'));
  return passwordMessage(Buffer.concat([Buffer.from('SCRAM-SHA-256\0', 'latin1'), length, Buffer.from(data, 'latin1')]));
}

interface ClientKeys {
  salt: string;
  clientKey: Buffer;
  storedKey: Buffer;
}

/** What a client derives for a salt (once per salt: real clients cache nothing, but their cost is not ours). */
const clientKeyCache = new Map<string, ClientKeys>();
function clientKeys(password: string, saltB64: string, iterations: number): ClientKeys {
  const id = `${password}\0${saltB64}\0${iterations}`;
  let keys = clientKeyCache.get(id);
  if (keys === undefined) {
    const salted = pbkdf2Sync(password, Buffer.from(saltB64, 'base64'), iterations, 32, 'sha256');
    const clientKey = createHmac('sha256', salted).update('Client Key').digest();
    keys = { salt: saltB64, clientKey, storedKey: createHash('sha256').update(clientKey).digest() };
    clientKeyCache.set(id, keys);
  }
  return keys;
}

function clientFinal(bare: string, serverFirstStep: AuthStep, password: string): Buffer {
  if (serverFirstStep.kind !== 'send') throw new Error(`expected server-first, got ${serverFirstStep.kind}`);
  const serverFirst = serverFirstStep.message.subarray(9).toString('latin1');
  const [r, s, i] = serverFirst.split(',').map((kv) => kv.slice(2));
  const keys = clientKeys(password, s, Number(i));
  const withoutProof = `c=biws,r=${r}`;
  const signature = createHmac('sha256', keys.storedKey).update(`${bare},${serverFirst},${withoutProof}`).digest();
  const proof = Buffer.allocUnsafe(32);
  for (let k = 0; k < 32; k++) proof[k] = keys.clientKey[k] ^ signature[k];
  return passwordMessage(Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'latin1'));
}

function plainPassword(password: string): Buffer {
  return passwordMessage(Buffer.from(`${password}\0`, 'utf8'));
}

// ---- scenarios: each times pgmux's part of one login with `meter` ----

/**
 * Wall and CPU time of the sections timed. CPU time is process.cpuUsage() (getrusage: every thread of the
 * process, precise on Linux) around each section, less what an empty section measures: unlike wall time it does
 * not count the time another process had the core, which on a shared 2-core machine is most of the noise.
 */
class Meter {
  wallMs = 0;
  cpuUs = 0;
  sections = 0;
  private t = 0;
  private c: NodeJS.CpuUsage = { user: 0, system: 0 };

  start(): void {
    this.c = process.cpuUsage();
    this.t = performance.now();
  }

  stop(): void {
    this.wallMs += performance.now() - this.t;
    const c = process.cpuUsage(this.c);
    this.cpuUs += c.user + c.system;
    this.sections++;
  }

  reset(): void {
    this.wallMs = 0;
    this.cpuUs = 0;
    this.sections = 0;
  }
}

const meter = new Meter();

type Expect = 'ok' | 'fail';
type Login = () => Promise<void> | void;

let nonceCounter = 0;

/** One client SCRAM login against ClientAuth: the time inside ClientAuth only. */
async function clientScramLogin(secrets: ScramSecretCache, user: string, stored: string | undefined, password: string, expect: Expect, mayWait = false): Promise<void> {
  const bare = `n=,r=benchNonce${(nonceCounter++).toString(36)}`;
  const first = saslInitial(`n,,${bare}`);
  meter.start();
  const auth = new ClientAuth(user, stored, 'scram-sha-256', secrets, null, { mayWait });
  auth.start();
  const serverFirst = auth.onMessage(first, 0, first.length);
  meter.stop();
  const final = clientFinal(bare, serverFirst, password);
  meter.start();
  let step = auth.onMessage(final, 0, final.length);
  meter.stop();
  step = await settle(step);
  if (step.kind !== expect) throw new Error(`expected ${expect}, got ${step.kind}${step.kind === 'fail' ? `: ${step.error.message}` : ''}`);
  if (step.kind === 'fail' && step.error.sqlstate !== '28P01') throw new Error(`expected 28P01, got ${step.error.sqlstate}`);
}

/** auth_type plain: one password message. */
async function clientPlainLogin(secrets: ScramSecretCache, stored: string, password: string, expect: Expect, mayWait = false): Promise<void> {
  const message = plainPassword(password);
  meter.start();
  const auth = new ClientAuth(USER, stored, 'plain', secrets, null, { mayWait });
  auth.start();
  let step = auth.onMessage(message, 0, message.length);
  meter.stop();
  step = await settle(step);
  if (step.kind !== expect) throw new Error(`expected ${expect}, got ${step.kind}`);
}

/** A step that waits for a key derivation in the threadpool: its outcome (the wait is not timed). */
async function settle(step: AuthStep): Promise<AuthStep> {
  return step.kind === 'pending' ? step.next : step;
}

/** pgmux (ScramClientSession) logging in to an in-process ScramServerSession playing PostgreSQL: pgmux's calls only. */
function serverLogin(credentials: ConstructorParameters<typeof ScramClientSession>[0], upstream: ReturnType<typeof makeScramSecret>): void {
  meter.start();
  const client = new ScramClientSession(credentials);
  const first = client.clientFirst();
  meter.stop();
  const server = new ScramServerSession(upstream);
  const serverFirst = server.handleClientFirst(first);
  meter.start();
  const final = client.handleServerFirst(serverFirst);
  meter.stop();
  const result = server.handleClientFinal(final);
  if (!result.ok) throw new Error('upstream refused pgmux');
  meter.start();
  client.handleServerFinal(result.serverFinal);
  meter.stop();
}

function scenarios(): Record<string, Login> {
  const secrets = new ScramSecretCache();
  secrets.useKey(randomBytes(32));
  const verifier = formatScramVerifier(makeScramSecret(PASSWORD, { iterations: ITERATIONS }));
  const upstream = makeScramSecret(PASSWORD, { iterations: ITERATIONS });
  const derived = pbkdf2Sync(PASSWORD, upstream.salt, ITERATIONS, 32, 'sha256');
  const passthrough = {
    clientKey: createHmac('sha256', derived).update('Client Key').digest(),
    serverKey: createHmac('sha256', derived).update('Server Key').digest(),
  };
  let unknown = 0;
  let fresh = 0;
  return {
    verifier: () => clientScramLogin(secrets, USER, verifier, PASSWORD, 'ok'),
    'verifier-wrong': () => clientScramLogin(secrets, USER, verifier, 'not-the-password', 'fail'),
    // A fresh name every 64 logins: the mock secrets cache sees both hits and misses, as under a probe.
    unknown: () => clientScramLogin(secrets, `nobody_${(unknown++ >> 6).toString(36)}`, undefined, 'whatever', 'fail'),
    plaintext: () => clientScramLogin(secrets, USER, PASSWORD, PASSWORD, 'ok'),
    'plaintext-new': () => clientScramLogin(secrets, `new_${fresh++}`, PASSWORD, PASSWORD, 'ok'),
    'plaintext-new-wait': () => clientScramLogin(secrets, `new_${fresh++}`, PASSWORD, PASSWORD, 'ok', true),
    'plain-verifier': () => clientPlainLogin(secrets, verifier, PASSWORD, 'ok'),
    'plain-wrong': () => clientPlainLogin(secrets, verifier, 'not-the-password', 'fail'),
    'plain-wrong-wait': () => clientPlainLogin(secrets, verifier, 'not-the-password', 'fail', true),
    'server-password': () => serverLogin({ password: PASSWORD }, upstream),
    'server-passthru': () => serverLogin({ ...passthrough, salt: upstream.salt, iterations: ITERATIONS }, upstream),
  };
}

interface Round {
  /** Each login's timed wall milliseconds. */
  wall: Float64Array;
  /** CPU µs per login, less the meter's own. */
  cpuUs: number;
}

/** What an empty section measures, in CPU µs. */
let emptySectionCpuUs = 0;

function calibrate(): void {
  meter.reset();
  for (let i = 0; i < 50_000; i++) {
    meter.start();
    meter.stop();
  }
  emptySectionCpuUs = meter.cpuUs / meter.sections;
}

async function round(login: Login, n: number): Promise<Round> {
  const wall = new Float64Array(n);
  meter.reset();
  let wallBefore = 0;
  for (let i = 0; i < n; i++) {
    const r = login();
    if (r !== undefined) await r;
    wall[i] = meter.wallMs - wallBefore;
    wallBefore = meter.wallMs;
  }
  return { wall, cpuUs: (meter.cpuUs - meter.sections * emptySectionCpuUs) / n };
}

function median(xs: ArrayLike<number>): number {
  const s = Float64Array.from(xs).sort();
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main(): Promise<void> {
  calibrate();
  console.log(`node ${process.version}; ${LOGINS} logins x ${ROUNDS} rounds per scenario (after a warm-up round); µs of pgmux work per login`);
  console.log(`cpu: median of the rounds' CPU time per login [min-max]; wall p50: median login's wall time (meter's own ${emptySectionCpuUs.toFixed(2)} µs a section taken off the CPU figures)`);
  console.log(`${'scenario'.padEnd(19)} ${'cpu'.padStart(9)}   ${'range'.padEnd(15)} ${'wall p50'.padStart(9)}`);
  for (const [name, login] of Object.entries(scenarios())) {
    if (ONLY.length > 0 && !ONLY.includes(name)) continue;
    // The expensive kinds (a PBKDF2 per login on either side) get fewer logins so a run stays short. Told by CPU
    // time, which a busy neighbour hardly moves (by wall time, a preempted cheap kind was taken for an expensive one).
    await round(login, 20); // the first calls also pay for compiling the code (V8's compiler threads count)
    const cpu0 = process.cpuUsage();
    await round(login, 20);
    const probeCpu = process.cpuUsage(cpu0);
    const n = (probeCpu.user + probeCpu.system) / 20 > 300 ? Math.max(50, Math.floor(LOGINS / 100)) : LOGINS;
    await round(login, Math.min(n, 2000));
    const wall: number[] = [];
    const cpu: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const result = await round(login, n);
      for (const t of result.wall) wall.push(t * 1000);
      cpu.push(result.cpuUs);
    }
    const f = (v: number): string => v.toFixed(2).padStart(9);
    const range = `[${Math.min(...cpu).toFixed(1)}-${Math.max(...cpu).toFixed(1)}]`;
    console.log(`${name.padEnd(19)} ${f(median(cpu))}   ${range.padEnd(15)} ${f(median(wall))}${n !== LOGINS ? `   (${n} logins a round)` : ''}`);
  }
}

await main();
