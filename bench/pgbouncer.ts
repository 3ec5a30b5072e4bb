/**
 * PgBouncer as a benchmark target, in two versions beside each other:
 *
 * - `pgbouncer`: Debian's `pgbouncer` package (1.18 on Debian 12; installed with apt-get when missing and running
 *   as root). It predates protocol-level prepared statements, so `-M prepared` fails through it.
 * - `pgbouncer125`: PgBouncer 1.25.2 built from its release tag (../shared/bin/pgbouncer-1.25, see its README;
 *   PGMUX_BENCH_PGBOUNCER125 names another binary), with `max_prepared_statements = 200`. Its runtime libraries
 *   (libevent, c-ares, OpenSSL) are the ones Debian's package pulls in, so when it cannot load them the package is
 *   installed as for the other target. When it still cannot run, the bench says why and goes on without it.
 *
 * Both are configured like pgmux and run as the unprivileged OS user (PgBouncer refuses to run as root).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { freePort } from '../test/harness/postgres.js';
import { cleanEnv, runCommand, spawnWrapped } from './proc.js';
import { POOL_SETTINGS, poolerProcess, tail, type PoolerSetup, type Target } from './target.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The 1.25.2 build shipped beside this repository (../shared/bin/pgbouncer-1.25/README.md). */
export const PGBOUNCER_125_BIN = process.env.PGMUX_BENCH_PGBOUNCER125 ?? path.resolve(ROOT, '..', 'shared', 'bin', 'pgbouncer-1.25', 'pgbouncer');

const CANDIDATES = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer', '/usr/local/sbin/pgbouncer'];

function findPgbouncer(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir !== '' && fs.existsSync(path.join(dir, 'pgbouncer'))) return path.join(dir, 'pgbouncer');
  }
  return CANDIDATES.find((p) => fs.existsSync(p));
}

/** The pgbouncer binary, installing Debian's package first if needed; throws with the reason when impossible. */
export async function ensurePgbouncer(log: (line: string) => void): Promise<string> {
  const found = findPgbouncer();
  if (found !== undefined) return found;
  if (process.getuid?.() !== 0) throw new Error('pgbouncer is not installed and this is not root (install it: apt-get install pgbouncer)');
  if (!fs.existsSync('/usr/bin/apt-get')) throw new Error('pgbouncer is not installed and there is no apt-get to install it with');
  log('pgbouncer is not installed: installing Debian\'s pgbouncer package with apt-get');
  const env = cleanEnv({ DEBIAN_FRONTEND: 'noninteractive' });
  const install = (): ReturnType<typeof runCommand> =>
    runCommand('apt-get', ['install', '-y', '-q', '--no-install-recommends', 'pgbouncer'], { env, timeoutMs: 300_000 });
  let result = await install();
  if (result.code !== 0) {
    log('apt-get install failed; running apt-get update and trying again');
    await runCommand('apt-get', ['update', '-q'], { env, timeoutMs: 300_000 });
    result = await install();
  }
  const installed = findPgbouncer();
  if (result.code !== 0 || installed === undefined) {
    const why = `${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-5).join(' | ');
    throw new Error(`could not install pgbouncer with apt-get (exit ${result.code}): ${why}`);
  }
  log(`installed ${pgbouncerVersion(installed)}`);
  return installed;
}

function pgbouncerVersion(bin: string): string {
  const out = execFileSync(bin, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return /PgBouncer ([\d.]+)/.exec(out)?.[1] ?? out.split('\n')[0];
}

/** First line of what a failed `--version` said (e.g. a shared library that cannot be loaded). */
function versionFailure(err: unknown): string {
  const e = err as { stderr?: string | Buffer; message?: string };
  const text = String(e.stderr ?? '').trim() || (e.message ?? String(err));
  return text.split('\n')[0];
}

/**
 * The 1.25 binary and its version. When it does not run (typically: libc-ares2 or libevent missing), Debian's
 * pgbouncer package is installed for its libraries (ensurePgbouncer) and it is tried once more; throws saying why
 * it cannot run here.
 */
async function ensurePgbouncer125(log: (line: string) => void): Promise<{ bin: string; version: string }> {
  const bin = PGBOUNCER_125_BIN;
  if (!fs.existsSync(bin)) throw new Error(`${bin} does not exist`);
  try {
    return { bin, version: pgbouncerVersion(bin) };
  } catch (first) {
    log(`${bin} --version failed (${versionFailure(first)}); getting its runtime libraries from Debian's pgbouncer package`);
    try {
      await ensurePgbouncer(log);
    } catch (err) {
      throw new Error(`${bin} cannot run here: ${versionFailure(first)}; and ${(err as Error).message}`);
    }
    try {
      return { bin, version: pgbouncerVersion(bin) };
    } catch (second) {
      throw new Error(`${bin} cannot run here: ${versionFailure(second)}`);
    }
  }
}

function configText(setup: PoolerSetup, port: number, logFile: string, extra: readonly string[]): string {
  const lines = [
    '; written by bench/pgbouncer.ts',
    '[databases]',
    `${setup.database} = host=127.0.0.1 port=${setup.pg.port} dbname=${setup.database}`,
    '',
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    `logfile = ${logFile}`,
    `auth_type = ${POOL_SETTINGS.auth_type}`,
    `auth_file = ${setup.authFile}`,
    `pool_mode = ${POOL_SETTINGS.pool_mode}`,
    `default_pool_size = ${POOL_SETTINGS.default_pool_size}`,
    `max_client_conn = ${POOL_SETTINGS.max_client_conn}`,
    // PgBouncer's default backlog is 128; pgmux listens with 4096. Same accept queue for both.
    'listen_backlog = 4096',
    'log_connections = 0',
    'log_disconnections = 0',
    'log_pooler_errors = 1',
    'server_tls_sslmode = disable',
    'client_tls_sslmode = disable',
    'ignore_startup_parameters = extra_float_digits',
    ...extra,
    '',
  ];
  return lines.join('\n');
}

interface Variant {
  name: 'pgbouncer' | 'pgbouncer125';
  bin: string;
  version: string;
  /** Lines added to the [pgbouncer] section. */
  extra: readonly string[];
  /** Run after every start, before the target is used. */
  afterListen?: (port: number) => Promise<void>;
}

async function start(setup: PoolerSetup, variant: Variant): Promise<Target> {
  const { name, bin, version } = variant;
  const port = await freePort();
  const dir = path.join(setup.workDir, name);
  await fsp.mkdir(dir, { recursive: true });
  const configFile = path.join(dir, 'pgbouncer.ini');
  const logFile = path.join(dir, 'pgbouncer.log');
  await fsp.writeFile(configFile, configText(setup, port, logFile, variant.extra));
  for (const p of [dir, configFile]) await fsp.chown(p, setup.osUser.uid, setup.osUser.gid);

  const spawn = () => {
    // -q: log to the logfile only. Not -d: the pid must stay ours to read /proc and to stop it.
    const proc = spawnWrapped(bin, ['-q', configFile], {
      cwd: dir,
      env: cleanEnv(),
      stdio: ['ignore', 'ignore', 'pipe'],
      uid: setup.osUser.uid,
      gid: setup.osUser.gid,
    });
    let stderr = '';
    proc.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-2000)));
    return { proc, diagnostics: async () => `${stderr.trim()} ${await tail(logFile)}` };
  };
  const afterListen = variant.afterListen;
  return poolerProcess(name, 'PgBouncer', port, version, setup, spawn, afterListen === undefined ? undefined : () => afterListen(port));
}

/** Debian's PgBouncer (1.18 on Debian 12). */
export async function startPgbouncer(setup: PoolerSetup): Promise<Target> {
  const bin = await ensurePgbouncer(setup.log);
  return start(setup, { name: 'pgbouncer', bin, version: pgbouncerVersion(bin), extra: [] });
}

/**
 * One login to the real database through the pooler, then SELECT 1.
 *
 * Workaround for a known bug of PgBouncer 1.25.2 (fixed upstream after the release, PR #1504; the fix is in
 * ../shared/bin/pgbouncer-1.25/, not applied to the binary): with a SCRAM verifier in auth_file, if the first login
 * of a user after start goes to the admin console (database `pgbouncer`), every later login of that user to a real
 * database fails with "server login failed: wrong password type" until restart. The bench never logs in to the
 * admin console, but this makes sure the first login after every start (the first one and each restart() of the
 * idle-memory test) goes to a real database whatever runs later. The other workaround, the plaintext password in
 * auth_file, would change what is measured: PgBouncer would then run PBKDF2 for every SCRAM login.
 */
async function firstLoginToRealDatabase(setup: PoolerSetup, port: number): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: setup.user, password: setup.password, database: setup.database, connectionTimeoutMillis: 30_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (err) {
    throw new Error(`first login through PgBouncer 1.25 failed: ${(err as Error).message}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** PgBouncer 1.25.2 (PGBOUNCER_125_BIN), with protocol-level prepared statements. */
export async function startPgbouncer125(setup: PoolerSetup): Promise<Target> {
  const { bin, version } = await ensurePgbouncer125(setup.log);
  return start(setup, {
    name: 'pgbouncer125',
    bin,
    version,
    // 200 is also 1.25's default; written out so the setting does not depend on it.
    extra: ['max_prepared_statements = 200'],
    afterListen: (port) => firstLoginToRealDatabase(setup, port),
  });
}
