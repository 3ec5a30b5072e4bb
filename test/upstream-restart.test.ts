/**
 * PostgreSQL restarting under load (issue 11, part 2). A throwaway cluster of its own (the shared one is never
 * restarted), pgmux in transaction mode in front of it (pool 10, min_pool_size 4), and 50 pgbench clients of each
 * of select-only and tpcb-like running when `pg_ctl restart -m fast` (then `-m immediate`) is run. Then:
 *
 * - clients with work in flight get PostgreSQL's error (57P01 terminating connection...) or pgmux's 08006 naming the
 *   pool, and no client hangs: pgbench ends, its clients aborted with such errors, within seconds;
 * - new transactions through pgmux succeed within 1 s of the upstream accepting connections again (measured against
 *   a direct probe of the cluster, printed);
 * - clients idle between transactions when it happened keep their connections and are served afterwards;
 * - the pool refills to min_pool_size, and SHOW POOLS (admin console) and /metrics show what happened.
 *
 * PGMUX_FAULT_HEAVY=1 (npm run test:faults:heavy) restarts three times per mode with 100 clients per script.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgError } from './harness/clients.js';
import { runPgbench } from './harness/pgbench.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { startPostgres, type PostgresInstance } from './harness/postgres.js';
import { runPsql } from './harness/psql.js';
import { APP_DATABASE, APP_ROLE } from './harness/roles.js';
import { sleep, waitFor } from './harness/wait.js';

const HEAVY = process.env.PGMUX_FAULT_HEAVY === '1';
const ROUNDS = HEAVY ? 3 : 1;
const CLIENTS_PER_SCRIPT = HEAVY ? 100 : 50;
const POOL_SIZE = 10;
const MIN_POOL_SIZE = 4;
const ADMIN = { name: 'pgmux_admin', password: 'admin-pass' };
/** When into the pgbench run the restart is started. */
const RESTART_AFTER_MS = 2000;
const PGBENCH_SECONDS = 8;

/** How clients with work in flight may be told (pgbench prints the message, not the SQLSTATE). */
const IN_FLIGHT_ERRORS = [
  /terminating connection due to administrator command/, // 57P01, fast shutdown
  /terminating connection due to immediate shutdown command/, // 57P01, immediate shutdown
  /the database system is (shutting down|starting up|not yet accepting connections)/, // 57P03 at login
  /server connection for pool "app\/app" was lost/, // 08006, pgmux
  /pgmux could not connect to server .* for pool "app\/app"/, // 08006, pgmux
  // pgbench's words for a connection that ended before it could read an error message. Directly against
  // PostgreSQL, pgbench says this for every client with -m immediate and for a few with -m fast; through pgmux
  // for a client or two per run (counted in the report).
  /perhaps the backend died while processing/,
];

let cluster: PostgresInstance;
let px: TestPgmux;
const report: string[] = [];

interface Probe {
  start: number;
  end: number;
  ok: boolean;
  error?: string;
}

/** Runs `once` every `everyMs` until stopped, recording when each try started, ended and whether it worked. */
function probeLoop(once: () => Promise<void>, everyMs: number): { probes: Probe[]; stop(): Promise<Probe[]> } {
  const probes: Probe[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const start = Date.now();
      try {
        await once();
        probes.push({ start, end: Date.now(), ok: true });
      } catch (err) {
        probes.push({ start, end: Date.now(), ok: false, error: `${(err as PgError).code} ${(err as Error).message}` });
      }
      await sleep(everyMs);
    }
  })();
  return {
    probes,
    async stop() {
      running = false;
      await loop;
      return probes;
    },
  };
}

/** When the upstream accepted connections again: the first direct login that worked after one failed. */
function firstUpAfterDown(probes: Probe[]): number | null {
  const down = probes.findIndex((p) => !p.ok);
  if (down < 0) return null;
  return probes.slice(down).find((p) => p.ok)?.end ?? null;
}

/** The end of the first successful probe after the last failed one (pgmux serving again for good). */
function servedAgain(probes: Probe[]): number | null {
  let lastFail = -1;
  probes.forEach((p, i) => {
    if (!p.ok) lastFail = i;
  });
  return probes.slice(lastFail + 1).find((p) => p.ok)?.end ?? null;
}

async function showPools(): Promise<Record<string, string>> {
  const r = await runPsql(`host=127.0.0.1 port=${px.port} dbname=pgbouncer user=${ADMIN.name}`, ['\\pset tuples_only off', 'SHOW POOLS'], ADMIN.password);
  expect(r.code, r.stderr).toBe(0);
  const [header, ...rows] = r.stdout.trim().split('\n');
  const names = header.split('|');
  const row = rows.map((line) => line.split('|')).find((cells) => cells[0] === 'app' && cells[1] === APP_ROLE.name);
  if (row === undefined) throw new Error(`no app/app row in SHOW POOLS:\n${r.stdout}`);
  return Object.fromEntries(names.map((n, i) => [n, row[i]]));
}

async function metricValue(text: string, name: string, labels: string): Promise<number> {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

function pgbench(args: string[]) {
  return runPgbench(
    ['-h', '127.0.0.1', '-p', String(px.port), '-U', APP_ROLE.name, '-c', String(CLIENTS_PER_SCRIPT), '-j', '2', '-T', String(PGBENCH_SECONDS), '-n', ...args, APP_DATABASE],
    (PGBENCH_SECONDS + 30) * 1000,
  );
}

beforeAll(async () => {
  cluster = await startPostgres({ name: 'restart', settings: { max_connections: 50 } });
  const init = await runPgbench(['-i', '-s', '1', '-q', '-h', cluster.host, '-p', String(cluster.port), '-U', APP_ROLE.name, APP_DATABASE], 60_000);
  expect(init.code, init.output).toBe(0);
  px = await startPgmux({
    settings: {
      pool_mode: 'transaction',
      default_pool_size: POOL_SIZE,
      min_pool_size: MIN_POOL_SIZE,
      max_client_conn: 400,
      query_wait_timeout: '10s',
      admin_users: ADMIN.name,
      log_connections: false,
      log_disconnections: false,
    },
    databases: { app: { host: cluster.host, port: cluster.port, dbname: APP_DATABASE } },
    users: { [APP_ROLE.name]: { password: APP_ROLE.password }, [ADMIN.name]: { password: ADMIN.password } },
    metrics: true,
  });
}, 120_000);

afterAll(async () => {
  await px?.stop();
  await cluster?.stop();
  console.log(`upstream restart under load (pgbench ${CLIENTS_PER_SCRIPT} select-only + ${CLIENTS_PER_SCRIPT} tpcb-like, pool ${POOL_SIZE}):\n  ${report.join('\n  ')}`);
});

const MODES = (['fast', 'immediate'] as const).flatMap((mode) => Array.from({ length: ROUNDS }, (_, i) => ({ mode, round: i + 1 })));

describe('pg_ctl restart under pgbench load', () => {
  it.each(MODES)('-m $mode (round $round): in-flight work fails clearly, nothing hangs, new transactions within 1 s', async ({ mode }) => {
    // Clients idle between transactions (no server held) and one that waits in a long query.
    const idle = await Promise.all(Array.from({ length: 3 }, () => connect()));
    const sleepers = await Promise.all(Array.from({ length: 5 }, () => connect()));
    const sleeping = sleepers.map((c) =>
      c.query('select pg_sleep(30)').then(
        () => null,
        (e: PgError) => e,
      ),
    );
    const selectOnly = pgbench(['-S']);
    const tpcb = pgbench([]);
    await sleep(RESTART_AFTER_MS);

    const direct = probeLoop(async () => {
      const c = new pg.Client({ connectionString: cluster.url(APP_DATABASE, APP_ROLE.name, APP_ROLE.password), connectionTimeoutMillis: 2000 });
      c.on('error', () => undefined);
      try {
        await c.connect();
      } finally {
        await c.end().catch(() => undefined);
      }
    }, 10);
    // A client between transactions asking for new ones; one its server was taken from mid-query is closed
    // (FATAL): then the next try connects anew.
    let viaPgmux: pg.Client | null = await connect();
    const through = probeLoop(async () => {
      viaPgmux ??= await connect();
      try {
        await viaPgmux.query('select 1');
      } catch (err) {
        if ((err as PgError).severity !== 'ERROR') {
          void viaPgmux.end().catch(() => undefined);
          viaPgmux = null;
        }
        throw err;
      }
    }, 10);
    const t0 = Date.now();
    await cluster.restart(mode);
    const ctlMs = Date.now() - t0;
    const [select, bench] = await Promise.all([selectOnly, tpcb]);
    const benchDoneMs = Date.now() - t0;
    await waitFor(() => servedAgain(through.probes.filter((p) => p.start > t0)) !== null || undefined, 'pgmux to serve again', 10_000);
    await sleep(200);
    const directProbes = await direct.stop();
    const pgmuxProbes = await through.stop();

    // In flight: PostgreSQL's own 57P01 (or pgmux's 08006 if the connection went first).
    for (const slept of await Promise.all(sleeping)) expect(['57P01', '08006']).toContain(slept?.code);

    // pgbench: ended (no client hangs); every aborted client names one of the expected causes.
    let unexplained = 0;
    for (const [name, r] of [['select-only', select], ['tpcb-like', bench]] as const) {
      unexplained += r.output.split('\n').filter((l) => /perhaps the backend died/.test(l)).length;
      expect(r.code, `${name}:\n${r.output}`).not.toBeNull(); // not killed by the timeout
      const errors = r.output.split('\n').filter((l) => /aborted|error|FATAL/i.test(l) && !/^pgbench: (fatal|error): Run was aborted/.test(l));
      for (const line of errors.filter((l) => /client \d+ /.test(l))) {
        expect(
          IN_FLIGHT_ERRORS.some((re) => re.test(line)),
          `${name}: unexpected error line: ${line}`,
        ).toBe(true);
      }
    }
    expect(benchDoneMs).toBeLessThan(PGBENCH_SECONDS * 1000 + 10_000);

    // New transactions within 1 s of the upstream accepting connections again.
    const upAt = firstUpAfterDown(directProbes);
    const servedAt = servedAgain(pgmuxProbes);
    expect(upAt, 'the direct probe saw the restart').not.toBeNull();
    expect(servedAt).not.toBeNull();
    const recovery = Math.max(0, (servedAt as number) - (upAt as number));
    const failedProbes = pgmuxProbes.filter((p) => !p.ok);
    const probeErrors = [...new Set(failedProbes.map((p) => p.error?.replace(/\d+ ms/g, 'N ms').replace(/\d+ times?/, 'N times')))];
    expect(recovery).toBeLessThanOrEqual(1000);

    // Idle clients kept their connections; the pool is back to at least min_pool_size.
    for (const c of idle) expect((await c.query('select 2 as n')).rows[0].n).toBe(2);
    const pools = await waitFor(async () => {
      const row = await showPools();
      const open = Number(row.sv_idle) + Number(row.sv_used) + Number(row.sv_active) + Number(row.sv_tested);
      return open >= MIN_POOL_SIZE && row.cl_waiting === '0' && row.login_failures === '0' ? row : undefined;
    }, 'SHOW POOLS: the pool refilled to min_pool_size', 10_000);
    expect(pools.last_login_error).toBe('');
    const metrics = await (await fetch(`${px.metricsUrl}/metrics`)).text();
    const labels = 'database="app",user="app",pool_mode="transaction"';
    const loginFailures = await metricValue(metrics, 'pgmux_server_login_failures_total', labels);
    const errors57 = await metricValue(metrics, 'pgmux_errors_total', `${labels},class="57"`);
    const errors08 = await metricValue(metrics, 'pgmux_errors_total', `${labels},class="08"`);
    expect(errors57 + errors08).toBeGreaterThan(0);
    expect(await metricValue(metrics, 'pgmux_pool_server_login_failures_consecutive', labels)).toBe(0);

    report.push(
      `-m ${mode}: pg_ctl took ${ctlMs} ms; upstream accepting again ${(upAt as number) - t0} ms after it started; ` +
        `pgmux served new transactions ${recovery} ms after that (${failedProbes.length} probe transactions failed meanwhile: ${probeErrors.join(' | ')}); ` +
        `pgbench ended ${benchDoneMs} ms in (select-only exit ${select.code}, tpcb-like exit ${bench.code}; ${unexplained} clients "perhaps the backend died"); ` +
        `SHOW POOLS sv_idle=${pools.sv_idle} sv_used=${pools.sv_used} sv_active=${pools.sv_active}; metrics: server_login_failures_total=${loginFailures}, errors 08=${errors08} 57=${errors57}`,
    );
    for (const c of [...idle, ...sleepers, ...(viaPgmux === null ? [] : [viaPgmux])]) await c.end().catch(() => undefined);
  }, 90_000);
});

async function connect(): Promise<pg.Client> {
  const c = new pg.Client(px.url('app', APP_ROLE.name, APP_ROLE.password));
  c.on('error', () => undefined);
  await c.connect();
  return c;
}
