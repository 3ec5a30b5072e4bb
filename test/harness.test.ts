/**
 * Smoke test of the test harness: the shared cluster accepts each role with its own auth method,
 * rejects a wrong password with 28P01, and createTestDatabase gives a usable database owned by `app`.
 * And the Node the tests run on: the one `npm run test:node` chose (PGMUX_EXPECT_NODE_MAJOR), in this process and
 * in the `node` and `npm` the tests start by name; otherwise one package.json's engines allows.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, createTestDatabase, dropTestDatabase, pgInfo, pgUrl } from './harness/context.js';
import { REPO_ROOT } from './harness/pgmux-process.js';
import { runProcess } from './harness/process.js';
import { APP_DATABASE, APP_ROLE, CLEAR_ROLE, MD5_ROLE, SCRAM_ROLE, TEST_ROLES, TRUST_ROLE, type TestRole } from './harness/roles.js';

function connectAs(role: TestRole, password: string | undefined, database = APP_DATABASE): pg.Client {
  const info = pgInfo();
  const client = new pg.Client({ host: info.host, port: info.port, user: role.name, password, database });
  client.on('error', () => undefined);
  return client;
}

async function whoAmI(role: TestRole, password: string | undefined): Promise<string> {
  const client = connectAs(role, password);
  await client.connect();
  try {
    const res = await client.query<{ u: string }>('SELECT current_user AS u');
    return res.rows[0].u;
  } finally {
    await client.end();
  }
}

async function connectError(role: TestRole, password: string): Promise<unknown> {
  const client = connectAs(role, password);
  try {
    await client.connect();
  } catch (err) {
    return err;
  } finally {
    await client.end().catch(() => undefined);
  }
  return undefined;
}

describe('test cluster', () => {
  it('is reachable on loopback as the superuser', async () => {
    const client = await adminClient();
    try {
      const res = await client.query<{ su: boolean; v: string }>(
        "SELECT current_setting('is_superuser') = 'on' AS su, current_setting('server_version_num') AS v",
      );
      expect(res.rows[0].su).toBe(true);
      expect(Number(res.rows[0].v)).toBeGreaterThanOrEqual(130000);
    } finally {
      await client.end();
    }
  });

  it('uses the pg_hba method each role is declared with', async () => {
    const client = await adminClient();
    try {
      const res = await client.query<{ user_name: string[]; auth_method: string }>(
        "SELECT user_name, auth_method FROM pg_hba_file_rules WHERE type = 'host' ORDER BY line_number",
      );
      for (const role of TEST_ROLES) {
        const rule = res.rows.find((r) => r.user_name.includes(role.name)) ?? res.rows.find((r) => r.user_name.includes('all'));
        expect(rule?.auth_method, role.name).toBe(role.method);
      }
      const stored = await client.query<{ rolname: string; kind: string }>(
        "SELECT rolname, left(rolpassword, 3) AS kind FROM pg_authid WHERE rolname = ANY($1)",
        [[MD5_ROLE.name, SCRAM_ROLE.name]],
      );
      expect(Object.fromEntries(stored.rows.map((r) => [r.rolname, r.kind]))).toEqual({
        [MD5_ROLE.name]: 'md5',
        [SCRAM_ROLE.name]: 'SCR',
      });
    } finally {
      await client.end();
    }
  });

  it.each([TRUST_ROLE, CLEAR_ROLE, MD5_ROLE, SCRAM_ROLE, APP_ROLE].map((r) => [r.name, r] as const))(
    'accepts %s with its auth method',
    async (_name, role) => {
      expect(await whoAmI(role, role.password)).toBe(role.name);
    },
  );

  it.each([CLEAR_ROLE, MD5_ROLE, SCRAM_ROLE, APP_ROLE].map((r) => [r.name, r] as const))(
    'rejects %s with a wrong password (28P01)',
    async (_name, role) => {
      const err = await connectError(role, 'wrong-password');
      expect(err).toBeInstanceOf(Error);
      expect((err as { code?: unknown }).code).toBe('28P01');
    },
  );
});

describe('createTestDatabase', () => {
  let db: string;
  beforeAll(async () => {
    db = await createTestDatabase('harness smoke');
  });
  afterAll(async () => {
    await dropTestDatabase(db);
  });

  it('creates a fresh database owned by app that app can use', async () => {
    expect(db).toMatch(/^harness_smoke_\d+_[0-9a-f]{8}$/);
    const client = new pg.Client({ connectionString: pgUrl(db) });
    await client.connect();
    try {
      await client.query('CREATE TABLE t (id int PRIMARY KEY)');
      await client.query('INSERT INTO t VALUES (1), (2)');
      const res = await client.query<{ n: string; owner: string }>(
        'SELECT count(*) AS n, (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()) AS owner FROM t',
      );
      expect(res.rows[0]).toEqual({ n: '2', owner: APP_ROLE.name });
    } finally {
      await client.end();
    }
  });

  it('gives a different name each call', async () => {
    const other = await createTestDatabase('harness smoke');
    try {
      expect(other).not.toBe(db);
    } finally {
      await dropTestDatabase(other);
    }
  });
});

describe('the Node the tests run on', () => {
  const major = (version: string): number => Number(/^v?(\d+)\./.exec(version)?.[1]);
  const engines = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
  const expected = process.env.PGMUX_EXPECT_NODE_MAJOR;

  it(expected === undefined ? `is one package.json's engines (${engines}) allows, here and in a child node` : `is Node ${expected} (PGMUX_EXPECT_NODE_MAJOR), here and in child node and npm processes`, async () => {
    const child = await runProcess('node', ['--version'], { timeoutMs: 30_000 });
    expect(child.code, child.output).toBe(0);
    const childMajor = major(child.stdout.trim());
    if (expected === undefined) {
      const minimum = /^>=\s*(\d+)$/.exec(engines);
      expect(minimum, `engines.node ${engines} is not ">=N"`).not.toBeNull();
      expect(major(process.versions.node)).toBeGreaterThanOrEqual(Number(minimum?.[1]));
      expect(childMajor).toBeGreaterThanOrEqual(Number(minimum?.[1]));
      return;
    }
    expect(expected).toMatch(/^\d+$/);
    expect(major(process.versions.node), `process.versions.node ${process.versions.node}`).toBe(Number(expected));
    expect(childMajor, `child node --version ${child.stdout.trim()} (PATH=${process.env.PATH})`).toBe(Number(expected));
    // npm, started by name as test/npm-command.test.ts does, runs on it too (its #!/usr/bin/env node finds it in PATH).
    const npm = await runProcess('npm', ['version', '--json'], { cwd: REPO_ROOT, timeoutMs: 60_000 });
    expect(npm.code, npm.output).toBe(0);
    const npmNode = (JSON.parse(npm.stdout) as { node?: string }).node ?? '';
    expect(major(npmNode), `npm's node ${npmNode}`).toBe(Number(expected));
  });
});
