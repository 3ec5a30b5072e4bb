/**
 * A PgBouncer configuration as a typical deployment has it, run unchanged under
 * `pgmux --pgbouncer-ini`: only the "*" wildcard database, a userlist.txt with the SCRAM secrets
 * from pg_authid, transaction mode, default_pool_size 25, max_client_conn 1000. 200 clients at
 * once run transactions through it; Postgres never sees more than 25 connections for the user.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { watchBackends } from './harness/backends.js';
import { adminClient, createTestDatabase, pgInfo } from './harness/context.js';
import { logLines, startPgmuxProcess } from './harness/pgmux-process.js';
import { freePort } from './harness/postgres.js';
import { waitForOutput, waitListening, type ChildProc } from './harness/process.js';
import { APP_ROLE } from './harness/roles.js';

let db: string;
let port: number;
let pgmux: ChildProc | undefined;

beforeAll(async () => {
  db = await createTestDatabase('ini_typical');
  const admin = await adminClient(db);
  let secret: string;
  try {
    await admin.query(`CREATE TABLE orders (id serial PRIMARY KEY, client int, amount int); GRANT ALL ON orders, orders_id_seq TO ${APP_ROLE.name}`);
    secret = (await admin.query<{ p: string }>('SELECT rolpassword AS p FROM pg_authid WHERE rolname = $1', [APP_ROLE.name])).rows[0].p;
  } finally {
    await admin.end();
  }
  expect(secret).toMatch(/^SCRAM-SHA-256\$/);
  const dir = mkdtempSync(path.join(tmpdir(), 'pgmux-typical-'));
  writeFileSync(path.join(dir, 'userlist.txt'), `"${APP_ROLE.name}" "${secret}"\n`);
  port = await freePort();
  const info = pgInfo();
  writeFileSync(
    path.join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = host=${info.host} port=${info.port}`,
      '',
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'auth_type = scram-sha-256',
      'auth_file = userlist.txt',
      'pool_mode = transaction',
      'default_pool_size = 25',
      'max_client_conn = 1000',
      'server_reset_query = DISCARD ALL',
      'ignore_startup_parameters = extra_float_digits',
      '',
    ].join('\n'),
  );
  pgmux = startPgmuxProcess({ args: ['--pgbouncer-ini', 'pgbouncer.ini'], cwd: dir });
  await waitListening(pgmux, port);
  // Startup lines are asserted on below: the last one may reach the pipe just after the port accepts connections.
  await waitForOutput(pgmux, 'pgmux listening');
}, 60_000);

afterAll(async () => {
  await pgmux?.stop('SIGTERM');
});

describe('a typical pgbouncer.ini, unchanged', () => {
  it('starts in transaction mode with the file\'s pool settings', () => {
    const started = logLines(pgmux?.stdout() ?? '');
    expect(started.find((l) => l.msg === 'pgmux listening')).toMatchObject({ port, pool_mode: 'transaction' });
  });

  it('serves 200 concurrent SCRAM clients through the wildcard database on at most 25 server connections', async () => {
    const admin = await adminClient(db);
    const watch = watchBackends(admin, { database: db, user: APP_ROLE.name });
    try {
      const CLIENTS = 200;
      const TXNS = 5;
      await Promise.all(
        Array.from({ length: CLIENTS }, async (_, id) => {
          const c = new pg.Client({ host: '127.0.0.1', port, user: APP_ROLE.name, password: APP_ROLE.password, database: db, connectionTimeoutMillis: 30_000 });
          await c.connect();
          try {
            for (let i = 0; i < TXNS; i++) {
              await c.query('BEGIN');
              await c.query('INSERT INTO orders (client, amount) VALUES ($1, $2)', [id, i + 1]);
              const r = await c.query<{ s: number }>('SELECT sum(amount)::int AS s FROM orders WHERE client = $1', [id]);
              expect(r.rows[0].s).toBe(((i + 1) * (i + 2)) / 2);
              await c.query('COMMIT');
            }
          } finally {
            await c.end();
          }
        }),
      );
      const peak = await watch.stop();
      const total = (await admin.query<{ n: number }>('SELECT count(*)::int AS n FROM orders')).rows[0].n;
      expect(total).toBe(CLIENTS * TXNS);
      expect(peak).toBeGreaterThan(0);
      expect(peak).toBeLessThanOrEqual(25);
    } finally {
      await watch.stop();
      await admin.end();
    }
  }, 120_000);
});
