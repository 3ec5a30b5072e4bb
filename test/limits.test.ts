/** Limits: max_client_conn refuses with 53300; query_wait_timeout fails only the client that waited too long. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient } from './harness/clients.js';
import { createTestDatabase } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { APP_ROLE } from './harness/roles.js';

let db: string;
const users = { [APP_ROLE.name]: { password: APP_ROLE.password } };

beforeAll(async () => {
  db = await createTestDatabase('limits');
});

function connect(px: TestPgmux): Promise<pg.Client> {
  return connectClient(px);
}

describe('max_client_conn', () => {
  let px: TestPgmux;
  beforeAll(async () => {
    px = await startPgmux({ settings: { max_client_conn: 5, default_pool_size: 2 }, databases: { app: { dbname: db } }, users });
  });
  afterAll(async () => px?.stop());

  it('refuses the client over the limit with 53300 and a message naming the setting; the others keep working', async () => {
    const clients = await Promise.all(Array.from({ length: 5 }, () => connect(px)));
    const extra = new pg.Client(px.url('app', APP_ROLE.name, APP_ROLE.password));
    const err = (await extra.connect().then(
      () => null,
      (e: unknown) => e,
    )) as (Error & { code?: string; hint?: string }) | null;
    expect(err).not.toBeNull();
    expect(err?.code).toBe('53300');
    expect(err?.message).toMatch(/too many client connections/);
    expect(err?.message).toMatch(/max_client_conn/);
    expect(err?.hint).toMatch(/max_client_conn/);
    const answers = await Promise.all(clients.map((c, i) => c.query('select $1::int as i', [i])));
    expect(answers.map((r) => r.rows[0].i)).toEqual([0, 1, 2, 3, 4]);
    await clients[0].end();
    // A slot is free again.
    const again = await connect(px);
    expect((await again.query('select 1 as one')).rows[0].one).toBe(1);
    await Promise.all([again, ...clients.slice(1)].map((c) => c.end()));
  });
});

describe('query_wait_timeout', () => {
  let px: TestPgmux;
  beforeAll(async () => {
    px = await startPgmux({
      settings: { default_pool_size: 1, query_wait_timeout: '600ms' },
      databases: { app: { dbname: db } },
      users,
    });
  });
  afterAll(async () => px?.stop());

  it('gives a waiting client 57014 naming the pool and the setting, keeps its connection usable, and the queue keeps flowing', async () => {
    const holder = await connect(px);
    const waiter = await connect(px);
    const patient = await connect(px);
    await holder.query('BEGIN'); // holds the only server connection
    await holder.query('select 1');

    const err = (await waiter.query('select 1').then(
      () => null,
      (e: unknown) => e,
    )) as (Error & { code?: string; hint?: string }) | null;
    expect(err?.code).toBe('57014');
    expect(err?.message).toMatch(/pool "app\/app"/);
    expect(err?.message).toMatch(/query_wait_timeout/);
    expect(err?.hint).toMatch(/default_pool_size/);

    // Another client queued behind the holder is served as soon as the holder commits.
    const queued = patient.query('select 2 as two');
    await new Promise((r) => setTimeout(r, 100));
    await holder.query('COMMIT');
    expect((await queued).rows[0].two).toBe(2);
    // The client that timed out still has a working connection.
    expect((await waiter.query('select 3 as three')).rows[0].three).toBe(3);
    await Promise.all([holder.end(), waiter.end(), patient.end()]);
  });

  it('an extended-protocol request that times out is answered and the connection stays in sync', async () => {
    const holder = await connect(px);
    const waiter = await connect(px);
    await holder.query('BEGIN');
    const err = (await waiter.query({ text: 'select $1::int as x', values: [1] }).then(
      () => null,
      (e: unknown) => e,
    )) as (Error & { code?: string }) | null;
    expect(err?.code).toBe('57014');
    await holder.query('COMMIT');
    expect((await waiter.query({ text: 'select $1::int as x', values: [5] })).rows[0].x).toBe(5);
    await Promise.all([holder.end(), waiter.end()]);
  });
});

describe('idle_transaction_timeout and query_timeout', () => {
  let px: TestPgmux;
  beforeAll(async () => {
    px = await startPgmux({
      settings: { default_pool_size: 1, idle_transaction_timeout: '500ms', query_timeout: '500ms' },
      databases: { app: { dbname: db } },
      users,
    });
  });
  afterAll(async () => px?.stop());

  it('closes a client idle inside a transaction with 25P03, rolls back, and frees the server', async () => {
    const idler = await connect(px);
    const closed = new Promise<Error & { code?: string }>((resolve) => idler.on('error', resolve));
    await idler.query('BEGIN');
    await idler.query('select 1');
    const err = await closed;
    expect(err.code).toBe('25P03');
    expect(err.message).toMatch(/idle_transaction_timeout/);
    const next = await connect(px);
    expect((await next.query('select 1 as one')).rows[0].one).toBe(1);
    await next.end();
  });

  it('cancels a query that runs longer than query_timeout (57014 from the server), and the connection stays usable', async () => {
    const client = await connect(px);
    const started = Date.now();
    const err = (await client.query('select pg_sleep(10)').then(
      () => null,
      (e: unknown) => e,
    )) as (Error & { code?: string }) | null;
    expect(err?.code).toBe('57014');
    expect(Date.now() - started).toBeLessThan(5000);
    expect((await client.query('select 2 as two')).rows[0].two).toBe(2);
    await client.end();
  });
});
