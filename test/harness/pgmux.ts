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
}

export interface TestPgmux {
  pgmux: Pgmux;
  port: number;
  /** Absolute path of the YAML configuration file pgmux was started from. */
  configFile: string;
  /** Connection URL through pgmux. */
  url(database: string, user: string, password?: string): string;
  stop(timeoutMs?: number): Promise<void>;
}

export async function startPgmux(options: TestPgmuxOptions): Promise<TestPgmux> {
  const info = pgInfo();
  const databases: Record<string, Record<string, unknown>> = {};
  for (const [name, entry] of Object.entries(options.databases)) databases[name] = { host: info.host, port: info.port, ...entry };
  const document = { listen_port: 0, log_level: 'info', ...options.settings, databases, users: options.users ?? {} };
  const dir = mkdtempSync(path.join(tmpdir(), 'pgmux-test-'));
  const file = path.join(dir, 'pgmux.yaml');
  writeFileSync(file, stringify(document));
  const { config } = loadConfig({ argv: ['--config', file], env: {}, cwd: dir });

  mkdirSync('.tmp/logs', { recursive: true });
  const log = createLogger(config.log_level, pino.destination({ dest: `.tmp/logs/pgmux-${process.pid}.log`, sync: false, mkdir: true }));
  const pgmux = new Pgmux(config, log);
  const address = await pgmux.start();
  return {
    pgmux,
    port: address.port,
    configFile: file,
    url: (database, user, password) =>
      `postgres://${encodeURIComponent(user)}${password === undefined ? '' : `:${encodeURIComponent(password)}`}@127.0.0.1:${address.port}/${encodeURIComponent(database)}`,
    stop: (timeoutMs = 1000) => pgmux.stop(timeoutMs),
  };
}
