/**
 * An upstream that is down or refusing (issue 11, part 2):
 *
 * - down when pgmux starts: pgmux starts anyway, /readyz answers 503 naming the database;
 * - down while clients connect: every client gets the error at once (08006 naming the pool and the cause, or
 *   PostgreSQL's own error when it refuses the login), not after server_login_retry (15 s by default) or
 *   query_wait_timeout; before this, the second client waited for server_login_retry;
 * - the circuit breaker: while logins fail pgmux connects at a bounded rate (server_login_retry_min, doubling up to
 *   server_login_retry, one attempt at a time), however many clients ask; a logged-in transaction-mode client
 *   keeps its connection (ERROR, not FATAL) and uses it again once the upstream is back.
 *
 * The upstream is the shared cluster behind a fault proxy (test/harness/fault-proxy.ts) that refuses, resets or
 * is not listening at all; recovery times are printed.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ClientTracker, type PgError } from './harness/clients.js';
import { createTestDatabase, pgInfo } from './harness/context.js';
import { FaultProxy } from './harness/fault-proxy.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { freePort } from './harness/postgres.js';
import { runPsql } from './harness/psql.js';
import { APP_ROLE } from './harness/roles.js';
import { waitFor } from './harness/wait.js';

const users = { [APP_ROLE.name]: { password: APP_ROLE.password } };
const settings = { pool_mode: 'transaction', default_pool_size: 3, log_connections: false, log_disconnections: false };
const timings: string[] = [];
const tracker = new ClientTracker();
let db: string;

interface ReadyBody {
  status: string;
  reasons: string[];
  databases: Record<string, { ready: boolean; upstream: string; detail: string }>;
}

async function readyz(px: TestPgmux): Promise<{ status: number; body: ReadyBody }> {
  const res = await fetch(`${px.metricsUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as ReadyBody };
}

/** Logs in through pgmux and runs a query; the error and how long it took to come. */
async function attempt(px: TestPgmux): Promise<{ err: PgError | null; ms: number }> {
  const t0 = Date.now();
  const client = new pg.Client({ connectionString: px.url('app', APP_ROLE.name, APP_ROLE.password), connectionTimeoutMillis: 20_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('select 1');
    return { err: null, ms: Date.now() - t0 };
  } catch (err) {
    return { err: err as PgError, ms: Date.now() - t0 };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** ms until a query through pgmux succeeds, polling every 20 ms. */
async function untilServed(px: TestPgmux, timeoutMs = 10_000): Promise<number> {
  const t0 = Date.now();
  await waitFor(async () => (await attempt(px)).err === null, 'a query through pgmux to succeed', timeoutMs, 20);
  return Date.now() - t0;
}

beforeAll(async () => {
  db = await createTestDatabase('down');
});

afterEach(async () => {
  await tracker.endAll();
});

afterAll(() => {
  console.log(`upstream down:\n  ${timings.join('\n  ')}`);
});

describe('upstream down when pgmux starts', () => {
  let px: TestPgmux;
  let port: number;
  let proxy: FaultProxy | undefined;
  beforeAll(async () => {
    port = await freePort();
    px = await startPgmux({ settings, databases: { app: { dbname: db, host: '127.0.0.1', port } }, users, metrics: true });
  });
  afterAll(async () => {
    await px?.stop();
    await proxy?.close();
  });

  it('starts; /healthz 200, /readyz 503 naming the database; every client is told at once; served within a second of the upstream listening', async () => {
    expect((await fetch(`${px.metricsUrl}/healthz`)).status).toBe(200);
    const before = await readyz(px);
    expect(before.status).toBe(503);
    expect(before.body.databases.app).toMatchObject({ ready: false, upstream: `127.0.0.1:${port}` });
    expect(before.body.reasons.join('\n')).toMatch(new RegExp(`database "app" \\(127\\.0\\.0\\.1:${port}\\): TCP connect failed .*ECONNREFUSED`));

    // Five clients one after another: each gets 08006 at once (the second used to wait server_login_retry, 15 s).
    const tries = [];
    for (let i = 0; i < 5; i++) tries.push(await attempt(px));
    for (const { err, ms } of tries) {
      expect(err?.code).toBe('08006');
      expect(err?.message).toBe(`pgmux could not connect to server 127.0.0.1:${port} for pool "app/${APP_ROLE.name}": ECONNREFUSED`);
      expect(ms).toBeLessThan(1000);
    }
    timings.push(`down at start: 5 clients got 08006 after ${tries.map((t) => t.ms).join(', ')} ms`);

    // psql shows the same, with the hint.
    const psql = await runPsql(`host=127.0.0.1 port=${px.port} dbname=app user=${APP_ROLE.name}`, ['select 1'], APP_ROLE.password);
    expect(psql.code).toBe(2);
    expect(psql.stderr).toMatch(/FATAL: {2}pgmux could not connect to server .* for pool "app\/app": ECONNREFUSED/);
    expect(psql.stderr).toMatch(/HINT: {2}Check that the database's host and port/);

    // Now that a pool has tried, /readyz names the login failure.
    const during = await readyz(px);
    expect(during.status).toBe(503);
    expect(during.body.databases.app.detail).toMatch(/server login failed \d+ times? in a row, last .*: 08006 pgmux could not connect/);

    // The upstream comes up on that port.
    const info = pgInfo();
    proxy = await FaultProxy.start({ host: info.host, port: info.port }, port);
    const ms = await untilServed(px);
    timings.push(`down at start: served ${ms} ms after the upstream listened`);
    expect(ms).toBeLessThan(1000);
    expect((await readyz(px)).status).toBe(200);
  });
});

describe('upstream refusing logins with its own error', () => {
  let px: TestPgmux;
  beforeAll(async () => {
    px = await startPgmux({ settings, databases: { app: { dbname: `${db}_missing` } }, users });
  });
  afterAll(async () => px?.stop());

  it('every client gets PostgreSQL\'s 3D000 at once, with a DETAIL saying pgmux is backing off', async () => {
    const tries = [];
    for (let i = 0; i < 5; i++) tries.push(await attempt(px));
    for (const { err, ms } of tries) {
      expect(err?.code).toBe('3D000');
      expect(err?.message).toBe(`database "${db}_missing" does not exist`);
      expect(ms).toBeLessThan(1000);
    }
    // Those that came while pgmux was waiting to try again are told so.
    const backingOff = tries.map((t) => (t.err as PgError & { detail?: string }).detail).filter((d) => d !== undefined);
    for (const detail of backingOff) expect(detail).toMatch(/failed to log in to the server \d+ times? in a row; it tries again in \d+ ms \(server_login_retry_min/);
    timings.push(`3D000 from the server: 5 clients told after ${tries.map((t) => t.ms).join(', ')} ms`);
  });
});

describe('the circuit breaker', () => {
  let px: TestPgmux;
  let proxy: FaultProxy;
  beforeAll(async () => {
    const info = pgInfo();
    proxy = await FaultProxy.start({ host: info.host, port: info.port });
    px = await startPgmux({
      settings: { ...settings, server_login_retry: '1s', server_login_retry_min: '100ms' },
      databases: { app: { dbname: db, host: proxy.host, port: proxy.port } },
      users,
      metrics: true,
    });
  });
  afterAll(async () => {
    await px?.stop();
    await proxy?.close();
  });

  it('20 clients hammering a refusing upstream for 3 s cause a handful of connection attempts; an idle client keeps its connection', async () => {
    const idle = await tracker.connect(px);
    expect((await idle.query('select 1 as n')).rows[0].n).toBe(1);
    proxy.refuse('rst');
    proxy.drop('rst');
    await waitFor(() => px.pgmux.registry.serverCount === 0, 'the dropped connections to be noticed');

    const from = proxy.accepted;
    const t0 = Date.now();
    let answered = 0;
    let slowest = 0;
    const codes = new Set<string | undefined>();
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        while (Date.now() - t0 < 3000) {
          const { err, ms } = await attempt(px);
          codes.add(err?.code);
          slowest = Math.max(slowest, ms);
          answered++;
        }
      }),
    );
    const attempts = proxy.acceptedAt.slice(from);
    const gaps = attempts.slice(1).map((at, i) => at - attempts[i]);
    timings.push(`breaker: ${answered} logins in 3 s answered (slowest ${slowest} ms), ${attempts.length} connection attempts, gaps ${gaps.join(', ')} ms`);
    expect(codes).toEqual(new Set(['08006']));
    expect(answered).toBeGreaterThan(100);
    expect(slowest).toBeLessThan(1000);
    // 100, 200, 400, 800 ms, then every 1 s (server_login_retry), one at a time: about 6 in 3 s.
    expect(attempts.length).toBeLessThanOrEqual(10);
    expect(attempts.length).toBeGreaterThanOrEqual(3);
    for (const gap of gaps.slice(4)) expect(gap).toBeLessThan(1000 + 400); // capped at server_login_retry (+ janitor tick)

    // The idle client is told with an ERROR and keeps its connection.
    const err = (await idle.query('select 2').then(
      () => null,
      (e: unknown) => e,
    )) as PgError | null;
    expect(err?.code).toBe('08006');
    expect(err?.severity).toBe('ERROR');

    const metrics = await (await fetch(`${px.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/pgmux_pool_server_login_failures_consecutive\{database="app",user="app",pool_mode="transaction"\} [1-9]/);
    expect(metrics).toMatch(/pgmux_server_login_failures_total\{database="app",user="app",pool_mode="transaction"\} [1-9]/);

    proxy.refuse(false);
    const t1 = Date.now();
    await waitFor(async () => (await idle.query('select 3 as n').catch(() => null))?.rows[0].n === 3, 'the idle client to be served again', 5000, 20);
    const back = Date.now() - t1;
    timings.push(`breaker: the idle client was served ${back} ms after the upstream accepted again (waits capped at 1 s)`);
    expect(back).toBeLessThan(1000 + 500);
  });
});
