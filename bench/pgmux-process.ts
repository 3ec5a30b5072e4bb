/**
 * pgmux as a benchmark target: built from this repository (`npm run build`) and run as its own process
 * (`node dist/src/main.js --config FILE`), configured like PgBouncer (see pgbouncer.ts): the same auth_file.
 * PGMUX_BENCH_NODE_ARGS adds node flags, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` (the profile is written at exit).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { freePort } from '../test/harness/postgres.js';
import { cleanEnv, runCommand, spawnWrapped } from './proc.js';
import { POOL_SETTINGS, poolerProcess, tail, type PoolerSetup, type Target } from './target.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ENTRY = path.join(ROOT, 'dist', 'src', 'main.js');

/** `npm run build`; throws with the compiler's output when it fails. */
export async function buildPgmux(log: (line: string) => void): Promise<void> {
  log('building pgmux (npm run build)');
  const result = await runCommand('npm', ['run', 'build', '--silent'], { cwd: ROOT, env: { ...process.env }, timeoutMs: 300_000 });
  if (result.code !== 0 || !fs.existsSync(ENTRY)) {
    throw new Error(`npm run build failed (exit ${result.code}):\n${`${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-20).join('\n')}`);
  }
}

function pgmuxVersion(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}

/** pgmux's configuration in the benchmark (and in bench/idle-memory-driver.ts): as PgBouncer's, logging off. */
export function benchConfig(port: number, authFile: string, pgPort: number, database: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listen_addr: '127.0.0.1',
    listen_port: port,
    ...POOL_SETTINGS,
    auth_file: authFile,
    client_tls_sslmode: 'disable',
    server_tls_sslmode: 'disable',
    log_level: 'warn',
    log_connections: false,
    log_disconnections: false,
    metrics_port: 0,
    databases: { [database]: { host: '127.0.0.1', port: pgPort, dbname: database } },
    ...overrides,
  };
}

function config(setup: PoolerSetup, port: number): Record<string, unknown> {
  return {
    ...benchConfig(port, setup.authFile, setup.pg.port, setup.database),
    // Extra settings for one run (bench/login-storm.ts compares admission-control settings this way).
    ...(JSON.parse(process.env.PGMUX_BENCH_SETTINGS ?? '{}') as Record<string, unknown>),
  };
}

/** Starts the built pgmux (build it first with buildPgmux). */
export async function startPgmuxProcess(setup: PoolerSetup): Promise<Target> {
  if (!fs.existsSync(ENTRY)) await buildPgmux(setup.log);
  const version = pgmuxVersion();
  const port = await freePort();
  const dir = path.join(setup.workDir, 'pgmux');
  await fsp.mkdir(dir, { recursive: true });
  const configFile = path.join(dir, 'pgmux.yaml');
  const logFile = path.join(dir, 'pgmux.log');
  await fsp.writeFile(configFile, stringify(config(setup, port)));

  return poolerProcess('pgmux', 'pgmux', port, version, setup, () => {
    // The auth_file is readable by root, so pgmux runs as the invoking user (it does not mind root).
    const out = fs.openSync(logFile, 'a');
    const nodeArgs = (process.env.PGMUX_BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
    const proc = spawnWrapped(process.execPath, [...nodeArgs, ENTRY, '--config', configFile], { cwd: dir, env: cleanEnv({ NODE_ENV: 'production' }), stdio: ['ignore', out, out] });
    fs.closeSync(out);
    return { proc, diagnostics: () => tail(logFile) };
  });
}
