/**
 * Security checks (issue 11): no secret reaches pgmux's log, at trace level (the most verbose pgmux has),
 * on any login path:
 *
 * - client → pgmux: SCRAM-SHA-256 (plaintext password in users:), SCRAM-SHA-256-PLUS over TLS, md5 (md5 hash
 *   in the auth_file), cleartext over TLS, auth_query (SCRAM verifier looked up upstream), a SCRAM verifier in
 *   the auth_file, the admin console; each also with a wrong password, and an unknown user;
 * - pgmux → Postgres: SCRAM (from a plaintext password, and passed through from a client's proof), md5 (from
 *   an md5 hash) and cleartext, plus auth_query's own login as auth_user;
 * - clients that put their password where it does not belong (a PasswordMessage in place of the SASL
 *   messages), and a reload of a configuration file with a password written in the wrong place.
 *
 * Every line is searched for every secret the test knows or computes, in its plain, base64 and hex forms:
 * passwords (right and wrong), md5 hashes, SCRAM verifiers' StoredKey/ServerKey, SaltedPassword and ClientKey
 * (for Postgres's salts and for the salts pgmux makes up for plaintext passwords, read off the wire), the
 * proofs and signatures of the exchanges the test runs itself, md5 responses, and pgmux's TLS private key.
 */
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { md5Hex, parseVerifier, probeLogin, scramKeys, type ProbeResult } from './harness/auth-probe.js';
import { makeCertificates, type TestCerts } from './harness/certs.js';
import { adminClient, createTestDatabase, dropTestDatabase } from './harness/context.js';
import { startPgmux, type TestPgmux, type TestPgmuxOptions } from './harness/pgmux.js';
import { APP_ROLE, CLEAR_ROLE, MD5_ROLE, SCRAM_ROLE } from './harness/roles.js';
import { message } from './harness/wire.js';

const SUFFIX = `${process.pid}_${randomBytes(3).toString('hex')}`;
/** Found only through auth_query (its SCRAM verifier is in pg_authid). */
const LOOKED_UP = { name: `sec_aq_${SUFFIX}`, password: `aq-${randomBytes(9).toString('base64url')}` };
/** Its SCRAM verifier is in the auth_file. */
const FILE_VERIFIER = { name: `sec_fv_${SUFFIX}`, password: `fv-${randomBytes(9).toString('base64url')}` };
/** Admin console user (no Postgres role). */
const ADMIN = { name: 'sec_admin', password: `adm-${randomBytes(9).toString('base64url')}` };
/** Written under users: as a string, where a map belongs: the reload must refuse it without repeating it. */
const MISPLACED = `misplaced-${randomBytes(9).toString('base64url')}`;
const wrong = (label: string): string => `wrong-${label}-${randomBytes(6).toString('base64url')}`;

let certs: TestCerts;
let db: string;
let superuser: pg.Client;
let px: TestPgmux;
let options: TestPgmuxOptions;
let authDir: string;
const lines: string[] = [];
/** name → secret value; every entry is looked for in every log line. */
const secrets = new Map<string, string | Buffer>();

function remember(name: string, value: string | Buffer | undefined): void {
  if (value !== undefined && value.length > 0) secrets.set(name, value);
}

/** The forms a secret could take in a log line (compared case-insensitively for hex). */
function forms(value: string | Buffer): string[] {
  if (typeof value === 'string') {
    const out = [value, Buffer.from(value).toString('base64'), Buffer.from(value).toString('hex')];
    if (/^md5[0-9a-f]{32}$/.test(value)) out.push(value.slice(3));
    return out;
  }
  const b64 = value.toString('base64');
  return [b64, b64.replace(/=+$/, ''), value.toString('base64url'), value.toString('hex')];
}

/** Every (secret, line) pair where the line contains the secret in one of its forms. */
function leaks(logLines: readonly string[]): string[] {
  const found: string[] = [];
  const lowered = logLines.map((l) => l.toLowerCase());
  for (const [name, value] of secrets) {
    for (const form of forms(value)) {
      const hex = /^[0-9a-f]+$/i.test(form);
      logLines.forEach((line, i) => {
        if (hex ? lowered[i].includes(form.toLowerCase()) : line.includes(form)) found.push(`${name} (${form.slice(0, 12)}...) in: ${line.slice(0, 300)}`);
      });
    }
  }
  return found;
}

const logged = (msg: string): Array<Record<string, unknown>> =>
  lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r.msg === msg);

async function verifierOf(role: string): Promise<string> {
  const r = await superuser.query<{ p: string }>('SELECT rolpassword AS p FROM pg_authid WHERE rolname = $1', [role]);
  return r.rows[0].p;
}

/** Remembers a verifier's keys and, with the password, what the password derives for its salt. */
function rememberVerifier(name: string, verifier: string, password: string): void {
  const v = parseVerifier(verifier);
  remember(`${name} verifier`, verifier);
  remember(`${name} StoredKey`, v.storedKey);
  remember(`${name} ServerKey`, v.serverKey);
  const keys = scramKeys(password, v.salt, v.iterations);
  remember(`${name} SaltedPassword`, keys.salted);
  remember(`${name} ClientKey`, keys.clientKey);
}

function rememberExchange(name: string, probe: ProbeResult): void {
  for (const [key, value] of Object.entries(probe.secrets)) remember(`${name} ${key}`, value);
}

beforeAll(async () => {
  certs = await makeCertificates();
  db = await createTestDatabase('seclogs');
  superuser = await adminClient(db);
  for (const role of [LOOKED_UP, FILE_VERIFIER]) {
    await superuser.query(`CREATE ROLE ${role.name} LOGIN PASSWORD '${role.password}'`);
  }
  await superuser.query(`CREATE FUNCTION public.sec_lookup(u text) RETURNS TABLE(usename name, passwd text)
      LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
      AS $$ SELECT s.usename, s.passwd FROM pg_catalog.pg_shadow s WHERE s.usename = u $$`);
  await superuser.query('REVOKE ALL ON FUNCTION public.sec_lookup(text) FROM PUBLIC');
  await superuser.query(`GRANT EXECUTE ON FUNCTION public.sec_lookup(text) TO ${SCRAM_ROLE.name}`);

  const md5Secret = `md5${md5Hex(`${MD5_ROLE.password}${MD5_ROLE.name}`)}`;
  const fileVerifier = await verifierOf(FILE_VERIFIER.name);
  authDir = mkdtempSync(path.join(tmpdir(), 'pgmux-seclogs-'));
  const authFile = path.join(authDir, 'userlist.txt');
  writeFileSync(
    authFile,
    [`"${MD5_ROLE.name}" "${md5Secret}"`, `"${FILE_VERIFIER.name}" "${fileVerifier}"`, `"${SCRAM_ROLE.name}" "${SCRAM_ROLE.password}"`, ''].join('\n'),
  );

  for (const role of [APP_ROLE, MD5_ROLE, CLEAR_ROLE, SCRAM_ROLE, LOOKED_UP, FILE_VERIFIER, ADMIN]) remember(`${role.name} password`, role.password);
  remember('misplaced password', MISPLACED);
  remember(`${MD5_ROLE.name} md5 hash`, md5Secret);
  for (const role of [APP_ROLE, SCRAM_ROLE, LOOKED_UP, FILE_VERIFIER]) rememberVerifier(role.name, await verifierOf(role.name), role.password as string);
  // The TLS private key, line by line (a line of base64 is 64 characters: long enough to be unique).
  for (const [i, line] of (await fsp.readFile(certs.serverKeyFile, 'utf8')).split('\n').entries()) {
    if (line !== '' && !line.startsWith('-----')) secrets.set(`TLS key line ${i}`, line);
  }

  options = {
    settings: {
      log_level: 'trace',
      log_connections: true,
      log_disconnections: true,
      default_pool_size: 2,
      auth_file: authFile,
      auth_user: SCRAM_ROLE.name,
      auth_query: 'SELECT * FROM public.sec_lookup($1)',
      client_tls_cert_file: certs.serverCertFile,
      client_tls_key_file: certs.serverKeyFile,
      admin_users: ADMIN.name,
    },
    databases: { app: { dbname: db } },
    users: {
      [APP_ROLE.name]: { password: APP_ROLE.password },
      [CLEAR_ROLE.name]: { auth_type: 'plain', password: CLEAR_ROLE.password },
      [MD5_ROLE.name]: { auth_type: 'md5' },
      [ADMIN.name]: { password: ADMIN.password },
    },
    logDestination: { write: (line: string) => void lines.push(...line.split('\n').filter((l) => l !== '')) },
  };
  px = await startPgmux(options);
});

afterAll(async () => {
  await px?.stop();
  await superuser?.end();
  await dropTestDatabase(db).catch(() => undefined);
  const cluster = await adminClient();
  for (const role of [LOOKED_UP, FILE_VERIFIER]) await cluster.query(`DROP ROLE IF EXISTS ${role.name}`).catch(() => undefined);
  await cluster.end();
  await certs?.remove();
  if (authDir !== undefined) await fsp.rm(authDir, { recursive: true, force: true });
});

const ca = (): Promise<Buffer> => fsp.readFile(certs.caFile);

async function currentUser(config: pg.ClientConfig): Promise<string> {
  const c = new pg.Client({ host: '127.0.0.1', port: px.port, database: 'app', connectionTimeoutMillis: 10_000, ...config });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return (await c.query<{ u: string }>('SELECT current_user AS u')).rows[0].u;
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function refused(config: pg.ClientConfig): Promise<string | undefined> {
  return currentUser(config).then(
    () => 'logged in',
    (err: Error & { code?: string }) => err.code,
  );
}

describe('no secret in any log line at log_level trace', () => {
  it('runs every login path, right and wrong, through pgmux to Postgres', async () => {
    const tls = { ca: await ca(), servername: 'localhost' };
    // Right passwords: each also logs pgmux in upstream (SCRAM, passthrough SCRAM, md5, cleartext).
    expect(await currentUser({ user: APP_ROLE.name, password: APP_ROLE.password })).toBe(APP_ROLE.name);
    expect(await currentUser({ user: APP_ROLE.name, password: APP_ROLE.password, ssl: tls, enableChannelBinding: true })).toBe(APP_ROLE.name);
    expect(await currentUser({ user: MD5_ROLE.name, password: MD5_ROLE.password })).toBe(MD5_ROLE.name);
    expect(await currentUser({ user: CLEAR_ROLE.name, password: CLEAR_ROLE.password, ssl: tls })).toBe(CLEAR_ROLE.name);
    expect(await currentUser({ user: LOOKED_UP.name, password: LOOKED_UP.password })).toBe(LOOKED_UP.name);
    expect(await currentUser({ user: FILE_VERIFIER.name, password: FILE_VERIFIER.password })).toBe(FILE_VERIFIER.name);

    // Wrong passwords and an unknown user.
    const wrongs: Array<[string, pg.ClientConfig['ssl']]> = [
      [APP_ROLE.name, false], [MD5_ROLE.name, false], [CLEAR_ROLE.name, tls], [LOOKED_UP.name, false], [FILE_VERIFIER.name, false],
      [ADMIN.name, false], [`nobody_${SUFFIX}`, false],
    ];
    for (const [user, ssl] of wrongs) {
      const password = wrong(user);
      remember(`wrong password of ${user}`, password);
      expect(await refused({ user, password, ssl, database: user === ADMIN.name ? 'pgbouncer' : 'app' }), user).toBe('28P01');
    }

    // Raw exchanges, whose proofs, signatures and keys (for the salt pgmux chose) the test can compute.
    for (const [role, database] of [[APP_ROLE, 'app'], [LOOKED_UP, 'app'], [FILE_VERIFIER, 'app'], [ADMIN, 'pgbouncer'], [MD5_ROLE, 'app']] as const) {
      const probe = await probeLogin(px.port, { user: role.name, database }, role.password as string);
      probe.conn.destroy();
      expect(probe.ok, `${role.name}: ${JSON.stringify(probe.error)}`).toBe(true);
      rememberExchange(`${role.name} exchange`, probe);
    }
    const wrongProbe = await probeLogin(px.port, { user: APP_ROLE.name, database: 'app' }, wrong('raw'));
    wrongProbe.conn.destroy();
    expect(wrongProbe.error?.C).toBe('28P01');
    rememberExchange('wrong raw exchange', wrongProbe);
  });

  it('a client that answers a SCRAM step with its password in a PasswordMessage is refused (08P01) without the password being repeated', async () => {
    // In place of SASLInitialResponse: the password is read where the mechanism name goes.
    const first = await probeLogin(px.port, { user: APP_ROLE.name, database: 'app' }, null, { answerWith: message('p', `${APP_ROLE.password}\0`) });
    first.conn.destroy();
    expect(first.error?.C).toBe('08P01');
    expect(first.error?.M).not.toContain(APP_ROLE.password);
    expect(first.error?.M).toContain('SASL');
    // In place of client-final-message.
    const final = await probeLogin(px.port, { user: APP_ROLE.name, database: 'app' }, null, { finalWith: message('p', APP_ROLE.password as string) });
    final.conn.destroy();
    expect(final.error?.C).toBe('08P01');
    expect(final.error?.M).not.toContain(APP_ROLE.password);
  });

  it('a reload of a file with a password where a map belongs is refused without repeating it', async () => {
    px.rewriteConfig({ ...options, users: { ...options.users, [APP_ROLE.name]: MISPLACED as unknown as Record<string, unknown> } });
    const result = px.pgmux.reload();
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.error).toMatch(/^users\.app: must be a map of user settings/);
    expect(result.ok ? '' : result.error).not.toContain(MISPLACED);
    px.rewriteConfig(options);
    expect(px.pgmux.reload().ok).toBe(true);
  });

  it('finds none of them, in a log that has the lines of all those logins', async () => {
    px.pgmux.log.flush?.();
    // The search itself works: a line holding a secret in any of its forms is caught.
    expect(leaks([`{"x":"${Buffer.from(APP_ROLE.password as string).toString('base64')}"}`])).not.toEqual([]);
    expect(leaks([`{"x":"${(secrets.get(`${APP_ROLE.name} ClientKey`) as Buffer).toString('hex').toUpperCase()}"}`])).not.toEqual([]);
    // The log is the trace-level one of those logins (what the search had to look at).
    expect(px.pgmux.log.level).toBe('trace');
    expect(logged('client login failed').length).toBeGreaterThanOrEqual(8);
    expect(logged('server login complete').length).toBeGreaterThanOrEqual(5); // debug
    expect(logged('auth_query lookup').length).toBeGreaterThanOrEqual(1); // debug
    expect(logged('client logged in').length).toBeGreaterThanOrEqual(6);
    expect(logged('admin console login').length).toBeGreaterThanOrEqual(1);
    expect(logged('configuration rejected; the previous configuration stays in effect')).toHaveLength(1);
    expect(secrets.size).toBeGreaterThan(60);
    expect(leaks(lines)).toEqual([]);
  });
});
