/**
 * The real process: `node --import tsx src/main.ts` configured through its environment, as a
 * container would run it. Help and version, configuration errors, a pooler started from
 * DATABASE_URL alone, JSON logs, and the SIGTERM drain.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, createTestDatabase, pgInfo } from './harness/context.js';
import { logLines, REPO_ROOT, startPgmuxProcess } from './harness/pgmux-process.js';
import { freePort } from './harness/postgres.js';
import { canConnect, waitForOutput, waitListening, type ChildProc } from './harness/process.js';
import { APP_ROLE } from './harness/roles.js';
import { withTimeout } from './harness/wait.js';

const VERSION = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

const procs: ChildProc[] = [];

afterEach(() => {
  for (const p of procs.splice(0)) if (p.running()) p.child.kill('SIGKILL');
});

/** A fresh empty directory: no config/pgmux.yaml to pick up. */
function tempDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'pgmux-cli-'));
}

/** Starts pgmux with only the given environment (plus PATH/HOME, METRICS_PORT=0) and arguments. */
function startProcess(env: Record<string, string>, args: string[] = []): ChildProc {
  const proc = startPgmuxProcess({ env, args });
  procs.push(proc);
  return proc;
}

/** Runs to completion (for --help, --version and config errors). */
async function runToExit(env: Record<string, string>, args: string[] = []): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = startProcess(env, args);
  const { code } = await withTimeout(p.exited, 30_000, `pgmux ${args.join(' ')} to exit`);
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

function databaseUrl(db: string): string {
  const info = pgInfo();
  return `postgres://${APP_ROLE.name}:${encodeURIComponent(APP_ROLE.password as string)}@127.0.0.1:${info.port}/${db}`;
}

describe('command line', () => {
  it('--help prints usage and exits 0', async () => {
    const r = await runToExit({}, ['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: pgmux/);
    expect(r.stdout).toContain('--config');
    expect(r.stderr).toBe('');
  });

  it('--version prints the version and exits 0', async () => {
    const r = await runToExit({}, ['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(`pgmux ${VERSION}`);
  });

  it('an unknown flag exits non-zero and names the flag', async () => {
    const r = await runToExit({}, ['--listen-prot', '7000']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('--listen-prot');
  });
});

describe('configuration errors', () => {
  it('LISTEN_PORT=abc exits non-zero with stderr naming LISTEN_PORT', async () => {
    const r = await runToExit({ LISTEN_PORT: 'abc' });
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stderr).toContain('LISTEN_PORT');
    expect(r.stderr).toContain('abc');
    expect(r.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
  });

  it('a YAML file with an unknown key exits non-zero with stderr naming the key', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'pgmux.yaml');
    writeFileSync(file, 'listen_port: 6000\ndefault_pool_sise: 5\n');
    for (const [env, args] of [
      [{ PGMUX_CONFIG: file }, []],
      [{}, ['--config', file]],
    ] as const) {
      const r = await runToExit({ ...env }, [...args]);
      expect(r.code).not.toBe(0);
      expect(r.code).not.toBeNull();
      expect(r.stderr).toContain('default_pool_sise');
      expect(r.stderr).toContain('default_pool_size'); // the suggestion
    }
  });

  it('a file with several problems reports them all in one run', async () => {
    const file = path.join(tempDir(), 'pgmux.yaml');
    writeFileSync(file, 'listen_port: abc\ndefault_pool_sise: 5\ndatabases:\n  app:\n    port: 99999\n');
    const r = await runToExit({ PGMUX_CONFIG: file });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^pgmux: invalid configuration: 3 problems:\n {2}listen_port: .*\n {2}default_pool_sise: .*did you mean "default_pool_size"\?\n {2}databases\.app\.port: /);
  });

  it('a DATABASE_URL without a password names the password that is missing', async () => {
    const r = await runToExit({ DATABASE_URL: 'postgres://app@127.0.0.1:5432/app' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('DATABASE_URL: a password for user "app" is required with auth_type scram-sha-256');
  });

  it('a misspelt variable is warned about with the right name; pgmux still starts', async () => {
    const port = await freePort();
    const p = startProcess({ DATABASE_URL: databaseUrl('app'), LISTEN_PORT: String(port), DEFAULT_POOLSIZE: '5' });
    await waitListening(p, port);
    await waitForOutput(p, 'did you mean DEFAULT_POOL_SIZE?');
    const warning = logLines(p.stdout()).find((l) => typeof l.msg === 'string' && l.msg.includes('DEFAULT_POOLSIZE'));
    expect(warning).toMatchObject({ level: 'warn', msg: 'environment: not a pgmux variable, ignored: DEFAULT_POOLSIZE (did you mean DEFAULT_POOL_SIZE?)' });
  });

  it('a bad nested key names its full path', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'pgmux.yaml');
    writeFileSync(file, 'databases:\n  app:\n    host: 127.0.0.1\n    port: 99999\n');
    const r = await runToExit({ PGMUX_CONFIG: file });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('databases.app.port');
  });
});

describe('a pooler from DATABASE_URL alone', () => {
  it('accepts the URL credentials, serves queries and logs JSON lines', async () => {
    const port = await freePort();
    const p = startProcess({ DATABASE_URL: databaseUrl('app'), LISTEN_PORT: String(port) });
    await waitListening(p, port);

    const client = new pg.Client({ host: '127.0.0.1', port, user: APP_ROLE.name, password: APP_ROLE.password, database: 'app' });
    await client.connect();
    const r = await client.query<{ u: string; d: string; n: number }>('select current_user as u, current_database() as d, $1::int + 1 as n', [41]);
    expect(r.rows).toEqual([{ u: 'app', d: 'app', n: 42 }]);
    await client.end();

    const bad = new pg.Client({ host: '127.0.0.1', port, user: APP_ROLE.name, password: 'wrong', database: 'app' });
    await expect(bad.connect()).rejects.toMatchObject({ code: '28P01' });
    await bad.end().catch(() => undefined);

    p.child.kill('SIGTERM');
    const { code } = await withTimeout(p.exited, 15_000, 'pgmux to exit after SIGTERM');
    expect(code).toBe(0);

    const lines = logLines(p.stdout()); // throws if any stdout line is not JSON
    const listening = lines.find((l) => typeof l.msg === 'string' && /listening/.test(l.msg));
    expect(listening, p.stdout()).toBeDefined();
    expect(listening).toMatchObject({ level: 'info', port });
    expect(typeof listening?.time).toBe('string');
    expect(p.stdout()).not.toContain(APP_ROLE.password as string);
    expect(p.stderr()).toBe('');
  }, 60_000);

  it('exits 0 promptly on SIGTERM with no clients', async () => {
    const port = await freePort();
    const p = startProcess({ DATABASE_URL: databaseUrl('app'), LISTEN_PORT: String(port), SHUTDOWN_TIMEOUT: '10s' });
    await waitListening(p, port);
    const sent = Date.now();
    p.child.kill('SIGTERM');
    const { code, at } = await withTimeout(p.exited, 15_000, 'pgmux to exit after SIGTERM');
    expect(code).toBe(0);
    expect(at - sent).toBeLessThan(3000);
  }, 60_000);
});

describe('SIGTERM drain', () => {
  let db: string;

  beforeAll(async () => {
    db = await createTestDatabase('cli_drain');
    const admin = await adminClient(db);
    await admin.query('CREATE TABLE drained (id int PRIMARY KEY, note text)');
    await admin.query('GRANT ALL ON drained TO app');
    await admin.end();
  });

  it('disconnects idle clients with 57P01, lets an open transaction commit, then exits 0', async () => {
    const port = await freePort();
    const p = startProcess({ DATABASE_URL: databaseUrl(db), LISTEN_PORT: String(port), SHUTDOWN_TIMEOUT: '10s' });
    await waitListening(p, port);
    const connect = async (): Promise<pg.Client> => {
      const c = new pg.Client({ host: '127.0.0.1', port, user: APP_ROLE.name, password: APP_ROLE.password, database: db });
      await c.connect();
      return c;
    };

    const inTx = await connect();
    const idle = await connect();
    const inTxErrors: Error[] = [];
    inTx.on('error', (e) => inTxErrors.push(e));
    const idleError = new Promise<Error & { code?: string }>((resolve) => idle.on('error', resolve));
    await idle.query('select 1');
    await inTx.query('BEGIN');
    await inTx.query("INSERT INTO drained VALUES (1, 'written during shutdown')");

    const sent = Date.now();
    p.child.kill('SIGTERM');

    const err = await withTimeout(idleError, 5000, 'the idle client to be disconnected');
    expect(err.code).toBe('57P01');

    // New connections are refused while draining.
    await new Promise((r) => setTimeout(r, 200));
    expect(await canConnect(port)).toBe(false);

    // The transaction outlives the idle client by a while: pgmux waits for it.
    await new Promise((r) => setTimeout(r, 1500));
    expect(p.running()).toBe(true);
    const more = await inTx.query<{ n: number }>('select count(*)::int as n from drained');
    expect(more.rows[0].n).toBe(1);
    expect(inTxErrors).toEqual([]);
    await inTx.query('COMMIT');
    await inTx.end().catch(() => undefined); // pgmux may already have closed it (57P01) after the COMMIT
    const left = Date.now();

    const { code, at } = await withTimeout(p.exited, 8000, 'pgmux to exit after the last client left');
    expect(code).toBe(0);
    expect(at - left).toBeLessThan(3000);
    expect(at - sent).toBeLessThan(10_000);
    // Once its transaction ended the client could only have been told that pgmux is shutting down.
    for (const e of inTxErrors) expect((e as Error & { code?: string }).code).toBe('57P01');

    const admin = await adminClient(db);
    try {
      const r = await admin.query<{ note: string }>('SELECT note FROM drained WHERE id = 1');
      expect(r.rows).toEqual([{ note: 'written during shutdown' }]);
    } finally {
      await admin.end();
    }
    // The shutdown was logged, as JSON.
    const msgs = logLines(p.stdout()).map((l) => l.msg);
    expect(msgs).toContain('pgmux stopped');
  }, 60_000);

  it('SIGTERM under load: every transaction in flight completes, none is cut or half-written, new connections are refused, exit 0', async () => {
    const admin = await adminClient(db);
    await admin.query('CREATE TABLE load_drain (client int, seq int, part text)');
    await admin.query('GRANT ALL ON load_drain TO app');
    const port = await freePort();
    const p = startProcess({ DATABASE_URL: databaseUrl(db), LISTEN_PORT: String(port), SHUTDOWN_TIMEOUT: '10s', DEFAULT_POOL_SIZE: '4', LOG_CONNECTIONS: 'false', LOG_DISCONNECTIONS: 'false' });
    await waitListening(p, port);
    const CLIENTS = 20;
    const committed: Array<[number, number]> = [];
    const cut: string[] = [];
    const endings: string[] = [];
    let sigtermAt = 0;
    const worker = async (id: number): Promise<void> => {
      const c = new pg.Client({ host: '127.0.0.1', port, user: APP_ROLE.name, password: APP_ROLE.password, database: db });
      c.on('error', () => undefined); // the 57P01 at a boundary also arrives as an 'error' event
      await c.connect();
      for (let seq = 0; ; seq++) {
        let begun = false;
        let step = 'BEGIN';
        try {
          await c.query('BEGIN');
          begun = true;
          step = 'INSERT a';
          await c.query('INSERT INTO load_drain VALUES ($1, $2, $3)', [id, seq, 'a']);
          step = 'sleep';
          await c.query('SELECT pg_sleep(0.02)');
          step = 'INSERT b';
          await c.query('INSERT INTO load_drain VALUES ($1, $2, $3)', [id, seq, 'b']);
          step = 'COMMIT';
          await c.query('COMMIT');
          committed.push([id, seq]);
        } catch (err) {
          const e = err as Error & { code?: string };
          if (begun) cut.push(`client ${id} seq ${seq} at ${step}: ${e.code ?? ''} ${e.message}`);
          endings.push(e.code ?? e.message);
          break;
        }
      }
      await c.end().catch(() => undefined);
    };
    const workers = Array.from({ length: CLIENTS }, (_, i) => worker(i));
    // Let the load run until transactions are committing steadily.
    const started = Date.now();
    while (committed.length < 100 && Date.now() - started < 20_000) await new Promise((r) => setTimeout(r, 50));
    expect(committed.length).toBeGreaterThanOrEqual(100);
    sigtermAt = Date.now();
    p.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    expect(await canConnect(port)).toBe(false);
    await withTimeout(Promise.all(workers), 15_000, 'every load client to be told to leave');
    const { code, at } = await withTimeout(p.exited, 15_000, 'pgmux to exit');
    expect(code).toBe(0);
    expect(at - sigtermAt).toBeLessThan(10_000 + 3000);
    // No transaction that had begun was cut off: each client stopped at a transaction boundary.
    expect(cut).toEqual([]);
    expect(endings).toHaveLength(CLIENTS);
    // Every acknowledged COMMIT is there, and no transaction is half-written.
    const rows = (await admin.query<{ client: number; seq: number; n: number }>('SELECT client, seq, count(*)::int AS n FROM load_drain GROUP BY 1, 2')).rows;
    await admin.end();
    for (const r of rows) expect(r.n, `client ${r.client} seq ${r.seq}`).toBe(2);
    const stored = new Set(rows.map((r) => `${r.client}/${r.seq}`));
    for (const [id, seq] of committed) expect(stored.has(`${id}/${seq}`)).toBe(true);
    expect(rows.length).toBeGreaterThanOrEqual(committed.length);
  }, 90_000);

  it('SIGINT is the fast variant: an open transaction is cut at once and rolled back, exit 0', async () => {
    const port = await freePort();
    const p = startProcess({ DATABASE_URL: databaseUrl(db), LISTEN_PORT: String(port), SHUTDOWN_TIMEOUT: '30s' });
    await waitListening(p, port);
    const c = new pg.Client({ host: '127.0.0.1', port, user: APP_ROLE.name, password: APP_ROLE.password, database: db });
    await c.connect();
    const closed = new Promise<Error & { code?: string }>((resolve) => c.on('error', resolve));
    await c.query('BEGIN');
    await c.query("INSERT INTO drained VALUES (3, 'cut by SIGINT')");
    p.child.kill('SIGINT');
    // Well before the 30 s shutdown_timeout a SIGTERM would allow.
    const err = await withTimeout(closed, 10_000, 'the client to be closed after SIGINT');
    expect(err.code).toBe('57P01');
    const { code } = await withTimeout(p.exited, 10_000, 'pgmux to exit after SIGINT');
    expect(code).toBe(0);
    await c.end().catch(() => undefined);
    const admin = await adminClient(db);
    try {
      for (let i = 0; i < 50; i++) {
        const left = (await admin.query("SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND usename = 'app' AND state LIKE 'idle in transaction%'", [db])).rows;
        if (left.length === 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect((await admin.query('SELECT * FROM drained WHERE id = 3')).rows).toEqual([]);
    } finally {
      await admin.end();
    }
  }, 60_000);

  it('closes a transaction still open at SHUTDOWN_TIMEOUT, and it is rolled back', async () => {
    const port = await freePort();
    const p = startProcess({ DATABASE_URL: databaseUrl(db), LISTEN_PORT: String(port), SHUTDOWN_TIMEOUT: '1s' });
    await waitListening(p, port);
    const c = new pg.Client({ host: '127.0.0.1', port, user: APP_ROLE.name, password: APP_ROLE.password, database: db });
    await c.connect();
    const closed = new Promise<Error & { code?: string }>((resolve) => c.on('error', resolve));
    await c.query('BEGIN');
    await c.query("INSERT INTO drained VALUES (2, 'never committed')");
    const sent = Date.now();
    p.child.kill('SIGTERM');
    const err = await withTimeout(closed, 8000, 'the client to be closed at the shutdown timeout');
    expect(err.code).toBe('57P01');
    expect(Date.now() - sent).toBeGreaterThanOrEqual(900);
    const { code } = await withTimeout(p.exited, 8000, 'pgmux to exit');
    expect(code).toBe(0);
    await c.end().catch(() => undefined);
    const admin = await adminClient(db);
    try {
      // The server connection was closed with the transaction open, so Postgres rolled it back.
      let rows: unknown[] = [];
      for (let i = 0; i < 50; i++) {
        rows = (await admin.query("SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND usename = 'app'", [db])).rows;
        if (rows.length === 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(rows).toEqual([]);
      const r = await admin.query('SELECT * FROM drained WHERE id = 2');
      expect(r.rows).toEqual([]);
    } finally {
      await admin.end();
    }
  }, 60_000);
});
