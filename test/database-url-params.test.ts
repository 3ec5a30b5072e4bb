/**
 * DATABASE_URL's libpq parameters, through the real process (`startPgmuxProcess`, configured by its environment
 * alone, as a container is):
 * - `sslmode=require` against the shared cluster, which has no TLS: pgmux never falls back to plaintext; the
 *   client gets an error naming the cause and the log says so.
 * - `sslmode=require` against a cluster serving TLS: pgmux's server connections are encrypted (pg_stat_ssl), and
 *   `application_name` and `options` reach the server in the startup packet.
 * - an unknown parameter stops pgmux at startup, naming it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { makeCertificates, type TestCerts } from './harness/certs.js';
import { loginError } from './harness/clients.js';
import { pgUrl } from './harness/context.js';
import { logLines, startPgmuxProcess } from './harness/pgmux-process.js';
import { freePort, startPostgres, type PostgresInstance } from './harness/postgres.js';
import { waitForOutput, waitListening, type ChildProc } from './harness/process.js';
import { APP_DATABASE, APP_ROLE } from './harness/roles.js';
import { withTimeout } from './harness/wait.js';

const procs: ChildProc[] = [];

afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
});

/** pgmux from DATABASE_URL alone (plus its listening port), listening. */
async function startWithUrl(url: string): Promise<{ proc: ChildProc; port: number }> {
  const port = await freePort();
  const proc = startPgmuxProcess({ env: { DATABASE_URL: url, LISTEN_PORT: String(port), SERVER_LOGIN_RETRY: '200ms' } });
  procs.push(proc);
  await waitListening(proc, port);
  return { proc, port };
}

function appConfig(port: number): pg.ClientConfig {
  return { host: '127.0.0.1', port, user: APP_ROLE.name, password: APP_ROLE.password, database: APP_DATABASE };
}

function appClient(port: number): pg.Client {
  return new pg.Client(appConfig(port));
}

describe('sslmode=require against a server without TLS', () => {
  it('fails to connect instead of using plaintext: the client is told why, and so is the log', async () => {
    const { proc, port } = await startWithUrl(`${pgUrl(APP_DATABASE)}?sslmode=require`);
    await waitForOutput(proc, 'DATABASE_URL: its parameters set server_tls_sslmode=require (sslmode=require)');
    const err = await loginError(appConfig(port));
    expect(err.code).toBe('08006');
    expect(err.message).toMatch(/does not support TLS, and server_tls_sslmode is require/);
    await waitForOutput(proc, 'does not support TLS');
    const logged = logLines(proc.stdout()).filter((l) => JSON.stringify(l).includes('does not support TLS'));
    expect(logged.length).toBeGreaterThan(0);
    expect(logged.some((l) => l.level === 'error' || l.level === 'warn')).toBe(true);
  });
});

describe('an unknown parameter', () => {
  it('stops pgmux at startup, naming the parameter and the one meant', async () => {
    const port = await freePort();
    const proc = startPgmuxProcess({ env: { DATABASE_URL: `${pgUrl(APP_DATABASE)}?sslmdoe=require`, LISTEN_PORT: String(port) } });
    procs.push(proc);
    const { code } = await withTimeout(proc.exited, 30_000, 'pgmux to exit');
    expect(code).toBe(2);
    expect(proc.stderr()).toMatch(/^pgmux: invalid configuration: DATABASE_URL: has parameter sslmdoe, which is not a libpq connection parameter; did you mean "sslmode"\?/);
    expect(proc.stderr()).not.toContain(APP_ROLE.password as string);
  });
});

describe('sslmode=require against a server with TLS', () => {
  let certs: TestCerts;
  let cluster: PostgresInstance;

  beforeAll(async () => {
    certs = await makeCertificates();
    cluster = await startPostgres({
      name: 'url-tls',
      ssl: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile },
      settings: { password_encryption: 'scram-sha-256' },
    });
  });

  afterAll(async () => {
    await cluster?.stop();
    await certs?.remove();
  });

  it('encrypts pgmux\'s server connections, and sends application_name and options', async () => {
    const base = cluster.url(APP_DATABASE, APP_ROLE.name, APP_ROLE.password);
    const options = encodeURIComponent('-c search_path=from_url,public -c work_mem=3MB');
    const { port } = await startWithUrl(`${base}?sslmode=require&application_name=pgmux-url-test&options=${options}`);
    const client = appClient(port);
    await client.connect();
    try {
      const { rows } = await client.query<{ ssl: boolean; app: string; path: string; mem: string }>(
        `SELECT s.ssl, a.application_name AS app, current_setting('search_path') AS path, current_setting('work_mem') AS mem
           FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.pid = pg_backend_pid()`,
      );
      expect(rows).toEqual([{ ssl: true, app: 'pgmux-url-test', path: 'from_url,public', mem: '3MB' }]);
    } finally {
      await client.end();
    }
  });

  it('checks the chain with sslrootcert (libpq\'s require + root certificate = verify-ca): a wrong CA fails', async () => {
    const base = cluster.url(APP_DATABASE, APP_ROLE.name, APP_ROLE.password);
    const { port } = await startWithUrl(`${base}?sslmode=require&sslrootcert=${encodeURIComponent(certs.wrongCaFile)}`);
    const err = await loginError(appConfig(port));
    expect(err.code).toBe('08006');
    expect(err.message).toMatch(/certificate/i);
    const good = await startWithUrl(`${base}?sslmode=require&sslrootcert=${encodeURIComponent(certs.caFile)}`);
    const client = appClient(good.port);
    await client.connect();
    try {
      expect((await client.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).rows).toEqual([{ ssl: true }]);
    } finally {
      await client.end();
    }
  });
});
