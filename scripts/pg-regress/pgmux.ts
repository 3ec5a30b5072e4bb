/**
 * pgmux between pg_regress and the cluster, run from a checkout's build (`npm run build`, then
 * `node dist/src/main.js --config <yaml>`) as a child process with an environment of its own.
 *
 * Its configuration: a wildcard database "*" (pg_regress's `regression`, `postgres` for setup, and the databases
 * the tests create map to the upstream database of the same name), auth_type trust (the upstream trusts
 * loopback, so no passwords anywhere), the pool mode under test and a pool size chosen by the caller.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Mode } from './options.js';
import { canConnect, freePort } from './net.js';
import { cleanEnv, mustRun, sleep, startChild, type Child, type ExitStatus } from './proc.js';

export interface PgmuxInstance {
  readonly port: number;
  readonly logFile: string;
  readonly configFile: string;
  /** Undefined while it runs. */
  exitStatus(): ExitStatus | undefined;
  /** SIGINT (drain at once), SIGKILL after 10 s. Idempotent. */
  stop(): Promise<ExitStatus>;
}

export interface PgmuxOptions {
  /** A pgmux checkout with dist/ built. */
  readonly dir: string;
  readonly mode: Exclude<Mode, 'direct'>;
  readonly poolSize: number;
  readonly upstreamPort: number;
  /** Where its config and log go. */
  readonly runDir: string;
}

const READY_TIMEOUT_MS = 30_000;

export function pgmuxEntry(dir: string): string {
  return path.join(dir, 'dist', 'src', 'main.js');
}

export async function buildPgmux(dir: string, log: (line: string) => void): Promise<void> {
  log(`npm run build in ${dir}`);
  await mustRun('npm', ['run', 'build', '--silent'], { cwd: dir });
  if (!fs.existsSync(pgmuxEntry(dir))) throw new Error(`npm run build in ${dir} did not produce ${pgmuxEntry(dir)}`);
}

function configYaml(options: PgmuxOptions, port: number): string {
  return [
    '# Written by scripts/pg-regress/pgmux.ts',
    'listen_addr: 127.0.0.1',
    `listen_port: ${port}`,
    `pool_mode: ${options.mode}`,
    `default_pool_size: ${options.poolSize}`,
    'max_client_conn: 1000',
    'auth_type: trust',
    'server_tls_sslmode: disable',
    'client_tls_sslmode: disable',
    'metrics_port: 0',
    'log_level: info',
    'databases:',
    '  "*":',
    '    host: 127.0.0.1',
    `    port: ${options.upstreamPort}`,
    '',
  ].join('\n');
}

async function tail(file: string, lines = 20): Promise<string> {
  try {
    return (await fsp.readFile(file, 'utf8')).split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export async function startPgmux(options: PgmuxOptions): Promise<PgmuxInstance> {
  const configFile = path.join(options.runDir, 'pgmux.yaml');
  const logFile = path.join(options.runDir, 'pgmux.log');
  const logFd = fs.openSync(logFile, 'a', 0o644);
  let child: Child | undefined;
  let port = 0;
  try {
    for (let attempt = 1; attempt <= 3 && child === undefined; attempt++) {
      port = await freePort();
      await fsp.writeFile(configFile, configYaml(options, port));
      const started = startChild(process.execPath, [pgmuxEntry(options.dir), '--config', configFile], {
        cwd: options.runDir,
        env: cleanEnv(options.runDir),
        output: logFd,
      });
      const deadline = Date.now() + READY_TIMEOUT_MS;
      while (Date.now() < deadline && started.exitStatus() === undefined) {
        if (await canConnect(port)) {
          child = started;
          break;
        }
        await sleep(100);
      }
      if (child === undefined) {
        await started.stop('SIGKILL', 1_000);
        const text = await tail(logFile);
        if (!/EADDRINUSE/.test(text)) throw new Error(`pgmux did not start (log ${logFile}):\n${text}`);
      }
    }
  } finally {
    fs.closeSync(logFd);
  }
  if (child === undefined) throw new Error(`pgmux could not get a free port (log ${logFile})`);
  const running = child;
  let stopping: Promise<ExitStatus> | undefined;
  return {
    port,
    logFile,
    configFile,
    exitStatus: () => running.exitStatus(),
    stop() {
      stopping ??= running.stop('SIGINT', 10_000);
      return stopping;
    },
  };
}

export interface PgmuxLogScan {
  /** Lines logged at error level or above. */
  readonly errors: number;
  /** The first few of them, as "level msg: err". */
  readonly samples: string[];
  /** The last lines that are not JSON (an uncaught exception's stack, for one). */
  readonly rawTail: string[];
}

/** pgmux logs JSON lines (pino: level 50 = error, 60 = fatal). */
export async function scanPgmuxLog(file: string, maxSamples = 5): Promise<PgmuxLogScan> {
  let text = '';
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch {
    // no log
  }
  let errors = 0;
  const samples: string[] = [];
  const raw: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let entry: unknown;
    try {
      entry = JSON.parse(line);
    } catch {
      raw.push(line);
      continue;
    }
    if (typeof entry !== 'object' || entry === null) continue;
    const fields = entry as Record<string, unknown>;
    const level = typeof fields.level === 'number' ? fields.level : 0;
    if (level < 50) continue;
    errors++;
    if (samples.length < maxSamples) {
      const err = fields.err === undefined ? '' : `: ${typeof fields.err === 'string' ? fields.err : JSON.stringify(fields.err)}`;
      samples.push(`${level >= 60 ? 'fatal' : 'error'} ${String(fields.msg ?? '')}${err}`.slice(0, 300));
    }
  }
  return { errors, samples, rawTail: raw.slice(-15) };
}
