/**
 * pgmux under soak: its own process (test/harness/pgmux-process.ts) started from a YAML file, in transaction
 * mode with small pools in front of the soak cluster; reloaded with SIGHUP after the file is rewritten; driven
 * through the admin console (database `pgbouncer` on the same port); its RSS read from /proc.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { startPgmuxProcess } from '../harness/pgmux-process.js';
import { freePort } from '../harness/postgres.js';
import { waitForOutput, type ChildProc } from '../harness/process.js';
import { APP_DATABASE, APP_ROLE } from '../harness/roles.js';
import { sleep } from '../harness/wait.js';
import { connectQuietly } from '../harness/pg-connect.js';

export const ADMIN_USER = { name: 'soak_admin', password: 'soak-admin-pass' };

/** The two pgmux databases the load uses; both are the cluster's `app` database, as user `app`. */
export const POOL_DATABASES = ['app', 'app_b'] as const;
export type PoolDatabase = (typeof POOL_DATABASES)[number];

export interface PoolSizes {
  /** default_pool_size: the size of `app`'s pool. */
  defaultPoolSize: number;
  /** pool_size of `app_b`. */
  appBPoolSize: number;
  minPoolSize: number;
}

export type Row = Record<string, unknown>;

/** Server connections of a SHOW POOLS row, whatever their state. */
export function serverTotal(pool: Row): number {
  return ['sv_active', 'sv_idle', 'sv_used', 'sv_tested', 'sv_login'].reduce((n, k) => n + Number(pool[k]), 0);
}

/** The YAML pgmux runs with. */
function configDocument(port: number, upstreamPort: number, sizes: PoolSizes, queryWaitMs: number): string {
  const upstream = { host: '127.0.0.1', port: upstreamPort, dbname: APP_DATABASE };
  return stringify({
    listen_addr: '127.0.0.1',
    listen_port: port,
    metrics_port: 0,
    pool_mode: 'transaction',
    default_pool_size: sizes.defaultPoolSize,
    min_pool_size: sizes.minPoolSize,
    max_client_conn: 400,
    // Waiting this long for a server is as good as stuck here: the run treats a 57014 as a failure.
    query_wait_timeout: `${queryWaitMs}ms`,
    // After the upstream restart, log in again soon.
    server_login_retry: '500ms',
    server_connect_timeout: '5s',
    log_level: 'info',
    log_connections: false,
    log_disconnections: false,
    admin_users: [ADMIN_USER.name],
    databases: {
      app: upstream,
      app_b: { ...upstream, pool_size: sizes.appBPoolSize },
    },
    users: { [APP_ROLE.name]: { password: APP_ROLE.password }, [ADMIN_USER.name]: { password: ADMIN_USER.password } },
  });
}

export class PgmuxTarget {
  private sizes: PoolSizes;
  private logOffset = 0;
  /** Log lines that say pgmux hit a bug (internal error, desynchronisation), and other error lines by message. */
  readonly internalErrors: string[] = [];
  readonly errorLines = new Map<string, number>();
  reloadsApplied = 0;
  maxPoolCapacity = 0;

  private constructor(
    readonly proc: ChildProc,
    readonly port: number,
    readonly configFile: string,
    private readonly upstreamPort: number,
    sizes: PoolSizes,
    private readonly queryWaitMs: number,
  ) {
    this.sizes = sizes;
    this.maxPoolCapacity = sizes.defaultPoolSize + sizes.appBPoolSize;
  }

  /** `queryWaitMs`: query_wait_timeout (below the run's bound on client operations). */
  static async start(upstreamPort: number, sizes: PoolSizes, queryWaitMs: number): Promise<PgmuxTarget> {
    const dir = mkdtempSync(path.join(tmpdir(), 'pgmux-soak-'));
    const file = path.join(dir, 'pgmux.yaml');
    const port = await freePort();
    writeFileSync(file, configDocument(port, upstreamPort, sizes, queryWaitMs));
    const target = new PgmuxTarget(startPgmuxProcess({ args: ['--config', file], cwd: dir }), port, file, upstreamPort, sizes, queryWaitMs);
    // Never outlive the runner, however it ends (an exception, process.exit from a signal handler).
    const child = target.proc.child;
    const onExit = (): void => void child.kill('SIGKILL');
    process.on('exit', onExit);
    child.once('exit', () => process.off('exit', onExit));
    await waitForOutput(target.proc, 'pgmux listening', 60_000);
    return target;
  }

  get pid(): number {
    const pid = this.proc.child.pid;
    if (pid === undefined) throw new Error('pgmux has no pid');
    return pid;
  }

  get poolSizes(): PoolSizes {
    return this.sizes;
  }

  private writeConfig(sizes: PoolSizes): void {
    writeFileSync(this.configFile, configDocument(this.port, this.upstreamPort, sizes, this.queryWaitMs));
  }

  /** Rewrites the file with new pool sizes, sends SIGHUP and waits until pgmux logs that it applied it. */
  async reload(sizes: PoolSizes): Promise<void> {
    const before = this.countOutput('configuration applied');
    this.writeConfig(sizes);
    this.sizes = sizes;
    this.maxPoolCapacity = Math.max(this.maxPoolCapacity, sizes.defaultPoolSize + sizes.appBPoolSize);
    this.proc.child.kill('SIGHUP');
    const deadline = Date.now() + 10_000;
    while (this.countOutput('configuration applied') <= before) {
      if (this.countOutput('configuration rejected') > 0) throw new Error(`pgmux rejected the soak configuration:\n${readFileSync(this.configFile, 'utf8')}`);
      if (!this.proc.running()) throw new Error('pgmux exited');
      if (Date.now() > deadline) throw new Error('pgmux did not apply the configuration within 10 s of SIGHUP');
      await sleep(20);
    }
    this.reloadsApplied++;
  }

  private countOutput(text: string): number {
    return this.proc.output().split(text).length - 1;
  }

  /** A connection to the admin console. */
  admin(): Promise<pg.Client> {
    return connectQuietly({ host: '127.0.0.1', port: this.port, user: ADMIN_USER.name, password: ADMIN_USER.password, database: 'pgbouncer', connectionTimeoutMillis: 10_000 });
  }

  /** One admin command on a fresh console connection; the rows it returned. */
  async adminCommand(sql: string): Promise<Row[]> {
    const admin = await this.admin();
    try {
      return (await admin.query(sql)).rows as Row[];
    } finally {
      await admin.end().catch(() => undefined);
    }
  }

  /** VmRSS of the pgmux process in kB, or undefined once it has exited. */
  rssKb(): number | undefined {
    try {
      const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
      const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
      return m === null ? undefined : Number(m[1]);
    } catch {
      return undefined;
    }
  }

  /** Reads the log lines written since the last call and files the ones at level error or above. */
  scanLog(): void {
    const out = this.proc.stdout();
    const fresh = out.slice(this.logOffset);
    const lastNewline = fresh.lastIndexOf('\n');
    if (lastNewline < 0) return;
    this.logOffset += lastNewline + 1;
    for (const line of fresh.slice(0, lastNewline).split('\n')) {
      if (line.trim() === '') continue;
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        this.internalErrors.push(`not a JSON log line: ${line.slice(0, 300)}`);
        continue;
      }
      const level = String(entry.level);
      if (level !== 'error' && level !== 'fatal') continue;
      const msg = String(entry.msg);
      this.errorLines.set(msg, (this.errorLines.get(msg) ?? 0) + 1);
      // A bug by pgmux's own account: an exception caught at a connection's error boundary, a server answer that
      // matches no request sent, a failed admin command, a rejected configuration, or anything fatal.
      if (level === 'fatal' || /internal error|does not match the requests|admin command failed|configuration rejected/.test(msg)) {
        if (this.internalErrors.length < 50) this.internalErrors.push(line.slice(0, 2000));
      }
    }
  }

  /** pgmux's stderr (uncaught exceptions land here). */
  stderr(): string {
    return this.proc.stderr();
  }

  /** Stops pgmux if it still runs (SIGINT, SIGKILL after 15 s) and removes its directory. */
  async stop(): Promise<void> {
    if (this.proc.running()) {
      const timer = setTimeout(() => this.proc.child.kill('SIGKILL'), 15_000);
      await this.proc.stop('SIGINT');
      clearTimeout(timer);
    }
    rmSync(path.dirname(this.configFile), { recursive: true, force: true });
  }
}
