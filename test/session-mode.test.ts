/** Session mode: a client keeps its server connection for the whole session; the next client starts clean. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient } from './harness/clients.js';
import { createTestDatabase } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { APP_ROLE } from './harness/roles.js';

let px: TestPgmux;

beforeAll(async () => {
  const db = await createTestDatabase('session');
  px = await startPgmux({
    settings: { pool_mode: 'session', default_pool_size: 1 },
    databases: { app: { dbname: db } },
    users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
  });
});

afterAll(async () => {
  await px?.stop();
});

function connect(): Promise<pg.Client> {
  return connectClient(px);
}

describe('session mode', () => {
  it('keeps SET across transactions and resets it for the next client on the same server', async () => {
    const first = await connect();
    const pid = (await first.query('select pg_backend_pid() as pid')).rows[0].pid;
    await first.query("SET search_path TO 'session_marker', public");
    await first.query('SET statement_timeout = 12345');
    await first.query('BEGIN');
    await first.query('COMMIT');
    await first.query('select 1');
    const inside = await first.query('show search_path');
    expect(inside.rows[0].search_path).toBe('session_marker, public');
    expect((await first.query('show statement_timeout')).rows[0].statement_timeout).toBe('12345ms');
    await first.query('PREPARE leaked_plan AS select 1');
    await first.query('CREATE TEMP TABLE leaked_temp (x int)');
    await first.end();

    const second = await connect();
    // Pool size 1: the second client gets the very same server process.
    expect((await second.query('select pg_backend_pid() as pid')).rows[0].pid).toBe(pid);
    expect((await second.query('show search_path')).rows[0].search_path).toBe('"$user", public');
    expect((await second.query('show statement_timeout')).rows[0].statement_timeout).toBe('0');
    expect((await second.query("select count(*)::int as n from pg_prepared_statements where name = 'leaked_plan'")).rows[0].n).toBe(0);
    expect((await second.query("select to_regclass('pg_temp.leaked_temp') is null as gone")).rows[0].gone).toBe(true);
    await second.end();
  });

  it('holds the server for the whole session: a second client waits until the first leaves', async () => {
    const first = await connect();
    await first.query('select 1');
    const second = await connect();
    let secondDone = false;
    const pending = second.query('select 2 as two').then((r) => {
      secondDone = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(secondDone).toBe(false);
    await first.end();
    const r = await pending;
    expect(r.rows[0].two).toBe(2);
    await second.end();
  });
});
