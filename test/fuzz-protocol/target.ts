/**
 * What the protocol fuzzer runs against: pgmux as its own process (so a crash is an exited process, not a dead
 * fuzzer), in front of a real PostgreSQL, with a transaction-mode and a session-mode pool of one database, SCRAM
 * and md5 users, the admin console and TLS; bystander clients running checked transactions through both pools all
 * along; and the checks made between batches (process alive, bystanders' results, no backend left idle in
 * transaction, pools drained, RSS).
 */
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { startPgmuxProcess } from '../harness/pgmux-process.js';
import { freePort } from '../harness/postgres.js';
import { canConnect, waitListening, type ChildProc } from '../harness/process.js';
import { MD5_ROLE, SCRAM_ROLE, TRUST_ROLE } from '../harness/roles.js';
import { FUZZ_TABLE } from './render.js';

export interface PgAddress {
  host: string;
  port: number;
  superuser: string;
  password: string;
}

export interface TargetOptions {
  pg: PgAddress;
  /** The database both pools serve; made by prepareDatabase. */
  database: string;
  /** Certificate and key pgmux offers clients (TLS conversations are skipped without them). */
  tls?: { certFile: string; keyFile: string };
  /** Server connections of the transaction-mode pool (the session-mode pool gets this plus the concurrency). */
  poolSize?: number;
  /** How many fuzz conversations run at once (sizes the session-mode pool: each holds a server). */
  concurrency: number;
  logLevel?: 'error' | 'warn' | 'info';
}

/** Users of the fuzzer's pgmux (every one exists on the cluster: test/harness/roles.ts). */
export const USERS = {
  trust: TRUST_ROLE.name,
  scram: SCRAM_ROLE.name,
  scramPassword: SCRAM_ROLE.password as string,
  md5: MD5_ROLE.name,
  md5Password: MD5_ROLE.password as string,
  /** Admin console only (they never log in to a server). */
  admin: 'fz_admin',
  stats: 'fz_stats',
} as const;

/** Tables the fuzzer's database holds: `t` (read by the bystanders, never written), `fz` (written by cases, never read). */
export async function prepareDatabase(admin: pg.Client): Promise<void> {
  await admin.query(`CREATE TABLE IF NOT EXISTS t (a int); CREATE TABLE IF NOT EXISTS ${FUZZ_TABLE} (a int)`);
  await admin.query(`GRANT SELECT ON t TO PUBLIC; GRANT SELECT, INSERT ON ${FUZZ_TABLE} TO PUBLIC`);
}

export class FuzzTarget {
  port = 0;
  proc: ChildProc | null = null;
  /** Output of pgmux processes that exited while fuzzing (each one a crash). */
  readonly crashes: string[] = [];
  readonly configFile: string;
  readonly sessionDb: string;

  constructor(readonly options: TargetOptions) {
    this.configFile = path.join(mkdtempSync(path.join(tmpdir(), 'pgmux-protofuzz-')), 'pgmux.yaml');
    this.sessionDb = `${options.database}_s`;
  }

  get database(): string {
    return this.options.database;
  }

  get tlsEnabled(): boolean {
    return this.options.tls !== undefined;
  }

  get pid(): number {
    return this.proc?.child.pid ?? 0;
  }

  /** Names the admin console must never be told to act on. */
  get databases(): string[] {
    return [this.database, this.sessionDb];
  }

  async start(): Promise<void> {
    this.port = await freePort();
    const o = this.options;
    const db = (mode: 'transaction' | 'session', size: number) => ({ host: o.pg.host, port: o.pg.port, dbname: o.database, pool_mode: mode, pool_size: size });
    const poolSize = o.poolSize ?? 4;
    writeFileSync(
      this.configFile,
      stringify({
        listen_addr: '127.0.0.1',
        listen_port: this.port,
        metrics_port: 0,
        auth_type: 'trust',
        max_client_conn: 1000,
        query_wait_timeout: '15s',
        log_level: o.logLevel ?? 'error',
        log_connections: false,
        log_disconnections: false,
        admin_users: [USERS.admin],
        stats_users: [USERS.stats],
        ...(o.tls === undefined ? {} : { client_tls_sslmode: 'prefer', client_tls_cert_file: o.tls.certFile, client_tls_key_file: o.tls.keyFile }),
        users: {
          [USERS.scram]: { password: USERS.scramPassword, auth_type: 'scram-sha-256' },
          [USERS.md5]: { password: USERS.md5Password, auth_type: 'md5' },
        },
        databases: { [o.database]: db('transaction', poolSize), [this.sessionDb]: db('session', poolSize + o.concurrency + 2) },
      }),
    );
    this.proc = startPgmuxProcess({ args: ['--config', this.configFile] });
    await waitListening(this.proc, this.port);
  }

  /** The process is running and accepts connections. */
  async alive(): Promise<boolean> {
    return this.proc !== null && this.proc.running() && (await canConnect(this.port));
  }

  /** After a crash: keeps its output, starts a fresh process on a new port. */
  async restart(): Promise<void> {
    if (this.proc !== null) {
      this.crashes.push(this.proc.output().slice(-6000));
      await this.proc.stop('SIGKILL');
    }
    await this.start();
  }

  /** Resident set size of the pgmux process in kB (VmRSS), or 0 if it is gone. */
  rssKb(): number {
    try {
      const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
      const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
      return m === null ? 0 : Number(m[1]);
    } catch {
      return 0;
    }
  }

  /** Lines pgmux logged at error level (an internal error is a bug: it closes a client with XX000). */
  errorLines(): string[] {
    const out = this.proc?.output() ?? '';
    return out.split('\n').filter((line) => line.trim() !== '');
  }

  async stop(): Promise<void> {
    if (this.proc !== null && this.proc.running()) await this.proc.stop('SIGINT');
  }
}

/**
 * A client of one pool running transactions through it all along and checking every answer. pause() waits until
 * it is between transactions (so the checks see no backend of its own idle in transaction).
 */
export class Bystander {
  readonly problems: string[] = [];
  transactions = 0;
  private running = true;
  private paused = false;
  private idleWaiters: Array<() => void> = [];
  private loop: Promise<void> = Promise.resolve();
  private between = true;

  constructor(
    private readonly target: FuzzTarget,
    readonly database: string,
  ) {}

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      const c = new pg.Client({ host: '127.0.0.1', port: this.target.port, user: USERS.trust, database: this.database, connectionTimeoutMillis: 15_000 });
      c.on('error', () => undefined);
      try {
        await c.connect();
        for (let k = 0; this.running; k++) {
          if (this.paused) {
            this.between = true;
            for (const w of this.idleWaiters.splice(0)) w();
            await new Promise((r) => setTimeout(r, 5));
            continue;
          }
          this.between = false;
          const started = Date.now();
          await c.query('BEGIN');
          const r = await c.query<{ k: number; n: string; s: string }>(
            'select $1::int as k, (select count(*) from t where a = -1)::text as n, $2::text as s',
            [k, `bystander-${k}`],
          );
          await c.query('COMMIT');
          this.between = true;
          this.transactions++;
          const row = r.rows[0];
          if (r.rows.length !== 1 || row.k !== k || row.n !== '0' || row.s !== `bystander-${k}`) {
            this.problems.push(`${this.database} transaction ${k}: ${JSON.stringify(r.rows)}`);
          }
          const took = Date.now() - started;
          if (took > 10_000) this.problems.push(`${this.database} transaction ${k} took ${took} ms`);
        }
      } catch (err) {
        this.between = true;
        if (this.running) this.problems.push(`${this.database}: ${(err as { code?: string }).code ?? ''} ${(err as Error).message}`);
        // pgmux died (reported as a crash) or closed this client: go on with a new connection.
        await new Promise((r) => setTimeout(r, 200));
      } finally {
        await c.end().catch(() => undefined);
      }
    }
  }

  /** Resolves when the bystander is between transactions and holds until resume(). */
  pause(): Promise<void> {
    this.paused = true;
    if (this.between) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  resume(): void {
    this.paused = false;
  }

  async stop(): Promise<void> {
    this.running = false;
    this.paused = false;
    await this.loop;
  }
}

export interface PoolRow {
  database: string;
  user: string;
  cl_active: number;
  cl_waiting: number;
  sv_active: number;
  sv_idle: number;
  sv_login: number;
  sv_tested: number;
}

/** SHOW POOLS through the admin console. */
export async function showPools(target: FuzzTarget): Promise<PoolRow[]> {
  const c = new pg.Client({ host: '127.0.0.1', port: target.port, user: USERS.admin, database: 'pgbouncer', connectionTimeoutMillis: 10_000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    const r = await c.query<PoolRow>('SHOW POOLS');
    return r.rows;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Backends of the database idle in a transaction (the bystanders paused, no fuzz client connected). */
export async function idleInTransaction(admin: pg.Client, database: string): Promise<Array<{ pid: number; state: string; query: string }>> {
  const r = await admin.query<{ pid: number; state: string; query: string }>(
    "select pid, state, query from pg_stat_activity where datname = $1 and state like 'idle in transaction%' and pid <> pg_backend_pid()",
    [database],
  );
  return r.rows;
}
