/**
 * Client authentication end to end (client → pgmux, then pgmux → Postgres), against a Postgres
 * this file starts with TLS on:
 *
 * - each login method: SCRAM, md5, cleartext over TLS, trust, TLS client certificate; the
 *   refusals (cleartext without TLS, a certificate for another CN or from another CA: 28000;
 *   wrong password and unknown user: the same 28P01);
 * - auth_query with SCRAM passthrough: no plaintext password anywhere in pgmux's files, a role
 *   created after pgmux started logs in, and a changed password is picked up after the cache TTL;
 * - hostile SASL exchanges (garbage, truncated, stalled, many at once): pgmux stays up, closes
 *   them (client_login_timeout for the stalled ones) and opens no server connection for them.
 */
import { createHash, randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loginError, queryOne } from './harness/clients.js';
import { makeCertificates, type CertPair, type TestCerts } from './harness/certs.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { startPostgres, type PostgresInstance } from './harness/postgres.js';
import { APP_DATABASE, APP_ROLE, CLEAR_ROLE, MD5_ROLE, SCRAM_ROLE, TRUST_ROLE } from './harness/roles.js';
import { authKind, findError, message, RawConnection, scramLogin, startupPacket } from './harness/wire.js';

let certs: TestCerts;
let cluster: PostgresInstance;
let ca: Buffer;

beforeAll(async () => {
  certs = await makeCertificates();
  cluster = await startPostgres({
    name: 'auth',
    ssl: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile },
    settings: { password_encryption: 'scram-sha-256' },
  });
  ca = await fsp.readFile(certs.caFile);
});

afterAll(async () => {
  await cluster?.stop();
  await certs?.remove();
});

/** Logs in with node-postgres and returns current_user. */
async function currentUser(config: pg.ClientConfig): Promise<string> {
  return (await queryOne<{ u: string }>(config, 'select current_user as u')).u;
}

/** The first authentication request pgmux sends this user (plain TCP), then hangs up. */
async function firstAuthRequest(port: number, user: string, database: string): Promise<number> {
  const conn = await RawConnection.connect(port);
  try {
    await conn.write(startupPacket({ user, database }));
    return authKind(await conn.untilMessage('R', 5000));
  } finally {
    conn.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Login methods

describe('login methods, client → pgmux → Postgres', () => {
  let px: TestPgmux;
  let certFor: (cn: string, untrusted?: boolean) => Promise<CertPair>;

  beforeAll(async () => {
    px = await startPgmux({
      settings: {
        default_pool_size: 2,
        client_tls_cert_file: certs.serverCertFile,
        client_tls_key_file: certs.serverKeyFile,
        client_tls_ca_file: certs.caFile,
      },
      databases: { app: { host: '127.0.0.1', port: cluster.port, dbname: APP_DATABASE } },
      users: {
        [APP_ROLE.name]: { password: APP_ROLE.password },
        [MD5_ROLE.name]: { auth_type: 'md5', password: MD5_ROLE.password },
        [CLEAR_ROLE.name]: { auth_type: 'plain', password: CLEAR_ROLE.password },
        [TRUST_ROLE.name]: { auth_type: 'trust' },
        [SCRAM_ROLE.name]: { auth_type: 'cert', password: SCRAM_ROLE.password },
      },
    });
    certFor = (cn, untrusted = false) => certs.clientCert(cn, { untrusted });
  });

  afterAll(async () => {
    await px?.stop();
  });

  const base = (): pg.ClientConfig => ({ port: px.port, database: 'app' });
  /** Verify pgmux's certificate (read once the CA exists, in beforeAll). */
  const verified = (): { ca: Buffer; servername: string } => ({ ca, servername: 'localhost' });

  it('asks each user for the configured method', async () => {
    expect(await firstAuthRequest(px.port, APP_ROLE.name, 'app')).toBe(10); // AuthenticationSASL
    expect(await firstAuthRequest(px.port, MD5_ROLE.name, 'app')).toBe(5); // AuthenticationMD5Password
    expect(await firstAuthRequest(px.port, TRUST_ROLE.name, 'app')).toBe(0); // AuthenticationOk
  });

  it('SCRAM-SHA-256 (app)', async () => {
    expect(await currentUser({ ...base(), user: APP_ROLE.name, password: APP_ROLE.password })).toBe(APP_ROLE.name);
  });

  it('md5 (pgmux_md5, users entry auth_type md5)', async () => {
    expect(await currentUser({ ...base(), user: MD5_ROLE.name, password: MD5_ROLE.password })).toBe(MD5_ROLE.name);
  });

  it('cleartext over TLS (pgmux_clear, auth_type plain)', async () => {
    expect(await currentUser({ ...base(), user: CLEAR_ROLE.name, password: CLEAR_ROLE.password, ssl: verified() })).toBe(CLEAR_ROLE.name);
  });

  it('trust (pgmux_trust, no password)', async () => {
    expect(await currentUser({ ...base(), user: TRUST_ROLE.name })).toBe(TRUST_ROLE.name);
  });

  it('TLS client certificate with CN = user (pgmux_scram, auth_type cert; SCRAM upstream)', async () => {
    const pair = await certFor(SCRAM_ROLE.name);
    const ssl = { ...verified(), cert: await fsp.readFile(pair.certFile), key: await fsp.readFile(pair.keyFile) };
    expect(await currentUser({ ...base(), user: SCRAM_ROLE.name, ssl })).toBe(SCRAM_ROLE.name);
  });

  it('refuses cleartext on a connection without TLS: 28000 naming TLS', async () => {
    const err = await loginError({ ...base(), user: CLEAR_ROLE.name, password: CLEAR_ROLE.password, ssl: false });
    expect(err.code).toBe('28000');
    expect(err.message).toMatch(/TLS/);
  });

  it('refuses a certificate for another CN, one from another CA, and none at all: 28000', async () => {
    const other = await certFor(TRUST_ROLE.name);
    const otherCn = await loginError({
      ...base(),
      user: SCRAM_ROLE.name,
      ssl: { ...verified(), cert: await fsp.readFile(other.certFile), key: await fsp.readFile(other.keyFile) },
    });
    expect(otherCn.code).toBe('28000');
    expect(otherCn.message).toContain(`"${SCRAM_ROLE.name}"`);
    expect(otherCn.message).toContain(`"${TRUST_ROLE.name}"`); // the CN it was for

    const untrusted = await certFor(SCRAM_ROLE.name, true);
    const wrongCa = await loginError({
      ...base(),
      user: SCRAM_ROLE.name,
      ssl: { ...verified(), cert: await fsp.readFile(untrusted.certFile), key: await fsp.readFile(untrusted.keyFile) },
    });
    expect(wrongCa.code).toBe('28000');
    expect(wrongCa.message).toMatch(/not trusted/);

    const none = await loginError({ ...base(), user: SCRAM_ROLE.name, ssl: verified() });
    expect(none.code).toBe('28000');
    const plaintext = await loginError({ ...base(), user: SCRAM_ROLE.name, ssl: false });
    expect(plaintext.code).toBe('28000');
  });

  it('gives a wrong password and an unknown user the same 28P01', async () => {
    const cases: Array<[string, string, pg.ClientConfig['ssl']]> = [
      [APP_ROLE.name, 'wrong-pass', false],
      [MD5_ROLE.name, 'wrong-pass', false],
      [CLEAR_ROLE.name, 'wrong-pass', verified()],
      ['no_such_user', 'whatever', false],
    ];
    for (const [user, password, ssl] of cases) {
      const err = await loginError({ ...base(), user, password, ssl });
      expect(err.code, user).toBe('28P01');
      expect(err.message, user).toBe(`password authentication failed for user "${user}"`);
    }
    // No pool (so no server connection) was made for the unknown user.
    expect([...px.pgmux.registry.pools.values()].some((p) => p.user === 'no_such_user')).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// auth_query + SCRAM passthrough

describe('auth_query with SCRAM passthrough', () => {
  const LATE = { name: 'late_user', password: 'late-pass' };
  let px: TestPgmux;
  let authFile: string;
  let db: string;

  beforeAll(async () => {
    db = `authq_${randomBytes(4).toString('hex')}`;
    await cluster.query(`CREATE DATABASE ${db} OWNER ${APP_ROLE.name}`);
    await cluster.psql(
      [
        `CREATE FUNCTION public.pgmux_lookup(u text) RETURNS TABLE(usename name, passwd text)
           LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
           AS $$ SELECT s.usename, s.passwd FROM pg_catalog.pg_shadow s WHERE s.usename = u $$`,
        'REVOKE ALL ON FUNCTION public.pgmux_lookup(text) FROM PUBLIC',
        `GRANT EXECUTE ON FUNCTION public.pgmux_lookup(text) TO ${MD5_ROLE.name}`,
      ].join(';\n'),
      db,
    );
    const md5 = `md5${createHash('md5').update(`${MD5_ROLE.password}${MD5_ROLE.name}`).digest('hex')}`;
    authFile = path.join(mkdtempSync(path.join(tmpdir(), 'pgmux-authfile-')), 'userlist.txt');
    writeFileSync(authFile, `"${MD5_ROLE.name}" "${md5}"\n`);
    px = await startPgmux({
      settings: {
        default_pool_size: 2,
        auth_file: authFile,
        auth_user: MD5_ROLE.name,
        auth_query: 'SELECT * FROM public.pgmux_lookup($1)',
        auth_query_cache_ttl: '1s',
      },
      databases: { app: { host: '127.0.0.1', port: cluster.port, dbname: db } },
    });
    // Created after pgmux started: pgmux can only learn about it through auth_query.
    await cluster.psql(`CREATE ROLE ${LATE.name} LOGIN PASSWORD '${LATE.password}'; GRANT CONNECT ON DATABASE ${db} TO ${LATE.name}`);
  });

  afterAll(async () => {
    await px?.stop();
    if (authFile !== undefined) await fsp.rm(path.dirname(authFile), { recursive: true, force: true });
  });

  const late = (password: string): pg.ClientConfig => ({ port: px.port, database: 'app', user: LATE.name, password });

  it('has no plaintext password in the config file or the auth_file', async () => {
    for (const file of [px.configFile, authFile]) {
      const text = await fsp.readFile(file, 'utf8');
      expect(text, file).not.toContain(LATE.password);
      expect(text, file).not.toContain(MD5_ROLE.password);
    }
    expect(px.pgmux.registry.config.users).toEqual({});
    const stored = await cluster.query<{ rolpassword: string }>('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [LATE.name]);
    expect(stored[0].rolpassword).toMatch(/^SCRAM-SHA-256\$/);
  });

  it('logs in a role created after pgmux started, through SCRAM passthrough', async () => {
    expect(await currentUser(late(LATE.password))).toBe(LATE.name);
    // Again, from the cached lookup and the pool's (now warm) server connections.
    expect(await currentUser(late(LATE.password))).toBe(LATE.name);
  });

  it('refuses a wrong password for it with 28P01', async () => {
    const err = await loginError(late('not-the-pass'));
    expect(err.code).toBe('28P01');
    expect(err.message).toBe(`password authentication failed for user "${LATE.name}"`);
  });

  it('gives an unknown user 28P01 too', async () => {
    const err = await loginError({ port: px.port, database: 'app', user: 'nobody_at_all', password: 'x' });
    expect(err.code).toBe('28P01');
    expect(err.message).toBe('password authentication failed for user "nobody_at_all"');
  });

  it('picks up a changed password after auth_query_cache_ttl', async () => {
    await cluster.psql(`ALTER ROLE ${LATE.name} PASSWORD 'late-pass-2'`);
    await new Promise((resolve) => setTimeout(resolve, 1300));
    expect(await currentUser(late('late-pass-2'))).toBe(LATE.name);
    const err = await loginError(late(LATE.password));
    expect(err.code).toBe('28P01');
    // A server connection opened after the change logs in with the new proof: close the idle ones first.
    await cluster.psql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${LATE.name}'`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await currentUser(late('late-pass-2'))).toBe(LATE.name);
  });
});

// ---------------------------------------------------------------------------------------------
// Hostile SASL exchanges

describe('hostile SASL exchanges', () => {
  let px: TestPgmux;
  let db: string;
  const raws: RawConnection[] = [];

  beforeAll(async () => {
    db = `robust_${randomBytes(4).toString('hex')}`;
    await cluster.query(`CREATE DATABASE ${db} OWNER ${APP_ROLE.name}`);
    px = await startPgmux({
      settings: { default_pool_size: 2, client_login_timeout: '1s' },
      databases: { robust: { host: '127.0.0.1', port: cluster.port, dbname: db } },
      users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
    });
  });

  afterEach(() => {
    for (const r of raws.splice(0)) r.destroy();
  });

  afterAll(async () => {
    await px?.stop();
  });

  async function begin(): Promise<RawConnection> {
    const c = await RawConnection.connect(px.port);
    raws.push(c);
    await c.write(startupPacket({ user: APP_ROLE.name, database: 'robust' }));
    const sasl = await c.untilMessage('R', 5000);
    expect(authKind(sasl)).toBe(10);
    return c;
  }

  /** SASLInitialResponse for SCRAM-SHA-256 with this client-first message; returns the client nonce. */
  async function sendClientFirst(c: RawConnection): Promise<string> {
    const nonce = randomBytes(18).toString('base64');
    await c.write(saslInitial('SCRAM-SHA-256', Buffer.from(`n,,n=,r=${nonce}`)));
    const cont = await c.untilMessage('R', 5000, 2);
    expect(authKind(cont)).toBe(11); // AuthenticationSASLContinue
    return cont.body.toString('utf8', 4);
  }

  type Kind = 'garbage-initial' | 'garbage-client-first' | 'bad-length' | 'truncated-final' | 'partial-frame' | 'stall';
  const KINDS: Kind[] = ['garbage-initial', 'garbage-client-first', 'bad-length', 'truncated-final', 'partial-frame', 'stall'];

  /** Runs one hostile exchange up to the point where pgmux must act. */
  async function hostile(kind: Kind): Promise<RawConnection> {
    const c = await begin();
    switch (kind) {
      case 'garbage-initial': {
        const junk = randomBytes(48);
        junk[0] = 0x41; // never an empty mechanism name
        await c.write(message('p', junk));
        break;
      }
      case 'garbage-client-first':
        await c.write(saslInitial('SCRAM-SHA-256', Buffer.from('this is not a SCRAM message')));
        break;
      case 'bad-length': {
        const body = saslInitial('SCRAM-SHA-256', Buffer.from('n,,n=,r=abc'));
        body.writeInt32BE(10_000, 5 + 'SCRAM-SHA-256\0'.length); // claims more data than the message holds
        await c.write(body);
        break;
      }
      case 'truncated-final': {
        const serverFirst = await sendClientFirst(c);
        const nonce = /r=([^,]+)/.exec(serverFirst)?.[1] ?? '';
        await c.write(message('p', `c=biws,r=${nonce}`)); // no proof
        break;
      }
      case 'partial-frame': {
        await sendClientFirst(c);
        await c.write(message('p', 'c=biws,r=xyz,p=' + 'A'.repeat(44)).subarray(0, 12)); // the rest never comes
        break;
      }
      case 'stall':
        await sendClientFirst(c);
        break;
    }
    return c;
  }

  function expectProtocolError(c: RawConnection): void {
    const error = findError(c.data);
    expect(error?.C).toBe('08P01');
    expect(error?.S).toBe('FATAL');
  }

  /** No pool, no server connection and no backend for the hostile clients. */
  async function expectNoServers(): Promise<void> {
    expect(px.pgmux.registry.pools.size).toBe(0);
    expect(px.pgmux.registry.serverCount).toBe(0);
    const rows = await cluster.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1', [db]);
    expect(Number(rows[0].n)).toBe(0);
  }

  async function expectHealthy(): Promise<void> {
    expect(await currentUser({ port: px.port, database: 'robust', user: APP_ROLE.name, password: APP_ROLE.password })).toBe(APP_ROLE.name);
  }

  it.each(['garbage-initial', 'garbage-client-first', 'bad-length', 'truncated-final'] as const)(
    'answers a %s SASL message with 08P01 and closes',
    async (kind) => {
      const c = await hostile(kind);
      await c.untilClosed(3000);
      expectProtocolError(c);
      await expectNoServers();
    },
  );

  it.each(['stall', 'partial-frame'] as const)('closes a client that stalls (%s) after SASLInitialResponse at client_login_timeout', async (kind) => {
    const c = await hostile(kind);
    await c.untilClosed(4000);
    expect((c.closedAt as number) - c.openedAt).toBeGreaterThanOrEqual(900);
    const error = findError(c.data);
    expect(error?.M).toMatch(/client_login_timeout/);
    await expectNoServers();
  });

  it('survives 24 hostile clients at once, then logs a normal client in', async () => {
    const conns = await Promise.all(Array.from({ length: 24 }, (_, i) => hostile(KINDS[i % KINDS.length])));
    // While the stalled ones are still mid-login: nothing upstream.
    await expectNoServers();
    await Promise.all(conns.map((c) => c.untilClosed(4000)));
    for (const [i, c] of conns.entries()) {
      const error = findError(c.data);
      expect(error?.S, KINDS[i % KINDS.length]).toBe('FATAL');
      expect(error?.C, KINDS[i % KINDS.length]).toBe('08P01');
    }
    await expectNoServers();
    // Every hostile client is gone from pgmux's books too (its close event may trail ours a little).
    for (let i = 0; i < 50 && px.pgmux.registry.clients.size > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(px.pgmux.registry.clients.size).toBe(0);

    await expectHealthy();
    // And a raw SCRAM login by hand works too.
    const c = await RawConnection.connect(px.port);
    raws.push(c);
    await c.write(startupPacket({ user: APP_ROLE.name, database: 'robust' }));
    await scramLogin(c, APP_ROLE.password ?? '');
  });
});

/** SASLInitialResponse: mechanism\0, Int32 length, data. */
function saslInitial(mechanism: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeInt32BE(data.length);
  return message('p', Buffer.concat([Buffer.from(`${mechanism}\0`), len, data]));
}
