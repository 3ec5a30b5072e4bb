/**
 * TLS on both sides of pgmux, against a Postgres this file starts with TLS on (certificates from
 * certs.ts: the server certificate is for localhost / 127.0.0.1).
 *
 * - Clients → pgmux: psql and node-postgres with sslmode require / verify-full, the refusal of
 *   plaintext clients under client_tls_sslmode require (28000 "SSL required"), a client trusting
 *   the wrong CA, direct TLS (ALPN "postgresql", no SSLRequest), SCRAM-SHA-256-PLUS.
 * - pgmux → servers: server_tls_sslmode verify-full with the right CA (pg_stat_ssl says the
 *   server connection is encrypted), with the wrong CA (08006 naming host and certificate), and
 *   host-name checking of an IP address against the certificate's IP SAN.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loginError, queryOne } from './harness/clients.js';
import { makeCertificates, type TestCerts } from './harness/certs.js';
import { startPgmux, type TestPgmux, type TestPgmuxOptions } from './harness/pgmux.js';
import { startPostgres, type PostgresInstance } from './harness/postgres.js';
import { runPsql } from './harness/psql.js';
import { APP_DATABASE, APP_ROLE, TRUST_ROLE } from './harness/roles.js';
import { findError, message, queryMessage, splitMessages, startupPacket, type BackendMessage } from './harness/wire.js';

const execFileAsync = promisify(execFile);

let certs: TestCerts;
let cluster: PostgresInstance;
let ca: Buffer;
let wrongCa: Buffer;
const started: TestPgmux[] = [];

beforeAll(async () => {
  certs = await makeCertificates();
  cluster = await startPostgres({
    name: 'tls',
    ssl: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile },
    settings: { password_encryption: 'scram-sha-256' },
  });
  ca = await fsp.readFile(certs.caFile);
  wrongCa = await fsp.readFile(certs.wrongCaFile);
});

afterAll(async () => {
  await Promise.all(started.map((p) => p.stop()));
  await cluster?.stop();
  await certs?.remove();
});

/** pgmux in front of this file's cluster; `host` is the server address pgmux connects to. */
async function pgmuxFor(settings: TestPgmuxOptions['settings'], host = '127.0.0.1', users?: TestPgmuxOptions['users']): Promise<TestPgmux> {
  const px = await startPgmux({
    settings: { default_pool_size: 2, server_login_retry: '200ms', ...settings },
    databases: { app: { host, port: cluster.port, dbname: APP_DATABASE } },
    users: users ?? { [APP_ROLE.name]: { password: APP_ROLE.password } },
  });
  started.push(px);
  return px;
}

// ---------------------------------------------------------------------------------------------
// Clients → pgmux

describe('TLS between clients and pgmux', () => {
  let px: TestPgmux;

  beforeAll(async () => {
    px = await pgmuxFor(
      {
        client_tls_sslmode: 'require',
        client_tls_cert_file: certs.serverCertFile,
        client_tls_key_file: certs.serverKeyFile,
      },
      '127.0.0.1',
      {
        [APP_ROLE.name]: { password: APP_ROLE.password },
        [TRUST_ROLE.name]: { auth_type: 'trust' },
      },
    );
  });

  const app = (): pg.ClientConfig => ({ host: '127.0.0.1', port: px.port, user: APP_ROLE.name, password: APP_ROLE.password, database: 'app' });

  it('serves psql with sslmode=require', async () => {
    const r = await runPsql(`host=127.0.0.1 port=${px.port} dbname=app user=app sslmode=require`, ['select 1', '\\conninfo'], APP_ROLE.password);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('1');
    expect(r.stdout).toMatch(/SSL connection \(protocol: TLSv1\.[23]/);
  });

  it('serves psql with sslmode=verify-full against the CA, host localhost', async () => {
    const r = await runPsql(
      `host=localhost port=${px.port} dbname=app user=app sslmode=verify-full sslrootcert=${certs.caFile}`,
      ['select 1', '\\conninfo'],
      APP_ROLE.password,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('1');
    expect(r.stdout).toMatch(/SSL connection/);
  });

  it('serves psql with channel_binding=require (SCRAM-SHA-256-PLUS from client to pgmux)', async () => {
    const r = await runPsql(
      `host=localhost port=${px.port} dbname=app user=app sslmode=verify-full sslrootcert=${certs.caFile} channel_binding=require`,
      ['select current_user'],
      APP_ROLE.password,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('app');
  });

  it('serves node-postgres verifying the certificate (ca + servername: verify-full)', async () => {
    const row = await queryOne<{ one: number }>({ ...app(), ssl: { ca, servername: 'localhost' } }, 'select 1 as one');
    expect(row).toEqual({ one: 1 });
  });

  it('serves node-postgres without verification (rejectUnauthorized false: require)', async () => {
    const row = await queryOne<{ one: number }>({ ...app(), ssl: { rejectUnauthorized: false } }, 'select 1 as one');
    expect(row).toEqual({ one: 1 });
  });

  it('serves node-postgres with SCRAM-SHA-256-PLUS (enableChannelBinding)', async () => {
    const row = await queryOne<{ u: string }>({ ...app(), ssl: { ca, servername: 'localhost' }, enableChannelBinding: true }, 'select current_user as u');
    expect(row).toEqual({ u: 'app' });
  });

  it('refuses a plaintext client under client_tls_sslmode require: 28000 "SSL required"', async () => {
    const err = await loginError({ ...app(), ssl: false });
    expect(err.code).toBe('28000');
    expect(err.message).toContain('SSL required');

    const r = await runPsql(`host=127.0.0.1 port=${px.port} dbname=app user=app sslmode=disable`, ['select 1'], APP_ROLE.password);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('SSL required');
  });

  it('fails a client that trusts the wrong CA, naming the certificate problem', async () => {
    const err = await loginError({ ...app(), ssl: { ca: wrongCa, servername: 'localhost' } });
    expect(err.message).toMatch(/certificate/i);

    const r = await runPsql(
      `host=localhost port=${px.port} dbname=app user=app sslmode=verify-full sslrootcert=${certs.wrongCaFile}`,
      ['select 1'],
      APP_ROLE.password,
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/certificate verify failed/);
  });

  it('accepts direct TLS (ALPN postgresql, startup packet inside TLS at once) from a raw client', async () => {
    const conn = await TlsWire.connect(px.port, { ca, servername: 'localhost', ALPNProtocols: ['postgresql'] });
    try {
      expect(conn.socket.alpnProtocol).toBe('postgresql');
      expect(conn.socket.authorized).toBe(true);
      await conn.write(startupPacket({ user: TRUST_ROLE.name, database: 'app' }));
      await conn.untilMessage('Z', 5000);
      expect(conn.messages.find((m) => m.code === 'R')?.body.readInt32BE(0)).toBe(0); // AuthenticationOk
      await conn.write(queryMessage('select 41 + 1 as answer, current_user as u'));
      await conn.untilMessage('Z', 5000, 2);
      const row = conn.messages.find((m) => m.code === 'D');
      expect(row).toBeDefined();
      expect(dataRowTexts((row as BackendMessage).body)).toEqual(['42', TRUST_ROLE.name]);
      await conn.write(message('X'));
    } finally {
      conn.destroy();
    }
  });

  it('accepts direct TLS with SCRAM from node-postgres (sslnegotiation=direct)', async () => {
    const config: pg.ClientConfig & { sslnegotiation: string } = { ...app(), ssl: { ca, servername: 'localhost' }, sslnegotiation: 'direct' };
    const row = await queryOne<{ u: string }>(config, 'select current_user as u');
    expect(row).toEqual({ u: 'app' });
  });
});

describe('client_tls_sslmode verify-full (client certificate required, CN = user)', () => {
  let px: TestPgmux;

  beforeAll(async () => {
    px = await pgmuxFor({
      client_tls_sslmode: 'verify-full',
      client_tls_cert_file: certs.serverCertFile,
      client_tls_key_file: certs.serverKeyFile,
      client_tls_ca_file: certs.caFile,
    });
  });

  const withCert = async (cn: string, untrusted = false): Promise<pg.ClientConfig> => {
    const pair = await certs.clientCert(cn, { untrusted });
    return {
      host: '127.0.0.1',
      port: px.port,
      user: APP_ROLE.name,
      password: APP_ROLE.password,
      database: 'app',
      ssl: { ca, servername: 'localhost', cert: await fsp.readFile(pair.certFile), key: await fsp.readFile(pair.keyFile) },
    };
  };

  it('logs in a client whose certificate is for its user (then SCRAM as usual)', async () => {
    expect(await queryOne<{ u: string }>(await withCert(APP_ROLE.name), 'select current_user as u')).toEqual({ u: 'app' });
  });

  it('refuses no certificate, a certificate for another user, and one from another CA: 28000', async () => {
    const none = await loginError({ host: '127.0.0.1', port: px.port, user: APP_ROLE.name, password: APP_ROLE.password, database: 'app', ssl: { ca, servername: 'localhost' } });
    expect(none.code).toBe('28000');
    const other = await loginError(await withCert(TRUST_ROLE.name));
    expect(other.code).toBe('28000');
    expect(other.message).toContain(`"${TRUST_ROLE.name}"`);
    const untrusted = await loginError(await withCert(APP_ROLE.name, true));
    expect(untrusted.code).toBe('28000');
    expect(untrusted.message).toMatch(/not trusted/);
  });
});

// ---------------------------------------------------------------------------------------------
// pgmux → servers

describe('TLS between pgmux and servers', () => {
  const appThrough = (px: TestPgmux): pg.ClientConfig => ({
    host: '127.0.0.1',
    port: px.port,
    user: APP_ROLE.name,
    password: APP_ROLE.password,
    database: 'app',
  });

  it('verify-full with the right CA and host localhost: queries run on an encrypted server connection', async () => {
    const px = await pgmuxFor({ server_tls_sslmode: 'verify-full', server_tls_ca_file: certs.caFile }, 'localhost');
    const row = await queryOne<{ ssl: boolean; one: number }>(
      appThrough(px),
      'SELECT ssl, 1 AS one FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
    );
    expect(row).toEqual({ ssl: true, one: 1 });
  });

  it('verify-full with the wrong CA: the client gets 08006 naming the host and the certificate problem', async () => {
    const px = await pgmuxFor({ server_tls_sslmode: 'verify-full', server_tls_ca_file: certs.wrongCaFile }, 'localhost');
    const err = await loginError(appThrough(px));
    expect(err.code).toBe('08006');
    expect(err.message).toContain('localhost');
    expect(err.message).toMatch(/certificate/i);
    expect(px.pgmux.registry.serverCount).toBe(0);
  });

  it('verify-full with host 127.0.0.1 works against a certificate whose SAN has IP:127.0.0.1', async () => {
    const px = await pgmuxFor({ server_tls_sslmode: 'verify-full', server_tls_ca_file: certs.caFile }, '127.0.0.1');
    const row = await queryOne<{ ssl: boolean }>(appThrough(px), 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    expect(row).toEqual({ ssl: true });
  });

  it('verify-ca ignores the host name; require does not check the chain', async () => {
    const verifyCa = await pgmuxFor({ server_tls_sslmode: 'verify-ca', server_tls_ca_file: certs.caFile }, '127.0.0.1');
    expect(await queryOne<{ ssl: boolean }>(appThrough(verifyCa), 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).toEqual({ ssl: true });
    const require = await pgmuxFor({ server_tls_sslmode: 'require', server_tls_ca_file: certs.wrongCaFile }, '127.0.0.1');
    expect(await queryOne<{ ssl: boolean }>(appThrough(require), 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).toEqual({ ssl: true });
  });

  // Last in the file: it swaps the cluster's certificate.
  it('verify-full with host 127.0.0.1 fails, naming the mismatch, once the certificate has only DNS:localhost', async () => {
    const dnsOnly = await issueServerCert(certs, 'dns-only-server', 'DNS:localhost');
    await fsp.writeFile(path.join(cluster.dataDir, 'server.crt'), await fsp.readFile(dnsOnly.certFile));
    await fsp.writeFile(path.join(cluster.dataDir, 'server.key'), await fsp.readFile(dnsOnly.keyFile));
    await cluster.query('SELECT pg_reload_conf()');
    await waitForServerSan(cluster.port, 'DNS:localhost', 10_000);

    const byIp = await pgmuxFor({ server_tls_sslmode: 'verify-full', server_tls_ca_file: certs.caFile }, '127.0.0.1');
    const err = await loginError(appThrough(byIp));
    expect(err.code).toBe('08006');
    expect(err.message).toContain('127.0.0.1');
    expect(err.message).toMatch(/does not match certificate|altname/i);

    // By name it still verifies.
    const byName = await pgmuxFor({ server_tls_sslmode: 'verify-full', server_tls_ca_file: certs.caFile }, 'localhost');
    expect(await queryOne<{ ssl: boolean }>(appThrough(byName), 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).toEqual({ ssl: true });
  });
});

// ---------------------------------------------------------------------------------------------
// helpers

/** Text values of a DataRow body. */
function dataRowTexts(body: Buffer): Array<string | null> {
  const count = body.readInt16BE(0);
  const values: Array<string | null> = [];
  let pos = 2;
  for (let i = 0; i < count; i++) {
    const length = body.readInt32BE(pos);
    pos += 4;
    if (length < 0) {
      values.push(null);
      continue;
    }
    values.push(body.toString('utf8', pos, pos + length));
    pos += length;
  }
  return values;
}

/** A TLS connection from the first byte (direct TLS) that records what it receives. */
class TlsWire {
  private readonly chunks: Buffer[] = [];
  private closed = false;
  private wake: (() => void) | null = null;

  private constructor(readonly socket: tls.TLSSocket) {
    socket.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.wake?.();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
  }

  static connect(port: number, options: tls.ConnectionOptions): Promise<TlsWire> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ...options });
      socket.once('error', reject);
      socket.once('secureConnect', () => {
        socket.off('error', reject);
        resolve(new TlsWire(socket));
      });
    });
  }

  get messages(): BackendMessage[] {
    return splitMessages(Buffer.concat(this.chunks)).messages;
  }

  write(buf: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(buf, (err) => (err ? reject(err) : resolve())));
  }

  async untilMessage(code: string, timeoutMs: number, count = 1): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.filter((m) => m.code === code).length < count) {
      const error = findError(Buffer.concat(this.chunks));
      if (error !== undefined) throw new Error(`error from pgmux: ${JSON.stringify(error)}`);
      if (this.closed) throw new Error(`closed before message '${code}'`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for message '${code}'`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Issues a server certificate for CN=localhost with the given subjectAltName, signed by the test CA. */
async function issueServerCert(c: TestCerts, name: string, san: string): Promise<{ certFile: string; keyFile: string }> {
  const file = (n: string): string => path.join(c.dir, n);
  const ext = file(`${name}.ext`);
  await fsp.writeFile(
    ext,
    [
      '[server]',
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature, keyEncipherment',
      'extendedKeyUsage = serverAuth',
      `subjectAltName = ${san}`,
      '',
    ].join('\n'),
  );
  const certFile = file(`${name}.crt`);
  const keyFile = file(`${name}.key`);
  const csr = file(`${name}.csr`);
  await execFileAsync('openssl', [
    'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', keyFile, '-out', csr, '-subj', '/CN=localhost', '-config', file('openssl.cnf'),
  ]);
  await execFileAsync('openssl', [
    'x509', '-req', '-in', csr, '-CA', c.caFile, '-CAkey', c.caKeyFile, '-set_serial', `0x${randomBytes(8).toString('hex')}`,
    '-days', '2', '-sha256', '-extfile', ext, '-extensions', 'server', '-out', certFile,
  ]);
  return { certFile, keyFile };
}

/** The subjectAltName of the certificate the cluster presents now (SSLRequest, then a TLS handshake). */
function serverSan(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const raw = net.connect({ host: '127.0.0.1', port });
    raw.once('error', reject);
    raw.once('connect', () => raw.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])));
    raw.once('data', (answer: Buffer) => {
      if (answer.toString('latin1') !== 'S') {
        raw.destroy();
        reject(new Error(`SSLRequest answered ${answer.toString('hex')}`));
        return;
      }
      const secure = tls.connect({ socket: raw, rejectUnauthorized: false });
      secure.once('error', reject);
      secure.once('secureConnect', () => {
        const san = secure.getPeerCertificate().subjectaltname ?? '';
        secure.destroy();
        resolve(san);
      });
    });
  });
}

async function waitForServerSan(port: number, expected: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let san = '';
  while (Date.now() < deadline) {
    san = await serverSan(port);
    if (san === expected) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the cluster still presents a certificate with SAN "${san}" (expected "${expected}")`);
}
