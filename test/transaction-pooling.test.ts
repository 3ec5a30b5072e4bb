/**
 * Transaction mode under load: many client connections share a pool of 10 (or 20) server
 * connections; every transaction commits and Postgres never sees more than the pool size.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { watchBackends } from './harness/backends.js';
import { adminClient, createTestDatabase } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { APP_ROLE } from './harness/roles.js';

let px: TestPgmux;
let db: string;
let admin: pg.Client;

beforeAll(async () => {
  db = await createTestDatabase('txpool');
  admin = await adminClient(db);
  await admin.query('CREATE TABLE items (client int NOT NULL, n int NOT NULL, PRIMARY KEY (client, n))');
  await admin.query('GRANT ALL ON items TO app');
  px = await startPgmux({
    settings: { default_pool_size: 10, max_client_conn: 3000, query_wait_timeout: '60s', auth_type: 'md5' },
    databases: { app: { dbname: db }, burst: { dbname: db, pool_size: 20 } },
    users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
  });
});

afterAll(async () => {
  await px?.stop();
  await admin?.end();
});

describe('transaction mode', () => {
  it('runs 500 concurrent clients x 20 transactions on a pool of 10 server connections', async () => {
    const clients = Array.from({ length: 500 }, () => new pg.Client(px.url('app', APP_ROLE.name, APP_ROLE.password)));
    await Promise.all(clients.map((c) => c.connect()));
    const watcher = watchBackends(admin, { database: db, user: APP_ROLE.name });
    const results = await Promise.all(
      clients.map(async (client, id) => {
        let ok = 0;
        for (let n = 0; n < 20; n++) {
          await client.query('BEGIN');
          await client.query('INSERT INTO items (client, n) VALUES ($1, $2)', [id, n]);
          const r = await client.query<{ count: string; mine: string }>(
            'SELECT count(*) FILTER (WHERE client = $1) AS mine, count(*) FILTER (WHERE client = $1 AND n = $2) AS count FROM items',
            [id, n],
          );
          expect(Number(r.rows[0].mine)).toBe(n + 1);
          expect(Number(r.rows[0].count)).toBe(1);
          await client.query('COMMIT');
          ok++;
        }
        return ok;
      }),
    );
    const maxBackends = await watcher.stop();
    await Promise.all(clients.map((c) => c.end()));

    expect(results.reduce((a, b) => a + b, 0)).toBe(10_000);
    const total = await admin.query<{ n: string }>('SELECT count(*) AS n FROM items');
    expect(Number(total.rows[0].n)).toBe(10_000);
    expect(maxBackends).toBeGreaterThan(0);
    expect(maxBackends).toBeLessThanOrEqual(10);
  }, 240_000);

  it('serves a burst of 1,825 queries over 1,825 client connections with a pool of 20', async () => {
    const watcher = watchBackends(admin, { database: db, user: APP_ROLE.name });
    const results = await Promise.allSettled(
      Array.from({ length: 1825 }, async (_, day) => {
        const client = new pg.Client(px.url('burst', APP_ROLE.name, APP_ROLE.password));
        await client.connect();
        try {
          const r = await client.query<{ d: string; s: string }>(
            "SELECT ($1::date + 0)::text AS d, sum(g)::text AS s FROM generate_series(1, 1000) g",
            [new Date(Date.UTC(2021, 0, 1 + day)).toISOString().slice(0, 10)],
          );
          return r.rows[0];
        } finally {
          await client.end();
        }
      }),
    );
    const maxBackends = await watcher.stop();
    const failures = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    expect(failures).toEqual([]);
    for (const r of results) expect((r as PromiseFulfilledResult<{ s: string }>).value.s).toBe('500500');
    // The burst pool allows 20; the app pool from the test before may still hold idle connections.
    expect(maxBackends).toBeLessThanOrEqual(30);
  }, 240_000);
});
