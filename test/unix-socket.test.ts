/**
 * The unix-domain socket listener (unix_socket_dir, unix_socket_mode, unix_socket_group) as PgBouncer users use it:
 * psql with `-h <dir>`, or with no host at all when the socket is where the client's libpq looks (Debian:
 * /var/run/postgresql), the admin console over it, auth_type applied to it, and the socket file's life cycle.
 */
import { existsSync, mkdtempSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCertificates, type TestCerts } from './harness/certs.js';
import { pgInfo } from './harness/context.js';
import { startPostgres } from './harness/postgres.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { libpqEnv, runProcess } from './harness/process.js';
import { runPsql } from './harness/psql.js';
import { APP_DATABASE, APP_ROLE } from './harness/roles.js';

const ADMIN = { name: 'unix_admin', password: 'unix-admin-pass' };

let dir: string;
let px: TestPgmux;
let certs: TestCerts;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'pgmux-unix-'));
  certs = await makeCertificates();
  px = await startPgmux({
    settings: {
      unix_socket_dir: dir,
      unix_socket_mode: '0770',
      admin_users: ADMIN.name,
      // TLS is offered (and required) on TCP; the unix socket is local, as in PostgreSQL and PgBouncer.
      client_tls_sslmode: 'require',
      client_tls_cert_file: certs.serverCertFile,
      client_tls_key_file: certs.serverKeyFile,
      log_connections: false,
    },
    databases: { [APP_DATABASE]: { dbname: APP_DATABASE } },
    users: { [APP_ROLE.name]: { password: APP_ROLE.password }, [ADMIN.name]: { password: ADMIN.password } },
  });
});

afterAll(async () => {
  await px?.stop();
  await certs?.remove();
});

const socketFile = (): string => path.join(dir, `.s.PGSQL.${px.port}`);

describe('the unix-domain socket', () => {
  it('is <unix_socket_dir>/.s.PGSQL.<listen_port>, with unix_socket_mode', () => {
    expect(px.pgmux.unixSocketPath).toBe(socketFile());
    const st = statSync(socketFile());
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o770);
  });

  it('serves psql -h <dir> -p <port> with auth_type (a wrong password is refused), without TLS', async () => {
    const conninfo = `host=${dir} port=${px.port} dbname=${APP_DATABASE} user=${APP_ROLE.name}`;
    const ok = await runPsql(conninfo, ['select current_user'], APP_ROLE.password);
    expect(ok.stderr).toBe('');
    expect(ok.stdout.trim()).toBe(APP_ROLE.name);
    const wrong = await runPsql(conninfo, ['select 1'], 'not-the-password');
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain(`password authentication failed for user "${APP_ROLE.name}"`);
    // TCP still requires TLS (client_tls_sslmode: require).
    const plainTcp = await runPsql(`host=127.0.0.1 port=${px.port} dbname=${APP_DATABASE} user=${APP_ROLE.name} sslmode=disable`, ['select 1'], APP_ROLE.password);
    expect(plainTcp.code).not.toBe(0);
  });

  it('answers an SSLRequest with N, as PostgreSQL does on a unix socket', async () => {
    const sslRequest = async (file: string): Promise<string> => {
      const socket = net.connect(file);
      try {
        const answer = await new Promise<Buffer>((resolve, reject) => {
          socket.once('error', reject);
          socket.once('data', resolve);
          socket.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]));
        });
        return answer.toString('latin1');
      } finally {
        socket.destroy();
      }
    };
    expect(await sslRequest(socketFile())).toBe('N');
    // The same bytes on the socket of a PostgreSQL that serves TLS (with the same certificate) on TCP.
    const tlsCluster = await startPostgres({ name: 'unix-ssl', ssl: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile } });
    try {
      expect(await sslRequest(path.join(tlsCluster.socketDir, `.s.PGSQL.${tlsCluster.port}`))).toBe('N');
    } finally {
      await tlsCluster.stop();
    }
  }, 60_000);

  it('serves the admin console (psql -h <dir> -d pgbouncer), which lists the client as unix', async () => {
    const r = await runPsql(`host=${dir} port=${px.port} dbname=pgbouncer user=${ADMIN.name}`, ['SHOW CLIENTS'], ADMIN.password);
    expect(r.stderr).toBe('');
    const self = r.stdout.split('\n').find((l) => l.startsWith(`C|${ADMIN.name}|pgbouncer|`));
    expect(self, r.stdout).toBeDefined();
    expect((self as string).split('|')[5]).toBe('unix');
    // The admin client running the command is active while it does, as in PgBouncer.
    expect((self as string).split('|')[4]).toBe('active');
  });

  it('serves node-postgres given the directory as host', async () => {
    const client = new pg.Client({ host: dir, port: px.port, user: APP_ROLE.name, password: APP_ROLE.password, database: APP_DATABASE });
    await client.connect();
    try {
      expect((await client.query('select 41 + 1 as n')).rows).toEqual([{ n: 42 }]);
    } finally {
      await client.end();
    }
  });
});

describe('the socket file', () => {
  it('replaces a file left by a process that was killed, refuses one in use, and is removed at stop', async () => {
    const own = mkdtempSync(path.join(tmpdir(), 'pgmux-unix-stale-'));
    const first = await startPgmux({ settings: { unix_socket_dir: own, auth_type: 'trust' }, databases: { [APP_DATABASE]: { dbname: APP_DATABASE } } });
    const file = path.join(own, `.s.PGSQL.${first.port}`);
    expect(existsSync(file)).toBe(true);
    // A second listener on the same socket name (another pgmux with the same port and directory) is refused.
    const { listenUnix } = await import('../src/net/unix-listener.js');
    await expect(listenUnix({ dir: own, port: first.port, mode: 0o777, group: '', onConnection: () => undefined })).rejects.toThrow(/another process is listening on .*unix_socket_dir/);
    await first.stop();
    expect(existsSync(file)).toBe(false);

    // A socket file nobody listens on any more (its process was killed): taken over.
    const killedFile = path.join(own, '.s.PGSQL.2');
    const killed = await runProcess(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(killedFile)}, () => process.kill(process.pid, 'SIGKILL'))`], { timeoutMs: 10_000 });
    expect(killed.signal).toBe("SIGKILL");
    expect(statSync(killedFile).isSocket()).toBe(true);
    const taken = await listenUnix({ dir: own, port: 2, mode: 0o777, group: '', onConnection: (s) => s.end() });
    expect(taken.path).toBe(killedFile);
    await new Promise<void>((resolve, reject) => net.connect(killedFile).once('connect', resolve).once('error', reject));
    taken.server.close();

    // A regular file of that name is not deleted.
    writeFileSync(path.join(own, '.s.PGSQL.3'), 'not a socket');
    await expect(listenUnix({ dir: own, port: 3, mode: 0o777, group: '', onConnection: () => undefined })).rejects.toThrow(/exists and is not a socket/);
  });

  it('is not created when unix_socket_dir is empty', async () => {
    const none = await startPgmux({ settings: { unix_socket_dir: '', auth_type: 'trust' }, databases: { [APP_DATABASE]: { dbname: APP_DATABASE } } });
    try {
      expect(none.pgmux.unixSocketPath).toBeNull();
    } finally {
      await none.stop();
    }
  });
});

describe('the default directory (auto)', () => {
  // Debian's libpq looks in /var/run/postgresql; its psql then needs no -h at all: `psql -p 6543 pgbouncer`.
  const debianPsql = ['/usr/lib/postgresql/15/bin/psql', path.join(pgInfo().binDir, 'psql')].find((p) => existsSync(p)) as string;
  const writable = (() => {
    try {
      const probe = path.join('/var/run/postgresql', `.pgmux-probe-${process.pid}`);
      writeFileSync(probe, '');
      unlinkSync(probe);
      return true;
    } catch {
      return false;
    }
  })();

  it.runIf(writable)('is /var/run/postgresql when writable, so psql -p <port> -d pgbouncer works without -h', async () => {
    const auto = await startPgmux({
      settings: { auth_type: 'trust', admin_users: 'postgres' },
      databases: { [APP_DATABASE]: { dbname: APP_DATABASE } },
    });
    try {
      expect(auto.pgmux.unixSocketPath).toBe(`/var/run/postgresql/.s.PGSQL.${auto.port}`);
      const r = await runProcess(debianPsql, ['-X', '-A', '-t', '-p', String(auto.port), '-U', 'postgres', '-d', 'pgbouncer', '-c', 'SHOW VERSION'], {
        env: libpqEnv(),
        timeoutMs: 15_000,
      });
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/pgmux/i);
    } finally {
      await auto.stop();
    }
    expect(existsSync(`/var/run/postgresql/.s.PGSQL.${auto.port}`)).toBe(false);
  });
});
