/**
 * Admission control against connection storms: query_wait_notify, max_queued_clients_per_pool,
 * max_server_logins_per_pool / server_connect_rate, and max_client_logins_in_progress under a SCRAM login storm.
 */
import pg from 'pg';
import type { NoticeMessage } from 'pg-protocol/dist/messages.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient, type PgError } from './harness/clients.js';
import { createTestDatabase } from './harness/context.js';
import { initPgbench, runPgbench } from './harness/pgbench.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { APP_ROLE } from './harness/roles.js';
import { sleep, waitFor } from './harness/wait.js';

let db: string;
const users = { [APP_ROLE.name]: { password: APP_ROLE.password } };

beforeAll(async () => {
  db = await createTestDatabase('admission');
});

function poolOf(px: TestPgmux, database = 'app') {
  const pool = [...px.pgmux.registry.pools.values()].find((p) => p.database === database);
  if (pool === undefined) throw new Error(`no pool for ${database} yet`);
  return pool;
}

describe('query_wait_notify', () => {
  let px: TestPgmux;
  beforeAll(async () => {
    px = await startPgmux({
      settings: { default_pool_size: 1, query_wait_notify: '1s', log_connections: false, log_disconnections: false },
      databases: { app: { dbname: db } },
      users,
    });
  });
  afterAll(async () => px?.stop());

  it('tells a client queued longer than query_wait_notify once, naming the pool; not a client still logging in', async () => {
    const holder = await connectClient(px);
    const waiter = await connectClient(px);
    const notices: NoticeMessage[] = [];
    waiter.on('notice', (n) => notices.push(n));
    const held = holder.query('select pg_sleep(2.6)');
    await waitFor(() => poolOf(px).active.size === 1, 'the holder to get the only server');
    // A client that must log in through a server (a startup setting not seen before) queues too, during login.
    const loggingIn = new pg.Client({ connectionString: px.url('app', APP_ROLE.name, APP_ROLE.password), application_name: 'new_app_name' });
    const loginNotices: NoticeMessage[] = [];
    loggingIn.on('notice', (n) => loginNotices.push(n));
    const t0 = Date.now();
    const [answer] = await Promise.all([waiter.query('select 42 as n'), loggingIn.connect()]);
    expect(answer.rows[0].n).toBe(42);
    expect(Date.now() - t0).toBeGreaterThan(1500);
    expect(notices).toHaveLength(1);
    expect(notices[0].message).toMatch(/No server connection available in pool "app\/app", client being queued/);
    expect(notices[0].detail).toMatch(/query_wait_notify/);
    expect(loginNotices).toHaveLength(0);
    await held;
    // A new wait may be told again; a short wait is not.
    await waiter.query('select 1');
    expect(notices).toHaveLength(1);
    await Promise.all([holder.end(), waiter.end(), loggingIn.end()]);
  });
});

describe('max_queued_clients_per_pool', () => {
  let px: TestPgmux;
  beforeAll(async () => {
    px = await startPgmux({
      settings: { default_pool_size: 1, max_queued_clients_per_pool: 2, log_connections: false, log_disconnections: false },
      databases: { app: { dbname: db } },
      users,
    });
  });
  afterAll(async () => px?.stop());

  it('refuses a request beyond the bound at once with 53300 and a HINT naming the key; the connection stays usable', async () => {
    // The first login learns the server's parameters; later ones log in without a server.
    const first = await connectClient(px);
    const clients = [first, ...(await Promise.all(Array.from({ length: 3 }, () => connectClient(px))))];
    const held = clients[0].query('select pg_sleep(1.5)');
    await waitFor(() => poolOf(px).active.size === 1, 'the holder to get the only server');
    const queued = [clients[1].query('select 1 as n'), clients[2].query('select 2 as n')];
    await waitFor(() => poolOf(px).waiting.length === 2, 'two clients queued');
    const t0 = Date.now();
    const err = (await clients[3].query('select 3').then(
      () => null,
      (e: unknown) => e,
    )) as (PgError & { hint?: string }) | null;
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(err?.code).toBe('53300');
    expect(err?.severity).toBe('ERROR');
    expect(err?.message).toMatch(/app\/app/);
    expect(err?.message).toMatch(/max_queued_clients_per_pool/);
    expect(err?.hint).toMatch(/max_queued_clients_per_pool/);
    expect((await Promise.all(queued)).map((r) => r.rows[0].n)).toEqual([1, 2]);
    await held;
    expect((await clients[3].query('select 4 as n')).rows[0].n).toBe(4);
    await Promise.all(clients.map((c) => c.end()));
  });
});

describe('max_server_logins_per_pool and server_connect_rate', () => {
  let px: TestPgmux;
  const pools = ['p1', 'p2', 'p3', 'p4'];
  beforeAll(async () => {
    px = await startPgmux({
      settings: {
        default_pool_size: 20,
        max_server_logins_per_pool: 3,
        server_connect_rate: 0,
        max_client_conn: 400,
        log_connections: false,
        log_disconnections: false,
      },
      databases: Object.fromEntries(pools.map((p) => [p, { dbname: db }])),
      users,
    });
  });
  afterAll(async () => px?.stop());

  it('a burst of 200 clients over 4 pools never has more than 3 server logins in flight per pool, and all are served', async () => {
    const clients = pools.flatMap((p) => Array.from({ length: 50 }, () => new pg.Client(px.url(p, APP_ROLE.name, APP_ROLE.password))));
    await Promise.all(clients.map((c) => c.connect()));
    const answers = await Promise.all(clients.map((c, i) => c.query('select $1::int as i, pg_sleep(0.05)', [i])));
    expect(answers.map((r) => r.rows[0].i)).toEqual(clients.map((_, i) => i));
    for (const p of pools) {
      const pool = poolOf(px, p);
      expect(pool.stats.serverLoginsPeak).toBeGreaterThan(0);
      expect(pool.stats.serverLoginsPeak).toBeLessThanOrEqual(3);
      expect(pool.serverCount).toBeGreaterThan(3); // the pool still grew, a few logins at a time
    }
    await Promise.all(clients.map((c) => c.end()));
  });

  it('server_connect_rate spaces out new server connections', async () => {
    const slow = await startPgmux({
      settings: { default_pool_size: 20, server_connect_rate: 4, log_connections: false, log_disconnections: false },
      databases: { app: { dbname: db } },
      users,
    });
    try {
      const clients = await Promise.all(Array.from({ length: 12 }, () => connectClient(slow)));
      const t0 = Date.now();
      const running = Promise.all(clients.map((c) => c.query('select pg_sleep(0.8)')));
      await sleep(300);
      // A bucket of 4 (one second's worth at 4/s), refilled at 4/s.
      expect(poolOf(slow).serverCount).toBeLessThanOrEqual(6);
      await running;
      expect(Date.now() - t0).toBeGreaterThan(1000);
      await Promise.all(clients.map((c) => c.end()));
    } finally {
      await slow.stop();
    }
  });
});

describe('max_client_logins_in_progress: a SCRAM login storm while pgbench runs', () => {
  let px: TestPgmux;
  beforeAll(async () => {
    await initPgbench(db);
    px = await startPgmux({
      settings: { default_pool_size: 5, max_client_logins_in_progress: 20, max_client_conn: 1000, log_connections: false, log_disconnections: false },
      databases: { app: { dbname: db } },
      users,
    });
  });
  afterAll(async () => px?.stop());

  it('300 clients logging in with SCRAM at once all succeed; pgbench has no errors; logins in progress stay within the cap', { timeout: 30_000 }, async () => {
    const bench = runPgbench(['-n', '-b', 'select-only', '-c', '4', '-j', '2', '-T', '5', '-h', '127.0.0.1', '-p', String(px.port), '-U', APP_ROLE.name, 'app'], 25_000);
    await sleep(1000);
    let peak = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, px.pgmux.registry.loginsInProgress);
    }, 5);
    const storm = Array.from({ length: 300 }, () => new pg.Client(px.url('app', APP_ROLE.name, APP_ROLE.password)));
    const logins = await Promise.allSettled(storm.map((c) => c.connect().then(() => c.query('select 1 as one'))));
    clearInterval(sampler);
    const failed = logins.filter((r) => r.status === 'rejected');
    expect(failed.map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
    expect(peak).toBeLessThanOrEqual(20);
    await Promise.all(storm.map((c) => c.end()));
    const result = await bench;
    expect(result.code, result.output).toBe(0);
    expect(result.output).toMatch(/number of failed transactions: 0/);
    expect(px.pgmux.registry.loginsInProgress).toBe(0);
    expect(px.pgmux.registry.loginQueue.length).toBe(0);
  });
});

describe('client_login_slice: login work spread over event-loop turns', () => {
  let px: TestPgmux;
  beforeAll(async () => {
    px = await startPgmux({
      settings: { default_pool_size: 5, client_login_slice: '1ms', max_client_logins_in_progress: 0, max_client_conn: 1000, log_connections: false, log_disconnections: false },
      databases: { app: { dbname: db } },
      users,
    });
  });
  afterAll(async () => px?.stop());

  it('300 SCRAM logins at once with a 1 ms slice: some wait for a later turn, all succeed, nothing is left queued', { timeout: 30_000 }, async () => {
    const budget = px.pgmux.registry.loginBudget;
    const before = budget.deferredTotal;
    const storm = Array.from({ length: 300 }, () => new pg.Client(px.url('app', APP_ROLE.name, APP_ROLE.password)));
    const logins = await Promise.allSettled(storm.map((c) => c.connect().then(() => c.query('select 1 as one'))));
    const failed = logins.filter((r) => r.status === 'rejected');
    expect(failed.map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
    expect(logins.every((r) => r.status === 'fulfilled' && (r.value as pg.QueryResult).rows[0].one === 1)).toBe(true);
    expect(budget.deferredTotal).toBeGreaterThan(before);
    expect(budget.queued).toBe(0);
    await Promise.all(storm.map((c) => c.end()));
  });
});
