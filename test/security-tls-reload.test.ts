/**
 * Security checks (issue 11): certificate rotation. pgmux runs as its own process (as deployed) and reads
 * client_tls_cert_file / client_tls_key_file again on SIGHUP and on the admin console's RELOAD:
 *
 * - a new connection after the reload gets the new certificate; a TLS client connected before keeps
 *   working, and so does one whose TLS handshake (with the old certificate) came before the reload and whose
 *   SCRAM-SHA-256-PLUS login comes after it (channel binding is to the certificate it was shown);
 * - a bad new certificate (key that does not match, key file missing mid-rotation, a truncated certificate
 *   file) is rejected: the old certificate stays in use, clients are untouched, and one error line names the
 *   setting, the file and the reason;
 * - nothing in the process's output holds either private key or a password.
 */
import { createHash, X509Certificate } from 'node:crypto';
import fsp from 'node:fs/promises';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import pg from 'pg';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeLogin } from './harness/auth-probe.js';
import { makeCertificates, type TestCerts } from './harness/certs.js';
import { createTestDatabase, pgInfo } from './harness/context.js';
import { logLines, startPgmuxProcess } from './harness/pgmux-process.js';
import { freePort } from './harness/postgres.js';
import { waitForOutput, type ChildProc } from './harness/process.js';
import { APP_ROLE } from './harness/roles.js';
import { waitFor } from './harness/wait.js';
import { RawConnection } from './harness/wire.js';

const ADMIN = { name: 'sec_tls_admin', password: 'sec-tls-admin-pass' };

let certsA: TestCerts;
let certsB: TestCerts;
let live: string;
let liveCert: string;
let liveKey: string;
let port: number;
let proc: ChildProc;
const clients: pg.Client[] = [];

const fingerprint = async (file: string): Promise<string> => new X509Certificate(await fsp.readFile(file)).fingerprint256;

/** The fingerprint of the certificate a new TLS connection to pgmux is shown. */
async function presented(): Promise<string> {
  const conn = await RawConnection.connectTls(port);
  try {
    return (conn.socket as TLSSocket).getPeerX509Certificate()?.fingerprint256 ?? '';
  } finally {
    conn.destroy();
  }
}

/** Installs a certificate and key as the files pgmux is configured with (key mode 0600). */
async function install(certFile: string, keyFile: string): Promise<void> {
  await fsp.rm(liveCert, { force: true });
  await fsp.rm(liveKey, { force: true });
  await fsp.copyFile(certFile, liveCert);
  await fsp.copyFile(keyFile, liveKey);
  await fsp.chmod(liveKey, 0o600);
}

const occurrences = (text: string): number => proc.output().split(text).length - 1;

/** Sends SIGHUP and waits for the outcome line that follows. */
async function sighup(outcome: 'configuration applied' | 'configuration rejected'): Promise<void> {
  const before = occurrences(outcome);
  proc.child.kill('SIGHUP');
  await waitFor(() => occurrences(outcome) > before, `"${outcome}" after SIGHUP`);
}

async function tlsClient(ca: Buffer, extra: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const c = new pg.Client({
    host: '127.0.0.1',
    port,
    user: APP_ROLE.name,
    password: APP_ROLE.password,
    database: 'app',
    ssl: { ca, servername: 'localhost' },
    connectionTimeoutMillis: 10_000,
    ...extra,
  });
  c.on('error', () => undefined);
  await c.connect();
  clients.push(c);
  return c;
}

async function reload(): Promise<Error & { code?: string }> {
  const admin = new pg.Client({ host: '127.0.0.1', port, user: ADMIN.name, password: ADMIN.password, database: 'pgbouncer' });
  await admin.connect();
  try {
    return await admin.query('RELOAD').then(
      () => null as unknown as Error,
      (e: Error) => e,
    );
  } finally {
    await admin.end();
  }
}

const select1 = async (c: pg.Client): Promise<unknown> => (await c.query('SELECT 1 AS n')).rows;

/** The error lines of the log that say a reload was rejected. */
const rejections = (): Array<Record<string, unknown>> =>
  logLines(proc.stdout()).filter((l) => l.msg === 'configuration rejected; the previous configuration stays in effect');

/** The n-th rejection log line (1-based): RELOAD's answer can reach the client before the line reaches stdout. */
async function rejection(n: number): Promise<Record<string, unknown> | undefined> {
  await waitFor(() => rejections().length >= n, `rejection log line ${n}`);
  return rejections()[n - 1];
}

beforeAll(async () => {
  [certsA, certsB] = await Promise.all([makeCertificates(), makeCertificates()]);
  live = mkdtempSync(path.join(tmpdir(), 'pgmux-tls-rotation-'));
  liveCert = path.join(live, 'server.crt');
  liveKey = path.join(live, 'server.key');
  await install(certsA.serverCertFile, certsA.serverKeyFile);
  const db = await createTestDatabase('sectls');
  const info = pgInfo();
  port = await freePort();
  const file = path.join(live, 'pgmux.yaml');
  writeFileSync(
    file,
    stringify({
      listen_port: port,
      metrics_port: 0,
      log_level: 'trace',
      admin_users: ADMIN.name,
      client_tls_cert_file: liveCert,
      client_tls_key_file: liveKey,
      databases: { app: { host: info.host, port: info.port, dbname: db } },
      users: { [APP_ROLE.name]: { password: APP_ROLE.password }, [ADMIN.name]: { password: ADMIN.password } },
    }),
  );
  proc = startPgmuxProcess({ args: ['--config', file], cwd: live });
  await waitForOutput(proc, 'pgmux listening', 30_000);
});

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => undefined);
  await proc?.stop('SIGKILL');
  await Promise.all([certsA?.remove(), certsB?.remove(), live === undefined ? undefined : fsp.rm(live, { recursive: true, force: true })]);
});

describe('certificate rotation on SIGHUP and RELOAD', () => {
  it('new connections get the new certificate, connected clients keep working, a bad certificate is refused', async () => {
    const [fpA, fpB, caA, caB] = await Promise.all([
      fingerprint(certsA.serverCertFile),
      fingerprint(certsB.serverCertFile),
      fsp.readFile(certsA.caFile),
      fsp.readFile(certsB.caFile),
    ]);
    expect(fpA).not.toBe(fpB);
    expect(await presented()).toBe(fpA);
    const before = await tlsClient(caA);
    expect(await select1(before)).toEqual([{ n: 1 }]);
    // TLS done with certificate A, login still to come.
    const halfway = await RawConnection.connectTls(port);
    const halfwayCert = (halfway.socket as TLSSocket).getPeerX509Certificate();
    expect(halfwayCert?.fingerprint256).toBe(fpA);

    // Rotation to B with SIGHUP.
    await install(certsB.serverCertFile, certsB.serverKeyFile);
    await sighup('configuration applied');
    expect(await presented()).toBe(fpB);
    const after = await tlsClient(caB, { enableChannelBinding: true });
    expect(await select1(after)).toEqual([{ n: 1 }]);
    expect(await select1(before)).toEqual([{ n: 1 }]);
    // SCRAM-SHA-256-PLUS bound to certificate A, which this connection was shown (tls-server-end-point:
    // SHA-256 of the DER for these ECDSA-SHA256 certificates).
    const binding = createHash('sha256').update(halfwayCert?.raw ?? Buffer.alloc(0)).digest();
    const plus = await probeLogin(port, { user: APP_ROLE.name, database: 'app' }, APP_ROLE.password as string, { conn: halfway, channelBinding: binding });
    halfway.destroy();
    expect(plus.mechanisms).toContain('SCRAM-SHA-256-PLUS');
    expect(plus.error).toBeUndefined();
    expect(plus.ok).toBe(true);

    // A key that does not belong to the certificate (half-way through copying a new pair): RELOAD refuses it.
    await install(certsB.serverCertFile, certsA.serverKeyFile);
    const mismatch = await reload();
    expect(mismatch?.code).toBe('F0000');
    expect(mismatch?.message).toMatch(/client_tls_cert_file: is not a usable certificate\/key pair: .*key values mismatch/);
    expect(await rejection(1)).toMatchObject({ level: 'error', reason: 'reload', err: expect.stringMatching(/^client_tls_cert_file: .*mismatch/) });
    expect(await presented()).toBe(fpB);
    expect(await select1(before)).toEqual([{ n: 1 }]);
    expect(await select1(after)).toEqual([{ n: 1 }]);

    // The key file missing (SIGHUP): refused, naming the file.
    await fsp.rm(liveKey);
    await sighup('configuration rejected');
    expect(await rejection(2)).toMatchObject({ level: 'error', err: `client_tls_key_file: cannot read ${liveKey}: ENOENT` });
    expect(await presented()).toBe(fpB);

    // A truncated certificate file (RELOAD): refused.
    const pem = await fsp.readFile(certsA.serverCertFile, 'utf8');
    await install(certsA.serverCertFile, certsA.serverKeyFile);
    await fsp.writeFile(liveCert, pem.slice(0, pem.length >> 1));
    const truncated = await reload();
    expect(truncated?.code).toBe('F0000');
    expect(truncated?.message).toMatch(/client_tls_cert_file: is not a usable certificate\/key pair/);
    expect(await rejection(3)).toMatchObject({ level: 'error', reason: 'reload' });
    expect(rejections()).toHaveLength(3);
    expect(await presented()).toBe(fpB);
    expect(await select1(before)).toEqual([{ n: 1 }]);

    // Back to A, with RELOAD this time.
    await install(certsA.serverCertFile, certsA.serverKeyFile);
    expect(await reload()).toBeNull();
    expect(await presented()).toBe(fpA);
    const again = await tlsClient(caA, { enableChannelBinding: true });
    expect(await select1(again)).toEqual([{ n: 1 }]);
    expect(await select1(before)).toEqual([{ n: 1 }]);
    expect(await select1(after)).toEqual([{ n: 1 }]);
    expect(proc.running()).toBe(true);
  });

  it('the process output holds neither private key nor a password', async () => {
    const output = proc.output();
    expect(output).toContain('configuration applied');
    const secrets = [APP_ROLE.password as string, ADMIN.password];
    for (const keyFile of [certsA.serverKeyFile, certsB.serverKeyFile]) {
      for (const line of (await fsp.readFile(keyFile, 'utf8')).split('\n')) if (line !== '' && !line.startsWith('-----')) secrets.push(line);
    }
    for (const secret of secrets) expect(output.includes(secret), secret.slice(0, 12)).toBe(false);
    // Every line is one of pgmux's JSON log lines (nothing else reached stdout or stderr).
    expect(() => logLines(output)).not.toThrow();
  });
});
