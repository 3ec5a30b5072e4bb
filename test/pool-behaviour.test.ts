/** Shared caps, replacement of dead server connections, and backpressure from a slow reader. */
import net from 'node:net';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, createTestDatabase } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { APP_ROLE, SCRAM_ROLE } from './harness/roles.js';

let db: string;
let admin: pg.Client;
const users = {
  [APP_ROLE.name]: { password: APP_ROLE.password },
  [SCRAM_ROLE.name]: { password: SCRAM_ROLE.password },
};

beforeAll(async () => {
  db = await createTestDatabase('poolbeh');
  admin = await adminClient(db);
});
afterAll(async () => admin?.end());

async function connect(px: TestPgmux, user = APP_ROLE): Promise<pg.Client> {
  const client = new pg.Client(px.url('app', user.name, user.password));
  await client.connect();
  return client;
}

async function backends(): Promise<number> {
  return (await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()", [db])).rows[0].n;
}

describe('max_db_connections', () => {
  let px: TestPgmux;
  beforeAll(async () => {
    px = await startPgmux({ settings: { default_pool_size: 5, max_db_connections: 2 }, databases: { app: { dbname: db } }, users });
  });
  afterAll(async () => px?.stop());

  it('caps server connections across the pools of one database, and both users are served', async () => {
    let max = 0;
    const clients = [
      ...(await Promise.all(Array.from({ length: 10 }, () => connect(px, APP_ROLE)))),
      ...(await Promise.all(Array.from({ length: 10 }, () => connect(px, SCRAM_ROLE)))),
    ];
    const work = Promise.all(
      clients.map(async (c) => {
        for (let i = 0; i < 5; i++) await c.query('select pg_sleep(0.01), current_user');
        return (await c.query('select current_user as u')).rows[0].u as string;
      }),
    );
    let done = false;
    void work.finally(() => (done = true));
    while (!done) {
      max = Math.max(max, await backends());
      await new Promise((r) => setTimeout(r, 10));
    }
    const who = await work;
    expect(who.filter((u) => u === APP_ROLE.name)).toHaveLength(10);
    expect(who.filter((u) => u === SCRAM_ROLE.name)).toHaveLength(10);
    expect(max).toBeGreaterThan(0);
    expect(max).toBeLessThanOrEqual(2);
    await Promise.all(clients.map((c) => c.end()));
  });
});

describe('server connections that die', () => {
  let px: TestPgmux;
  beforeAll(async () => {
    px = await startPgmux({ settings: { default_pool_size: 1 }, databases: { app: { dbname: db } }, users });
  });
  afterAll(async () => px?.stop());

  it('are replaced: a backend terminated while idle in the pool does not break the next query', async () => {
    const client = await connect(px);
    const pid = (await client.query('select pg_backend_pid() as pid')).rows[0].pid;
    await admin.query('select pg_terminate_backend($1)', [pid]);
    await new Promise((r) => setTimeout(r, 100));
    const r = await client.query('select pg_backend_pid() as pid');
    expect(r.rows[0].pid).not.toBe(pid);
    await client.end();
  });

  it('a backend terminated mid-transaction gives its client a clear error; other clients carry on', async () => {
    const victim = await connect(px);
    victim.on('error', () => {});
    await victim.query('BEGIN');
    const pid = (await victim.query('select pg_backend_pid() as pid')).rows[0].pid;
    await admin.query('select pg_terminate_backend($1)', [pid]);
    const err = (await victim.query('select 1').then(
      () => null,
      (e: unknown) => e,
    )) as (Error & { code?: string }) | null;
    expect(err).not.toBeNull();
    // Either Postgres's own 57P01 reached the client, or pgmux's 08006 naming the lost server.
    if (err?.code !== undefined) expect(['57P01', '08006']).toContain(err.code);
    const other = await connect(px);
    expect((await other.query('select 5 as five')).rows[0].five).toBe(5);
    await other.end();
  });
});

describe('backpressure', () => {
  let px: TestPgmux;
  beforeAll(async () => {
    px = await startPgmux({ settings: { default_pool_size: 1, auth_type: 'trust' }, databases: { app: { dbname: db } }, users });
  });
  afterAll(async () => px?.stop());

  it('a client that stops reading makes pgmux stop reading from the server (the result is not buffered)', async () => {
    const socket = net.connect(px.port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    socket.write(serialize.startup({ user: APP_ROLE.name, database: 'app' }));
    // Wait for ReadyForQuery after login.
    await new Promise<void>((resolve) => {
      let seen = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        seen = Buffer.concat([seen, chunk]);
        if (seen.includes(Buffer.from([0x5a, 0, 0, 0, 5, 0x49]))) {
          socket.off('data', onData);
          resolve();
        }
      };
      socket.on('data', onData);
    });
    socket.pause();
    // ~200 MB of rows.
    socket.write(serialize.query("select repeat('x', 1000) from generate_series(1, 200000)"));
    await new Promise((r) => setTimeout(r, 1500));
    const server = [...px.pgmux.registry.pools.values()][0].active.values().next().value;
    expect(server).toBeDefined();
    const readWhilePaused = server!.socket.bytesRead;
    expect(readWhilePaused).toBeLessThan(32 * 1024 * 1024);

    // Now read everything: the whole result arrives.
    let received = 0;
    const done = new Promise<void>((resolve) => {
      let tail = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
        tail = Buffer.concat([tail, chunk]).subarray(-6);
        if (tail.equals(Buffer.from([0x5a, 0, 0, 0, 5, 0x49]))) resolve();
      });
    });
    socket.resume();
    await done;
    expect(received).toBeGreaterThan(200_000 * 1000);
    socket.end();
  }, 60_000);
});

describe('server_check_query and connect_query', () => {
  let px: TestPgmux;
  beforeAll(async () => {
    px = await startPgmux({
      settings: { default_pool_size: 1, server_check_delay: 0 },
      databases: { app: { dbname: db, connect_query: "SET work_mem = '7MB'" } },
      users,
    });
  });
  afterAll(async () => px?.stop());

  it('runs connect_query once on each new server connection', async () => {
    const client = await connect(px);
    expect((await client.query('show work_mem')).rows[0].work_mem).toBe('7MB');
    await client.end();
  });

  it('checks an idle connection before reuse, so a backend killed while idle is replaced without the client seeing an error', async () => {
    const client = await connect(px);
    const pid = (await client.query('select pg_backend_pid() as pid')).rows[0].pid;
    // Kill it and ask again at once: with server_check_delay 0 every reuse is checked first.
    await admin.query('select pg_terminate_backend($1)', [pid]);
    const r = await client.query('select pg_backend_pid() as pid');
    expect(r.rows[0].pid).not.toBe(pid);
    await client.end();
  });
});
