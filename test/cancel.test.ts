/**
 * Cancel requests through pgmux (transaction mode, pool of 2): a cancel reaches exactly the query
 * of the client it names, whether that client is running on a server or queued for one, and the
 * cancelled connection stays usable.
 */
import net from 'node:net';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from '../src/pool/pool.js';
import { ClientTracker } from './harness/clients.js';
import { adminClient, createTestDatabase, pgInfo } from './harness/context.js';
import { FaultProxy } from './harness/fault-proxy.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { APP_ROLE } from './harness/roles.js';
import { sleep } from './harness/wait.js';

let px: TestPgmux;
let db: string;
let admin: pg.Client;

beforeAll(async () => {
  db = await createTestDatabase('cancel');
  admin = await adminClient(db);
  px = await startPgmux({
    settings: { default_pool_size: 2, max_client_conn: 200, query_wait_timeout: '20s', log_connections: false, log_disconnections: false },
    databases: { app: { dbname: db } },
    users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
  });
});

afterAll(async () => {
  await px?.stop();
  await admin?.end();
});

const opened = new ClientTracker();
afterEach(() => opened.endAll());

function connect(): Promise<pg.Client> {
  return opened.connect(px);
}

function pool(): Pool {
  return [...px.pgmux.registry.pools.values()][0];
}

async function until(what: string, done: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** The BackendKeyData pgmux gave a node-postgres client. */
function keyOf(client: pg.Client): { processID: number; secretKey: number } {
  const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
  expect(typeof processID).toBe('number');
  return { processID, secretKey };
}

/** A raw CancelRequest to pgmux on a new connection, as libpq sends it; resolves when pgmux closes it. */
function sendCancel(processID: number, secretKey: number, port = px.port): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', reject);
    socket.on('connect', () => socket.write(serialize.cancel(processID, secretKey)));
    socket.on('close', () => resolve());
    socket.setTimeout(5000, () => socket.destroy(new Error('pgmux did not close the cancel connection')));
  });
}

interface Outcome {
  ok: boolean;
  code?: string;
  ms: number;
}

function timed(p: Promise<unknown>): Promise<Outcome> {
  const start = Date.now();
  return p.then(
    () => ({ ok: true, ms: Date.now() - start }),
    (err: unknown) => ({ ok: false, code: (err as { code?: string }).code, ms: Date.now() - start }),
  );
}

async function runningSleeps(): Promise<number> {
  const r = await admin.query<{ n: number }>(
    "select count(*)::int as n from pg_stat_activity where datname = $1 and state = 'active' and query like 'select pg_sleep%'",
    [db],
  );
  return r.rows[0].n;
}

describe('cancel', () => {
  it('cancels only the query of the client it names; a wrong key cancels nothing', async () => {
    const a = await connect();
    const b = await connect();
    const started = Date.now();
    const qa = timed(a.query('select pg_sleep(5)'));
    const qb = timed(b.query('select pg_sleep(5)'));
    await until('both sleeps running on the servers', async () => (await runningSleeps()) === 2);

    // B's process id with a wrong secret: ignored, as PostgreSQL ignores it.
    const kb = keyOf(b);
    await sendCancel(kb.processID, (kb.secretKey + 1) | 0);
    const ka = keyOf(a);
    const cancelledAt = Date.now();
    await sendCancel(ka.processID, ka.secretKey);

    const ra = await qa;
    expect(ra.ok).toBe(false);
    expect(ra.code).toBe('57014');
    expect(started + ra.ms - cancelledAt).toBeLessThan(3000);

    const rb = await qb;
    expect(rb).toMatchObject({ ok: true });
    expect(rb.ms).toBeGreaterThanOrEqual(4500);

    // Both connections work afterwards.
    expect((await a.query<{ v: number }>('select 1 as v')).rows[0].v).toBe(1);
    expect((await b.query<{ v: number }>('select 2 as v')).rows[0].v).toBe(2);
  }, 20_000);

  it('a client queued for a server is taken out of the queue with 57014 and stays usable; the running queries are untouched', async () => {
    const sleepers = await Promise.all([connect(), connect()]);
    const queued = await connect();
    const runs = sleepers.map((c) => timed(c.query('select pg_sleep(3)')));
    await until('both sleeps running on the servers', async () => (await runningSleeps()) === 2);

    const q = timed(queued.query('select 1 as v'));
    await until('the third client to queue', () => pool().waiting.length === 1);
    const k = keyOf(queued);
    await sendCancel(k.processID, k.secretKey);
    const r = await q;
    expect(r.ok).toBe(false);
    expect(r.code).toBe('57014');
    expect(r.ms).toBeLessThan(2000);
    expect(pool().waiting.length).toBe(0);

    // Still usable: this one waits for a server and runs.
    expect((await queued.query<{ v: number }>('select 7 as v')).rows[0].v).toBe(7);
    for (const run of await Promise.all(runs)) {
      expect(run.ok).toBe(true);
      expect(run.ms).toBeGreaterThanOrEqual(2500);
    }
  }, 20_000);

  it('a cancel for an idle client does nothing', async () => {
    const idle = await connect();
    const busy = await connect();
    const run = timed(busy.query('select pg_sleep(1)'));
    await until('the sleep to run', async () => (await runningSleeps()) === 1);
    const k = keyOf(idle);
    await sendCancel(k.processID, k.secretKey);
    expect(await run).toMatchObject({ ok: true });
    expect((await idle.query<{ v: number }>('select 3 as v')).rows[0].v).toBe(3);
  });

  it('postgres.js query.cancel(): 20 clients on 2 servers, the odd ones cancelled (running or queued), the even ones complete', async () => {
    const sqls = Array.from({ length: 20 }, () => postgres(px.url('app', APP_ROLE.name, APP_ROLE.password), { max: 1, onnotice: () => undefined }));
    try {
      // Connected and idle first, so every query below goes out at once.
      await Promise.all(sqls.map((sql) => sql`select 1`));
      const queries = sqls.map((sql) => sql`select pg_sleep(0.4)`);
      const outcomes = queries.map((q) => timed(q.then((rows) => rows)));
      await until('two sleeps running and the rest queued', async () => (await runningSleeps()) === 2 && pool().waiting.length === 18);
      queries.forEach((q, i) => {
        if (i % 2 === 1) q.cancel();
      });
      const results = await Promise.all(outcomes);
      results.forEach((r, i) => {
        if (i % 2 === 1) expect({ i, ok: r.ok, code: r.code }).toEqual({ i, ok: false, code: '57014' });
        else expect({ i, ok: r.ok }).toEqual({ i, ok: true });
      });
      // Every connection still works.
      const after = await Promise.all(sqls.map((sql, i) => sql<Array<{ v: number }>>`select ${i}::int as v`));
      after.forEach((rows, i) => expect(rows[0].v).toBe(i));
    } finally {
      await Promise.all(sqls.map((sql) => sql.end({ timeout: 1 })));
    }
  }, 30_000);
});

describe('a cancel that reaches PostgreSQL after the query it was meant for has ended', () => {
  // pgmux in front of a fault proxy that slows only connections opened from a given moment on: the cancel request
  // pgmux sends on a new connection then arrives late, while the pooled server connection runs at full speed.
  let proxy: FaultProxy;
  let late: TestPgmux;

  beforeAll(async () => {
    const info = pgInfo();
    proxy = await FaultProxy.start({ host: info.host, port: info.port });
    late = await startPgmux({
      settings: { default_pool_size: 1, query_wait_timeout: '20s', admin_users: APP_ROLE.name, log_connections: false, log_disconnections: false },
      databases: { app: { dbname: db, host: proxy.host, port: proxy.port } },
      users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
    });
  });

  afterAll(async () => {
    await late?.stop();
    await proxy?.close();
  });

  async function poolRow(console: pg.Client): Promise<Record<string, unknown>> {
    const rows = (await console.query<Record<string, unknown>>('SHOW POOLS')).rows;
    return rows.find((r) => r.database === 'app') as Record<string, unknown>;
  }

  it("never cancels the next client's query on that server: the server waits for the cancel to be acted on (SHOW POOLS sv_being_canceled)", async () => {
    const a = await opened.connect(late);
    const b = await opened.connect(late);
    const console = await opened.connect(late, { database: 'pgbouncer' });
    await a.query('select 1'); // the pool's one server is open
    proxy.delayNewConnections(700);

    const qa = timed(a.query('select pg_sleep(0.3)'));
    await until("A's sleep running", async () => (await runningSleeps()) === 1);
    const k = keyOf(a);
    const cancelSentAt = Date.now();
    let cancelClosedAt = 0;
    const cancel = sendCancel(k.processID, k.secretKey, late.port).then(() => {
      cancelClosedAt = Date.now();
    });
    // B queues behind A for the pool's one server.
    const qb = timed(b.query('select pg_sleep(0.5), 2 as b'));

    // A's sleep ends before its cancel gets through (as on a slow network); its server is held back, not handed to B.
    expect(await qa).toMatchObject({ ok: true });
    const held = await poolRow(console);
    expect(held).toMatchObject({ cl_active_cancel_req: 1, sv_active_cancel: 1, sv_being_canceled: 1, sv_active: 0, sv_idle: 0, cl_waiting: 1 });

    // B runs once PostgreSQL has acted on the cancel (and closed its connection), and is not the one cancelled.
    const rb = await qb;
    expect(rb).toMatchObject({ ok: true });
    await cancel;
    // pgmux closed the client's cancel request only once PostgreSQL had closed its own, as a direct cancel behaves.
    expect(cancelClosedAt - cancelSentAt).toBeGreaterThanOrEqual(600);
    const after = await poolRow(console);
    expect(after).toMatchObject({ cl_active_cancel_req: 0, sv_active_cancel: 0, sv_being_canceled: 0 });
    expect((await a.query<{ v: number }>('select 3 as v')).rows[0].v).toBe(3);
  }, 20_000);

  it("reaches a query that waited behind pgmux's own queries on the server: it runs, and is cancelled as directly", async () => {
    const a = await opened.connect(late);
    await a.query('select 1');
    // A slow link to the server: pgmux's settings capture after a SET takes a while, and the client's next query
    // waits for it in pgmux.
    proxy.delay(200, 'to-server');
    try {
      await a.query("set statement_timeout = '50s'");
      const started = Date.now();
      const q = timed(a.query('select pg_sleep(3)'));
      const k = keyOf(a);
      await sendCancel(k.processID, k.secretKey, late.port);
      const r = await q;
      expect(r).toMatchObject({ ok: false, code: '57014' });
      expect(Date.now() - started).toBeLessThan(2500);
    } finally {
      proxy.heal();
    }
    expect((await a.query<{ statement_timeout: string }>('show statement_timeout')).rows[0].statement_timeout).toBe('50s');
  }, 20_000);
});
