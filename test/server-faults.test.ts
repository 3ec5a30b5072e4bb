/**
 * The server side going wrong, through a fault-injecting TCP proxy (test/harness/fault-proxy.ts) between pgmux and
 * the shared cluster (issue 11, part 2): damaged and truncated server messages, connections dropped with RST or
 * FIN, a blackholed upstream. Each time the client of the broken server connection gets a clear error with its
 * SQLSTATE, pgmux closes that server connection, a bystander on another database entry (not through the proxy)
 * never notices, and the pool serves new transactions once the fault is gone (the time it took is printed).
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ClientTracker, connectClient, type PgError } from './harness/clients.js';
import { adminClient, createTestDatabase, pgInfo } from './harness/context.js';
import { FaultProxy } from './harness/fault-proxy.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { APP_ROLE } from './harness/roles.js';
import { sleep, waitFor } from './harness/wait.js';

const QUERY_TIMEOUT_MS = 1000;
const CONNECT_TIMEOUT_MS = 1500;

let db: string;
let proxy: FaultProxy;
let px: TestPgmux;
const tracker = new ClientTracker();
const timings: string[] = [];

/** A bystander: a client of a database entry that does not go through the proxy, running queries all along. */
let bystander: { stop(): Promise<{ queries: number; errors: string[] }> };

function startBystander(): typeof bystander {
  let running = true;
  let queries = 0;
  const errors: string[] = [];
  const loop = (async () => {
    const client = await connectClient(px, { database: 'direct', ignoreErrors: true });
    while (running) {
      try {
        const r = await client.query('select $1::int as n', [queries]);
        if (r.rows[0].n !== queries) errors.push(`wrong answer ${r.rows[0].n} for ${queries}`);
        queries++;
      } catch (err) {
        errors.push(`${(err as PgError).code} ${(err as Error).message}`);
        return;
      }
      await sleep(5);
    }
    await client.end();
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { queries, errors };
    },
  };
}

/** The error `sql` fails with on a new client through the proxy (it must fail within `withinMs`). */
async function failure(sql: string, withinMs: number): Promise<{ err: PgError; ms: number }> {
  const client = await tracker.connect(px);
  const t0 = Date.now();
  const err = (await client.query(sql).then(
    () => null,
    (e: unknown) => e,
  )) as PgError | null;
  const ms = Date.now() - t0;
  expect(err, `${sql} should have failed`).not.toBeNull();
  expect(ms, `${sql} failed after ${ms} ms`).toBeLessThan(withinMs);
  return { err: err as PgError, ms };
}

/** ms until a new client through the proxy runs a query (polling), and the answer is right. */
async function recovered(): Promise<number> {
  const t0 = Date.now();
  await waitFor(
    async () => {
      const client = new pg.Client(px.url('app', APP_ROLE.name, APP_ROLE.password));
      client.on('error', () => undefined);
      try {
        await client.connect();
        const r = await client.query('select 41 + 1 as n');
        return r.rows[0].n === 42;
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    'a query through the proxy to succeed again',
    15_000,
    20,
  );
  return Date.now() - t0;
}

beforeAll(async () => {
  db = await createTestDatabase('faults');
  const info = pgInfo();
  proxy = await FaultProxy.start({ host: info.host, port: info.port });
  px = await startPgmux({
    settings: {
      pool_mode: 'transaction',
      default_pool_size: 4,
      query_timeout: `${QUERY_TIMEOUT_MS}ms`,
      server_connect_timeout: `${CONNECT_TIMEOUT_MS}ms`,
      query_wait_timeout: '4s',
      log_connections: false,
      log_disconnections: false,
    },
    databases: {
      app: { dbname: db, host: proxy.host, port: proxy.port },
      direct: { dbname: db },
      session: { dbname: db, pool_mode: 'session' },
    },
    users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
  });
  bystander = startBystander();
});

afterEach(async () => {
  proxy.heal();
  await tracker.endAll();
});

afterAll(async () => {
  const seen = await bystander?.stop();
  await tracker.endAll();
  await px?.stop();
  await proxy?.close();
  console.log(`server faults through the proxy (recovery = first good query after the fault is gone):\n  ${timings.join('\n  ')}`);
  expect(seen?.errors).toEqual([]);
  expect(seen?.queries).toBeGreaterThan(0);
});

describe('damaged server messages', () => {
  it.each([
    { name: 'unknown type byte in RowDescription', type: 'T', how: 'type' as const, codes: ['08006'] },
    { name: 'impossible length in DataRow', type: 'D', how: 'length' as const, codes: ['08006'] },
    // Random bytes may frame as a plausible message that never completes: then query_timeout ends it.
    { name: 'garbage in place of CommandComplete', type: 'C', how: 'garbage' as const, codes: ['08006', '57014'] },
    { name: 'garbage in place of ReadyForQuery', type: 'Z', how: 'garbage' as const, codes: ['08006', '57014'] },
  ])('$name: the client gets a clear error, pgmux closes that server connection', async ({ name, type, how, codes }) => {
    await recovered(); // a warm connection
    proxy.corruptNext({ type, how, seed: 7 });
    const { err, ms } = await failure('select 1 as one', 3 * QUERY_TIMEOUT_MS);
    expect(proxy.armed).toBe(false);
    expect(codes).toContain(err.code);
    expect(err.message).toContain(`pool "app/${APP_ROLE.name}"`);
    if (err.code === '08006') expect(err.message).toMatch(/protocol|unknown message type|desynchronisation/);
    else expect(err.message).toMatch(/query_timeout/);
    timings.push(`${name}: ${err.code} after ${ms} ms, recovered in ${await recovered()} ms`);
  });
});

describe('truncated server messages', () => {
  it.each([
    { name: 'RowDescription cut after 3 bytes, then FIN', type: 'T', keep: 3, then: 'fin' as const },
    { name: 'RowDescription cut in its body, then RST', type: 'T', keep: 12, then: 'rst' as const },
    { name: 'ReadyForQuery cut, then nothing (hang)', type: 'Z', keep: 2, then: 'hang' as const },
  ])('$name: the client gets a clear error', async ({ name, type, keep, then }) => {
    await recovered();
    proxy.truncateNext({ type, keep, then });
    const { err, ms } = await failure("select repeat('x', 100) as s", 3 * QUERY_TIMEOUT_MS);
    if (then === 'hang') {
      expect(err.code).toBe('57014');
      expect(err.message).toMatch(/query_timeout \(1000 ms\).*did not answer the cancel/);
    } else {
      expect(err.code).toBe('08006');
      expect(err.message).toMatch(new RegExp(`server connection for pool "app/${APP_ROLE.name}" was lost: (closed by server|ECONNRESET)`));
    }
    timings.push(`${name}: ${err.code} after ${ms} ms, recovered in ${await recovered()} ms`);
  });

  it('a DataRow cut after part of it was passed on: the client is closed without a message that could not be framed', async () => {
    // pgmux streams a row it has only part of; an ErrorResponse after that would be read as the rest of the
    // row. The client sees the connection end, as it would directly when a server dies mid-row.
    await recovered();
    proxy.truncateNext({ type: 'D', keep: 9, then: 'rst' });
    const { err, ms } = await failure("select repeat('x', 100) as s", 3 * QUERY_TIMEOUT_MS);
    expect(err.code).toBeUndefined();
    expect(err.message).toMatch(/Connection terminated unexpectedly/);
    timings.push(`DataRow cut mid-row, then RST: connection closed after ${ms} ms, recovered in ${await recovered()} ms`);
  });
});

describe('connections dropped', () => {
  it.each(['rst', 'fin'] as const)('with %s: a running query fails with 08006 at once, idle connections are replaced', async (how) => {
    await recovered();
    const busy = await tracker.connect(px);
    const running = busy.query('select pg_sleep(3)').then(
      () => null,
      (e: PgError) => e,
    );
    await waitFor(() => px.pgmux.registry.poolsOf('app')[0]?.active.size === 1, 'the sleep to hold a server');
    const t0 = Date.now();
    expect(proxy.drop(how)).toBeGreaterThanOrEqual(1);
    const err = await running;
    const ms = Date.now() - t0;
    expect(err?.code).toBe('08006');
    expect(err?.message).toMatch(/was lost: (closed by server|ECONNRESET)/);
    expect(ms).toBeLessThan(1000);
    timings.push(`drop with ${how.toUpperCase()}: running query failed after ${ms} ms, recovered in ${await recovered()} ms`);
  });
});

describe('a backend terminated by the server', () => {
  it.each([
    { name: 'idle in a transaction (transaction mode)', database: 'app', begin: true },
    { name: 'idle (session mode)', database: 'session', begin: false },
  ])('$name: the client gets PostgreSQL\'s own 57P01', async ({ database, begin }) => {
    const client = await tracker.connect(px, { database });
    if (begin) await client.query('begin');
    const pid = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
    const lost = new Promise<PgError>((resolve) => client.once('error', resolve));
    const admin = await adminClient();
    try {
      await admin.query('select pg_terminate_backend($1)', [pid]);
    } finally {
      await admin.end();
    }
    const err = await lost;
    expect(err.code).toBe('57P01');
    expect(err.message).toBe('terminating connection due to administrator command');
  });
});

describe('a blackholed upstream', () => {
  it('queries end with 57014 after query_timeout, new connections with 08006 after server_connect_timeout; forwarding again serves at once', async () => {
    await recovered();
    const pool = px.pgmux.registry.poolsOf('app')[0];
    proxy.blackhole();
    // A warm connection: the query is sent and nothing comes back; the cancel cannot get through either.
    const first = await failure('select 1', 2 * QUERY_TIMEOUT_MS + 1500);
    expect(first.err.code).toBe('57014');
    expect(first.err.message).toMatch(/query_timeout/);
    expect(first.ms).toBeGreaterThanOrEqual(2 * QUERY_TIMEOUT_MS - 250);
    // Every warm connection would go the same way. Without them (RECONNECT) pgmux must connect anew, and the
    // login cannot complete.
    pool.reconnect('test: new connections from here');
    const fresh = await failure('select 2', CONNECT_TIMEOUT_MS + 1500);
    expect(fresh.err.code).toBe('08006');
    expect(fresh.err.message).toMatch(/server_connect_timeout \(1500 ms\)/);
    expect(fresh.err.message).toContain(`pool "app/${APP_ROLE.name}"`);
    const t0 = Date.now();
    proxy.heal();
    const ms = await recovered();
    timings.push(
      `blackhole: warm query 57014 after ${first.ms} ms, new connection 08006 after ${fresh.ms} ms; recovered ${ms} ms after forwarding resumed (${Date.now() - t0} ms)`,
    );
    // server_login_retry_min (100 ms) doubling: one failure at most before the heal, so well under a second.
    expect(ms).toBeLessThan(1500);
  });
});

describe('a blackholed upstream and server_check_query', () => {
  let checked: TestPgmux;
  beforeAll(async () => {
    checked = await startPgmux({
      settings: { pool_mode: 'transaction', default_pool_size: 2, server_check_delay: '0', server_connect_timeout: `${CONNECT_TIMEOUT_MS}ms`, query_wait_timeout: '10s' },
      databases: { app: { dbname: db, host: proxy.host, port: proxy.port } },
      users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
    });
  });
  afterAll(async () => checked?.stop());

  it('a check that gets no answer closes that server after server_connect_timeout; the client is told, not left waiting', async () => {
    const client = await tracker.connect(checked);
    expect((await client.query('select 1 as n')).rows[0].n).toBe(1); // a warm server, checked before each use
    proxy.blackhole();
    const t0 = Date.now();
    const err = (await client.query('select 2').then(
      () => null,
      (e: unknown) => e,
    )) as PgError | null;
    const ms = Date.now() - t0;
    // The check on the warm server times out, then the new connection cannot log in: 08006, the client keeps its
    // connection (it is logged in, transaction mode).
    expect(err?.code).toBe('08006');
    expect(err?.message).toMatch(/server_connect_timeout \(1500 ms\)/);
    expect(ms).toBeLessThan(2 * CONNECT_TIMEOUT_MS + 1500);
    proxy.heal();
    const t1 = Date.now();
    await waitFor(async () => (await client.query('select 3 as n').catch(() => null))?.rows[0].n === 3, 'the client to be served again', 5000, 20);
    timings.push(`blackhole with server_check_query: 08006 after ${ms} ms ("${err?.message}"); the same client served ${Date.now() - t1} ms after forwarding resumed`);
  });
});

describe('a slow network', () => {
  it('a delay in both directions slows queries down and breaks nothing', async () => {
    await recovered();
    const client = await tracker.connect(px);
    proxy.delay(100);
    const t0 = Date.now();
    expect((await client.query('select 7 as n')).rows[0].n).toBe(7);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(180);
    proxy.delay(0);
  });
});
