/**
 * A client that vanishes mid-transaction: its work is rolled back, and the server connection the
 * next client gets is clean (not inside a transaction).
 */
import net from 'node:net';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient } from './harness/clients.js';
import { adminClient, createTestDatabase } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { APP_ROLE } from './harness/roles.js';

let px: TestPgmux;
let db: string;
let admin: pg.Client;

beforeAll(async () => {
  db = await createTestDatabase('vanish');
  admin = await adminClient(db);
  await admin.query('CREATE TABLE t (label text)');
  await admin.query('GRANT ALL ON t TO app');
  px = await startPgmux({
    settings: { default_pool_size: 1 },
    databases: { app: { dbname: db } },
    users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
  });
});

afterAll(async () => {
  await px?.stop();
  await admin?.end();
});

function connect(): Promise<pg.Client> {
  return connectClient(px);
}

/** Destroys the client's socket without a Terminate message, as a crashed process would. */
function vanish(client: pg.Client): void {
  (client as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy();
  client.on('error', () => {});
}

async function rowCount(label: string): Promise<number> {
  return (await admin.query<{ n: number }>('SELECT count(*)::int AS n FROM t WHERE label = $1', [label])).rows[0].n;
}

describe('a client that vanishes', () => {
  it('mid-transaction (idle in transaction): the insert is rolled back and the next client is not in a transaction', async () => {
    const first = await connect();
    const pid = (await first.query('select pg_backend_pid() as pid')).rows[0].pid;
    await first.query('BEGIN');
    await first.query("INSERT INTO t VALUES ('vanished-idle')");
    vanish(first);

    const second = await connect();
    const notices: string[] = [];
    second.on('notice', (n) => notices.push(n.message ?? ''));
    // Pool size 1: same server process.
    expect((await second.query('select pg_backend_pid() as pid')).rows[0].pid).toBe(pid);
    // BEGIN inside a transaction would raise a WARNING notice; none must appear.
    await second.query('BEGIN');
    await second.query('ROLLBACK');
    expect(notices).toEqual([]);
    expect(await rowCount('vanished-idle')).toBe(0);
    const state = await admin.query<{ state: string }>('SELECT state FROM pg_stat_activity WHERE pid = $1', [pid]);
    expect(state.rows[0].state).toBe('idle');
    await second.end();
  });

  it('with a query running: the query is cancelled, the server closed, nothing committed, and the pool recovers', async () => {
    const first = await connect();
    const pid = (await first.query('select pg_backend_pid() as pid')).rows[0].pid;
    await first.query('BEGIN');
    await first.query("INSERT INTO t VALUES ('vanished-busy')");
    void first.query('SELECT pg_sleep(30)').catch(() => {});
    await new Promise((r) => setTimeout(r, 200));
    vanish(first);

    const second = await connect();
    const r = await second.query('select pg_backend_pid() as pid, 42 as answer');
    expect(r.rows[0].answer).toBe(42);
    expect(r.rows[0].pid).not.toBe(pid);
    expect(await rowCount('vanished-busy')).toBe(0);
    // The old backend is gone (cancelled and disconnected), well before its 30 s sleep ends.
    for (let i = 0; i < 50; i++) {
      const gone = await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid]);
      if (gone.rowCount === 0) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect((await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rowCount).toBe(0);
    await second.end();
  });

  it('after sending half a message: the server is not left half-way', async () => {
    const first = await connect();
    await first.query('BEGIN');
    await first.query("INSERT INTO t VALUES ('vanished-partial')");
    // Half of a Query message reaches pgmux, then the socket dies.
    const q = serialize.query("INSERT INTO t VALUES ('never')");
    const stream = (first as unknown as { connection: { stream: net.Socket } }).connection.stream;
    stream.write(q.subarray(0, 8));
    await new Promise((r) => setTimeout(r, 50));
    vanish(first);

    const second = await connect();
    expect((await second.query('select 7 as seven')).rows[0].seven).toBe(7);
    expect(await rowCount('vanished-partial')).toBe(0);
    expect(await rowCount('never')).toBe(0);
    await second.end();
  });

  it('a client that sends Terminate cleanly leaves the server reusable', async () => {
    const first = await connect();
    const pid = (await first.query('select pg_backend_pid() as pid')).rows[0].pid;
    await first.end();
    const second = await connect();
    expect((await second.query('select pg_backend_pid() as pid')).rows[0].pid).toBe(pid);
    await second.end();
  });
});
