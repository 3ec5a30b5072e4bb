/**
 * The admin console (virtual databases `pgbouncer` and `pgmux`) through psql and node-postgres:
 * PgBouncer's SHOW commands with its columns, order and types, values that follow the traffic
 * the test makes, who may log in and run what, and the pool control commands (PAUSE, RESUME,
 * RECONNECT, KILL, KILL_CLIENT, DISABLE, ENABLE, WAIT_CLOSE, SET, SHUTDOWN).
 *
 * Column lists are PgBouncer 1.25's (src/admin.c and src/stats.c of the 1.25 release; the
 * documented columns of doc/usage.md), with pgmux's own columns appended at the end only.
 * PgBouncer 1.18 (Debian 12) has a subset of them in the same relative order.
 *
 * Each group of tests uses its own pgmux database name (all pointing to the same test database),
 * so a PAUSE or KILL in one group cannot disturb another; server connections are identified by
 * the backend pids SHOW SERVERS reports.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, createTestDatabase } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { runPsql } from './harness/psql.js';
import { APP_ROLE } from './harness/roles.js';
import { settlesWithin, waitFor } from './harness/wait.js';

const ADMIN = { name: 'pgmux_admin', password: 'admin-pass' };
const STATS = { name: 'pgmux_stats', password: 'stats-pass' };
const OUTSIDER = { name: 'pgmux_outsider', password: 'outsider-pass' };

const TEXT = 25;
const INT4 = 23;
const NUMERIC = 1700;

/** [name, type OID] per column, PgBouncer 1.25 first, then pgmux's additions. */
const POOLS: Array<[string, number]> = [
  ['database', TEXT], ['user', TEXT], ['cl_active', INT4], ['cl_waiting', INT4], ['cl_active_cancel_req', INT4],
  ['cl_waiting_cancel_req', INT4], ['sv_active', INT4], ['sv_active_cancel', INT4], ['sv_being_canceled', INT4],
  ['sv_idle', INT4], ['sv_used', INT4], ['sv_tested', INT4], ['sv_login', INT4], ['maxwait', INT4], ['maxwait_us', INT4],
  ['pool_mode', TEXT], ['load_balance_hosts', TEXT],
  ['pinned', INT4], ['prepared_statements', INT4], ['login_failures', INT4], ['last_login_error', TEXT],
];
const SOCKETS: Array<[string, number]> = [
  ['type', TEXT], ['user', TEXT], ['database', TEXT], ['replication', TEXT], ['state', TEXT], ['addr', TEXT], ['port', INT4],
  ['local_addr', TEXT], ['local_port', INT4], ['connect_time', TEXT], ['request_time', TEXT], ['wait', INT4], ['wait_us', INT4],
  ['close_needed', INT4], ['ptr', TEXT], ['link', TEXT], ['remote_pid', INT4], ['tls', TEXT], ['application_name', TEXT],
  ['prepared_statements', INT4], ['id', INT4],
  ['pin_reasons', TEXT],
];
const STAT_NAMES = ['server_assignment_count', 'xact_count', 'query_count'];
const STATS_COLUMNS: Array<[string, number]> = [
  ['database', TEXT],
  ...[...STAT_NAMES, 'received', 'sent', 'xact_time', 'query_time', 'wait_time', 'client_parse_count', 'server_parse_count', 'bind_count'].map(
    (n): [string, number] => [`total_${n}`, NUMERIC],
  ),
  ...[...STAT_NAMES, 'recv', 'sent', 'xact_time', 'query_time', 'wait_time', 'client_parse_count', 'server_parse_count', 'bind_count'].map(
    (n): [string, number] => [`avg_${n}`, NUMERIC],
  ),
];
const STATS_TOTALS: Array<[string, number]> = [
  ['database', TEXT],
  ...[...STAT_NAMES, 'bytes_received', 'bytes_sent', 'xact_time', 'query_time', 'wait_time', 'client_parse_count', 'server_parse_count', 'bind_count'].map(
    (n): [string, number] => [n, NUMERIC],
  ),
];
const STATS_AVERAGES: Array<[string, number]> = [
  ['database', TEXT],
  ...[...STAT_NAMES, 'bytes_received', 'bytes_sent', 'xact_time', 'query_time', 'wait_time', 'avg_client_parse_count', 'avg_server_parse_count', 'avg_bind_count'].map(
    (n): [string, number] => [n, NUMERIC],
  ),
];
const DATABASES: Array<[string, number]> = [
  ['name', TEXT], ['host', TEXT], ['port', INT4], ['database', TEXT], ['force_user', TEXT], ['pool_size', INT4],
  ['min_pool_size', INT4], ['reserve_pool_size', INT4], ['server_lifetime', INT4], ['pool_mode', TEXT],
  ['load_balance_hosts', TEXT], ['max_connections', INT4], ['current_connections', INT4], ['max_client_connections', INT4],
  ['current_client_connections', INT4], ['paused', INT4], ['disabled', INT4],
];
const USERS: Array<[string, number]> = [
  ['name', TEXT], ['pool_size', TEXT], ['reserve_pool_size', TEXT], ['pool_mode', TEXT], ['max_user_connections', INT4],
  ['current_connections', INT4], ['max_user_client_connections', INT4], ['current_client_connections', INT4],
];
const CONFIG: Array<[string, number]> = [['key', TEXT], ['value', TEXT], ['default', TEXT], ['changeable', TEXT]];
const LISTS: Array<[string, number]> = [['list', TEXT], ['items', INT4]];
const LIST_NAMES = ['databases', 'users', 'peers', 'pools', 'peer_pools', 'free_clients', 'used_clients', 'login_clients', 'free_servers', 'used_servers', 'dns_names', 'dns_zones', 'dns_queries', 'dns_pending'];

type Row = Record<string, unknown>;

let px: TestPgmux;
let db: string;
let superuser: pg.Client;
let console_: pg.Client;
const opened: pg.Client[] = [];

/** pgmux database names, one per group of tests, all on the same server database. */
const DB = { show: 'a_show', stats: 'a_stats', pause: 'a_pause', reconnect: 'a_reconnect', kill: 'a_kill', killclient: 'a_killclient', disable: 'a_disable', set: 'a_set' };

async function connect(database: string, application = 'admin-test'): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: px.port, user: APP_ROLE.name, password: APP_ROLE.password, database, application_name: application });
  c.on('error', () => undefined); // KILL tests expect errors; they are asserted on the queries
  await c.connect();
  opened.push(c);
  return c;
}

async function adminConnect(user = ADMIN, database = 'pgbouncer'): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: px.port, user: user.name, password: user.password, database });
  c.on('error', () => undefined);
  await c.connect();
  opened.push(c);
  return c;
}

async function show(what: string, client: pg.Client = console_): Promise<Row[]> {
  return (await client.query(`SHOW ${what}`)).rows as Row[];
}

function columns(result: pg.QueryResult): Array<[string, number]> {
  return result.fields.map((f) => [f.name, f.dataTypeID]);
}

async function poolRow(database: string): Promise<Row> {
  const row = (await show('POOLS')).find((r) => r.database === database);
  if (row === undefined) throw new Error(`no pool for ${database}`);
  return row;
}

async function serverPids(database: string): Promise<number[]> {
  return (await show('SERVERS')).filter((r) => r.database === database).map((r) => r.remote_pid as number);
}

async function alivePids(pids: number[]): Promise<number[]> {
  const r = await superuser.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])', [pids]);
  return r.rows.map((x) => x.pid);
}

beforeAll(async () => {
  db = await createTestDatabase('admin');
  superuser = await adminClient(db);
  const databases: Record<string, Record<string, unknown>> = {};
  for (const name of Object.values(DB)) databases[name] = { dbname: db, pool_size: 3 };
  px = await startPgmux({
    settings: {
      admin_users: ADMIN.name,
      stats_users: STATS.name,
      stats_period: '1s',
      log_connections: false,
      log_disconnections: false,
    },
    databases,
    users: {
      [APP_ROLE.name]: { password: APP_ROLE.password },
      [ADMIN.name]: { password: ADMIN.password },
      [STATS.name]: { password: STATS.password },
      [OUTSIDER.name]: { password: OUTSIDER.password },
    },
  });
  console_ = await adminConnect();
}, 60_000);

afterAll(async () => {
  for (const c of opened) await c.end().catch(() => undefined);
  await px?.stop();
  await superuser?.end();
});

describe('logging in', () => {
  it('psql -d pgbouncer -c "SHOW POOLS" prints PgBouncer\'s columns, in its order', async () => {
    const conninfo = `host=127.0.0.1 port=${px.port} dbname=pgbouncer user=${ADMIN.name}`;
    const r = await runPsql(conninfo, ['\\pset tuples_only off', 'SHOW POOLS'], ADMIN.password);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    const header = lines.find((l) => l.startsWith('database|'));
    expect(header, r.stdout).toBe(POOLS.map(([n]) => n).join('|'));
    // The console's own pool, as in PgBouncer: its clients are this psql and the test's console connection.
    expect(r.stdout, r.stdout).toMatch(/^pgbouncer\|pgbouncer\|2\|0\|/m);
    expect(r.stderr).toBe('');
  });

  it('the database may also be called pgmux', async () => {
    const c = await adminConnect(ADMIN, 'pgmux');
    expect((await c.query('SHOW VERSION')).rows).toEqual([{ version: expect.stringMatching(/^pgmux \d+\.\d+\.\d+$/) }]);
    await c.end();
  });

  it('a user in neither admin_users nor stats_users is refused after authentication with 42501 naming the settings', async () => {
    const c = new pg.Client({ host: '127.0.0.1', port: px.port, user: OUTSIDER.name, password: OUTSIDER.password, database: 'pgbouncer' });
    const err = (await c.connect().then(() => null, (e: unknown) => e)) as (Error & { code?: string; hint?: string }) | null;
    await c.end().catch(() => undefined);
    expect(err).not.toBeNull();
    expect(err?.code).toBe('42501');
    expect(err?.message).toBe(`permission denied for database "pgbouncer": user "${OUTSIDER.name}" is not allowed to use the admin console`);
    expect(`${err?.message} ${err?.hint}`).toContain('admin_users');
    expect(`${err?.message} ${err?.hint}`).toContain('stats_users');
  });

  it('a wrong password is refused like any login (28P01)', async () => {
    const c = new pg.Client({ host: '127.0.0.1', port: px.port, user: ADMIN.name, password: 'wrong', database: 'pgbouncer' });
    await expect(c.connect()).rejects.toMatchObject({ code: '28P01' });
    await c.end().catch(() => undefined);
  });

  it('a stats user may SHOW but not PAUSE, RELOAD or SET', async () => {
    const c = await adminConnect(STATS);
    expect((await c.query('SHOW POOLS')).rows.length).toBeGreaterThan(0);
    expect((await c.query('show stats;')).fields[0].name).toBe('database');
    for (const command of [`PAUSE ${DB.show}`, 'RELOAD', 'SET default_pool_size = 4', `KILL ${DB.show}`]) {
      const err = (await c.query(command).then(() => null, (e: unknown) => e)) as (Error & { code?: string; hint?: string }) | null;
      expect(err?.code, command).toBe('42501');
      expect(err?.hint).toContain('admin_users');
    }
    expect((await show('DATABASES')).find((r) => r.name === DB.show)?.paused).toBe(0);
    await c.end();
  });

  it('an unknown command is an error naming it and SHOW HELP; the session goes on', async () => {
    const err = (await console_.query('FROBNICATE now').then(() => null, (e: unknown) => e)) as (Error & { code?: string }) | null;
    expect(err?.code).toBe('42601');
    expect(err?.message).toContain('FROBNICATE now');
    expect(err?.message).toContain('SHOW HELP');
    const err2 = (await console_.query('SHOW NOTHING_LIKE_THIS').then(() => null, (e: unknown) => e)) as (Error & { code?: string }) | null;
    expect(err2?.code).toBe('42601');
    expect((await console_.query('SHOW VERSION')).rows).toHaveLength(1);
  });

  it('the extended query protocol is refused with 0A000, and the session stays usable', async () => {
    const c = await adminConnect();
    const err = (await c.query({ text: 'SHOW POOLS', name: 'named' }).then(() => null, (e: unknown) => e)) as (Error & { code?: string }) | null;
    expect(err?.code).toBe('0A000');
    expect(err?.message).toContain('extended query protocol');
    expect((await c.query('SHOW STATE')).rows).toEqual([
      { key: 'active', value: 'yes' },
      { key: 'paused', value: 'no' },
      { key: 'suspended', value: 'no' },
    ]);
    await c.end();
  });

  it('SHOW HELP sends the usage as a notice', async () => {
    const notices: Array<{ message?: string; detail?: string }> = [];
    const c = await adminConnect();
    c.on('notice', (n) => notices.push(n));
    await c.query('SHOW HELP');
    expect(notices[0]?.message).toBe('Console usage');
    expect(notices[0]?.detail).toContain('SHOW HELP|CONFIG|DATABASES');
    expect(notices[0]?.detail).toContain('KILL_CLIENT');
    await c.end();
  });
});

describe('SHOW columns (PgBouncer 1.25 names, order and types)', () => {
  it.each([
    ['POOLS', POOLS],
    ['CLIENTS', SOCKETS],
    ['SERVERS', SOCKETS],
    ['STATS', STATS_COLUMNS],
    ['STATS_TOTALS', STATS_TOTALS],
    ['STATS_AVERAGES', STATS_AVERAGES],
    ['DATABASES', DATABASES],
    ['USERS', USERS],
    ['CONFIG', CONFIG],
    ['LISTS', LISTS],
    ['VERSION', [['version', TEXT]]],
    ['STATE', [['key', TEXT], ['value', TEXT]]],
  ] as Array<[string, Array<[string, number]>]>)('SHOW %s', async (what, expected) => {
    const c = await connect(DB.show);
    await c.query('SELECT 1'); // a pool, a client and a server to list
    const r = await console_.query(`SHOW ${what.toLowerCase()};`);
    expect(columns(r)).toEqual(expected);
    expect(r.command).toBe('SHOW');
    await c.end();
  });
});

describe('SHOW values follow the traffic', () => {
  it('POOLS, CLIENTS and SERVERS while clients hold transactions and one waits', async () => {
    // All connected first: a client whose startup parameters differ from the pool's logs in through a server.
    const holders = [await connect(DB.show, 'holder-0'), await connect(DB.show, 'holder-1'), await connect(DB.show, 'holder-2')];
    const waiter = await connect(DB.show, 'waiter');
    const pids: number[] = [];
    for (const h of holders) {
      await h.query('BEGIN');
      pids.push((await h.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid);
    }
    const waited = waiter.query('SELECT 42 AS answer');

    const pool = await waitFor(async () => {
      const row = await poolRow(DB.show);
      return row.cl_waiting === 1 && Number(row.maxwait) * 1e6 + Number(row.maxwait_us) > 0 ? row : undefined;
    }, 'the waiting client to show up in SHOW POOLS');
    expect(pool).toMatchObject({ user: APP_ROLE.name, cl_active: 3, cl_waiting: 1, sv_active: 3, sv_idle: 0, sv_login: 0, pool_mode: 'transaction', pinned: 0 });

    const clients = (await show('CLIENTS')).filter((r) => r.database === DB.show);
    const byApp = new Map(clients.map((r) => [r.application_name, r]));
    const servers = (await show('SERVERS')).filter((r) => r.database === DB.show);
    expect(servers.map((s) => s.remote_pid).sort()).toEqual([...pids].sort());
    for (let i = 0; i < 3; i++) {
      const client = byApp.get(`holder-${i}`) as Row;
      expect(client).toMatchObject({ type: 'C', user: APP_ROLE.name, state: 'active', addr: '127.0.0.1', replication: 'none', tls: '', pin_reasons: '' });
      expect(client.connect_time).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
      // The client's link is its server's ptr, and that server runs in the backend the client sees.
      const server = servers.find((s) => s.ptr === client.link) as Row;
      expect(server).toMatchObject({ type: 'S', state: 'active', link: client.ptr, remote_pid: pids[i], application_name: `holder-${i}`, close_needed: 0 });
    }
    expect(byApp.get('waiter')).toMatchObject({ state: 'waiting', link: '' });

    await holders[0].query('COMMIT');
    expect((await waited).rows).toEqual([{ answer: 42 }]);
    await waitFor(async () => (await poolRow(DB.show)).cl_waiting === 0, 'the queue to empty');
    for (const h of holders.slice(1)) await h.query('COMMIT');
    const after = await waitFor(async () => {
      const row = await poolRow(DB.show);
      return row.sv_active === 0 ? row : undefined;
    }, 'all servers to be released');
    expect(Number(after.sv_idle) + Number(after.sv_used)).toBe(3);
    expect((await show('SERVERS')).filter((r) => r.database === DB.show).every((s) => s.state === 'idle' && s.link === '')).toBe(true);
    for (const c of [...holders, waiter]) await c.end();
  });

  it('STATS: N transactions move total_xact_count and total_query_count by exactly N; averages follow within stats_period', async () => {
    const c = await connect(DB.stats);
    await c.query('SELECT 1');
    const stat = async (): Promise<Row> => (await show('STATS')).find((r) => r.database === DB.stats) as Row;
    const before = await stat();
    const N = 7;
    for (let i = 0; i < N; i++) await c.query('SELECT $1::int', [i]);
    await c.query('BEGIN');
    await c.query('SELECT 1');
    await c.query('COMMIT'); // one transaction of three queries
    const after = await stat();
    expect(Number(after.total_xact_count) - Number(before.total_xact_count)).toBe(N + 1);
    expect(Number(after.total_query_count) - Number(before.total_query_count)).toBe(N + 3);
    expect(Number(after.total_received)).toBeGreaterThan(Number(before.total_received));
    expect(Number(after.total_sent)).toBeGreaterThan(Number(before.total_sent));
    expect(Number(after.total_xact_time)).toBeGreaterThan(Number(before.total_xact_time));
    expect(Number(after.total_server_assignment_count) - Number(before.total_server_assignment_count)).toBe(N + 1);

    const totals = (await show('STATS_TOTALS')).find((r) => r.database === DB.stats) as Row;
    expect(Number(totals.xact_count)).toBeGreaterThanOrEqual(Number(after.total_xact_count));

    // Averages are per second over the last stats_period (1 s here): keep traffic going until they show it.
    let running = true;
    const load = (async () => {
      while (running) await c.query('SELECT 1');
    })();
    const avg = await waitFor(async () => {
      const row = (await show('STATS_AVERAGES')).find((r) => r.database === DB.stats) as Row;
      return Number(row.xact_count) > 0 && Number(row.query_count) > 0 && Number(row.bytes_received) > 0 ? row : undefined;
    }, 'averages to show the traffic');
    running = false;
    await load;
    expect(Number(avg.query_time)).toBeGreaterThan(0);
    const s = await stat();
    expect(Number(s.avg_xact_count)).toBeGreaterThanOrEqual(0);
    await c.end();
  });

  it('DATABASES, USERS, CONFIG, LISTS, VERSION, STATE', async () => {
    const c = await connect(DB.show);
    await c.query('SELECT 1');
    const dbs = await show('DATABASES');
    const row = dbs.find((r) => r.name === DB.show);
    expect(row).toMatchObject({ host: '127.0.0.1', database: db, force_user: null, pool_size: 3, min_pool_size: 0, reserve_pool_size: 0, server_lifetime: 3600, pool_mode: null, paused: 0, disabled: 0 });
    expect(Number(row?.current_connections)).toBeGreaterThanOrEqual(1);
    expect(Number(row?.current_client_connections)).toBeGreaterThanOrEqual(1);
    expect(dbs.find((r) => r.name === 'pgbouncer')).toMatchObject({ port: px.port, database: 'pgbouncer', force_user: 'pgbouncer' });

    const users = await show('USERS');
    expect(users.find((u) => u.name === APP_ROLE.name)).toMatchObject({ pool_size: null, pool_mode: null, max_user_connections: 0 });
    expect(Number(users.find((u) => u.name === APP_ROLE.name)?.current_connections)).toBeGreaterThanOrEqual(1);
    expect(users.find((u) => u.name === ADMIN.name)).toBeDefined();

    const config = new Map((await show('CONFIG')).map((r) => [r.key, r]));
    expect(config.get('max_client_conn')).toEqual({ key: 'max_client_conn', value: '5000', default: '5000', changeable: 'yes' });
    expect(config.get('admin_users')).toMatchObject({ value: ADMIN.name, default: '' });
    expect(config.get('stats_period')).toMatchObject({ value: '1s', default: '1min' });
    expect(config.get('listen_port')).toMatchObject({ changeable: 'no' });

    const lists = await show('LISTS');
    expect(lists.map((r) => r.list)).toEqual(LIST_NAMES);
    const items = new Map(lists.map((r) => [r.list, r.items as number]));
    expect(items.get('databases')).toBe(Object.keys(DB).length + 1);
    expect(items.get('pools')).toBe(px.pgmux.registry.pools.size);
    // Clients of earlier tests may still be closing: at least this one and the console.
    expect(items.get('used_clients')).toBeGreaterThanOrEqual(2);
    expect(items.get('used_servers')).toBeGreaterThanOrEqual(1);
    expect(items.get('login_clients')).toBe(0);

    expect(await show('VERSION')).toEqual([{ version: 'pgmux 0.1.0' }]);
    expect(await show('STATE')).toEqual([
      { key: 'active', value: 'yes' },
      { key: 'paused', value: 'no' },
      { key: 'suspended', value: 'no' },
    ]);
    await c.end();
  });
});

describe('pool control', () => {
  it('PAUSE waits for the open transaction, closes the servers, holds new queries until RESUME', async () => {
    const holder = await connect(DB.pause);
    await holder.query('BEGIN');
    await holder.query('SELECT 1');
    const other = await connect(DB.pause);
    await other.query('SELECT 1');
    const pidsBefore = await serverPids(DB.pause);
    expect(pidsBefore.length).toBeGreaterThan(0);

    const admin2 = await adminConnect();
    const paused = admin2.query(`PAUSE ${DB.pause}`);
    expect(await settlesWithin(paused, 500)).toBe(false); // the transaction still holds a server
    expect((await show('DATABASES')).find((r) => r.name === DB.pause)?.paused).toBe(1);

    // A new transaction waits rather than failing.
    const waiting = other.query('SELECT 7 AS n');
    await waitFor(async () => (await poolRow(DB.pause)).cl_waiting === 1, 'the client to queue');
    // The holder is not cut off: it finishes its transaction, which lets PAUSE complete.
    await holder.query('SELECT 2');
    await holder.query('COMMIT');
    expect((await paused).command).toBe('PAUSE');
    expect(await serverPids(DB.pause)).toEqual([]);
    await waitFor(async () => (await alivePids(pidsBefore)).length === 0, 'the backends to be gone');
    expect(await settlesWithin(waiting, 300)).toBe(false);

    await console_.query(`RESUME ${DB.pause}`);
    expect((await waiting).rows).toEqual([{ n: 7 }]);
    expect((await show('DATABASES')).find((r) => r.name === DB.pause)?.paused).toBe(0);
    await expect(console_.query(`RESUME ${DB.pause}`)).rejects.toMatchObject({ message: expect.stringContaining('not paused') });
    await expect(console_.query('PAUSE no_such_db')).rejects.toMatchObject({ code: '3D000' });
    await expect(console_.query('PAUSE pgbouncer')).rejects.toMatchObject({ message: expect.stringContaining('admin db') });
    for (const c of [holder, other, admin2]) await c.end();
  });

  it('PAUSE without a database pauses everything (SHOW STATE) until RESUME', async () => {
    const c = await connect(DB.pause);
    await c.query('SELECT 1');
    await console_.query('PAUSE');
    expect(await show('STATE')).toContainEqual({ key: 'paused', value: 'yes' });
    const q = c.query('SELECT 3 AS n');
    expect(await settlesWithin(q, 300)).toBe(false);
    await console_.query('RESUME');
    expect((await q).rows).toEqual([{ n: 3 }]);
    expect(await show('STATE')).toContainEqual({ key: 'paused', value: 'no' });
    await c.end();
  });

  it('RECONNECT closes idle servers now and busy ones when released; WAIT_CLOSE waits for them', async () => {
    const idle = await connect(DB.reconnect);
    const busy = await connect(DB.reconnect);
    await busy.query('BEGIN');
    const busyPid = (await busy.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    const idlePid = (await idle.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    expect(idlePid).not.toBe(busyPid);

    await console_.query(`RECONNECT ${DB.reconnect}`);
    const marked = (await show('SERVERS')).find((s) => s.remote_pid === busyPid);
    expect(marked).toMatchObject({ state: 'active', close_needed: 1 });
    await waitFor(async () => !(await alivePids([idlePid])).includes(idlePid), 'the idle server to close');

    const waitClose = console_.query(`WAIT_CLOSE ${DB.reconnect}`);
    expect(await settlesWithin(waitClose, 300)).toBe(false);
    // The transaction is undisturbed, then its server closes when released.
    expect((await busy.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid).toBe(busyPid);
    await busy.query('COMMIT');
    await waitClose; // node-postgres reads the tag WAIT_CLOSE as "WAIT"; resolving is what counts
    await waitFor(async () => (await alivePids([busyPid])).length === 0, 'the released server to close');

    const newPid = (await idle.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    expect([idlePid, busyPid]).not.toContain(newPid);
    for (const c of [idle, busy]) await c.end();
  });

  it('KILL drops the clients (57P01 naming KILL) and servers at once; new queries wait for RESUME', async () => {
    const a = await connect(DB.kill);
    const b = await connect(DB.kill);
    await a.query('BEGIN');
    await a.query('SELECT 1');
    await b.query('SELECT 1');
    const pids = await serverPids(DB.kill);
    const aError = new Promise<Error & { code?: string }>((resolve) => a.once('error', resolve));

    await console_.query(`KILL ${DB.kill}`);
    const err = await aError;
    expect(err.code).toBe('57P01');
    expect(err.message).toContain('KILL');
    await expect(b.query('SELECT 1')).rejects.toThrow();
    await waitFor(async () => (await alivePids(pids)).length === 0, 'the killed backends to be gone');
    expect(await serverPids(DB.kill)).toEqual([]);

    // A new client waits too (its login needs a server: its application_name differs from the pool's).
    const late = connect(DB.kill, 'late');
    expect(await settlesWithin(late, 300)).toBe(false);
    await console_.query(`RESUME ${DB.kill}`);
    const c = await late;
    expect((await c.query('SELECT 5 AS n')).rows).toEqual([{ n: 5 }]);
    await c.end();
  });

  it('KILL_CLIENT closes that client only; its id comes from SHOW CLIENTS', async () => {
    const victim = await connect(DB.killclient, 'victim');
    const bystander = await connect(DB.killclient, 'bystander');
    await victim.query('SELECT 1');
    await bystander.query('SELECT 1');
    const id = (await show('CLIENTS')).find((r) => r.application_name === 'victim')?.id as number;
    expect(id).toBeGreaterThan(0);
    const victimError = new Promise<Error & { code?: string }>((resolve) => victim.once('error', resolve));
    await console_.query(`KILL_CLIENT ${id}`);
    const err = await victimError;
    expect(err.code).toBe('57P01');
    expect(err.message).toContain(`KILL_CLIENT ${id}`);
    expect((await bystander.query('SELECT 2 AS n')).rows).toEqual([{ n: 2 }]);
    expect((await show('CLIENTS')).some((r) => r.id === id)).toBe(false);
    await expect(console_.query(`KILL_CLIENT ${id}`)).rejects.toMatchObject({ message: expect.stringContaining('client not found') });
    await bystander.end();
  });

  it('DISABLE refuses new logins with a clear error, existing clients go on; ENABLE undoes it', async () => {
    const existing = await connect(DB.disable);
    await existing.query('SELECT 1');
    await console_.query(`DISABLE ${DB.disable}`);
    expect((await show('DATABASES')).find((r) => r.name === DB.disable)?.disabled).toBe(1);
    const refused = new pg.Client({ host: '127.0.0.1', port: px.port, user: APP_ROLE.name, password: APP_ROLE.password, database: DB.disable });
    const err = (await refused.connect().then(() => null, (e: unknown) => e)) as (Error & { code?: string; hint?: string }) | null;
    await refused.end().catch(() => undefined);
    expect(err?.code).toBe('57P03');
    expect(err?.message).toContain('DISABLE');
    expect(err?.hint).toContain(`ENABLE ${DB.disable}`);
    expect((await existing.query('SELECT 9 AS n')).rows).toEqual([{ n: 9 }]);

    await console_.query(`ENABLE ${DB.disable}`);
    const again = await connect(DB.disable);
    expect((await again.query('SELECT 1 AS n')).rows).toEqual([{ n: 1 }]);
    await expect(console_.query('DISABLE')).rejects.toMatchObject({ message: expect.stringContaining('database is required') });
    for (const c of [existing, again]) await c.end();
  });

  it('SET default_pool_size = 1 shows in SHOW CONFIG and takes effect; bad SETs name the key', async () => {
    // The per-database pool_size would win over default_pool_size: this database has none.
    const r0 = await console_.query('SET default_pool_size = 1');
    expect(r0.command).toBe('SET');
    try {
      expect((await show('CONFIG')).find((r) => r.key === 'default_pool_size')).toMatchObject({ value: '1', default: '20' });
      expect(px.pgmux.config.default_pool_size).toBe(1);
      // Pools of databases with their own pool_size keep it.
      expect((await show('DATABASES')).find((r) => r.name === DB.set)?.pool_size).toBe(3);

      await console_.query("SET server_check_query = 'select 2'");
      expect((await show('CONFIG')).find((r) => r.key === 'server_check_query')?.value).toBe('select 2');
      await console_.query("SET server_check_query TO 'select 1'");

      for (const [sql, code, text] of [
        ['SET default_pool_sise = 3', '42704', 'default_pool_sise'],
        ['SET listen_port = 7000', '55P02', 'listen_port'],
        ['SET default_pool_size = abc', '22023', 'default_pool_size'],
        ['SET min_pool_size = 50', '22023', 'min_pool_size'],
      ]) {
        const err = (await console_.query(sql).then(() => null, (e: unknown) => e)) as (Error & { code?: string }) | null;
        expect(err?.code, sql).toBe(code);
        expect(err?.message, sql).toContain(text);
      }
      expect((await show('CONFIG')).find((r) => r.key === 'default_pool_size')?.value).toBe('1');
    } finally {
      await console_.query('SET default_pool_size = 20');
    }
  });

  it('SET default_pool_size is effective for a pool without its own size', async () => {
    // A pool that follows default_pool_size: a user-level override is absent and the database sets none.
    const name = 'a_default_size';
    px.rewriteConfig({
      settings: { admin_users: ADMIN.name, stats_users: STATS.name, stats_period: '1s', log_connections: false, log_disconnections: false },
      databases: { ...Object.fromEntries(Object.values(DB).map((n) => [n, { dbname: db, pool_size: 3 }])), [name]: { dbname: db } },
      users: {
        [APP_ROLE.name]: { password: APP_ROLE.password },
        [ADMIN.name]: { password: ADMIN.password },
        [STATS.name]: { password: STATS.password },
        [OUTSIDER.name]: { password: OUTSIDER.password },
      },
    });
    await console_.query('RELOAD');
    const a = await connect(name);
    const b = await connect(name);
    await a.query('SELECT 1');
    await b.query('SELECT 1');
    await console_.query('SET default_pool_size = 1');
    try {
      await waitFor(async () => {
        const p = await poolRow(name);
        return Number(p.sv_active) + Number(p.sv_idle) + Number(p.sv_used) + Number(p.sv_tested) + Number(p.sv_login) <= 1;
      }, 'the pool to shrink to one server');
      await a.query('BEGIN');
      const q = b.query('SELECT 8 AS n');
      await waitFor(async () => (await poolRow(name)).cl_waiting === 1, 'the second client to wait for the only server');
      await a.query('COMMIT');
      expect((await q).rows).toEqual([{ n: 8 }]);
    } finally {
      await console_.query('SET default_pool_size = 20');
    }
    for (const c of [a, b]) await c.end();
  });
});

describe('SHUTDOWN', () => {
  it('stops pgmux gracefully, as SIGTERM does', async () => {
    const own = await startPgmux({
      settings: { admin_users: ADMIN.name, log_connections: false },
      databases: { [DB.show]: { dbname: db } },
      users: { [APP_ROLE.name]: { password: APP_ROLE.password }, [ADMIN.name]: { password: ADMIN.password } },
    });
    const client = new pg.Client({ host: '127.0.0.1', port: own.port, user: APP_ROLE.name, password: APP_ROLE.password, database: DB.show });
    client.on('error', () => undefined);
    await client.connect();
    await client.query('SELECT 1');
    const adm = new pg.Client({ host: '127.0.0.1', port: own.port, user: ADMIN.name, password: ADMIN.password, database: 'pgbouncer' });
    adm.on('error', () => undefined);
    await adm.connect();
    const r = await adm.query('SHUTDOWN');
    expect(r.command).toBe('SHUTDOWN');
    await own.pgmux.stop(); // the same stop SHUTDOWN started: resolves when it is done
    await expect(client.query('SELECT 1')).rejects.toThrow();
    const late = new pg.Client({ host: '127.0.0.1', port: own.port, user: APP_ROLE.name, password: APP_ROLE.password, database: DB.show });
    await expect(late.connect()).rejects.toThrow();
    await late.end().catch(() => undefined);
    await client.end().catch(() => undefined);
    await adm.end().catch(() => undefined);
  });
});
