/**
 * The TLS test material: certificates from certs.ts verify as intended, and startPostgres({ ssl })
 * serves TLS that node-postgres accepts with the CA. Also checks pgmux's SCRAM-SHA-256-PLUS client
 * (tls-server-end-point) against a real server, which computes the binding on its own.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { tlsServerEndPoint } from '../../src/auth/channel-binding.js';
import { ScramClientSession } from '../../src/auth/scram.js';
import { makeCertificates, type TestCerts } from './certs.js';
import { startPostgres, type PostgresInstance } from './postgres.js';
import { SCRAM_ROLE } from './roles.js';
import { message, parseErrorFields, splitMessages, sslRequest, startupPacket, type BackendMessage } from './wire.js';

const execFileAsync = promisify(execFile);

/** `openssl verify` of `cert` against `ca`: true when it prints OK. */
async function opensslVerifies(ca: string, cert: string): Promise<boolean> {
  try {
    const { stdout } = await execFileAsync('openssl', ['verify', '-CAfile', ca, cert]);
    return stdout.trim() === `${cert}: OK`;
  } catch {
    return false;
  }
}

let certs: TestCerts;

beforeAll(async () => {
  certs = await makeCertificates();
});

afterAll(async () => {
  await certs?.remove();
});

describe('makeCertificates', () => {
  it('returns absolute paths of existing files: certificates world-readable, keys 0600', async () => {
    const client = await certs.clientCert('app');
    const certFiles = [certs.caFile, certs.wrongCaFile, certs.serverCertFile, client.certFile];
    const keyFiles = [certs.caKeyFile, certs.wrongCaKeyFile, certs.serverKeyFile, client.keyFile];
    for (const file of [...certFiles, ...keyFiles]) {
      expect(path.isAbsolute(file)).toBe(true);
      expect(path.dirname(file)).toBe(certs.dir);
    }
    for (const file of certFiles) expect(fs.statSync(file).mode & 0o777).toBe(0o644);
    for (const file of keyFiles) expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(path.basename(client.certFile)).toBe('app.crt');
    expect(path.basename(certs.wrongCaFile)).toBe('wrong-ca.crt');
  });

  it('signs the server and client certificates with the CA, and only with it', async () => {
    const client = await certs.clientCert('alice');
    const stranger = await certs.clientCert('alice', { untrusted: true });
    expect(await opensslVerifies(certs.caFile, certs.serverCertFile)).toBe(true);
    expect(await opensslVerifies(certs.caFile, client.certFile)).toBe(true);
    expect(await opensslVerifies(certs.wrongCaFile, certs.serverCertFile)).toBe(false);
    expect(await opensslVerifies(certs.wrongCaFile, client.certFile)).toBe(false);
    expect(await opensslVerifies(certs.caFile, stranger.certFile)).toBe(false);
    expect(await opensslVerifies(certs.wrongCaFile, stranger.certFile)).toBe(true);
  });

  it('names localhost and 127.0.0.1 in the server certificate, and the CN in a client one', async () => {
    const server = new X509Certificate(fs.readFileSync(certs.serverCertFile));
    expect(server.checkHost('localhost')).toBe('localhost');
    expect(server.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(server.checkHost('example.com')).toBeUndefined();
    expect(server.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1');
    expect(server.ca).toBe(false);
    expect(server.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // extendedKeyUsage serverAuth
    const lifetime = Date.parse(server.validTo) - Date.parse(server.validFrom);
    expect(lifetime).toBe(2 * 24 * 3600 * 1000);

    const client = new X509Certificate(fs.readFileSync((await certs.clientCert('bob')).certFile));
    expect(client.subject).toBe('CN=bob');
    expect(client.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']); // clientAuth
    expect(new X509Certificate(fs.readFileSync(certs.caFile)).ca).toBe(true);
  });

  it('refuses a CN that is not a plain file name or would overwrite the CA', async () => {
    await expect(certs.clientCert('../evil')).rejects.toThrow(/must match/);
    await expect(certs.clientCert('a b')).rejects.toThrow(/must match/);
    await expect(certs.clientCert('ca')).rejects.toThrow(/must match/);
  });
});

describe('startPostgres({ ssl })', () => {
  let cluster: PostgresInstance;

  beforeAll(async () => {
    cluster = await startPostgres({
      name: 'ssl',
      ssl: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile, caFile: certs.caFile },
    });
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  function client(ssl: pg.ClientConfig['ssl'], user = cluster.superuser, password = cluster.password): pg.Client {
    const c = new pg.Client({ host: cluster.host, port: cluster.port, user, password, database: 'postgres', ssl, connectionTimeoutMillis: 10_000 });
    c.on('error', () => undefined);
    return c;
  }

  async function sslInfo(c: pg.Client): Promise<{ ssl: boolean; client_dn: string | null }> {
    await c.connect();
    try {
      const res = await c.query<{ ssl: boolean; client_dn: string | null }>(
        'SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
      );
      return res.rows[0];
    } finally {
      await c.end();
    }
  }

  it('serves TLS that verifies against the CA for localhost', async () => {
    const ca = fs.readFileSync(certs.caFile, 'utf8');
    expect(await sslInfo(client({ ca, servername: 'localhost' }))).toEqual({ ssl: true, client_dn: null });
  });

  it('still accepts plain TCP', async () => {
    expect((await sslInfo(client(false))).ssl).toBe(false);
  });

  it('is refused by a client trusting the wrong CA', async () => {
    const c = client({ ca: fs.readFileSync(certs.wrongCaFile, 'utf8'), servername: 'localhost' });
    await expect(c.connect()).rejects.toThrow(/certificate/);
    void c.end().catch(() => undefined);
  });

  it('verifies client certificates with ssl_ca_file', async () => {
    const ca = fs.readFileSync(certs.caFile, 'utf8');
    const mine = await certs.clientCert('pg-client');
    const withCert = client({ ca, servername: 'localhost', cert: fs.readFileSync(mine.certFile, 'utf8'), key: fs.readFileSync(mine.keyFile, 'utf8') });
    expect(await sslInfo(withCert)).toEqual({ ssl: true, client_dn: '/CN=pg-client' });

    const stranger = await certs.clientCert('pg-client', { untrusted: true });
    const refused = client({ ca, servername: 'localhost', cert: fs.readFileSync(stranger.certFile, 'utf8'), key: fs.readFileSync(stranger.keyFile, 'utf8') });
    await expect(refused.connect()).rejects.toThrow();
    // end() of a client whose connect failed may never settle: do not wait for it.
    void refused.end().catch(() => undefined);
  });

  describe('SCRAM-SHA-256-PLUS with pgmux\'s client', () => {
    /** Reads backend messages off a TLS socket, one at a time. */
    class Reader {
      private buffered = Buffer.alloc(0);
      private queue: BackendMessage[] = [];
      private wake: (() => void) | null = null;
      private closed = false;

      constructor(socket: tls.TLSSocket) {
        socket.on('data', (chunk: Buffer) => {
          const { messages, rest } = splitMessages(Buffer.concat([this.buffered, chunk]));
          this.buffered = Buffer.from(rest);
          this.queue.push(...messages);
          this.wake?.();
        });
        socket.on('close', () => {
          this.closed = true;
          this.wake?.();
        });
      }

      async next(): Promise<BackendMessage> {
        const deadline = Date.now() + 5000;
        while (this.queue.length === 0) {
          if (this.closed) throw new Error('connection closed');
          if (Date.now() > deadline) throw new Error('timed out waiting for a message');
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, 200);
            this.wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
        }
        return this.queue.shift() as BackendMessage;
      }
    }

    /** Logs in as SCRAM_ROLE over TLS with ScramClientSession; `tamper` may alter the binding data. */
    async function plusLogin(tamper: (data: Buffer) => Buffer = (d) => d) {
      const tcp = net.connect({ host: cluster.host, port: cluster.port });
      await new Promise<void>((resolve, reject) => tcp.once('connect', resolve).once('error', reject));
      tcp.write(sslRequest());
      const answer = await new Promise<Buffer>((resolve) => tcp.once('data', resolve));
      expect(answer.toString('latin1')).toBe('S');
      const socket = tls.connect({ socket: tcp, ca: fs.readFileSync(certs.caFile), servername: 'localhost' });
      await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
      socket.on('error', () => undefined);
      const reader = new Reader(socket);
      try {
        socket.write(startupPacket({ user: SCRAM_ROLE.name, database: 'postgres' }));
        const sasl = await reader.next();
        expect(sasl.code).toBe('R');
        expect(sasl.body.readInt32BE(0)).toBe(10);
        const mechanisms = sasl.body.toString('utf8', 4).split('\0').filter((m) => m !== '');

        const peer = socket.getPeerX509Certificate();
        if (peer === undefined) throw new Error('no server certificate');
        const scram = new ScramClientSession(
          { password: SCRAM_ROLE.password ?? '' },
          { channelBinding: tamper(tlsServerEndPoint(peer.raw)), serverSupportsBinding: mechanisms.includes('SCRAM-SHA-256-PLUS') },
        );
        const first = Buffer.from(scram.clientFirst());
        const length = Buffer.alloc(4);
        length.writeInt32BE(first.length);
        socket.write(message('p', Buffer.concat([Buffer.from(`${scram.mechanism}\0`), length, first])));

        const cont = await reader.next();
        if (cont.code === 'E') return { mechanisms, mechanism: scram.mechanism, error: parseErrorFields(cont.body) };
        expect(cont.body.readInt32BE(0)).toBe(11);
        socket.write(message('p', scram.handleServerFirst(cont.body.subarray(4))));

        const final = await reader.next();
        if (final.code === 'E') return { mechanisms, mechanism: scram.mechanism, error: parseErrorFields(final.body) };
        expect(final.body.readInt32BE(0)).toBe(12);
        scram.handleServerFinal(final.body.subarray(4));
        const ok = await reader.next();
        expect([ok.code, ok.body.readInt32BE(0)]).toEqual(['R', 0]);
        return { mechanisms, mechanism: scram.mechanism, error: undefined };
      } finally {
        socket.destroy();
      }
    }

    it('logs in: the server computes the same tls-server-end-point data', async () => {
      const result = await plusLogin();
      expect(result.mechanisms).toContain('SCRAM-SHA-256-PLUS');
      expect(result.mechanism).toBe('SCRAM-SHA-256-PLUS');
      expect(result.error).toBeUndefined();
    });

    it('is refused with binding data of another certificate', async () => {
      const result = await plusLogin((data) => {
        const other = Buffer.from(data);
        other[0] ^= 1;
        return other;
      });
      expect(result.error?.M).toMatch(/channel binding/i);
    });
  });
});
