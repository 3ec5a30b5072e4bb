/**
 * Drop-in for PgBouncer users: the pgmux process started with `--pgbouncer-ini` on a real pgbouncer.ini (with a
 * %include) and a userlist.txt generated from pg_authid, as PgBouncer's mkauth.py does. Clients log in with SCRAM
 * (a SCRAM secret in the userlist: the client is asked for SCRAM although auth_type is md5, as PgBouncer does) and
 * with md5 (an md5 secret), through named databases, a quoted name with a forced user, and the "*" wildcard; the
 * [users] section and the included file's settings take effect; unsupported and ignored settings are logged at
 * startup.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, createTestDatabase, pgInfo } from './harness/context.js';
import { logLines, startPgmuxProcess } from './harness/pgmux-process.js';
import { freePort } from './harness/postgres.js';
import { waitForOutput, waitListening, type ChildProc } from './harness/process.js';
import { APP_ROLE, CLEAR_ROLE, MD5_ROLE } from './harness/roles.js';
import { authKind, RawConnection, scramLogin, startupPacket } from './harness/wire.js';

let dir: string;
let appDb: string;
let wildDb: string;
let port: number;
let pgmux: ChildProc | undefined;

function client(user: string, password: string | undefined, database: string): pg.Client {
  return new pg.Client({ host: '127.0.0.1', port, user, password, database, connectionTimeoutMillis: 10_000 });
}

async function query<T extends pg.QueryResultRow>(user: string, password: string | undefined, database: string, sql: string): Promise<T[]> {
  const c = client(user, password, database);
  await c.connect();
  try {
    return (await c.query<T>(sql)).rows;
  } finally {
    await c.end();
  }
}

/** The first authentication request pgmux sends for this login (5 = MD5Password, 10 = SASL). */
async function authRequest(user: string, database: string): Promise<{ kind: number; conn: RawConnection }> {
  const conn = await RawConnection.connect(port);
  await conn.write(startupPacket({ user, database }));
  const r = await conn.untilMessage('R', 5000);
  return { kind: authKind(r), conn };
}

beforeAll(async () => {
  appDb = await createTestDatabase('ini_app');
  wildDb = await createTestDatabase('ini_wild');
  const info = pgInfo();

  // userlist.txt as PgBouncer's mkauth.py writes it: the secrets Postgres stores, so SCRAM and md5 both work
  // end to end. pgmux_clear's is written as plaintext (a plaintext password is allowed in the file too).
  const admin = await adminClient();
  let secrets: Map<string, string>;
  try {
    const r = await admin.query<{ rolname: string; rolpassword: string }>('SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY($1)', [[APP_ROLE.name, MD5_ROLE.name]]);
    secrets = new Map(r.rows.map((row) => [row.rolname, row.rolpassword]));
  } finally {
    await admin.end();
  }
  expect(secrets.get(APP_ROLE.name)).toMatch(/^SCRAM-SHA-256\$/);
  expect(secrets.get(MD5_ROLE.name)).toMatch(/^md5[0-9a-f]{32}$/);

  dir = mkdtempSync(path.join(tmpdir(), 'pgmux-pgbouncer-'));
  const userlist = path.join(dir, 'userlist.txt');
  writeFileSync(
    userlist,
    [
      `"${APP_ROLE.name}" "${secrets.get(APP_ROLE.name)}"`,
      `"${MD5_ROLE.name}" "${secrets.get(MD5_ROLE.name)}"`,
      `"${CLEAR_ROLE.name}" "${CLEAR_ROLE.password}"`,
      '',
    ].join('\n'),
  );
  port = await freePort();
  const pgHostPort = `host=${info.host} port=${info.port}`;
  writeFileSync(
    path.join(dir, 'pgbouncer.ini'),
    [
      ';; A PgBouncer configuration as deployed: unchanged but for the addresses.',
      '[databases]',
      `appdb = ${pgHostPort} dbname=${appDb}`,
      `"forced db" = ${pgHostPort} dbname=${appDb} user=${CLEAR_ROLE.name} password='${CLEAR_ROLE.password}' pool_size=2`,
      `* = ${pgHostPort}`,
      '',
      '[users]',
      `${APP_ROLE.name} = pool_mode=transaction max_user_connections=2`,
      '',
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'auth_type = md5',
      `auth_file = ${userlist}`,
      'logfile = /var/log/pgbouncer/pgbouncer.log',
      'pidfile = /var/run/pgbouncer/pgbouncer.pid',
      'unix_socket_dir = /var/run/postgresql',
      'user = postgres',
      'admin_users = postgres',
      'ignore_startup_parameters = extra_float_digits',
      'server_round_robin = 1',
      '%include pool.ini',
      '',
    ].join('\n'),
  );
  writeFileSync(path.join(dir, 'pool.ini'), '; pool sizing, kept apart\ndefault_pool_size = 10\nquery_wait_timeout = 2.5\n');

  // The real process, as PgBouncer users would start it (METRICS_PORT=0: tests share the machine).
  pgmux = startPgmuxProcess({ args: ['--pgbouncer-ini', path.join(dir, 'pgbouncer.ini')], cwd: dir });
  await waitListening(pgmux, port);
  // Startup lines are asserted on below: the last one may reach the pipe just after the port accepts connections.
  await waitForOutput(pgmux, 'pgmux listening');
}, 60_000);

afterAll(async () => {
  await pgmux?.stop('SIGTERM');
});

describe('pgmux --pgbouncer-ini', () => {
  it('logs the unsupported settings by name (warn) and the ignored ones with reasons (info) at startup', () => {
    const stdout = pgmux?.stdout() ?? '';
    const lines = logLines(stdout);
    const warn = lines.find((l) => l.level === 'warn' && typeof l.msg === 'string' && l.msg.startsWith('pgbouncer.ini:'));
    expect(warn?.msg, stdout).toBe('pgbouncer.ini: 1 setting(s) pgmux does not support have no effect: server_round_robin');
    expect(warn?.unsupported).toEqual([`server_round_robin (${path.join(dir, 'pgbouncer.ini')}:21): pgmux has no round-robin server selection`]);
    const info = lines.find((l) => l.level === 'info' && typeof l.msg === 'string' && l.msg.startsWith('pgbouncer.ini: ignored'));
    expect(info?.msg).toBe('pgbouncer.ini: ignored as meaningless for pgmux: logfile, pidfile, user, ignore_startup_parameters');
    // unix_socket_dir is served, as by PgBouncer.
    expect(lines.find((l) => l.msg === 'pgmux listening')).toMatchObject({ port, pool_mode: 'session', unix_socket: `/var/run/postgresql/.s.PGSQL.${port}` });
  });

  it('asks a user with a SCRAM secret for SCRAM (auth_type md5, as PgBouncer does) and logs in upstream with it', async () => {
    const { kind, conn } = await authRequest(APP_ROLE.name, 'appdb');
    try {
      expect(kind).toBe(10);
      await scramLogin(conn, APP_ROLE.password as string);
    } finally {
      conn.destroy();
    }
    const rows = await query<{ u: string; d: string }>(APP_ROLE.name, APP_ROLE.password, 'appdb', 'select current_user as u, current_database() as d');
    expect(rows).toEqual([{ u: APP_ROLE.name, d: appDb }]);
  });

  it('asks a user with an md5 secret for md5, and logs in upstream (md5) with the hash', async () => {
    const { kind, conn } = await authRequest(MD5_ROLE.name, 'appdb');
    conn.destroy();
    expect(kind).toBe(5);
    const rows = await query<{ u: string; n: number }>(MD5_ROLE.name, MD5_ROLE.password, 'appdb', 'select current_user as u, 6 * 7 as n');
    expect(rows).toEqual([{ u: MD5_ROLE.name, n: 42 }]);
  });

  it('refuses wrong passwords and unknown users with 28P01', async () => {
    for (const [user, password] of [
      [APP_ROLE.name, 'wrong'],
      [MD5_ROLE.name, 'wrong'],
      ['nobody', 'x'],
    ]) {
      const c = client(user, password, 'appdb');
      await expect(c.connect()).rejects.toMatchObject({ code: '28P01' });
      await c.end().catch(() => undefined);
    }
  });

  it('serves a quoted database name whose connection string forces user and password', async () => {
    const rows = await query<{ u: string; d: string }>(APP_ROLE.name, APP_ROLE.password, 'forced db', 'select current_user as u, current_database() as d');
    expect(rows).toEqual([{ u: CLEAR_ROLE.name, d: appDb }]);
  });

  it('routes any other database name through "*" to the same-named upstream database', async () => {
    const scram = await query<{ d: string; u: string }>(APP_ROLE.name, APP_ROLE.password, wildDb, 'select current_database() as d, current_user as u');
    expect(scram).toEqual([{ d: wildDb, u: APP_ROLE.name }]);
    const md5 = await query<{ d: string }>(MD5_ROLE.name, MD5_ROLE.password, wildDb, 'select current_database() as d');
    expect(md5).toEqual([{ d: wildDb }]);
    // A name the server does not have either: the server's own error reaches the client.
    const c = client(APP_ROLE.name, APP_ROLE.password, 'no_such_database_here');
    const err = await c.connect().then(
      () => c.query('select 1').then(() => null, (e: unknown) => e),
      (e: unknown) => e,
    );
    await c.end().catch(() => undefined);
    expect(err).toMatchObject({ code: '3D000', message: expect.stringMatching(/no_such_database_here/) });
  });

  it('applies [users] (transaction mode, max_user_connections=2) and the included query_wait_timeout = 2.5', async () => {
    const holders = [client(APP_ROLE.name, APP_ROLE.password, 'appdb'), client(APP_ROLE.name, APP_ROLE.password, 'appdb')];
    const third = client(APP_ROLE.name, APP_ROLE.password, 'appdb');
    try {
      for (const c of [...holders, third]) await c.connect();
      // Transaction mode: between transactions a client holds no server connection, so a third client could run.
      for (const c of holders) await c.query('select 1');
      expect((await third.query<{ n: number }>('select 1 as n')).rows).toEqual([{ n: 1 }]);
      // Two open transactions hold both connections the user may have; the third client waits, then gets 57014.
      for (const c of holders) await c.query('BEGIN; select pg_backend_pid()');
      const started = Date.now();
      const err = await third.query('select 1').then(() => null, (e: unknown) => e);
      const waited = Date.now() - started;
      expect(err).toMatchObject({ code: '57014', message: expect.stringMatching(/within 2500 ms \(query_wait_timeout\)/) });
      expect(waited).toBeGreaterThanOrEqual(2300);
      expect(waited).toBeLessThan(10_000);
      for (const c of holders) await c.query('COMMIT');
      expect((await third.query<{ n: number }>('select 2 as n')).rows).toEqual([{ n: 2 }]);
    } finally {
      for (const c of [...holders, third]) await c.end().catch(() => undefined);
    }
  }, 30_000);

  it('keeps PgBouncer\'s default pool mode (session) for users without a [users] entry', async () => {
    const c = client(MD5_ROLE.name, MD5_ROLE.password, 'appdb');
    await c.connect();
    try {
      // Session mode: a temp table needs no pinning and survives between transactions on the same connection.
      await c.query('CREATE TEMP TABLE t_session (x int)');
      await c.query('INSERT INTO t_session VALUES (1)');
      const pids = new Set<number>();
      for (let i = 0; i < 3; i++) pids.add((await c.query<{ p: number }>('select pg_backend_pid() as p')).rows[0].p);
      expect(pids.size).toBe(1);
      expect((await c.query('select * from t_session')).rows).toEqual([{ x: 1 }]);
    } finally {
      await c.end();
    }
  });
});
