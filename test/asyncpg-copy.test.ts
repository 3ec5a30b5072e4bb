/**
 * asyncpg's copy_records_to_table releases the server when it is done (issue 10, finding 5), in transaction mode.
 *
 * asyncpg introspects the table with Parse / Describe / Flush (no Sync), then runs a simple-query
 * `COPY ... FROM STDIN (FORMAT binary)`. A pooler that waits for a Sync before it calls the server idle keeps
 * that server for the connection forever: with a pool of 1 the next client waits for query_wait_timeout, and a
 * handful of copies stop a whole pool. Run with Debian's python3-asyncpg (/usr/bin/python3):
 *
 * - pool of 1: connection 1 copies rows and stays open; SHOW POOLS (admin console) shows the server idle again;
 *   a second connection then gets the server and runs its query (query_wait_timeout 5 s, so a server that is
 *   never released shows as an error, not a hang); the rows are in the table;
 * - a 20-connection asyncpg pool over a pgmux pool of 3: 6 concurrent copies and 14 queries all complete, and
 *   the pool's servers are idle afterwards.
 */
import { spawn } from 'node:child_process';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, createTestDatabase, dropTestDatabase } from './harness/context.js';
import { startPgmux, transactionPool, type TestPgmux } from './harness/pgmux.js';
import { TRUST_ROLE } from './harness/roles.js';
import { waitFor, withTimeout } from './harness/wait.js';

const ADMIN = { name: 'f5_console_admin', password: 'f5-admin-pass' };

let db: string;
let admin: pg.Client;
let px1: TestPgmux;
let px3: TestPgmux;

function settings(poolSize: number): Record<string, unknown> {
  return transactionPool(poolSize, { query_wait_timeout: '5s', admin_users: ADMIN.name });
}

beforeAll(async () => {
  db = await createTestDatabase('asyncpg_copy');
  admin = await adminClient(db);
  await admin.query('CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL, amount numeric, at timestamptz)');
  await admin.query(`GRANT SELECT, INSERT ON items TO ${TRUST_ROLE.name}`);
  const users = { [ADMIN.name]: { password: ADMIN.password } };
  px1 = await startPgmux({ settings: settings(1), databases: { [db]: { dbname: db } }, users });
  px3 = await startPgmux({ settings: settings(3), databases: { [db]: { dbname: db } }, users });
});

afterAll(async () => {
  await px1?.stop();
  await px3?.stop();
  await admin?.end();
  if (db !== undefined) await dropTestDatabase(db);
});

/** Runs a Python script with asyncpg; lines it prints are JSON objects; it reads a line from stdin to go on. */
interface PythonRun {
  lines: Array<Record<string, unknown>>;
  /** Waits for the n-th line (1-based). */
  line(n: number, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Lets the script go on past its next sys.stdin.readline(). */
  proceed(): void;
  /** Exit status and everything it wrote. */
  readonly exited: Promise<{ code: number | null; output: string }>;
  kill(): void;
}

function runPython(script: string, databaseUrl: string): PythonRun {
  const child = spawn('/usr/bin/python3', ['-c', script], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', DATABASE_URL: databaseUrl, PYTHONUNBUFFERED: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines: Array<Record<string, unknown>> = [];
  let output = '';
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
    partial += chunk;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const text = partial.slice(0, nl).trim();
      partial = partial.slice(nl + 1);
      if (text === '') continue;
      try {
        lines.push(JSON.parse(text) as Record<string, unknown>);
      } catch {
        lines.push({ unparsed: text });
      }
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<{ code: number | null; output: string }>((resolve) => child.once('close', (code) => resolve({ code, output })));
  return {
    lines,
    line: (n, timeoutMs = 20_000) =>
      waitFor(() => lines[n - 1] ?? (child.exitCode !== null ? Promise.reject(new Error(`python exited (${child.exitCode}):\n${output}`)) : undefined), `line ${n} from python`, timeoutMs),
    proceed: () => child.stdin.write('go\n'),
    exited,
    kill: () => child.kill('SIGKILL'),
  };
}

const SINGLE = String.raw`
import asyncio, datetime, decimal, json, os, sys
import asyncpg

async def main():
    url = os.environ['DATABASE_URL']
    c1 = await asyncpg.connect(url)
    records = [(i, 'label %d' % i, decimal.Decimal(i) / 4, datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)) for i in range(1, 501)]
    status = await c1.copy_records_to_table('items', records=records, columns=['id', 'label', 'amount', 'at'])
    print(json.dumps({'step': 'copied', 'status': status}), flush=True)
    sys.stdin.readline()  # the test looks at SHOW POOLS meanwhile; connection 1 stays open
    c2 = await asyncpg.connect(url)
    try:
        n = await asyncio.wait_for(c2.fetchval('select count(*) from items where id between 1 and 500'), 30)
        print(json.dumps({'step': 'second client', 'count': n}), flush=True)
    except Exception as e:
        print(json.dumps({'step': 'second client', 'error': '%s: %s' % (type(e).__name__, e)}), flush=True)
    # Connection 1 can go on too: another copy, then a query.
    status = await c1.copy_records_to_table('items', records=[(1001, 'again', None, None)], columns=['id', 'label', 'amount', 'at'])
    again = await c1.fetchval('select label from items where id = 1001')
    print(json.dumps({'step': 'first client again', 'status': status, 'label': again}), flush=True)
    await c2.close()
    await c1.close()

asyncio.run(main())
`;

const POOL = String.raw`
import asyncio, json, os
import asyncpg

async def main():
    url = os.environ['DATABASE_URL']
    pool = await asyncpg.create_pool(url, min_size=20, max_size=20)
    async def copy(k):
        async with pool.acquire() as c:
            rows = [(10000 + k * 100 + i, 'pool copy %d/%d' % (k, i), None, None) for i in range(50)]
            return await c.copy_records_to_table('items', records=rows, columns=['id', 'label', 'amount', 'at'])
    async def query(k):
        async with pool.acquire() as c:
            return await c.fetchval('select $1::int * 2', k)
    results = await asyncio.wait_for(asyncio.gather(*[copy(k) for k in range(6)], *[query(k) for k in range(14)], return_exceptions=True), 60)
    out = [r if isinstance(r, (int, str)) else '%s: %s' % (type(r).__name__, r) for r in results]
    # And once more, each connection of the pool in turn: copies and queries after the copies.
    second = await asyncio.wait_for(asyncio.gather(*[copy(6 + k) for k in range(6)], *[query(100 + k) for k in range(14)], return_exceptions=True), 60)
    out2 = [r if isinstance(r, (int, str)) else '%s: %s' % (type(r).__name__, r) for r in second]
    print(json.dumps({'first': out, 'second': out2}), flush=True)
    await pool.close()

asyncio.run(main())
`;

interface PoolRow {
  database: string;
  sv_active: number;
  sv_idle: number;
  cl_waiting: number;
}

async function poolRow(px: TestPgmux): Promise<PoolRow | undefined> {
  const c = new pg.Client({ host: '127.0.0.1', port: px.port, user: ADMIN.name, password: ADMIN.password, database: 'pgbouncer' });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return ((await c.query('SHOW POOLS')).rows as PoolRow[]).find((r) => r.database === db);
  } finally {
    await c.end().catch(() => undefined);
  }
}

function url(px: TestPgmux): string {
  return px.url(db, TRUST_ROLE.name);
}

describe('asyncpg copy_records_to_table through a pool of 1', () => {
  it('releases the server: SHOW POOLS shows it idle, and a second connection runs its query', async () => {
    const py = runPython(SINGLE, url(px1));
    try {
      expect(await py.line(1)).toEqual({ step: 'copied', status: 'COPY 500' });
      // The copy is over and connection 1 is idle: its server is back in the pool.
      const row = await waitFor(async () => {
        const r = await poolRow(px1);
        return r !== undefined && r.sv_active === 0 && r.sv_idle === 1 ? r : undefined;
      }, 'SHOW POOLS to show the server idle after the copy', 10_000).catch(async (err: Error) => {
        throw new Error(`${err.message}; SHOW POOLS says ${JSON.stringify(await poolRow(px1))}`);
      });
      expect(row).toMatchObject({ sv_active: 0, sv_idle: 1, cl_waiting: 0 });
      py.proceed();
      expect(await py.line(2)).toEqual({ step: 'second client', count: 500 });
      expect(await py.line(3)).toEqual({ step: 'first client again', status: 'COPY 1', label: 'again' });
      const { code, output } = await withTimeout(py.exited, 20_000, 'python to exit');
      expect(code, output).toBe(0);
    } finally {
      py.kill();
    }
    const r = await admin.query<{ n: number; sums_match: boolean }>(
      'select count(*)::int as n, sum(amount) = $1::numeric as sums_match from items where id between 1 and 500',
      [String((500 * 501) / 2 / 4)],
    );
    expect(r.rows[0]).toEqual({ n: 500, sums_match: true });
  }, 60_000);
});

describe('an asyncpg pool of 20 over a pgmux pool of 3', () => {
  it('6 concurrent copies and 14 queries complete, twice, and the servers are idle afterwards', async () => {
    const py = runPython(POOL, url(px3));
    let result: Record<string, unknown>;
    try {
      result = await py.line(1, 120_000);
      const { code, output } = await withTimeout(py.exited, 20_000, 'python to exit');
      expect(code, output).toBe(0);
    } finally {
      py.kill();
    }
    expect(result).toEqual({
      first: [...Array<string>(6).fill('COPY 50'), ...Array.from({ length: 14 }, (_, k) => k * 2)],
      second: [...Array<string>(6).fill('COPY 50'), ...Array.from({ length: 14 }, (_, k) => (100 + k) * 2)],
    });
    const r = await admin.query<{ n: number }>('select count(*)::int as n from items where id >= 10000');
    expect(r.rows[0].n).toBe(12 * 50);
    const row = await waitFor(async () => {
      const p = await poolRow(px3);
      return p !== undefined && p.sv_active === 0 ? p : undefined;
    }, 'the pool to have no active server', 10_000);
    expect(row.cl_waiting).toBe(0);
  }, 150_000);
});
