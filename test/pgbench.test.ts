/**
 * pgbench through pgmux in transaction mode (pool of 10) with 50 clients: select-only and
 * tpcb-like, simple and extended protocol. Every run must finish with no failed or aborted transaction, and
 * Postgres must never see more server connections than the pool allows. The same runs go
 * directly to Postgres for a TPS comparison, printed (not asserted: timings are noisy).
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { watchBackends } from './harness/backends.js';
import { adminClient, createTestDatabase, pgInfo } from './harness/context.js';
import { initPgbench, runPgbench } from './harness/pgbench.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { APP_ROLE } from './harness/roles.js';

const POOL_SIZE = 10;
const PGMUX_CLIENTS = 50;
const PGMUX_SECONDS = 10;
/** Other test files share the cluster (max_connections = 100), so direct runs use fewer clients. */
const DIRECT_CLIENTS = 40;
const DIRECT_SECONDS = 5;

interface Scenario {
  name: string;
  args: string[];
  /** Clients through pgmux when not PGMUX_CLIENTS. */
  clients?: number;
}

const SCENARIOS: Scenario[] = [
  { name: 'select-only simple', args: ['-S', '-M', 'simple'] },
  { name: 'select-only extended', args: ['-S', '-M', 'extended'] },
  { name: 'tpcb-like simple', args: ['-M', 'simple'] },
  { name: 'tpcb-like extended', args: ['-M', 'extended'] },
  // `-M prepared` (named statements shared by name across clients) arrives with transaction-mode
  // prepared-statement support: see test/prepared-statements.test.ts once that lands.
];

interface BenchResult {
  code: number | null;
  output: string;
  processed: number;
  failed: number;
  tps: number;
}

let px: TestPgmux;
let db: string;
let admin: pg.Client;
const tps = new Map<string, { pgmux?: number; direct?: number }>();

function field(output: string, re: RegExp): number {
  const m = re.exec(output);
  if (m === null) throw new Error(`pgbench output has no ${re}:\n${output}`);
  return Number(m[1]);
}

async function bench(port: number, clients: number, seconds: number, args: string[]): Promise<BenchResult> {
  const { code, output } = await runPgbench(
    ['-h', '127.0.0.1', '-p', String(port), '-U', APP_ROLE.name, '-c', String(clients), '-j', '2', '-T', String(seconds), '-n', ...args, db],
    (seconds + 30) * 1000,
  );
  if (code !== 0) return { code, output, processed: 0, failed: -1, tps: 0 };
  return {
    code,
    output,
    processed: field(output, /number of transactions actually processed: (\d+)/),
    failed: field(output, /number of failed transactions: (\d+)/),
    tps: field(output, /tps = ([\d.]+) \(without initial connection time\)/),
  };
}

beforeAll(async () => {
  db = await createTestDatabase('pgbench');
  await initPgbench(db);
  admin = await adminClient(db);
  px = await startPgmux({
    settings: { pool_mode: 'transaction', default_pool_size: POOL_SIZE, max_client_conn: 200, log_connections: false, log_disconnections: false },
    databases: { [db]: { dbname: db } },
    users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
  });
}, 90_000);

afterAll(async () => {
  await px?.stop();
  await admin?.end();
  const rows = SCENARIOS.map((s) => {
    const t = tps.get(s.name) ?? {};
    const ratio = t.pgmux !== undefined && t.direct ? `${((t.pgmux / t.direct) * 100).toFixed(0)}%` : '-';
    return `${s.name.padEnd(22)} ${(t.pgmux?.toFixed(0) ?? '-').padStart(8)} ${(t.direct?.toFixed(0) ?? '-').padStart(8)} ${ratio.padStart(7)}`;
  });
  console.log(
    [
      `pgbench TPS: pgmux (transaction mode, pool ${POOL_SIZE}, -c ${PGMUX_CLIENTS} -j 2 -T ${PGMUX_SECONDS}) vs direct (-c ${DIRECT_CLIENTS} -j 2 -T ${DIRECT_SECONDS})`,
      `${'scenario'.padEnd(22)} ${'pgmux'.padStart(8)} ${'direct'.padStart(8)} ${'ratio'.padStart(7)}`,
      ...rows,
    ].join('\n'),
  );
});

describe('pgbench through pgmux (transaction mode)', () => {
  it.each(SCENARIOS)('$name: no failed transaction, at most 10 server connections', async ({ name, args, clients = PGMUX_CLIENTS }) => {
    const watcher = watchBackends(admin, { database: db, user: APP_ROLE.name }, 50);
    const result = await bench(px.port, clients, PGMUX_SECONDS, args);
    const maxBackends = await watcher.stop();
    expect(result.code, result.output).toBe(0);
    expect(result.failed, result.output).toBe(0);
    expect(result.processed, result.output).toBeGreaterThan(0);
    expect(result.output).toContain(`number of clients: ${clients}`);
    expect(result.output).not.toMatch(/aborted|error/i);
    expect(maxBackends).toBeGreaterThan(0);
    expect(maxBackends).toBeLessThanOrEqual(POOL_SIZE);
    tps.set(name, { ...tps.get(name), pgmux: result.tps });
  }, 60_000);
});

describe('pgbench directly against Postgres (for comparison)', () => {
  it.each(SCENARIOS)('$name', async ({ name, args, clients }) => {
    const result = await bench(pgInfo().port, Math.min(clients ?? DIRECT_CLIENTS, DIRECT_CLIENTS), DIRECT_SECONDS, args);
    expect(result.code, result.output).toBe(0);
    expect(result.failed, result.output).toBe(0);
    expect(result.processed, result.output).toBeGreaterThan(0);
    expect(result.output).not.toMatch(/aborted|error/i);
    tps.set(name, { ...tps.get(name), direct: result.tps });
  }, 60_000);
});
