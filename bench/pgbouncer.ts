/**
 * PgBouncer as a benchmark target: Debian's `pgbouncer` package (installed with apt-get when missing and running as
 * root), configured like pgmux and run as the unprivileged OS user (PgBouncer refuses to run as root).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { freePort } from '../test/harness/postgres.js';
import { cleanEnv, runCommand, spawnWrapped } from './proc.js';
import { POOL_SETTINGS, poolerProcess, tail, type PoolerSetup, type Target } from './target.js';

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
  const out = execFileSync(bin, ['--version'], { encoding: 'utf8' });
  return /PgBouncer ([\d.]+)/.exec(out)?.[1] ?? out.split('\n')[0];
}

function configText(setup: PoolerSetup, port: number, logFile: string): string {
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
    '',
  ];
  return lines.join('\n');
}

export async function startPgbouncer(setup: PoolerSetup): Promise<Target> {
  const bin = await ensurePgbouncer(setup.log);
  const version = pgbouncerVersion(bin);
  const port = await freePort();
  const dir = path.join(setup.workDir, 'pgbouncer');
  await fsp.mkdir(dir, { recursive: true });
  const configFile = path.join(dir, 'pgbouncer.ini');
  const logFile = path.join(dir, 'pgbouncer.log');
  await fsp.writeFile(configFile, configText(setup, port, logFile));
  for (const p of [dir, configFile]) await fsp.chown(p, setup.osUser.uid, setup.osUser.gid);

  return poolerProcess('pgbouncer', 'PgBouncer', port, version, setup, () => {
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
  });
}
