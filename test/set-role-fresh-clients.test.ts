/**
 * Fresh clients after a client's SET ROLE run as their own user (issue 10, finding 3; a security bug).
 *
 * `role` and `session_authorization` are not in pg_settings and RESET ALL does not reset them, so a pooler that
 * captures settings from pg_settings and cleans up with RESET ALL hands a server still running as `some_role` to
 * the next client. Multi-tenant applications SET ROLE per request for row-level security: the next client then
 * reads the previous tenant's rows. Here, in transaction mode:
 *
 * - pool of 1: a client SETs a role (SET ROLE, set_config('role', ...), SET ROLE in a committed transaction, in a
 *   multi-statement query, in the extended protocol, inside a function) and disconnects; fresh clients see current_user and
 *   session_user = their login user, and only their own rows of a table with row-level security;
 * - pool of 2: the same while the client that SET the role stays connected and idle;
 * - the role follows the client that SET it, across transactions, while bystanders keep the pool's servers busy
 *   (and see only their own user), until RESET ROLE / SET ROLE NONE: exactly as on a direct connection.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCheckedLoad } from './harness/checked-load.js';
import { adminClient, createTestDatabase, dropTestDatabase, pgInfo } from './harness/context.js';
import { startPgmux, transactionPool, type TestPgmux } from './harness/pgmux.js';

const tag = randomBytes(3).toString('hex');
const LOGIN = { name: `f3_login_${tag}`, password: `pw-${tag}` };
const TENANT_A = `f3_tenant_a_${tag}`;
const TENANT_B = `f3_tenant_b_${tag}`;

let db: string;
let admin: pg.Client;
/** Transaction mode, pool of 1. */
let px1: TestPgmux;
/** Transaction mode, pool of 2. */
let px2: TestPgmux;
/** Transaction mode, pool of 2, for the test of a role following its client (so no other test's leftovers count). */
let pxFollow: TestPgmux;

beforeAll(async () => {
  db = await createTestDatabase('set_role');
  admin = await adminClient(db);
  await admin.query(`CREATE ROLE ${LOGIN.name} LOGIN PASSWORD '${LOGIN.password}'`);
  await admin.query(`CREATE ROLE ${TENANT_A} NOLOGIN`);
  await admin.query(`CREATE ROLE ${TENANT_B} NOLOGIN`);
  await admin.query(`GRANT ${TENANT_A}, ${TENANT_B} TO ${LOGIN.name}`);
  // Row-level security by current_user, as multi-tenant applications do it.
  await admin.query('CREATE TABLE docs (tenant name NOT NULL, body text NOT NULL)');
  await admin.query(`INSERT INTO docs VALUES ('${TENANT_A}', 'a-secret-1'), ('${TENANT_A}', 'a-secret-2'), ('${TENANT_B}', 'b-secret'), ('${LOGIN.name}', 'login-own')`);
  await admin.query('ALTER TABLE docs ENABLE ROW LEVEL SECURITY');
  await admin.query('CREATE POLICY own_rows ON docs USING (tenant = current_user)');
  await admin.query(`GRANT SELECT ON docs TO ${LOGIN.name}, ${TENANT_A}, ${TENANT_B}`);
  // A SET ROLE the SQL text of the client's statement does not show: run by a function.
  await admin.query("CREATE FUNCTION become(role_name text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN EXECUTE format('SET ROLE %I', role_name); RETURN current_user; END $$");
  await admin.query(`GRANT EXECUTE ON FUNCTION become(text) TO ${LOGIN.name}`);
  const settings = (poolSize: number) => transactionPool(poolSize);
  const users = { [LOGIN.name]: { password: LOGIN.password } };
  px1 = await startPgmux({ settings: settings(1), databases: { [db]: { dbname: db } }, users });
  px2 = await startPgmux({ settings: settings(2), databases: { [db]: { dbname: db } }, users });
  pxFollow = await startPgmux({ settings: settings(2), databases: { [db]: { dbname: db } }, users });
});

afterAll(async () => {
  await px1?.stop();
  await px2?.stop();
  await pxFollow?.stop();
  await admin?.end();
  if (db !== undefined) await dropTestDatabase(db);
  const cleanup = await adminClient();
  try {
    for (const role of [TENANT_A, TENANT_B, LOGIN.name]) await cleanup.query(`DROP ROLE IF EXISTS ${role}`);
  } finally {
    await cleanup.end();
  }
});

async function connect(port: number): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: LOGIN.name, password: LOGIN.password, database: db, connectionTimeoutMillis: 20_000 });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

interface Identity {
  current_user: string;
  session_user: string;
  /** The rows row-level security lets this client see. */
  visible: string;
}

async function whoAmI(c: pg.Client): Promise<Identity> {
  const r = await c.query<Identity>("select current_user, session_user, (select coalesce(string_agg(body, ',' order by body), '') from docs) as visible");
  return r.rows[0];
}

const OWN: Identity = { current_user: LOGIN.name, session_user: LOGIN.name, visible: 'login-own' };

/** Ways of taking on TENANT_A; each leaves the session running as TENANT_A on a direct connection. */
const TAKE_ROLE: Array<[string, (c: pg.Client) => Promise<unknown>]> = [
  ['SET ROLE', (c) => c.query(`SET ROLE ${TENANT_A}`)],
  ["set_config('role', ..., false)", (c) => c.query(`select set_config('role', '${TENANT_A}', false)`)],
  ['SET ROLE in a committed transaction block', async (c) => {
    await c.query('BEGIN');
    await c.query(`SET ROLE ${TENANT_A}`);
    await c.query('COMMIT');
  }],
  ['SET ROLE in a multi-statement query', (c) => c.query(`SET ROLE ${TENANT_A}; select 1`)],
  ['SET ROLE in the extended protocol (named statement)', (c) => c.query({ name: `set_role_${tag}`, text: `SET ROLE ${TENANT_A}` })],
  ['SET SESSION ROLE', (c) => c.query(`SET SESSION ROLE ${TENANT_A}`)],
  // Nothing in the statement's text says SET or set_config: only the server knows the role changed.
  ['SET ROLE run by a function (select become(...))', (c) => c.query(`select become('${TENANT_A}')`)],
];

describe('fresh clients after a client\'s SET ROLE run as their own user', () => {
  it.each(TAKE_ROLE)('pool of 1, %s, then the client disconnects', async (_name, takeRole) => {
    // Directly: the statement does take the role (sanity).
    const direct = await connect(pgInfo().port);
    await takeRole(direct);
    expect(await whoAmI(direct)).toEqual({ current_user: TENANT_A, session_user: LOGIN.name, visible: 'a-secret-1,a-secret-2' });
    await direct.end();

    const a = await connect(px1.port);
    await takeRole(a);
    expect(await whoAmI(a), 'the client that SET the role').toEqual({ current_user: TENANT_A, session_user: LOGIN.name, visible: 'a-secret-1,a-secret-2' });
    await a.end();
    for (let i = 0; i < 3; i++) {
      const b = await connect(px1.port);
      try {
        expect(await whoAmI(b), `fresh client ${i + 1}`).toEqual(OWN);
      } finally {
        await b.end();
      }
    }
  }, 30_000);

  it.each(TAKE_ROLE)('pool of 2, %s, while that client stays connected and idle', async (_name, takeRole) => {
    const a = await connect(px2.port);
    try {
      await takeRole(a);
      expect(await whoAmI(a), 'the client that SET the role').toMatchObject({ current_user: TENANT_A });
      // Fresh clients, one at a time and two at once (both servers, if the first is not kept for `a`).
      for (let i = 0; i < 2; i++) {
        const b = await connect(px2.port);
        try {
          expect(await whoAmI(b), `fresh client ${i + 1}`).toEqual(OWN);
        } finally {
          await b.end();
        }
      }
      const [b1, b2] = await Promise.all([connect(px2.port), connect(px2.port)]);
      try {
        const seen = await Promise.all([b1, b2].map(async (b) => {
          await b.query('BEGIN');
          const who = await whoAmI(b);
          await b.query('COMMIT');
          return who;
        }));
        expect(seen, 'two fresh clients at once').toEqual([OWN, OWN]);
      } finally {
        await Promise.all([b1.end(), b2.end()]);
      }
      // And the client itself still runs as the role it SET.
      expect(await whoAmI(a), 'the client that SET the role, afterwards').toEqual({ current_user: TENANT_A, session_user: LOGIN.name, visible: 'a-secret-1,a-secret-2' });
    } finally {
      await a.end();
    }
  }, 30_000);
});

describe('the role follows the client that SET it, and only that client', () => {
  /** Each step a separate statement: in transaction mode each may run on another server. */
  const SCRIPT: string[] = [
    `SET ROLE ${TENANT_A}`,
    ...Array<string>(8).fill('?'),
    'RESET ROLE',
    ...Array<string>(4).fill('?'),
    `SET ROLE ${TENANT_B}`,
    ...Array<string>(4).fill('?'),
    'SET ROLE NONE',
    ...Array<string>(4).fill('?'),
    `BEGIN; SET LOCAL ROLE ${TENANT_A}; COMMIT`,
    ...Array<string>(3).fill('?'),
    `BEGIN; SET ROLE ${TENANT_B}; ROLLBACK`,
    ...Array<string>(3).fill('?'),
    `select set_config('role', '${TENANT_B}', false)`,
    ...Array<string>(4).fill('?'),
    'RESET ALL', // does not reset the role
    ...Array<string>(3).fill('?'),
    'DISCARD ALL', // does
    ...Array<string>(3).fill('?'),
  ];

  async function run(c: pg.Client): Promise<Array<Identity | string>> {
    const out: Array<Identity | string> = [];
    for (const step of SCRIPT) {
      if (step === '?') out.push(await whoAmI(c));
      else out.push((await c.query(step).then(() => 'ok', (e: Error) => `error: ${e.message}`)) as string);
    }
    return out;
  }

  it('across transactions on a pool of 2 with bystanders busy: current_user as directly, bystanders always their own user', async () => {
    const direct = await connect(pgInfo().port);
    const want = await run(direct).finally(() => direct.end());
    // Sanity of the script: directly the role sticks until RESET ROLE, and RESET ALL leaves it.
    expect(want[1]).toEqual({ current_user: TENANT_A, session_user: LOGIN.name, visible: 'a-secret-1,a-secret-2' });
    expect(want[SCRIPT.indexOf('RESET ALL') + 1]).toMatchObject({ current_user: TENANT_B });
    expect(want[SCRIPT.indexOf('DISCARD ALL') + 1]).toEqual(OWN);

    const load = await startCheckedLoad(() => connect(pxFollow.port), {
      sql: "select current_user, session_user, (select count(*) from docs where tenant <> session_user)::text",
      expected: () => [[LOGIN.name, LOGIN.name, '0']],
    });
    let got: Array<Identity | string>;
    try {
      const a = await connect(pxFollow.port);
      got = await run(a).finally(() => a.end());
    } finally {
      await load.stop();
    }
    SCRIPT.forEach((step, i) => expect.soft(got[i], `step ${i}: ${step === '?' ? 'who am I' : step}`).toEqual(want[i]));
    expect(load.problems, 'what the bystanders saw').toEqual([]);
    // Fresh clients afterwards run as themselves too.
    const fresh = await connect(pxFollow.port);
    expect(await whoAmI(fresh).finally(() => fresh.end())).toEqual(OWN);
  }, 60_000);
});
