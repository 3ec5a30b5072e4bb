/**
 * Starts pgmux in the test process, configured through the real loader (a YAML file written
 * for the test), in front of the shared test cluster.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/logger.js';
import { Pgmux } from '../../src/pgmux.js';
import { pgInfo } from './context.js';

export interface TestPgmuxOptions {
  /** Global settings (PgBouncer names), as they would be written in YAML. */
  settings?: Record<string, unknown>;
  /** databases: entries; host/port default to the test cluster. */
  databases: Record<string, Record<string, unknown>>;
  users?: Record<string, Record<string, unknown>>;
  /** Serve /metrics, /healthz, /readyz and the status page on a free port (`TestPgmux.metricsUrl`). */
  metrics?: boolean;
  /** Where the log goes (default a file under .tmp/logs), at the configured log_level. */
  logDestination?: pino.DestinationStream;
}

export interface TestPgmux {
  pgmux: Pgmux;
  port: number;
  /** Absolute path of the YAML configuration file pgmux was started from. */
  configFile: string;
  /** `http://127.0.0.1:<port>` of the metrics endpoint, when started with `metrics: true`. */
  metricsUrl: string;
  /** Connection URL through pgmux. */
  url(database: string, user: string, password?: string): string;
  stop(timeoutMs?: number): Promise<void>;
  /** Writes the configuration file anew (as startPgmux did), for a RELOAD to pick up. */
  rewriteConfig(options: TestPgmuxOptions): void;
}

/**
 * Settings of a transaction-mode pool of `poolSize` server connections that clients log in to with trust and
 * that logs no connection lines: what the fidelity tests run against. `extra` overrides or adds settings.
 */
export function transactionPool(poolSize: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    pool_mode: 'transaction',
    default_pool_size: poolSize,
    auth_type: 'trust',
    max_client_conn: 100,
    query_wait_timeout: '20s',
    log_connections: false,
    log_disconnections: false,
    ...extra,
  };
}

/** The YAML startPgmux writes for these options. */
export function renderConfig(options: TestPgmuxOptions): string {
  const info = pgInfo();
  const databases: Record<string, Record<string, unknown>> = {};
  for (const [name, entry] of Object.entries(options.databases)) databases[name] = { host: info.host, port: info.port, ...entry };
  // metrics_port defaults to off here: its real default (9127) would collide between the instances that test
  // files start in parallel, and 0 cannot ask for a free port because in the config 0 means off. Tests that want
  // the endpoint pass `metrics: true`, which gives pgmux a free port through PgmuxOptions.metricsPort.
  const document = { listen_port: 0, metrics_port: 0, log_level: 'info', ...options.settings, databases, users: options.users ?? {} };
  return stringify(document);
}

export async function startPgmux(options: TestPgmuxOptions): Promise<TestPgmux> {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgmux-test-'));
  const file = path.join(dir, 'pgmux.yaml');
  writeFileSync(file, renderConfig(options));
  // RELOAD reads the same file again, as main.ts does with the process's own arguments.
  const load = () => loadConfig({ argv: ['--config', file], env: {}, cwd: dir }).config;
  const config = load();

  mkdirSync('.tmp/logs', { recursive: true });
  const log = createLogger(
    config.log_level,
    options.logDestination ?? pino.destination({ dest: `.tmp/logs/pgmux-${process.pid}.log`, sync: false, mkdir: true }),
  );
  const pgmux = new Pgmux(config, log, { reloadConfig: load, ...(options.metrics === true ? { metricsPort: 0 } : {}) });
  const address = await pgmux.start();
  return {
    pgmux,
    port: address.port,
    configFile: file,
    metricsUrl: `http://127.0.0.1:${pgmux.metricsPort}`,
    url: (database, user, password) =>
      `postgres://${encodeURIComponent(user)}${password === undefined ? '' : `:${encodeURIComponent(password)}`}@127.0.0.1:${address.port}/${encodeURIComponent(database)}`,
    stop: (timeoutMs = 1000) => pgmux.stop(timeoutMs),
    rewriteConfig: (next) => writeFileSync(file, renderConfig(next)),
  };
}
