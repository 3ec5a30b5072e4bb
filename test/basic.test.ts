import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_ROLE, CLEAR_ROLE, MD5_ROLE, SCRAM_ROLE, TRUST_ROLE } from './harness/roles.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { createTestDatabase } from './harness/context.js';

let px: TestPgmux;
let db: string;

beforeAll(async () => {
  db = await createTestDatabase('basic');
  px = await startPgmux({
    settings: { default_pool_size: 2 },
    databases: { app: { dbname: db } },
    users: {
      [APP_ROLE.name]: { password: APP_ROLE.password },
      [SCRAM_ROLE.name]: { password: SCRAM_ROLE.password },
      [MD5_ROLE.name]: { password: MD5_ROLE.password },
      [CLEAR_ROLE.name]: { password: CLEAR_ROLE.password },
      [TRUST_ROLE.name]: { password: 'trust-client-pass' },
    },
  });
});

afterAll(async () => {
  await px?.stop();
});

describe('basic queries through pgmux', () => {
  it('runs a simple query with node-postgres', async () => {
    const client = new pg.Client(px.url('app', APP_ROLE.name, APP_ROLE.password));
    await client.connect();
    const r = await client.query('select 1 + 1 as two, current_user as u, current_database() as d');
    expect(r.rows).toEqual([{ two: 2, u: 'app', d: db }]);
    const p = await client.query('select $1::int * 2 as x', [21]);
    expect(p.rows[0].x).toBe(42);
    await client.end();
  });

  it('runs queries with postgres.js (extended protocol, unnamed statements)', async () => {
    const sql = postgres(px.url('app', APP_ROLE.name, APP_ROLE.password), { max: 4, prepare: false });
    const rows = await sql`select ${5}::int + 1 as six`;
    expect(rows[0].six).toBe(6);
    await sql.end();
  });

  it.each([SCRAM_ROLE, MD5_ROLE, CLEAR_ROLE])('logs in upstream with the $method method as $name', async (role) => {
    const client = new pg.Client(px.url('app', role.name, role.password));
    await client.connect();
    const r = await client.query('select current_user as u');
    expect(r.rows[0].u).toBe(role.name);
    await client.end();
  });

  it('logs in upstream to a trust role', async () => {
    const client = new pg.Client(px.url('app', TRUST_ROLE.name, 'trust-client-pass'));
    await client.connect();
    const r = await client.query('select current_user as u');
    expect(r.rows[0].u).toBe(TRUST_ROLE.name);
    await client.end();
  });
});
