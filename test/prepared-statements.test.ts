/**
 * Transaction mode with named prepared statements: pool of 2 server connections, many clients,
 * real drivers that prepare (pgbench -M prepared, node-postgres named queries, postgres.js's
 * default prepare: true). Statements must follow each client to whichever server it gets.
 */
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from './harness/context.js';
import { initPgbench, runPgbench } from './harness/pgbench.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { APP_ROLE } from './harness/roles.js';

let px: TestPgmux;
let db: string;

beforeAll(async () => {
  db = await createTestDatabase('prepared');
  await initPgbench(db);
  px = await startPgmux({
    settings: { default_pool_size: 2, max_client_conn: 500, log_connections: false, log_disconnections: false },
    databases: { app: { dbname: db } },
    users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
  });
}, 90_000);

afterAll(async () => {
  await px?.stop();
});

describe('named prepared statements in transaction mode (pool of 2)', () => {
  it.each([
    ['tpcb-like', []],
    ['select-only', ['-S']],
  ])('pgbench -M prepared -c 32 %s: no errors', async (_name, extra) => {
    const { code, output } = await runPgbench(
      ['-h', '127.0.0.1', '-p', String(px.port), '-U', APP_ROLE.name, '-M', 'prepared', '-c', '32', '-j', '2', '-T', '5', '-n', ...extra, 'app'],
      60_000,
    );
    expect(code, output).toBe(0);
    expect(output).toMatch(/number of failed transactions: 0 /);
    expect(output).not.toMatch(/aborted|ERROR/);
    const processed = Number(/number of transactions actually processed: (\d+)/.exec(output)?.[1]);
    expect(processed).toBeGreaterThan(100);
  }, 90_000);

  it('node-postgres named statements: 50 clients x 200 queries, correct results', async () => {
    const clients = await Promise.all(
      Array.from({ length: 50 }, async () => {
        const c = new pg.Client(px.url('app', APP_ROLE.name, APP_ROLE.password));
        await c.connect();
        return c;
      }),
    );
    await Promise.all(
      clients.map(async (c, id) => {
        for (let i = 0; i < 200; i++) {
          // Same names in every client, different text per name in half of them: pgmux must keep them apart.
          const r = await c.query({ name: 'double', text: id % 2 === 0 ? 'select $1::int * 2 as v' : 'select $1::int + $1::int as v', values: [i] });
          expect(r.rows[0].v).toBe(i * 2);
          const s = await c.query({ name: `label_${i % 5}`, text: `select $1::text || '-${i % 5}' as v`, values: [String(id)] });
          expect(s.rows[0].v).toBe(`${id}-${i % 5}`);
        }
      }),
    );
    await Promise.all(clients.map((c) => c.end()));
  }, 120_000);

  it('postgres.js with its default prepare: true: 50 clients x 200 queries, correct results', async () => {
    const sqls = Array.from({ length: 50 }, () => postgres(px.url('app', APP_ROLE.name, APP_ROLE.password), { max: 1 }));
    await Promise.all(
      sqls.map(async (sql, id) => {
        for (let i = 0; i < 200; i++) {
          const rows = await sql`select ${i}::int + ${id}::int as v, ${'x' + (i % 3)}::text as t`;
          expect(rows[0].v).toBe(i + id);
          expect(rows[0].t).toBe('x' + (i % 3));
        }
      }),
    );
    await Promise.all(sqls.map((sql) => sql.end()));
  }, 120_000);

  it('a statement the client never prepared does not exist, even if another client prepared that name', async () => {
    const a = new pg.Client(px.url('app', APP_ROLE.name, APP_ROLE.password));
    const b = new pg.Client(px.url('app', APP_ROLE.name, APP_ROLE.password));
    await a.connect();
    await b.connect();
    await a.query({ name: 'secret_stmt', text: "select 'a-only' as v" });
    // b binds "secret_stmt" without preparing it, at the protocol level.
    const conn = (b as unknown as { connection: { bind(o: object): void; execute(o: object): void; sync(): void } }).connection;
    const failure = new Promise<Error>((resolve) => b.once('error', resolve));
    const outcome = await new Promise<string>((resolve) => {
      (b as unknown as { connection: { once(e: string, f: (m: { message?: string }) => void): void } }).connection.once('errorMessage', (m) => resolve(m.message ?? ''));
      conn.bind({ statement: 'secret_stmt', values: [] });
      conn.execute({});
      conn.sync();
    });
    expect(outcome).toMatch(/does not exist/);
    void failure;
    await a.end();
    await b.end().catch(() => {});
  });
});
