/**
 * What every target offers the runner, and what the poolers share: their common settings, how they are given
 * Postgres and credentials, and waiting for a freshly started process to listen.
 */
import fsp from 'node:fs/promises';
import net from 'node:net';
import type { PostgresInstance } from '../test/harness/postgres.js';
import type { ChildProcess } from 'node:child_process';
import { processCpuUs, sleep, stopChild } from './proc.js';
import type { TargetName } from './target-names.js';

/** Settings the poolers share (PgBouncer names; pgmux uses the same ones). */
export const POOL_SETTINGS = {
  pool_mode: 'transaction',
  default_pool_size: 20,
  max_client_conn: 11_000,
  auth_type: 'scram-sha-256',
} as const;

/**
 * Direct runs and the floor go up to 400 server connections; the three poolers hold 20 each, the floor keeps
 * FLOOR_SPARE logged-in spares, and the tools need a few more: 400 + 60 + 8 + a few < 500 - 3 reserved.
 */
export const PG_MAX_CONNECTIONS = 500;

/** Logged-in server connections the floor (floor.ts) keeps ready beyond those its clients hold. */
export const FLOOR_SPARE = 8;

export interface Target {
  readonly name: TargetName;
  readonly port: number;
  readonly version: string;
  /** The process whose CPU is this target's cost: the pooler, or the postmaster for direct Postgres. */
  pid(): number;
  /** CPU time so far, µs: the pooler process, or for direct Postgres the postmaster and all its backends. */
  cpuUs(): number;
  /** Restarts the process on the same port (fresh memory); direct Postgres is not restarted. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Where a pooler should listen and what it should put in front of. */
export interface PoolerSetup {
  pg: PostgresInstance;
  database: string;
  user: string;
  /** The user's password (for a pooler's first login, see pgbouncer.ts). */
  password: string;
  /** PgBouncer-format auth_file holding the role's SCRAM verifier, readable by the OS user below. */
  authFile: string;
  /** Directory for configs and logs, owned by `osUser`. */
  workDir: string;
  osUser: { uid: number; gid: number };
  log: (line: string) => void;
}

/** Resolves once something accepts TCP connections on `port`; rejects when `alive()` turns false or on timeout. */
export async function waitForPort(port: number, alive: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`${what} exited during startup`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`${what} did not listen on port ${port} within ${timeoutMs} ms`);
}

export async function tail(file: string, lines = 20): Promise<string> {
  try {
    return (await fsp.readFile(file, 'utf8')).trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}


/**
 * A pooler run as a child process. `spawn` starts it and says how to explain a failed start (its stderr, its
 * log's tail); it is ready once its port accepts connections and `afterListen` (when given) has resolved.
 * restart() starts it afresh on the same port.
 */
export async function poolerProcess(
  name: TargetName,
  label: string,
  port: number,
  version: string,
  setup: PoolerSetup,
  spawn: () => { proc: ChildProcess; diagnostics: () => Promise<string> },
  afterListen?: () => Promise<void>,
): Promise<Target> {
  let child: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    const { proc, diagnostics } = spawn();
    child = proc;
    try {
      await waitForPort(port, () => proc.exitCode === null && proc.signalCode === null, name);
      await afterListen?.();
    } catch (err) {
      await stopChild(proc);
      throw new Error(`${(err as Error).message}: ${await diagnostics()}`.trim());
    }
  };
  await launch();
  const pid = (): number => child?.pid ?? Number.NaN;
  setup.log(`${label} ${version} listening on 127.0.0.1:${port} (pid ${pid()})`);
  return {
    name,
    port,
    version,
    pid,
    cpuUs: () => processCpuUs(pid()),
    async restart() {
      if (child !== undefined) await stopChild(child);
      await launch();
    },
    async stop() {
      if (child !== undefined) await stopChild(child);
    },
  };
}
