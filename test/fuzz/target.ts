/**
 * Where the fuzzer runs: a PostgreSQL cluster (the shared test cluster under vitest, a cluster of its own from the
 * command line), a database in it, and a way to start a fresh pgmux (in this process) in front of it for each
 * conversation. Nothing here uses vitest, so the command-line runner can use it as is.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/logger.js';
import { Pgmux } from '../../src/pgmux.js';
import { FUZZ_PASSWORD, FUZZ_SUPERUSER } from './model.js';
import { connectAdmin, createRoles, type PgAddress } from './setup.js';

export interface RunningPgmux {
  port: number;
  stop(): Promise<void>;
}

export interface FuzzTarget {
  /** The cluster, as its superuser. */
  pg: PgAddress;
  /** The database the conversations run in; pgmux serves it under the same name. */
  database: string;
  /** pgmux's settings besides the pool size (PgBouncer names, as in YAML). */
  settings: Record<string, unknown>;
  /** The cluster's log, if readable: a backend crash (PostgreSQL's own bug) is told apart from a mismatch. */
  serverLog?: string;
}

/** Settings for the fuzzer's pgmux: transaction mode, trust for clients, quiet logs, waits that end. */
export const PGMUX_SETTINGS: Record<string, unknown> = {
  pool_mode: 'transaction',
  auth_type: 'trust',
  max_client_conn: 200,
  // A client that waits this long for a server gets an error (a mismatch), not a hang: the pool cannot be
  // held forever by a pinned client, since no script waits for another.
  query_wait_timeout: '5s',
  log_connections: false,
  log_disconnections: false,
  log_level: 'warn',
};

let logDestination: pino.DestinationStream | undefined;

/** Starts pgmux in this process in front of `target` with `pool_size` server connections. */
export async function startPgmuxFor(target: FuzzTarget, poolSize: number): Promise<RunningPgmux> {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgmux-fuzz-'));
  const file = path.join(dir, 'pgmux.yaml');
  const document = {
    listen_addr: '127.0.0.1',
    listen_port: 0,
    metrics_port: 0,
    ...target.settings,
    default_pool_size: poolSize,
    databases: { [target.database]: { host: target.pg.host, port: target.pg.port, dbname: target.database } },
    users: { [FUZZ_SUPERUSER]: { password: FUZZ_PASSWORD } },
  };
  writeFileSync(file, stringify(document));
  const config = loadConfig({ argv: ['--config', file], env: {}, cwd: dir }).config;
  if (logDestination === undefined) {
    mkdirSync('.tmp/logs', { recursive: true });
    logDestination = pino.destination({ dest: `.tmp/logs/pgmux-fuzz-${process.pid}.log`, sync: false, mkdir: true });
  }
  const pgmux = new Pgmux(config, createLogger(config.log_level, logDestination));
  const address = await pgmux.start();
  return {
    port: address.port,
    stop: async () => {
      // Every client has already left (the runner waits for each connection to close): nothing to drain.
      await pgmux.stop(0);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Creates the fuzzer's roles and privileges in the target's database (once per target). */
export async function prepareTarget(target: FuzzTarget): Promise<void> {
  const admin = await connectAdmin(target.pg, target.database);
  try {
    await createRoles(admin, target.database);
  } finally {
    await admin.end();
  }
}
