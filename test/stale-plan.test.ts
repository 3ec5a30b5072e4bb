/**
 * A prepared statement whose result columns change (ALTER TABLE) fails at its next Bind with
 * 0A000 "cached plan must not change result type". Outside an explicit transaction, when the
 * client Describes what it runs, pgmux re-prepares and retries once, so the client just sees the
 * new columns. Where a retry would not be safe, the client gets PostgreSQL's own error.
 * Pool of 1, so every client's statement lives on the same server connection.
 */
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { adminClient, createTestDatabase, pgInfo } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { APP_ROLE } from './harness/roles.js';
import { parseErrorFields, RawConnection, scramLogin, startupPacket } from './harness/wire.js';
import { serialize } from 'pg-protocol';

let px: TestPgmux;
let db: string;
let admin: pg.Client;

beforeAll(async () => {
  db = await createTestDatabase('stale_plan');
  admin = await adminClient(db);
  await admin.query(`grant all on schema public to ${APP_ROLE.name}`);
  px = await startPgmux({
    settings: { default_pool_size: 1, log_connections: false, log_disconnections: false },
    databases: { app: { dbname: db } },
    users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
  });
}, 60_000);

afterAll(async () => {
  await px?.stop();
  await admin?.end();
});

beforeEach(async () => {
  await admin.query(`drop table if exists t; create table t (id int primary key, a text); insert into t values (1, 'one'); alter table t owner to ${APP_ROLE.name}`);
});

function pgClient(url: string): pg.Client {
  return new pg.Client(url);
}

const byId = { name: 'by_id', text: 'select * from t where id = $1', values: [1] };

describe('0A000 "cached plan must not change result type"', () => {
  it('directly against PostgreSQL, node-postgres gets the error (the condition the retry handles)', async () => {
    const info = pgInfo();
    const c = pgClient(`postgres://${APP_ROLE.name}:${APP_ROLE.password}@${info.host}:${info.port}/${db}`);
    await c.connect();
    try {
      expect((await c.query(byId)).rows).toEqual([{ id: 1, a: 'one' }]);
      await admin.query('alter table t add column b int default 7');
      await expect(c.query(byId)).rejects.toMatchObject({ code: '0A000' });
    } finally {
      await c.end();
    }
  });

  it('through pgmux the statement is re-prepared and retried: node-postgres gets the new columns', async () => {
    const c = pgClient(px.url('app', APP_ROLE.name, APP_ROLE.password));
    const other = pgClient(px.url('app', APP_ROLE.name, APP_ROLE.password));
    await c.connect();
    await other.connect();
    try {
      expect((await c.query(byId)).rows).toEqual([{ id: 1, a: 'one' }]);
      expect((await other.query(byId)).rows).toEqual([{ id: 1, a: 'one' }]);
      await admin.query('alter table t add column b int default 7');
      const after = await c.query(byId);
      expect(after.fields.map((f) => f.name)).toEqual(['id', 'a', 'b']);
      expect(after.rows).toEqual([{ id: 1, a: 'one', b: 7 }]);
      // The statement stays usable, and so does another client's statement of the same text on that server.
      expect((await c.query(byId)).rows).toEqual([{ id: 1, a: 'one', b: 7 }]);
      expect((await other.query(byId)).rows).toEqual([{ id: 1, a: 'one', b: 7 }]);
      // The retry ran in an implicit transaction: nothing is left open.
      expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await c.end();
      await other.end();
    }
  });

  it('inside an explicit transaction the error reaches the client, as from PostgreSQL, and the transaction is aborted', async () => {
    const c = pgClient(px.url('app', APP_ROLE.name, APP_ROLE.password));
    await c.connect();
    try {
      await c.query(byId);
      await c.query('begin');
      await admin.query('alter table t add column b int default 7');
      await expect(c.query(byId)).rejects.toMatchObject({ code: '0A000', message: 'cached plan must not change result type' });
      await expect(c.query('select 1')).rejects.toMatchObject({ code: '25P02' });
      await c.query('rollback');
      // After the failed transaction, the implicit-transaction retry makes it work again.
      expect((await c.query(byId)).rows).toEqual([{ id: 1, a: 'one', b: 7 }]);
    } finally {
      await c.end();
    }
  });

  it('a segment that does not Describe gets the error (the client would not know the new row shape)', async () => {
    const conn = await RawConnection.connect(px.port);
    try {
      await conn.write(startupPacket({ user: APP_ROLE.name, database: 'app' }));
      await scramLogin(conn, APP_ROLE.password ?? '');
      // First use with a Describe, then Bind + Execute + Sync only, as drivers with a cached row description do.
      await conn.write(Buffer.concat([serialize.parse({ name: 'raw_by_id', text: byId.text }), serialize.bind({ statement: 'raw_by_id', values: ['1'] }), serialize.describe({ type: 'P' }), serialize.execute({}), serialize.sync()]));
      await conn.untilMessage('Z', 5000, 2);
      await admin.query('alter table t add column b int default 7');
      await conn.write(Buffer.concat([serialize.bind({ statement: 'raw_by_id', values: ['1'] }), serialize.execute({}), serialize.sync()]));
      await conn.untilMessage('Z', 5000, 3);
      const errors = conn.messages.filter((m) => m.code === 'E').map((m) => parseErrorFields(m.body));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ C: '0A000', M: 'cached plan must not change result type' });
      expect(conn.messages.filter((m) => m.code === 'D')).toHaveLength(1); // only the row from before the change
    } finally {
      conn.destroy();
    }
  });

  it('postgres.js re-prepares by itself on the error pgmux passes through (routine field intact)', async () => {
    const sql = postgres(px.url('app', APP_ROLE.name, APP_ROLE.password), { max: 1, prepare: true, onnotice: () => {} });
    try {
      expect(await sql`select * from t where id = ${1}`).toEqual([{ id: 1, a: 'one' }]);
      expect(await sql`select * from t where id = ${1}`).toEqual([{ id: 1, a: 'one' }]);
      await admin.query('alter table t add column b int default 7');
      expect(await sql`select * from t where id = ${1}`).toEqual([{ id: 1, a: 'one', b: 7 }]);
    } finally {
      await sql.end();
    }
  });
});
