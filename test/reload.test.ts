/**
 * Live reload: RELOAD in the admin console and SIGHUP re-read the configuration file and apply it
 * without dropping a client. A new pool size applies under load (pgbench sees no failed
 * transaction); a file that does not load is rejected whole with the key named; a new upstream
 * target applies to each server connection when it is released; a removed database keeps its
 * clients until they leave; listen_port changes are reported as needing a restart.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countBackends } from './harness/backends.js';
import { adminClient, createTestDatabase, pgInfo } from './harness/context.js';
import { initPgbench, runPgbench } from './harness/pgbench.js';
import { startPgmux, type TestPgmux, type TestPgmuxOptions } from './harness/pgmux.js';
import { startPgmuxProcess } from './harness/pgmux-process.js';
import { freePort } from './harness/postgres.js';
import { waitForOutput, type ChildProc } from './harness/process.js';
import { APP_ROLE } from './harness/roles.js';
import { waitFor } from './harness/wait.js';

const ADMIN = { name: 'pgmux_admin', password: 'admin-pass' };
const USERS = { [APP_ROLE.name]: { password: APP_ROLE.password }, [ADMIN.name]: { password: ADMIN.password } };
const SETTINGS = { admin_users: ADMIN.name, log_connections: false, log_disconnections: false };

type Row = Record<string, unknown>;

let db: string;
let db2: string;
let superuser: pg.Client;
const cleanups: Array<() => Promise<unknown>> = [];

async function connect(port: number, database: string, user = APP_ROLE.name, password = APP_ROLE.password as string): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port, user, password, database });
  c.on('error', () => undefined);
  await c.connect();
  cleanups.push(() => c.end());
  return c;
}

const adminConnect = (port: number): Promise<pg.Client> => connect(port, 'pgbouncer', ADMIN.name, ADMIN.password);

async function rows(admin: pg.Client, sql: string): Promise<Row[]> {
  return (await admin.query(sql)).rows as Row[];
}

/** Server connections of a pool, whatever their state. */
function serverTotal(pool: Row | undefined): number {
  if (pool === undefined) return 0;
  return ['sv_active', 'sv_idle', 'sv_used', 'sv_tested', 'sv_login'].reduce((n, k) => n + Number(pool[k]), 0);
}

beforeAll(async () => {
  [db, db2] = await Promise.all([createTestDatabase('reload'), createTestDatabase('reload_b')]);
  superuser = await adminClient(db);
}, 60_000);

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  await superuser?.end();
});

describe('RELOAD of a new pool size under a running pgbench', () => {
  let px: TestPgmux;
  const options = (poolSize: number): TestPgmuxOptions => ({
    settings: SETTINGS,
    databases: { bench: { dbname: db, pool_size: poolSize } },
    users: USERS,
  });

  beforeAll(async () => {
    await initPgbench(db);
    px = await startPgmux(options(6));
    cleanups.push(() => px.stop());
  }, 90_000);

  it('zero failed transactions; the pool shrinks to the new size and grows again, as SHOW DATABASES / SHOW POOLS show', async () => {
    const admin = await adminConnect(px.port);
    const pool = async (): Promise<Row | undefined> => (await rows(admin, 'SHOW POOLS')).find((r) => r.database === 'bench');
    const bench = runPgbench(['-h', '127.0.0.1', '-p', String(px.port), '-U', APP_ROLE.name, '-c', '12', '-j', '2', '-T', '12', '-n', '-M', 'simple', 'bench'], 60_000);
    // Load first: the pool at its configured size.
    await waitFor(async () => serverTotal(await pool()) === 6, 'pgbench to use all 6 server connections');

    px.rewriteConfig(options(2));
    const shrink = await admin.query('RELOAD');
    expect(shrink.command).toBe('RELOAD');
    expect((await rows(admin, 'SHOW DATABASES')).find((r) => r.name === 'bench')?.pool_size).toBe(2);
    // Surplus servers close as pgbench's transactions release them.
    await waitFor(async () => serverTotal(await pool()) <= 2, 'the pool to shrink to 2 server connections');
    // And Postgres agrees, once the closed backends have exited.
    await waitFor(async () => (await countBackends(superuser, { database: db, user: APP_ROLE.name })) <= 2, 'Postgres to see at most 2 backends of the pool');

    px.rewriteConfig(options(5));
    await admin.query('RELOAD');
    expect((await rows(admin, 'SHOW DATABASES')).find((r) => r.name === 'bench')?.pool_size).toBe(5);
    await waitFor(async () => serverTotal(await pool()) > 2, 'the pool to grow again under load');
    expect(serverTotal(await pool())).toBeLessThanOrEqual(5);

    const result = await bench;
    expect(result.code, result.output).toBe(0);
    expect(result.output).toMatch(/number of failed transactions: 0 /);
    expect(result.output).not.toMatch(/aborted|error/i);
    expect(Number(/number of transactions actually processed: (\d+)/.exec(result.output)?.[1])).toBeGreaterThan(0);
    expect(px.pgmux.registry.reloads).toEqual({ ok: 2, failed: 0 });
  }, 60_000);
});

describe('RELOAD of other changes', () => {
  let px: TestPgmux;
  let admin: pg.Client;
  // A function: `db` is only known once the outer beforeAll has run.
  const base = (): TestPgmuxOptions & { databases: Record<string, Record<string, unknown>> } => ({
    settings: SETTINGS,
    databases: { moving: { dbname: db, pool_size: 2 }, leaving: { dbname: db, pool_size: 2 } },
    users: USERS,
  });

  beforeAll(async () => {
    px = await startPgmux(base());
    cleanups.push(() => px.stop());
    admin = await adminConnect(px.port);
  });

  it('a file that does not load is rejected whole: the error names the key, the old configuration stays', async () => {
    const before = px.pgmux.registry.reloads.failed;
    writeFileSync(px.configFile, readFileSync(px.configFile, 'utf8').replace(/^log_level: .*$/m, 'log_level: info\ndefault_pool_size: -4\nmax_client_conn: 77'));
    const err = (await admin.query('RELOAD').then(() => null, (e: unknown) => e)) as (Error & { code?: string; hint?: string }) | null;
    expect(err?.code).toBe('F0000');
    expect(err?.message).toContain('default_pool_size');
    expect(err?.message).toContain('previous configuration stays in effect');
    expect(px.pgmux.registry.reloads.failed).toBe(before + 1);
    const config = new Map((await rows(admin, 'SHOW CONFIG')).map((r) => [r.key, r.value]));
    expect(config.get('default_pool_size')).toBe('20');
    expect(config.get('max_client_conn')).toBe('5000');
    // The reason is in the log too (the test log file of this process).
    const logFile = `.tmp/logs/pgmux-${process.pid}.log`;
    await waitFor(async () => readFileSync(logFile, 'utf8').includes('configuration rejected'), 'the rejection to be logged', 10_000);
    expect(readFileSync(logFile, 'utf8')).toMatch(/"err":"default_pool_size: must be an integer >= 1[^"]*","msg":"configuration rejected/);

    // A YAML syntax error too.
    writeFileSync(px.configFile, 'databases: [oops\n');
    await expect(admin.query('RELOAD')).rejects.toMatchObject({ code: 'F0000' });
    px.rewriteConfig(base());
    await admin.query('RELOAD');
    const c = await connect(px.port, 'moving');
    expect((await c.query('SELECT 1 AS n')).rows).toEqual([{ n: 1 }]);
  });

  it('a new upstream database applies to each server connection when it is released', async () => {
    const inTx = await connect(px.port, 'moving');
    await inTx.query('BEGIN');
    expect((await inTx.query('SELECT current_database() AS d')).rows[0].d).toBe(db);
    const idle = await connect(px.port, 'moving');
    expect((await idle.query('SELECT current_database() AS d')).rows[0].d).toBe(db);

    px.rewriteConfig({ ...base(), databases: { ...base().databases, moving: { dbname: db2, pool_size: 2 } } });
    const r = await admin.query('RELOAD');
    expect(r.command).toBe('RELOAD');
    expect((await rows(admin, 'SHOW DATABASES')).find((x) => x.name === 'moving')?.database).toBe(db2);
    // The open transaction keeps its server (marked to close), and is not disturbed.
    expect((await rows(admin, 'SHOW SERVERS')).filter((s) => s.database === 'moving' && s.state === 'active')).toMatchObject([{ close_needed: 1 }]);
    expect((await inTx.query('SELECT current_database() AS d')).rows[0].d).toBe(db);
    // A new transaction gets a server of the new target.
    expect((await idle.query('SELECT current_database() AS d')).rows[0].d).toBe(db2);
    await inTx.query('COMMIT');
    expect((await inTx.query('SELECT current_database() AS d')).rows[0].d).toBe(db2);
    await admin.query('WAIT_CLOSE moving');
    expect((await rows(admin, 'SHOW SERVERS')).filter((s) => s.database === 'moving').every((s) => s.close_needed === 0)).toBe(true);
  });

  it('a removed database keeps its clients until they leave; new logins are refused', async () => {
    const staying = await connect(px.port, 'leaving');
    await staying.query('SELECT 1');
    px.rewriteConfig({ ...base(), databases: { moving: { dbname: db2, pool_size: 2 } } });
    await admin.query('RELOAD');
    expect((await rows(admin, 'SHOW DATABASES')).some((x) => x.name === 'leaving')).toBe(false);
    expect((await staying.query('SELECT 2 AS n')).rows).toEqual([{ n: 2 }]);
    await staying.query('BEGIN');
    await staying.query('COMMIT');
    const refused = new pg.Client({ host: '127.0.0.1', port: px.port, user: APP_ROLE.name, password: APP_ROLE.password, database: 'leaving' });
    await expect(refused.connect()).rejects.toMatchObject({ code: '3D000' });
    await refused.end().catch(() => undefined);

    const pids = (await rows(admin, 'SHOW SERVERS')).filter((s) => s.database === 'leaving').map((s) => s.remote_pid as number);
    expect(pids.length).toBeGreaterThan(0);
    await staying.end();
    // Once its last client has left, the pool closes its servers and is forgotten.
    await waitFor(async () => !(await rows(admin, 'SHOW POOLS')).some((p) => p.database === 'leaving'), 'the pool to be forgotten');
    await waitFor(async () => (await superuser.query('SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1::int[])', [pids])).rowCount === 0, 'its servers to close');
  });

  it('a new listen_port is reported as needing a restart and not applied', async () => {
    const notices: Array<{ message?: string; severity?: string }> = [];
    const onNotice = (n: { message?: string; severity?: string }): void => void notices.push(n);
    admin.on('notice', onNotice);
    px.rewriteConfig({ ...base(), settings: { ...SETTINGS, listen_port: 1 }, databases: { moving: { dbname: db2, pool_size: 2 } } });
    await admin.query('RELOAD');
    admin.off('notice', onNotice);
    expect(notices.map((n) => n.message)).toContain('listen_port changed in the configuration: restart pgmux to apply it');
    // The running value (the test harness listens on listen_port 0: a free port).
    expect((await rows(admin, 'SHOW CONFIG')).find((r) => r.key === 'listen_port')?.value).toBe('0');
    const c = await connect(px.port, 'moving');
    expect((await c.query('SELECT 1 AS n')).rows).toEqual([{ n: 1 }]);
  });
});

describe('SIGHUP', () => {
  let proc: ChildProc | undefined;

  afterAll(async () => {
    await proc?.stop('SIGKILL');
  });

  it('reloads the file the process was started with; a bad file is logged and the old one kept', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pgmux-reload-'));
    const file = path.join(dir, 'pgmux.yaml');
    const port = await freePort();
    const info = pgInfo();
    const document = (poolSize: number | string, more: Record<string, unknown> = {}): string =>
      stringify({ listen_port: port, metrics_port: 0, ...SETTINGS, default_pool_size: poolSize, databases: { app: { host: info.host, port: info.port, dbname: db }, ...more }, users: USERS });
    writeFileSync(file, document(4));
    const pgmux = startPgmuxProcess({ args: ['--config', file], cwd: dir });
    proc = pgmux;
    await waitForOutput(pgmux, 'pgmux listening', 30_000);

    const admin = await adminConnect(port);
    const poolSize = async (): Promise<unknown> => (await rows(admin, 'SHOW CONFIG')).find((r) => r.key === 'default_pool_size')?.value;
    expect(await poolSize()).toBe('4');

    writeFileSync(file, document(7, { app2: { host: info.host, port: info.port, dbname: db } }));
    pgmux.child.kill('SIGHUP');
    await waitFor(async () => (await poolSize()) === '7', 'SIGHUP to apply default_pool_size 7');
    // The log line may reach the pipe a little after the admin console shows the new value; it names what changed.
    await waitForOutput(pgmux, 'configuration applied: databases added: app2');

    writeFileSync(file, document('lots'));
    pgmux.child.kill('SIGHUP');
    await waitForOutput(pgmux, 'configuration rejected');
    expect(pgmux.output()).toMatch(/"err":"default_pool_size: must be an integer/);
    expect(await poolSize()).toBe('7');
    expect(pgmux.running()).toBe(true);
    const c = await connect(port, 'app');
    expect((await c.query('SELECT 1 AS n')).rows).toEqual([{ n: 1 }]);
    await c.end();
    await admin.end();

    const { code } = await pgmux.stop('SIGTERM');
    expect(code).toBe(0);
  }, 60_000);
});
