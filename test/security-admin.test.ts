/**
 * Security checks (issue 11): who may do what in the admin console (databases `pgbouncer` / `pgmux`).
 *
 * - A `stats_users` member is refused every command but SHOW with 42501 (insufficient privilege) and a
 *   message saying admin access is needed, before its argument is even looked at (as PgBouncer checks
 *   admin_user first: a stats user learns nothing about client ids or database names), and nothing happens:
 *   KILL_CLIENT included (PgBouncer 1.25.x fixed KILL_CLIENT not checking admin_users).
 * - A stats user may run every SHOW command pgmux has, which is PgBouncer's rule (all of SHOW but FDS,
 *   which pgmux does not have), and sees what an admin sees.
 * - A user in neither list is refused at login (42501 "permission denied for database", as PostgreSQL refuses a
 *   user without CONNECT privilege; the hint names both settings), and commands it pipelined
 *   behind its password do not run.
 * - Command names that are properties of every JavaScript object (`SHOW constructor`) are unknown commands.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeLogin } from './harness/auth-probe.js';
import { createTestDatabase } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { APP_ROLE } from './harness/roles.js';
import { withTimeout } from './harness/wait.js';
import { queryMessage } from './harness/wire.js';

const ADMIN = { name: 'sec_console_admin', password: `a-${randomBytes(6).toString('hex')}` };
const STATS = { name: 'sec_console_stats', password: `s-${randomBytes(6).toString('hex')}` };
const PLAIN = { name: 'sec_console_plain', password: `p-${randomBytes(6).toString('hex')}` };
const DB = 'sa_app';

type PgError = Error & { code?: string; hint?: string };

let px: TestPgmux;
let admin: pg.Client;
let stats: pg.Client;
let victim: pg.Client;
let victimId: number;
const opened: pg.Client[] = [];

async function connect(user: { name: string; password: string }, database: string, application = 'security-admin'): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: px.port, user: user.name, password: user.password, database, application_name: application });
  c.on('error', () => undefined);
  await c.connect();
  opened.push(c);
  return c;
}

/** The query's error (null if it succeeded); a query left unanswered fails the test after 5 s. */
async function errorOf(client: pg.Client, sql: string): Promise<PgError | null> {
  return withTimeout(
    client.query(sql).then(
      () => null,
      (e: unknown) => e as PgError,
    ),
    5000,
    `an answer to ${sql}`,
  );
}

async function databaseRow(): Promise<Record<string, unknown>> {
  const rows = (await admin.query('SHOW DATABASES')).rows as Array<Record<string, unknown>>;
  return rows.find((r) => r.name === DB) as Record<string, unknown>;
}

beforeAll(async () => {
  const db = await createTestDatabase('secadmin');
  px = await startPgmux({
    settings: { admin_users: ADMIN.name, stats_users: STATS.name, log_connections: false, log_disconnections: false, default_pool_size: 2 },
    databases: { [DB]: { dbname: db } },
    users: {
      [APP_ROLE.name]: { password: APP_ROLE.password },
      [ADMIN.name]: { password: ADMIN.password },
      [STATS.name]: { password: STATS.password },
      [PLAIN.name]: { password: PLAIN.password },
    },
  });
  admin = await connect(ADMIN, 'pgbouncer');
  stats = await connect(STATS, 'pgbouncer');
  victim = await connect({ name: APP_ROLE.name, password: APP_ROLE.password as string }, DB, 'victim');
  await victim.query('SELECT 1');
  const clients = (await admin.query('SHOW CLIENTS')).rows as Array<Record<string, unknown>>;
  victimId = clients.find((r) => r.application_name === 'victim')?.id as number;
  expect(victimId).toBeGreaterThan(0);
});

afterAll(async () => {
  for (const c of opened) await c.end().catch(() => undefined);
  await px?.stop();
});

describe('a stats_users member', () => {
  const commands = (): string[] => [
    'PAUSE', `PAUSE ${DB}`, 'PAUSE no_such_db', 'RESUME', `RESUME ${DB}`, 'RECONNECT', `RECONNECT ${DB}`,
    'KILL', `KILL ${DB}`, `KILL_CLIENT ${victimId}`, 'KILL_CLIENT 999999', 'KILL_CLIENT', 'KILL_CLIENT abc',
    'SUSPEND', 'SHUTDOWN', 'SHUTDOWN WAIT_FOR_CLIENTS', 'RELOAD', `DISABLE ${DB}`, `ENABLE ${DB}`, 'WAIT_CLOSE', `WAIT_CLOSE ${DB}`,
    'SET default_pool_size = 7', "SET log_level = 'trace'", 'SET no_such_setting = 1', 'SET listen_port = 1',
    `pause ${DB};`, `"KILL_CLIENT" ${victimId}`,
  ];

  it('is refused every command but SHOW with 42501 "needs admin access", whatever the argument', async () => {
    const reloadsBefore = { ...px.pgmux.registry.reloads };
    for (const command of commands()) {
      const err = await errorOf(stats, command);
      expect(err?.code, command).toBe('42501');
      expect(err?.message, command).toMatch(/needs admin access/);
      expect(err?.message, command).toContain(`"${STATS.name}"`);
      expect(err?.hint, command).toContain('admin_users');
    }
    // Nothing happened: the victim was not killed, nothing paused, disabled, reloaded or set, pgmux still up.
    expect((await victim.query<{ n: number }>('SELECT 1 AS n')).rows).toEqual([{ n: 1 }]);
    expect(await databaseRow()).toMatchObject({ paused: 0, disabled: 0 });
    expect(px.pgmux.registry.reloads).toEqual(reloadsBefore);
    expect(px.pgmux.config.default_pool_size).toBe(2);
    expect(px.pgmux.config.log_level).toBe('info');
    expect(((await admin.query('SHOW STATE')).rows as Array<Record<string, unknown>>)[0]).toEqual({ key: 'active', value: 'yes' });
    const fresh = await connect({ name: APP_ROLE.name, password: APP_ROLE.password as string }, DB);
    expect((await fresh.query('SELECT 1 AS n')).rows).toEqual([{ n: 1 }]);
    // The session goes on.
    expect((await stats.query('SHOW VERSION')).rows).toHaveLength(1);
  });

  it('is refused the same when the command is pipelined right behind its login', async () => {
    const probe = await probeLogin(px.port, { user: STATS.name, database: 'pgbouncer' }, STATS.password, {
      after: [queryMessage(`KILL_CLIENT ${victimId}`), queryMessage(`PAUSE ${DB}`)],
    });
    await probe.conn.until((c) => c.messages.filter((m) => m.code === 'Z').length >= 3, 5000, 'two answers');
    probe.conn.destroy();
    const errors = probe.conn.messages.filter((m) => m.code === 'E').map((m) => m.body.toString('latin1'));
    expect(errors).toHaveLength(2);
    for (const e of errors) expect(e).toContain('C42501');
    expect((await victim.query<{ n: number }>('SELECT 1 AS n')).rows).toEqual([{ n: 1 }]);
    expect(await databaseRow()).toMatchObject({ paused: 0 });
  });

  it('may run every SHOW command pgmux has (PgBouncer: all but FDS), seeing the columns an admin sees', async () => {
    const notices: Array<{ detail?: string }> = [];
    stats.on('notice', (n) => notices.push(n));
    await stats.query('SHOW HELP');
    const detail = notices[0]?.detail ?? '';
    const shows = detail
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.startsWith('SHOW '))
      .flatMap((l) => l.slice(5).split('|'));
    expect(shows).toEqual(expect.arrayContaining(['HELP', 'CONFIG', 'DATABASES', 'POOLS', 'CLIENTS', 'SERVERS', 'USERS', 'VERSION', 'LISTS', 'STATE', 'STATS', 'STATS_TOTALS', 'STATS_AVERAGES', 'TOTALS']));
    for (const what of [...shows, 'client_encoding', 'TimeZone']) {
      const mine = await stats.query(`SHOW ${what}`);
      const theirs = await admin.query(`SHOW ${what}`);
      expect(mine.fields.map((f) => f.name), what).toEqual(theirs.fields.map((f) => f.name));
    }
    // PgBouncer answers SET of its fake parameters for stats users too.
    expect(await errorOf(stats, "SET client_encoding = 'UTF8'")).toBeNull();
    // FDS is admin-only in PgBouncer; pgmux has no such command for anyone.
    expect((await errorOf(stats, 'SHOW FDS'))?.code).toMatch(/^42(501|601)$/);
  });
});

describe('a user in neither admin_users nor stats_users', () => {
  it('is refused at login with 42501 naming both settings, and what it pipelined behind its password does not run', async () => {
    const probe = await probeLogin(px.port, { user: PLAIN.name, database: 'pgbouncer' }, PLAIN.password, {
      after: [queryMessage(`PAUSE ${DB}`), queryMessage(`KILL_CLIENT ${victimId}`), queryMessage('SHUTDOWN')],
    });
    await probe.conn.untilClosed(5000);
    expect(probe.error).toMatchObject({ S: 'FATAL', C: '42501', M: `permission denied for database "pgbouncer": user "${PLAIN.name}" is not allowed to use the admin console` });
    expect(probe.error?.H).toMatch(/admin_users.*stats_users/);
    // One error, no ReadyForQuery, no result of any command.
    expect(probe.conn.messages.map((m) => m.code).filter((c) => c !== 'R')).toEqual(['E']);
    expect(await databaseRow()).toMatchObject({ paused: 0 });
    expect((await victim.query<{ n: number }>('SELECT 1 AS n')).rows).toEqual([{ n: 1 }]);
    expect(((await admin.query('SHOW STATE')).rows as Array<Record<string, unknown>>)[0]).toEqual({ key: 'active', value: 'yes' });
  });

  it('with a wrong password gets 28P01 like anyone (the console does not tell who is a console user)', async () => {
    for (const user of [PLAIN.name, STATS.name, ADMIN.name, 'sec_console_nobody']) {
      const probe = await probeLogin(px.port, { user, database: 'pgbouncer' }, null);
      probe.conn.destroy();
      expect(probe.error, user).toMatchObject({ C: '28P01', M: `password authentication failed for user "${user}"` });
    }
  });
});

describe('command names that every JavaScript object has', () => {
  it.each(['SHOW constructor', 'SHOW __proto__', 'constructor', '__proto__', 'SHOW valueOf', 'toString'])(
    '%s is an unknown command (42601) for admins and stats users; the session and pgmux go on',
    async (sql) => {
      for (const client of [stats, admin]) {
        const err = await errorOf(client, sql);
        // A stats user may also be told it needs admin for a non-SHOW name; never anything else.
        expect(err?.code, sql).toMatch(client === stats && !sql.startsWith('SHOW') ? /^42(501|601)$/ : /^42601$/);
        expect((await client.query('SHOW VERSION')).rows).toHaveLength(1);
      }
    },
  );
});

describe('an admin (the control: the refused commands do work when allowed)', () => {
  it('KILL_CLIENT ends the victim', async () => {
    expect(await errorOf(admin, `KILL_CLIENT ${victimId}`)).toBeNull();
    await expect(victim.query('SELECT 1')).rejects.toThrow();
  });
});
