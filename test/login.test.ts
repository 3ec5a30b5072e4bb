/**
 * Logging in without a server: the first client asking for a startup setting (application_name,
 * TimeZone, options=-c ...) is checked on a server, as a direct connection would be; later clients
 * asking for an accepted value log in from pgmux's memory, even while every server is busy, and
 * still get that setting on whichever server runs their queries.
 */
import { pbkdf2 } from 'node:crypto';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeLogin } from './harness/auth-probe.js';
import { createTestDatabase, pgInfo } from './harness/context.js';
import { dataRowValues } from './harness/wire-client.js';
import { queryMessage, type BackendMessage } from './harness/wire.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { APP_ROLE } from './harness/roles.js';
import { settlesWithin } from './harness/wait.js';

let px: TestPgmux;
let db: string;
const opened: pg.Client[] = [];

beforeAll(async () => {
  db = await createTestDatabase('login');
  px = await startPgmux({
    settings: { default_pool_size: 1, query_wait_timeout: '20s', log_connections: false, log_disconnections: false },
    databases: { app: { dbname: db } },
    users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
  });
});

afterAll(async () => {
  await Promise.all(opened.map((c) => c.end().catch(() => undefined)));
  await px?.stop();
});

function client(options: Partial<pg.ClientConfig>): pg.Client {
  const c = new pg.Client({ connectionString: px.url('app', APP_ROLE.name, APP_ROLE.password), connectionTimeoutMillis: 15_000, ...options });
  c.on('error', () => undefined);
  opened.push(c);
  return c;
}

describe('startup settings', () => {
  it('a value a server accepted before needs no server to log in; a new value waits for one', async () => {
    const settings = { application_name: 'reporting', options: '-c TimeZone=Asia/Tokyo -c statement_timeout=7777' };
    const first = client(settings);
    await first.connect(); // checked on the (only) server
    await first.end();

    const holder = client({});
    await holder.connect();
    await holder.query('BEGIN'); // the only server is now busy until COMMIT
    await holder.query('SELECT 1');

    const again = client(settings);
    expect(await settlesWithin(again.connect(), 5000)).toBe(true);
    const fresh = client({ application_name: 'never-seen-before' });
    const freshConnect = fresh.connect();
    // This one must be tried on a server, and there is none free: it waits.
    expect(await settlesWithin(freshConnect, 1000)).toBe(false);

    await holder.query('COMMIT');
    await freshConnect;
    // Both got what they asked for on the server that runs their queries.
    const r = await again.query<{ a: string; tz: string; st: string }>("SELECT current_setting('application_name') AS a, current_setting('TimeZone') AS tz, current_setting('statement_timeout') AS st");
    expect(r.rows).toEqual([{ a: 'reporting', tz: 'Asia/Tokyo', st: '7777ms' }]);
    expect((await fresh.query<{ a: string }>("SELECT current_setting('application_name') AS a")).rows).toEqual([{ a: 'never-seen-before' }]);
  }, 60_000);

  it('a bad startup setting still fails at login, every time', async () => {
    for (let i = 0; i < 2; i++) {
      const bad = client({ options: '-c TimeZone=Not/AZone' });
      await expect(bad.connect()).rejects.toMatchObject({ code: '22023' });
    }
  }, 30_000);
});

describe('application_name_add_host', () => {
  it('the server sees "app - address:port" of each client, and two clients on one server each get their own', async () => {
    const tagged = await startPgmux({
      settings: { default_pool_size: 1, application_name_add_host: true, log_connections: false, log_disconnections: false },
      databases: { app: { dbname: db } },
      users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
    });
    const clients: pg.Client[] = [];
    try {
      for (const name of ['billing', 'billing']) {
        const c = new pg.Client({ connectionString: tagged.url('app', APP_ROLE.name, APP_ROLE.password), application_name: name });
        await c.connect();
        clients.push(c);
      }
      for (const c of clients) {
        const port = (c as unknown as { connection: { stream: { localPort: number } } }).connection.stream.localPort;
        // Both run on the single server connection, one after the other: each sees its own value.
        const r = await c.query<{ a: string }>("SELECT current_setting('application_name') AS a");
        expect(r.rows[0].a).toBe(`billing - 127.0.0.1:${port}`);
      }
    } finally {
      await Promise.all(clients.map((c) => c.end()));
      await tagged.stop();
    }
  });
});

describe('SCRAM against a plaintext password', () => {
  // The user's password is plaintext in the config: the first login derives its keys with PBKDF2, in libuv's
  // threadpool (the client's answer waits), so the event loop keeps serving others. Many at once, right and wrong.
  it('concurrent first logins all get their answer: in with the right password, 28P01 with a wrong one', async () => {
    const fresh = await startPgmux({
      settings: { default_pool_size: 2, log_connections: false, log_disconnections: false },
      databases: { app: { dbname: db } },
      users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
    });
    try {
      const attempt = async (password: string | undefined): Promise<string> => {
        const c = new pg.Client({ connectionString: fresh.url('app', APP_ROLE.name, password), connectionTimeoutMillis: 15_000 });
        c.on('error', () => undefined);
        try {
          await c.connect();
          return (await c.query<{ one: number }>('select 1 as one')).rows[0].one === 1 ? 'in' : 'wrong answer';
        } catch (err) {
          return (err as { code?: string }).code ?? String(err);
        } finally {
          await c.end().catch(() => undefined);
        }
      };
      const results = await Promise.all(Array.from({ length: 24 }, (_, i) => attempt(i % 4 === 3 ? 'not-the-password' : APP_ROLE.password)));
      expect(results).toEqual(Array.from({ length: 24 }, (_, i) => (i % 4 === 3 ? '28P01' : 'in')));
    } finally {
      await fresh.stop();
    }
  });
});

describe('requests pipelined behind the password', () => {
  it('are answered after the login, as PostgreSQL answers them, also while the password check waits for the threadpool', async () => {
    // A pgmux of its own: the keys of a plaintext password are derived in libuv's threadpool, and the threadpool is
    // kept busy here (this process is pgmux's) from before pgmux starts, so that the client-final message and the
    // query behind it arrive while the check still waits for them.
    const busy = Promise.all(Array.from({ length: 8 }, () => promisify(pbkdf2)('x', 'salt', 4_000_000, 32, 'sha256')));
    const fresh = await startPgmux({
      settings: { default_pool_size: 1, log_connections: false, log_disconnections: false },
      databases: { app: { dbname: db } },
      users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
    });
    try {
      const after = [queryMessage('select 42 as answer'), queryMessage('select current_user as who')];
      const codes = (messages: BackendMessage[]): string[] => messages.map((m) => m.code).filter((c) => c !== 'S');
      const rows = (messages: BackendMessage[]): Array<Array<string | null>> => messages.filter((m) => m.code === 'D').map((m) => dataRowValues(m.body));

      const probe = await probeLogin(fresh.port, { user: APP_ROLE.name, database: 'app' }, APP_ROLE.password as string, { after, timeoutMs: 20_000 });
      await probe.conn.until((c) => c.messages.filter((m) => m.code === 'Z').length >= 3 || c.closed, 20_000, 'both answers');
      probe.conn.destroy();
      expect(probe.error).toBeUndefined();
      // The check did wait for the threadpool (else this test proves nothing about that path): client-final was
      // answered only after a PBKDF2 queued behind the busy ones (a few ms otherwise).
      expect(probe.ms.final).toBeGreaterThan(100);
      await busy;

      const direct = await probeLogin(pgInfo().port, { user: APP_ROLE.name, database: db }, APP_ROLE.password as string, { after });
      await direct.conn.until((c) => c.messages.filter((m) => m.code === 'Z').length >= 3, 5000, 'both answers');
      direct.conn.destroy();
      expect(codes(probe.conn.messages)).toEqual(codes(direct.conn.messages));
      expect(rows(probe.conn.messages)).toEqual(rows(direct.conn.messages));
      expect(rows(probe.conn.messages)).toEqual([['42'], [APP_ROLE.name]]);
    } finally {
      await fresh.stop();
    }
  }, 40_000);
});
