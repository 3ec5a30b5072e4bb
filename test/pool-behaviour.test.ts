/**
 * Shared caps (max_db_connections, and the idle connection it closes to make room for another pool), replacement of
 * dead server connections, server_check_query, connect_query, and backpressure from a slow reader.
 */
import net from 'node:net';
import type pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from '../src/pool/pool.js';
import { countBackends, watchBackends } from './harness/backends.js';
import { ClientTracker } from './harness/clients.js';
import { adminClient, createTestDatabase } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { APP_ROLE, SCRAM_ROLE, type TestRole } from './harness/roles.js';
import { sleep, waitFor, withTimeout } from './harness/wait.js';

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

const opened = new ClientTracker();
afterEach(() => opened.endAll());

function connect(px: TestPgmux, role: TestRole = APP_ROLE): Promise<pg.Client> {
  return opened.connect(px, { role });
}

async function backendPid(client: pg.Client): Promise<number> {
  return (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
}

/** Those of `pids` whose backends are still connected. */
async function alivePids(pids: number[]): Promise<number[]> {
  return (await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])', [pids])).rows.map((r) => r.pid);
}

/** The pool of `role` in pgmux database `app`. */
function poolOf(px: TestPgmux, role: TestRole): Pool {
  const pool = [...px.pgmux.registry.pools.values()].find((p) => p.database === 'app' && p.user === role.name);
  if (pool === undefined) throw new Error(`no pool app/${role.name}`);
  return pool;
}

describe('max_db_connections', () => {
  let px: TestPgmux;
  beforeAll(async () => {
    px = await startPgmux({ settings: { default_pool_size: 5, max_db_connections: 2 }, databases: { app: { dbname: db } }, users });
  });
  afterAll(async () => px?.stop());

  it('caps server connections across the pools of one database, and both users are served', async () => {
    const clients = [
      ...(await Promise.all(Array.from({ length: 10 }, () => connect(px, APP_ROLE)))),
      ...(await Promise.all(Array.from({ length: 10 }, () => connect(px, SCRAM_ROLE)))),
    ];
    const watch = watchBackends(admin, { database: db }, 10);
    let who: string[];
    try {
      who = await Promise.all(
        clients.map(async (c) => {
          for (let i = 0; i < 5; i++) await c.query('select pg_sleep(0.01), current_user');
          return (await c.query('select current_user as u')).rows[0].u as string;
        }),
      );
    } finally {
      await watch.stop();
    }
    expect(who.filter((u) => u === APP_ROLE.name)).toHaveLength(10);
    expect(who.filter((u) => u === SCRAM_ROLE.name)).toHaveLength(10);
    expect(watch.max).toBeGreaterThan(0);
    expect(watch.max).toBeLessThanOrEqual(2);
    await Promise.all(clients.map((c) => c.end()));
  });
});

describe('max_db_connections reached with idle servers of another pool', () => {
  const CAP = 3;
  /** A database of its own: backends of the tests before, still exiting, must not count towards the cap here. */
  let capDb: string;
  let px: TestPgmux;
  beforeAll(async () => {
    capDb = await createTestDatabase('poolbeh_cap');
    // query_wait_timeout is far beyond the waits below: a client that is not given room waits, it is not refused.
    px = await startPgmux({ settings: { default_pool_size: 5, max_db_connections: CAP, query_wait_timeout: '120s' }, databases: { app: { dbname: capDb } }, users });
  });
  afterAll(async () => px?.stop());

  it("closes one of user A's idle servers so that user B is served, never exceeding the cap", async () => {
    // User A fills the cap: CAP transactions open at once need CAP servers; after COMMIT they sit idle in A's pool.
    const a = await Promise.all(Array.from({ length: CAP }, () => connect(px, APP_ROLE)));
    await Promise.all(a.map((c) => c.query('BEGIN')));
    const aPids = await Promise.all(a.map(backendPid));
    expect(new Set(aPids).size).toBe(CAP);
    await Promise.all(a.map((c) => c.query('COMMIT')));
    const poolA = poolOf(px, APP_ROLE);
    await waitFor(() => poolA.idle.length === CAP, `${CAP} idle servers in the pool of ${APP_ROLE.name}`);
    expect(await countBackends(admin, { database: capDb })).toBe(CAP);

    // User B has no server and may not open one under the cap: pgmux must close an idle one of A's.
    const watch = watchBackends(admin, { database: capDb }, 10);
    let served: { u: string; pid: number };
    try {
      served = await withTimeout(
        (async () => {
          const b = await connect(px, SCRAM_ROLE);
          return (await b.query<{ u: string; pid: number }>('select current_user as u, pg_backend_pid() as pid')).rows[0];
        })(),
        20_000,
        `${SCRAM_ROLE.name} to be served while ${APP_ROLE.name}'s idle servers fill max_db_connections`,
      );
    } finally {
      await watch.stop();
    }
    expect(served.u).toBe(SCRAM_ROLE.name);
    expect(aPids).not.toContain(served.pid);
    // A's pool gave up exactly one idle server, and Postgres saw that backend go.
    expect(poolA.serverCount).toBe(CAP - 1);
    expect(poolA.idle.length).toBe(CAP - 1);
    await waitFor(async () => (await alivePids(aPids)).length === CAP - 1, `one of ${APP_ROLE.name}'s backends to exit`);
    expect(watch.max).toBeLessThanOrEqual(CAP);
    expect(await countBackends(admin, { database: capDb })).toBeLessThanOrEqual(CAP);
  }, 60_000);
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

describe('connect_query', () => {
  let px: TestPgmux;
  beforeAll(async () => {
    px = await startPgmux({ settings: { default_pool_size: 1 }, databases: { app: { dbname: db, connect_query: "SET work_mem = '7MB'" } }, users });
  });
  afterAll(async () => px?.stop());

  it('runs connect_query once on each new server connection', async () => {
    const client = await connect(px);
    expect((await client.query('show work_mem')).rows[0].work_mem).toBe('7MB');
    await client.end();
  });
});

describe('server_check_query', () => {
  /**
   * Long enough that back-to-back queries on a loaded CI machine reuse the server well within it; the tests wait
   * longer than this (a lower bound: waiting longer can only make the check due) to make it due.
   */
  const CHECK_DELAY_MS = 5000;
  let px: TestPgmux;

  beforeAll(async () => {
    // The check query leaves a trace: every attempt takes a number from check_attempts (sequences are not rolled
    // back), and a check that passes writes the backend's pid to check_passed. It fails, without the backend or
    // its socket going anywhere, on a backend whose pid is in check_fails_on.
    await admin.query(`
      CREATE SEQUENCE check_attempts;
      CREATE TABLE check_passed (pid int NOT NULL);
      CREATE TABLE check_fails_on (pid int PRIMARY KEY);
      CREATE FUNCTION server_check() RETURNS int LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM nextval('check_attempts');
        IF EXISTS (SELECT 1 FROM check_fails_on WHERE pid = pg_backend_pid()) THEN
          RAISE EXCEPTION 'server check failed on backend %', pg_backend_pid();
        END IF;
        INSERT INTO check_passed (pid) VALUES (pg_backend_pid());
        RETURN 1;
      END $$;
      GRANT USAGE ON SEQUENCE check_attempts TO ${APP_ROLE.name};
      GRANT SELECT, INSERT ON check_passed, check_fails_on TO ${APP_ROLE.name};
    `);
    px = await startPgmux({
      settings: { default_pool_size: 1, server_check_query: 'SELECT server_check()', server_check_delay: `${CHECK_DELAY_MS}ms` },
      databases: { app: { dbname: db } },
      users,
    });
  });
  afterAll(async () => px?.stop());

  async function attempts(): Promise<number> {
    const r = await admin.query<{ last_value: string; is_called: boolean }>('SELECT last_value, is_called FROM check_attempts');
    return r.rows[0].is_called ? Number(r.rows[0].last_value) : 0;
  }

  async function passedOn(pid: number): Promise<number> {
    return (await admin.query<{ n: number }>('SELECT count(*)::int AS n FROM check_passed WHERE pid = $1', [pid])).rows[0].n;
  }

  it('checks a server idle for server_check_delay before handing it out, and not one reused sooner', async () => {
    const client = await connect(px);
    const pid = await backendPid(client);
    const before = { attempts: await attempts(), passed: await passedOn(pid) };

    // Each query is a transaction of its own: the server goes back to the pool and is taken again at once.
    for (let i = 0; i < 10; i++) expect(await backendPid(client)).toBe(pid);
    expect({ attempts: await attempts(), passed: await passedOn(pid) }, 'a check ran on a server idle for less than server_check_delay').toEqual(before);

    await sleep(CHECK_DELAY_MS + 1500);
    // The check ran on that server, passed, and the server then served the query.
    expect(await backendPid(client)).toBe(pid);
    expect({ attempts: await attempts(), passed: await passedOn(pid) }).toEqual({ attempts: before.attempts + 1, passed: before.passed + 1 });
    await client.end();
  }, 60_000);

  it('discards a server whose check fails and serves the client on a new one, without an error', async () => {
    const client = await connect(px);
    const pid = await backendPid(client);
    await admin.query('INSERT INTO check_fails_on (pid) VALUES ($1)', [pid]);
    const before = await attempts();

    await sleep(CHECK_DELAY_MS + 1500);
    const next = await backendPid(client);
    expect(next).not.toBe(pid);
    expect(await attempts(), 'the check ran (once: the new server is not checked)').toBe(before + 1);
    expect(await passedOn(next)).toBe(0);
    // pgmux closed the failed server: its backend exits; the pool holds just the new one.
    await waitFor(async () => (await alivePids([pid])).length === 0, `backend ${pid}, whose check failed, to exit`);
    expect(poolOf(px, APP_ROLE).serverCount).toBe(1);
    expect(await backendPid(client)).toBe(next);
    await client.end();
  }, 60_000);
});
