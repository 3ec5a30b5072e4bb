/**
 * Transaction mode (pool of 2, 20+ busy clients): session state created with SQL.
 *
 * - SET / RESET / set_config follow the client from server to server, exactly as PostgreSQL
 *   decided them (SET LOCAL and rolled-back SETs do not persist).
 * - Nothing a client leaves behind (settings, advisory locks, temp tables) reaches the next client,
 *   and a client leaving right after a SET does not cost a server connection.
 * - A pin ends when its state is gone, even when the dropping statement follows at once.
 * - LISTEN pins the client to its server (visible in pinCounts and the log), UNLISTEN unpins it.
 * - The `reject` policy refuses the statement with 0A000 naming the setting.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ClientInfo } from '../src/client/client-info.js';
import type { Pool } from '../src/pool/pool.js';
import { ClientTracker, startLoad } from './harness/clients.js';
import { adminClient, createTestDatabase } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { APP_ROLE } from './harness/roles.js';
import { sleep, waitFor } from './harness/wait.js';

let px: TestPgmux;
let db: string;
let admin: pg.Client;

const LOG_FILE = `.tmp/logs/pgmux-${process.pid}.log`;
const DEFAULT_SEARCH_PATH = '"$user", public';

beforeAll(async () => {
  db = await createTestDatabase('sessstate');
  admin = await adminClient(db);
  px = await startPgmux({
    settings: { default_pool_size: 2, max_client_conn: 500, query_wait_timeout: '10s', log_connections: false, log_disconnections: false, admin_users: APP_ROLE.name },
    databases: { app: { dbname: db } },
    users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
  });
});

afterAll(async () => {
  await px?.stop();
  await admin?.end();
});

/** Every client a test opened: closed after each test, so a failed test does not leave servers pinned. */
const opened = new ClientTracker();
afterEach(() => opened.endAll());

/** A failure shows up in the awaited query; a connection dropped at shutdown is not a test error. */
function connect(target: TestPgmux = px): Promise<pg.Client> {
  return opened.connect(target);
}

function pool(target: TestPgmux = px): Pool {
  const pools = [...target.pgmux.registry.pools.values()];
  expect(pools).toHaveLength(1);
  return pools[0];
}

/** pgmux's session object for a node-postgres client (matched by the pgmux-issued BackendKeyData). */
function sessionOf(client: pg.Client, target: TestPgmux = px): ClientInfo {
  const processID = (client as unknown as { processID: number }).processID;
  const found = [...target.pgmux.registry.clients].find((s) => s.processId === processID);
  expect(found, `no pgmux client with processId ${processID}`).toBeDefined();
  return found as ClientInfo;
}

interface Seen {
  searchPath: string;
  statementTimeout: string;
  applicationName: string;
  pid: number;
}

/** Each a separate request, so each may land on a different server. */
async function observe(client: pg.Client): Promise<Seen> {
  const sp = await client.query<{ search_path: string }>('SHOW search_path');
  const st = await client.query<{ statement_timeout: string }>('SHOW statement_timeout');
  const r = await client.query<{ app: string; pid: number }>("select current_setting('application_name') as app, pg_backend_pid() as pid");
  return { searchPath: sp.rows[0].search_path, statementTimeout: st.rows[0].statement_timeout, applicationName: r.rows[0].app, pid: r.rows[0].pid };
}

describe('SET replay across servers', () => {
  it('SET outside a transaction sticks to the client, whichever server it lands on', async () => {
    const client = await connect();
    await client.query('SET search_path TO myschema, public');
    await client.query("SET statement_timeout = '4321ms'");
    await client.query("SET application_name = 'replayed'");
    const load = await startLoad(connect);
    const pids = new Set<number>();
    try {
      for (let i = 0; i < 30; i++) {
        const seen = await observe(client);
        pids.add(seen.pid);
        expect(seen, `iteration ${i}`).toEqual({ searchPath: 'myschema, public', statementTimeout: '4321ms', applicationName: 'replayed', pid: seen.pid });
      }
    } finally {
      const queries = await load.stop();
      expect(queries).toBeGreaterThan(20);
    }
    // Without moving between servers the replay would not have been tested.
    expect(pids.size).toBeGreaterThanOrEqual(2);
    await client.end();
  });

  it('SET LOCAL does not persist, a rolled-back SET does not persist, RESET restores the default, set_config(..., false) persists', async () => {
    const client = await connect();
    const load = await startLoad(connect);
    const pids = new Set<number>();
    const check = async (label: string, expected: Omit<Seen, 'pid'>): Promise<void> => {
      for (let i = 0; i < 8; i++) {
        const seen = await observe(client);
        pids.add(seen.pid);
        expect({ searchPath: seen.searchPath, statementTimeout: seen.statementTimeout, applicationName: seen.applicationName }, `${label}, check ${i}`).toEqual(expected);
      }
    };
    try {
      await client.query("SET statement_timeout = '4321ms'");
      await client.query('SET search_path TO myschema, public');
      await check('after SET', { searchPath: 'myschema, public', statementTimeout: '4321ms', applicationName: '' });

      await client.query('BEGIN');
      await client.query("SET LOCAL statement_timeout = '1234ms'");
      await client.query('SET LOCAL search_path TO local_only');
      expect((await client.query('SHOW statement_timeout')).rows[0].statement_timeout).toBe('1234ms');
      expect((await client.query('SHOW search_path')).rows[0].search_path).toBe('local_only');
      await client.query('COMMIT');
      await check('after SET LOCAL ... COMMIT', { searchPath: 'myschema, public', statementTimeout: '4321ms', applicationName: '' });

      await client.query('BEGIN');
      await client.query("SET statement_timeout = '999ms'");
      await client.query('SET search_path TO rolled_back');
      await client.query("SET application_name = 'rolled_back'");
      expect((await client.query('SHOW statement_timeout')).rows[0].statement_timeout).toBe('999ms');
      await client.query('ROLLBACK');
      await check('after SET ... ROLLBACK', { searchPath: 'myschema, public', statementTimeout: '4321ms', applicationName: '' });

      await client.query('RESET statement_timeout');
      await check('after RESET statement_timeout', { searchPath: 'myschema, public', statementTimeout: '0', applicationName: '' });
      await client.query('RESET search_path');
      await check('after RESET search_path', { searchPath: DEFAULT_SEARCH_PATH, statementTimeout: '0', applicationName: '' });

      const r = await client.query<{ v: string }>("select set_config('search_path', 'x', false) as v");
      expect(r.rows[0].v).toBe('x');
      await check("after set_config('search_path', 'x', false)", { searchPath: 'x', statementTimeout: '0', applicationName: '' });

      // set_config(..., true) is transaction-local.
      await client.query("select set_config('statement_timeout', '777ms', true)");
      await check("after set_config('statement_timeout', '777ms', true)", { searchPath: 'x', statementTimeout: '0', applicationName: '' });
    } finally {
      await load.stop();
    }
    expect(pids.size).toBeGreaterThanOrEqual(2);
    await client.end();
  });
});

describe('nothing leaks to the next client', () => {
  it('settings, an advisory lock and a temp table of a client that left are not seen by 50 fresh clients', async () => {
    const leaky = await connect();
    await leaky.query('SET search_path TO leaky_schema');
    await leaky.query("SET statement_timeout = '5555ms'");
    await leaky.query("SET application_name = 'leaky'");
    const lock = await leaky.query<{ pid: number }>('select pg_advisory_lock(42), pg_backend_pid() as pid');
    const leakyPid = lock.rows[0].pid;
    await leaky.query('CREATE TEMP TABLE leak (x int)');
    await leaky.query('INSERT INTO leak VALUES (1)');
    // The lock and the temp table pin the client: the same server all along.
    expect((await leaky.query('select pg_backend_pid() as pid')).rows[0].pid).toBe(leakyPid);
    await leaky.end();
    // Its server is cleaned up and back in the pool (or closed, which is as safe).
    await waitFor(() => pool().resetting.size === 0 && pool().active.size === 0, 'the leaky server to be reset');
    const reused = pool().idle.some((s) => s.processId === leakyPid);

    // The try-lock step of the fresh clients is serialised among them (they would contend with each other otherwise).
    let lockChain: Promise<unknown> = Promise.resolve();
    const serialised = <T>(fn: () => Promise<T>): Promise<T> => {
      const next = lockChain.then(fn);
      lockChain = next.catch(() => undefined);
      return next;
    };
    const firstRoundPids = new Set<number>();
    const clients = await Promise.all(Array.from({ length: 50 }, () => connect()));
    try {
      await Promise.all(
        clients.map(async (c, i) => {
          for (let round = 0; round < 3; round++) {
            const label = `client ${i} round ${round}`;
            expect((await c.query('SHOW search_path')).rows[0].search_path, label).toBe(DEFAULT_SEARCH_PATH);
            expect((await c.query('SHOW statement_timeout')).rows[0].statement_timeout, label).toBe('0');
            const r = await c.query<{ app: string; no_temp: boolean; pid: number }>(
              "select current_setting('application_name') as app, to_regclass('pg_temp.leak') is null as no_temp, pg_backend_pid() as pid",
            );
            if (round === 0) firstRoundPids.add(r.rows[0].pid);
            expect(r.rows[0].app, label).not.toBe('leaky');
            expect(r.rows[0].no_temp, label).toBe(true);
            await serialised(async () => {
              // Lock and unlock in one statement (left to right), so that nothing stays pinned.
              const got = await c.query<{ got: boolean; released: boolean }>('select pg_try_advisory_lock(42) as got, pg_advisory_unlock(42) as released');
              expect(got.rows[0].got, `${label}: advisory lock 42 is free`).toBe(true);
              expect(got.rows[0].released, label).toBe(true);
            });
          }
        }),
      );
    } finally {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    }
    // The checks ran on the server the leaky client had used.
    if (reused) expect([...firstRoundPids]).toContain(leakyPid);
  });

  it('a client that leaves right after a SET does not cost a server connection', async () => {
    // Both servers up and idle.
    const warm = await Promise.all([connect(), connect()]);
    await Promise.all(warm.map((c) => c.query('select pg_sleep(0.05)')));
    await Promise.all(warm.map((c) => c.end()));
    await waitFor(() => pool().idle.length === 2 && pool().serverCount === 2, 'two idle servers');
    const before = pool().idle.map((s) => s.processId).sort();
    for (let i = 0; i < 10; i++) {
      const c = await connect();
      await c.query(`SET statement_timeout = '${1000 + i}ms'`);
      await c.end();
    }
    await waitFor(() => pool().resetting.size === 0 && pool().active.size === 0 && pool().connecting.size === 0, 'the servers to be back');
    // The same two backends: none was closed (and replaced) because of a client leaving.
    expect(pool().idle.map((s) => s.processId).sort()).toEqual(before);
    // And the next client does not inherit the setting.
    const next = await connect();
    expect((await next.query('SHOW statement_timeout')).rows[0].statement_timeout).toBe('0');
    await next.end();
  });
});

describe('pins end when the state is gone', () => {
  it.each([
    ['advisory lock', 'select pg_advisory_lock(7)', 'select pg_advisory_unlock(7)'],
    ['LISTEN', 'LISTEN quick', 'UNLISTEN quick'],
    ['temp table', 'CREATE TEMP TABLE quick (x int)', 'DROP TABLE quick'],
  ])('%s: created and dropped by two statements in quick succession, the client is not left pinned', async (_kind, create, drop) => {
    const client = await connect();
    const session = sessionOf(client);
    // The second statement goes out as soon as the first one's ReadyForQuery arrives, as any driver does,
    // i.e. while pgmux may still be checking what the first one left. Repeated to catch that window.
    for (let cycle = 0; cycle < 20; cycle++) {
      await client.query(create);
      await client.query(drop);
      await client.query('select 1');
      await waitFor(() => session.server === null, 'the client to be released', 1000).catch(() => undefined);
      expect({ cycle, pinned: session.pinned, reasons: session.pinReasons, holdsServer: session.server !== null }).toEqual({
        cycle,
        pinned: false,
        reasons: [],
        holdsServer: false,
      });
    }
  });
});

describe('LISTEN / NOTIFY', () => {
  it('a listening client is pinned, gets notifications under load, and is released after UNLISTEN', async () => {
    const pinsBefore = px.pgmux.registry.pinCounts.get('listen') ?? 0;
    const a = await connect();
    const b = await connect();
    const notes: pg.Notification[] = [];
    a.on('notification', (n) => notes.push(n));
    const load = await startLoad(connect);
    try {
      await a.query('LISTEN chan');
      const listenerPid = (await a.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;

      await waitFor(() => (px.pgmux.registry.pinCounts.get('listen') ?? 0) >= pinsBefore + 1, 'pinCounts listen to go up');
      expect(px.pgmux.registry.pinCounts.get('listen')).toBeGreaterThanOrEqual(1);
      const session = sessionOf(a);
      expect(session.pinned).toBe(true);
      expect(session.pinReasons).toContain('listen');
      expect(session.server).not.toBeNull();

      // Held through the load: every query of A runs on the same backend.
      for (let i = 0; i < 10; i++) expect((await a.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid).toBe(listenerPid);

      const sent = Date.now();
      await b.query("NOTIFY chan, 'hello'");
      await waitFor(() => notes.length > 0, 'the notification', 5000);
      expect(Date.now() - sent).toBeLessThan(5000);
      expect(notes[0].channel).toBe('chan');
      expect(notes[0].payload).toBe('hello');

      // Where operators look: the log says the client was pinned, with reason listen.
      await waitFor(
        () => {
          let text = '';
          try {
            text = readFileSync(LOG_FILE, 'utf8');
          } catch {
            return false;
          }
          return text
            .split('\n')
            .filter((line) => line.includes('pinned'))
            .some((line) => {
              try {
                const entry = JSON.parse(line) as { reason?: string; client?: number };
                return entry.reason === 'listen' && entry.client === session.id;
              } catch {
                return false;
              }
            });
        },
        'a "pinned" log line with reason listen',
        5000,
      );

      // And in the admin console: SHOW CLIENTS names the reason, SHOW POOLS counts the pinned client.
      const console_ = new pg.Client(px.url('pgbouncer', APP_ROLE.name, APP_ROLE.password));
      await console_.connect();
      try {
        const clients = (await console_.query<{ ptr: string; pin_reasons: string; database: string }>('SHOW CLIENTS')).rows;
        const mine = clients.filter((c) => c.database === 'app' && c.pin_reasons !== '');
        expect(mine.map((c) => c.pin_reasons)).toEqual(['listen']);
        const pools = (await console_.query<{ database: string; pinned: number }>('SHOW POOLS')).rows;
        expect(Number(pools.find((p) => p.database === 'app')?.pinned)).toBe(1);
      } finally {
        await console_.end();
      }
    } finally {
      await load.stop();
    }

    const session = sessionOf(a);
    const server = session.server;
    expect(server).not.toBeNull();
    expect(pool().active.has(server!)).toBe(true);

    await a.query('UNLISTEN *');
    await a.query('select 1');
    await waitFor(() => session.server === null && !session.pinned, 'the listener to be released');
    expect(session.pinned).toBe(false);
    // Its server is back in the pool, idle.
    expect(pool().active.size).toBe(0);
    expect(pool().idle).toContain(server);

    // And no notifications reach A any more.
    const count = notes.length;
    await b.query("NOTIFY chan, 'after-unlisten'");
    await sleep(300);
    await a.query('select 1');
    expect(notes.length).toBe(count);
    await a.end();
    await b.end();
  });
});

describe('session_state_advisory_lock: reject', () => {
  let strict: TestPgmux;
  beforeAll(async () => {
    strict = await startPgmux({
      settings: { default_pool_size: 2, session_state_advisory_lock: 'reject', log_connections: false, log_disconnections: false },
      databases: { app: { dbname: db } },
      users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
    });
  });
  afterAll(async () => strict?.stop());

  it('refuses pg_advisory_lock with 0A000 naming the setting; the connection stays usable', async () => {
    const client = await connect(strict);
    const err = (await client.query('select pg_advisory_lock(1)').then(
      () => null,
      (e: unknown) => e,
    )) as (Error & { code?: string; hint?: string }) | null;
    expect(err).not.toBeNull();
    expect(err?.code).toBe('0A000');
    expect(err?.message).toMatch(/session_state_advisory_lock/);
    // Nothing was locked, and the connection works.
    expect((await client.query<{ n: number }>("select count(*)::int as n from pg_locks where locktype = 'advisory'")).rows[0].n).toBe(0);
    expect((await client.query<{ v: number }>('select 41 + 1 as v')).rows[0].v).toBe(42);
    expect(sessionOf(client, strict).pinned).toBe(false);
    await client.end();
  });

  it('refuses it in the extended protocol too (a parameterised query), with the same error', async () => {
    const client = await connect(strict);
    const err = (await client.query('select pg_advisory_lock($1::bigint)', [2]).then(
      () => null,
      (e: unknown) => e,
    )) as (Error & { code?: string }) | null;
    expect({ code: err?.code, message: err?.message }).toEqual({ code: '0A000', message: expect.stringMatching(/session_state_advisory_lock/) });
    expect((await client.query<{ n: number }>("select count(*)::int as n from pg_locks where locktype = 'advisory'")).rows[0].n).toBe(0);
    expect((await client.query<{ v: number }>('select $1::int + 1 as v', [6])).rows[0].v).toBe(7);
    await client.end();
  });
});

describe('startup settings after a reset of the server', () => {
  it('a startup setting pgmux applied is applied again after DISCARD ALL reset the server (pool of 1)', async () => {
    const one = await startPgmux({
      settings: { default_pool_size: 1, log_connections: false, log_disconnections: false },
      databases: { app: { dbname: db } },
      users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
    });
    try {
      const withTimeout = (): pg.Client => {
        const c = new pg.Client({ connectionString: one.url('app', APP_ROLE.name, APP_ROLE.password), options: '-c statement_timeout=4321' });
        c.on('error', () => undefined);
        opened.add(c);
        return c;
      };
      const a = withTimeout();
      await a.connect();
      expect((await a.query('SHOW statement_timeout')).rows[0].statement_timeout).toBe('4321ms');
      // A temp table pins the client; when it leaves, its server is reset with DISCARD ALL.
      await a.query('CREATE TEMP TABLE scratch (id int)');
      await a.end();
      opened.delete(a);
      const b = withTimeout();
      await b.connect();
      // Same single server, reset to defaults in between: pgmux must set the startup value again.
      expect((await b.query('SHOW statement_timeout')).rows[0].statement_timeout).toBe('4321ms');
      expect((await b.query("SELECT to_regclass('pg_temp.scratch') AS t")).rows[0].t).toBeNull();
    } finally {
      await one.stop();
    }
  });
});
