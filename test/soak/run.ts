/**
 * A soak run: pgmux (its own process, transaction mode, small pools) in front of a cluster of its own, a mixed
 * load of node-postgres, postgres.js, raw-protocol and psql clients (several times more clients than servers),
 * faults injected throughout (operator.ts, workers.ts), then the invariants:
 *
 * 1. every acknowledged COMMIT is in the table; no transaction is half-applied; none whose COMMIT was never sent
 *    is applied; no row belongs to a transaction nobody began; each client's counter matches its rows;
 * 2. statements of a transaction see its own rows, and a committed transaction is visible at once;
 * 3. no client operation outlives the bound (opBoundMs), and the load stops within it;
 * 4. after the load stops and pools settle, SHOW SERVERS (the admin console) and pg_stat_activity name the same
 *    backends, no pool holds more than its size, no client is left in pgmux; during the run, the cluster never
 *    has more backends of the pools than their largest configured sizes allow;
 * 5. no backend is left idle in transaction (none at the end; during the run, none for more than 10 s);
 * 6. pgmux's RSS at the end, and in every quarter of the run after warm-up, within +10% of its plateau (the
 *    median of the samples after warm-up);
 * 7. no error a fault does not explain (stats.ts); pgmux logged no internal error, still serves a fresh client
 *    of each pool after the run, and shuts down cleanly.
 */
import { setTimeout as delay } from 'node:timers/promises';
import path from 'node:path';
import pg from 'pg';
import { APP_ROLE } from '../harness/roles.js';
import { sleep, withTimeout } from '../harness/wait.js';
import { startSoakCluster, type SoakCluster } from './cluster.js';
import { Ledger, SCHEMA_SQL, TxState, type LedgerCheck } from './ledger.js';
import { ADMIN_FAULTS, Operator, RESTART_FAULT } from './operator.js';
import { PgmuxTarget, POOL_DATABASES, serverTotal, type PoolSizes, type Row } from './pgmux-target.js';
import { Random } from './random.js';
import { SoakStats, type ClientKind } from './stats.js';
import { CLIENT_FAULTS, NodePostgresWorker, PostgresJsWorker, PsqlWorker, WireWorker, type Worker, type WorkerEnv } from './workers.js';

export interface SoakOptions {
  /** How long the load runs (the settle phase and the checks come after). */
  durationMs: number;
  seed?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /** Bound on every client operation, and on admin commands (default 30 s). */
  opBoundMs?: number;
  /** How long pgmux gets to settle once the load has stopped (default 30 s). */
  settleMs?: number;
  /** Warm-up excluded from the RSS plateau (default: a quarter of the run, between 15 s and 2 min). */
  warmupMs?: number;
  clients?: Partial<Record<'pg' | 'postgresJs' | 'postgresJsShared' | 'wire' | 'psql', number>>;
}

export interface RssFigures {
  plateauKb: number;
  maxKb: number;
  finalKb: number;
  samples: number;
  /** Median of each quarter of the post-warm-up samples. */
  quartersKb: number[];
}

export interface SoakReport {
  seed: number;
  durationMs: number;
  failures: string[];
  summary: string;
  acked: number;
  faults: Record<string, number>;
  errors: Record<string, number>;
  rss: RssFigures | undefined;
  ledger: LedgerCheck | undefined;
  servers: { pgmux: number; postgres: number } | undefined;
}

const INITIAL_SIZES: PoolSizes = { defaultPoolSize: 5, appBPoolSize: 3, minPoolSize: 2 };
const RSS_TOLERANCE = 1.1;
const IDLE_IN_TX_LIMIT_S = 10;

function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const mb = (kb: number): string => `${(kb / 1024).toFixed(1)} MB`;

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const rng = new Random(seed);
  const log = options.log ?? (() => undefined);
  const opBoundMs = options.opBoundMs ?? 30_000;
  const durationMs = options.durationMs;
  const settleMs = options.settleMs ?? 30_000;
  const warmupMs = options.warmupMs ?? Math.min(120_000, Math.max(15_000, durationMs / 4));
  const counts = { pg: 12, postgresJs: 6, postgresJsShared: 6, wire: 4, psql: 2, ...options.clients };
  const failures: string[] = [];
  const fail = (what: string, details: readonly string[] = []): void => {
    const text = [what, ...details.slice(0, 10).map((d) => `    ${d}`)].join('\n');
    failures.push(text);
    log(`soak: FAILED: ${text}`);
  };

  const stats = new SoakStats();
  stats.onProblem = (text) => log(`soak: problem at ${new Date().toISOString().slice(11, 23)}: ${text}`);
  const ledger = new Ledger();
  let cluster: SoakCluster | undefined;
  let pgmux: PgmuxTarget | undefined;
  let rss: RssFigures | undefined;
  let ledgerCheck: LedgerCheck | undefined;
  let servers: SoakReport['servers'];
  let pgmuxExit: string | undefined;
  const timers: NodeJS.Timeout[] = [];
  const rssSamples: Array<{ t: number; kb: number }> = [];
  const runtimeProblems = { tooManyBackends: [] as string[], idleInTx: [] as string[] };

  try {
    log(`soak: seed ${seed}, ${(durationMs / 60_000).toFixed(1)} min of load`);
    cluster = await startSoakCluster(SCHEMA_SQL);
    pgmux = await PgmuxTarget.start(cluster.pg.port, INITIAL_SIZES, Math.max(5_000, Math.round(opBoundMs / 2)));
    log(`soak: cluster on ${cluster.pg.port}, pgmux (pid ${pgmux.pid}) on ${pgmux.port}`);
    const px = pgmux;
    const db = cluster;

    const startedAt = Date.now();
    let running = true;
    const operator = new Operator(rng, db, px, stats, startedAt, durationMs, opBoundMs);
    const env: WorkerEnv = {
      rng,
      port: px.port,
      ledger,
      stats,
      opBoundMs,
      psql: path.join(db.pg.binDir, 'psql'),
      running: () => running,
      takeFault: (kinds) => operator.takeFault(kinds),
      disconnectExplained: (ports, since) => operator.disconnectExplained(ports, since),
    };

    // The clients, spread over both pools.
    const workers: Worker[] = [];
    const database = (i: number): string => POOL_DATABASES[i % POOL_DATABASES.length];
    for (let i = 0; i < counts.pg; i++) workers.push(new NodePostgresWorker(env, `pg-${i}`, ledger.addClient(`pg-${i}`), database(i)));
    for (let i = 0; i < counts.postgresJs; i++) workers.push(new PostgresJsWorker(env, `pgjs-${i}`, [ledger.addClient(`pgjs-${i}`)], database(i), 'transactions', 1));
    if (counts.postgresJsShared > 0) {
      const loops = Array.from({ length: counts.postgresJsShared }, (_, i) => ledger.addClient(`pgjs-shared/${i}`));
      workers.push(new PostgresJsWorker(env, 'pgjs-shared', loops, 'app', 'pool', Math.max(1, Math.ceil(counts.postgresJsShared / 2))));
    }
    for (let i = 0; i < counts.wire; i++) workers.push(new WireWorker(env, `wire-${i}`, ledger.addClient(`wire-${i}`), database(i)));
    for (let i = 0; i < counts.psql; i++) workers.push(new PsqlWorker(env, `psql-${i}`, ledger.addClient(`psql-${i}`), database(i + 1)));
    await db.withSuperuser((c) => c.query('INSERT INTO soak_counter (client) SELECT unnest($1::text[])', [ledger.clients]));

    // Sampling while the load runs.
    timers.push(
      setInterval(() => {
        const kb = px.rssKb();
        if (kb !== undefined) rssSamples.push({ t: Date.now() - startedAt, kb });
      }, 1_000),
    );
    timers.push(setInterval(() => px.scanLog(), 2_000));
    let overCap = 0;
    const idleSeen = new Map<string, number>();
    let checking = false;
    timers.push(
      setInterval(() => {
        if (checking || db.restarting) return;
        checking = true;
        void db
          .withSuperuser(async (c) => {
            const r = await c.query<{ n: number; idle: Array<{ pid: number; xact: string; age: number; query: string }> | null }>(
              `SELECT count(*)::int AS n,
                      json_agg(json_build_object('pid', pid, 'xact', xact_start, 'age', extract(epoch FROM now() - state_change), 'query', left(query, 120)))
                        FILTER (WHERE state LIKE 'idle in transaction%') AS idle
                 FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'`,
            );
            const { n, idle } = r.rows[0];
            // Two samples in a row over the cap: a closing backend may still be listed for a moment.
            overCap = n > px.maxPoolCapacity ? overCap + 1 : 0;
            if (overCap >= 2 && runtimeProblems.tooManyBackends.length < 10) {
              runtimeProblems.tooManyBackends.push(`${n} backends of user app at ${Math.round((Date.now() - startedAt) / 1000)} s; the pools allow at most ${px.maxPoolCapacity}`);
            }
            for (const b of idle ?? []) {
              if (b.age < IDLE_IN_TX_LIMIT_S) continue;
              const key = `${b.pid}/${b.xact}`;
              if (idleSeen.has(key)) continue;
              idleSeen.set(key, Date.now());
              if (runtimeProblems.idleInTx.length < 10) runtimeProblems.idleInTx.push(`backend ${b.pid} idle in transaction for ${b.age.toFixed(1)} s: ${b.query}`);
            }
          })
          .catch(() => undefined) // the cluster restarting; the next sample will do
          .finally(() => (checking = false));
      }, 3_000),
    );
    let lastProgress = Date.now();
    timers.push(
      setInterval(() => {
        if (Date.now() - lastProgress < 29_000) return;
        lastProgress = Date.now();
        const faults = [...stats.faults.values()].reduce((a, b) => a + b, 0);
        const errors = [...stats.errors.values()].reduce((a, b) => a + b, 0);
        log(
          `soak: ${Math.round((Date.now() - startedAt) / 1000)} s: ${stats.ackedTotal()} commits, ${faults} faults, ${errors} client errors, ` +
            `RSS ${mb(px.rssKb() ?? 0)}, stuck ${stats.stuckCount}, unexplained ${stats.unexplainedCount}`,
        );
      }, 1_000),
    );

    operator.start();
    const runs = workers.map((w) => w.run());
    while (Date.now() - startedAt < durationMs && px.proc.running()) await sleep(200);
    const loadEndedAt = Date.now() - startedAt;

    // Stop: the operator first (a PAUSE is resumed), then the clients, each within the bound.
    await operator.stop();
    running = false;
    const stopDeadline = opBoundMs + 5_000;
    const stopped = await Promise.race([Promise.all(runs).then(() => true), delay(stopDeadline, false)]);
    if (!stopped) {
      fail(`the load did not stop within ${stopDeadline} ms of being told to`);
      for (const w of workers) w.abort();
    }
    for (const t of timers) clearInterval(t);
    timers.length = 0;
    log(`soak: load stopped after ${(loadEndedAt / 1000).toFixed(0)} s; settling`);

    if (!px.proc.running()) {
      fail('pgmux exited during the run', [px.stderr().slice(-2000)]);
    } else {
      // Pools settle: no client left, no server busy, min_pool_size idle servers back.
      const sizes = px.poolSizes;
      const sizeOf = (name: string): number => (name === 'app_b' ? sizes.appBPoolSize : sizes.defaultPoolSize);
      let pools: Row[] = [];
      let clients: Row[] = [];
      const settleBy = Date.now() + settleMs;
      for (;;) {
        try {
          pools = (await px.adminCommand('SHOW POOLS')).filter((p) => (POOL_DATABASES as readonly string[]).includes(String(p.database)));
          clients = (await px.adminCommand('SHOW CLIENTS')).filter((c) => c.user === 'app');
        } catch (err) {
          pools = [];
          clients = [{ error: String(err) }];
        }
        const settled =
          clients.length === 0 &&
          pools.length === POOL_DATABASES.length &&
          pools.every(
            (p) =>
              Number(p.cl_active) === 0 &&
              Number(p.cl_waiting) === 0 &&
              Number(p.sv_active) === 0 &&
              Number(p.sv_login) === 0 &&
              Number(p.sv_tested) === 0 &&
              Number(p.sv_idle) + Number(p.sv_used) >= Math.min(sizes.minPoolSize, sizeOf(String(p.database))),
          );
        if (settled) break;
        if (Date.now() > settleBy) {
          fail(`pgmux did not settle within ${settleMs} ms of the load stopping (clients left, servers busy, or min_pool_size not restored)`, [
            ...pools.map((p) => JSON.stringify(p)),
            ...clients.slice(0, 5).map((c) => `client left: ${JSON.stringify(c)}`),
          ]);
          break;
        }
        await sleep(250);
      }
      for (const p of pools) {
        if (serverTotal(p) > sizeOf(String(p.database))) fail(`pool ${String(p.database)} holds ${serverTotal(p)} server connections, more than its size ${sizeOf(String(p.database))}`);
      }

      // SHOW SERVERS and pg_stat_activity: the same backends.
      let pgmuxPids: number[] = [];
      let pgPids: number[] = [];
      const agreeBy = Date.now() + 10_000;
      for (;;) {
        pgmuxPids = (await px.adminCommand('SHOW SERVERS'))
          .filter((s) => (POOL_DATABASES as readonly string[]).includes(String(s.database)))
          .map((s) => Number(s.remote_pid))
          .sort((a, b) => a - b);
        pgPids = (
          await db.withSuperuser((c) => c.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'"))
        ).rows
          .map((r) => r.pid)
          .sort((a, b) => a - b);
        if (JSON.stringify(pgmuxPids) === JSON.stringify(pgPids)) break;
        if (Date.now() > agreeBy) {
          fail('server connections leaked: SHOW SERVERS and pg_stat_activity disagree', [
            `pgmux: ${pgmuxPids.join(', ')}`,
            `pg_stat_activity: ${pgPids.join(', ')}`,
            `only in pg_stat_activity (backends pgmux lost track of): ${pgPids.filter((p) => !pgmuxPids.includes(p)).join(', ')}`,
            `only in pgmux: ${pgmuxPids.filter((p) => !pgPids.includes(p)).join(', ')}`,
          ]);
          break;
        }
        await sleep(250);
      }
      const showPoolsTotal = pools.reduce((n, p) => n + serverTotal(p), 0);
      if (showPoolsTotal !== pgmuxPids.length) fail(`SHOW POOLS counts ${showPoolsTotal} server connections, SHOW SERVERS lists ${pgmuxPids.length}`);
      servers = { pgmux: showPoolsTotal, postgres: pgPids.length };

      const idle = await db.withSuperuser((c) =>
        c.query<{ pid: number; usename: string; query: string }>(
          "SELECT pid, usename, left(query, 120) AS query FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
        ),
      );
      if (idle.rows.length > 0) fail(`${idle.rows.length} backend(s) left idle in transaction`, idle.rows.map((r) => JSON.stringify(r)));

      // RSS: the plateau, each quarter after warm-up, and the end.
      const finalSamples: number[] = [];
      for (let i = 0; i < 5; i++) {
        const kb = px.rssKb();
        if (kb !== undefined) finalSamples.push(kb);
        await sleep(300);
      }
      const steady = rssSamples.filter((s) => s.t >= warmupMs && s.t <= loadEndedAt).map((s) => s.kb);
      if (steady.length < 8) {
        fail(`too few RSS samples after warm-up (${steady.length}) to find a plateau`);
      } else {
        const plateauKb = median(steady);
        const quarter = Math.floor(steady.length / 4);
        const quartersKb = [0, 1, 2, 3].map((q) => median(steady.slice(q * quarter, q === 3 ? steady.length : (q + 1) * quarter)));
        rss = { plateauKb, maxKb: Math.max(...rssSamples.map((s) => s.kb)), finalKb: median(finalSamples), samples: steady.length, quartersKb };
        if (rss.finalKb > plateauKb * RSS_TOLERANCE) fail(`pgmux RSS at the end ${mb(rss.finalKb)} is more than +10% over its plateau ${mb(plateauKb)}`);
        quartersKb.forEach((kb, q) => {
          if (kb > plateauKb * RSS_TOLERANCE) fail(`pgmux RSS in quarter ${q + 1} of the run (median ${mb(kb)}) is more than +10% over its plateau ${mb(plateauKb)}`);
        });
      }
    }

    // pgmux still serves both pools after everything it went through.
    if (px.proc.running()) {
      for (const name of POOL_DATABASES) {
        const probe = new pg.Client({ host: '127.0.0.1', port: px.port, user: APP_ROLE.name, password: APP_ROLE.password, database: name, connectionTimeoutMillis: opBoundMs });
        probe.on('error', () => undefined);
        try {
          await withTimeout(
            (async () => {
              await probe.connect();
              await probe.query('BEGIN');
              const r = await probe.query<{ n: number }>('SELECT count(*)::int AS n FROM soak_counter');
              await probe.query('COMMIT');
              if (r.rows[0].n !== ledger.clients.length) throw new Error(`soak_counter has ${r.rows[0].n} rows, not ${ledger.clients.length}`);
            })(),
            opBoundMs,
            'the probe transaction',
          );
        } catch (err) {
          fail(`a fresh client of ${name} could not run a transaction through pgmux after the run: ${(err as Error).message}`);
        } finally {
          await probe.end().catch(() => undefined);
        }
      }
    }

    // The table against what the clients saw.
    ledgerCheck = await db.withSuperuser((c) => ledger.verify(c));
    if (ledgerCheck.lostCommitCount > 0) fail(`${ledgerCheck.lostCommitCount} acknowledged COMMIT(s) missing from the table`, ledgerCheck.lostCommits);
    if (ledgerCheck.halfAppliedCount > 0) fail(`${ledgerCheck.halfAppliedCount} transaction(s) half-applied`, ledgerCheck.halfApplied);
    if (ledgerCheck.appliedWithoutCommitCount > 0) fail(`${ledgerCheck.appliedWithoutCommitCount} transaction(s) applied although their COMMIT was never sent`, ledgerCheck.appliedWithoutCommit);
    if (ledgerCheck.phantomCount > 0) fail(`${ledgerCheck.phantomCount} transaction(s) in the table that no client wrote as recorded`, ledgerCheck.phantoms);
    if (ledgerCheck.counterMismatches.length > 0) fail('soak_counter disagrees with soak_ledger', ledgerCheck.counterMismatches);
    if (stats.splitTransactions.length > 0) fail('a transaction did not see its own rows, or a committed one was not visible at once', stats.splitTransactions);
    if (stats.stuckCount > 0) fail(`${stats.stuckCount} client operation(s) did not finish or fail within ${opBoundMs} ms`, stats.stuck);
    if (stats.unexplainedCount > 0) fail(`${stats.unexplainedCount} client error(s) no injected fault explains`, stats.unexplained);
    if (operator.problems.length > 0) fail(`${operator.problems.length} admin action(s) failed or hung`, operator.problems);
    if (runtimeProblems.tooManyBackends.length > 0) fail('more backends than the pools allow during the run', runtimeProblems.tooManyBackends);
    if (runtimeProblems.idleInTx.length > 0) fail(`a backend was idle in transaction for more than ${IDLE_IN_TX_LIMIT_S} s during the run`, runtimeProblems.idleInTx);
    if (stats.ackedTotal() === 0) fail('no transaction was acknowledged: the load did not run');

    px.scanLog();
    const status = px.proc.running() ? await stopPgmux(px) : 'exited during the run';
    pgmuxExit = status;
    if (status !== 'exit code 0') fail(`pgmux did not shut down cleanly on SIGINT: ${status}`, [px.stderr().slice(-2000)]);
    px.scanLog();
    if (px.internalErrors.length > 0) fail(`pgmux logged ${px.internalErrors.length} internal error(s)`, px.internalErrors);
    if (/Error|uncaught|unhandled/i.test(px.stderr())) fail('pgmux wrote an error to stderr', [px.stderr().slice(-2000)]);

    const summary = formatSummary({ seed, durationMs: loadEndedAt, stats, ledger, ledgerCheck, rss, servers, pgmuxExit, failures, px, db, counts, warmupMs });
    return {
      seed,
      durationMs: loadEndedAt,
      failures,
      summary,
      acked: stats.ackedTotal(),
      faults: Object.fromEntries(stats.faults),
      errors: Object.fromEntries(stats.errors),
      rss,
      ledger: ledgerCheck,
      servers,
    };
  } finally {
    for (const t of timers) clearInterval(t);
    if (pgmux !== undefined) await pgmux.stop().catch(() => undefined);
    if (cluster !== undefined) await cluster.stop().catch(() => undefined);
  }
}

async function stopPgmux(px: PgmuxTarget): Promise<string> {
  const exited = px.proc.exited;
  px.proc.child.kill('SIGINT');
  const result = await Promise.race([exited, delay(15_000, 'timeout' as const)]);
  if (result === 'timeout') {
    px.proc.child.kill('SIGKILL');
    await exited;
    return 'still running 15 s after SIGINT (killed)';
  }
  return result.code !== null ? `exit code ${result.code}` : `signal ${result.signal}`;
}

interface SummaryInput {
  seed: number;
  durationMs: number;
  stats: SoakStats;
  ledger: Ledger;
  ledgerCheck: LedgerCheck | undefined;
  rss: RssFigures | undefined;
  servers: SoakReport['servers'];
  pgmuxExit: string | undefined;
  failures: string[];
  px: PgmuxTarget;
  db: SoakCluster;
  counts: Record<string, number>;
  warmupMs: number;
}

function formatSummary(s: SummaryInput): string {
  const { stats, ledger } = s;
  const kinds: ClientKind[] = ['pg', 'postgres.js', 'wire', 'psql'];
  const list = (m: Map<string, number>, order?: readonly string[]): string =>
    [...(order ?? [...m.keys()].sort())].map((k) => `${k} ${m.get(k) ?? 0}`).join(', ');
  const errorsByState = [...stats.errors.entries()].sort((a, b) => b[1] - a[1]);
  const totalFaults = [...stats.faults.values()].reduce((a, b) => a + b, 0);
  const lines = [
    `pgmux soak summary (seed ${s.seed}): ${(s.durationMs / 60_000).toFixed(1)} min of load`,
    `  clients: ${Object.entries(s.counts).map(([k, v]) => `${k} ${v}`).join(', ')}; ${stats.logins} logins through pgmux`,
    `  pools: transaction mode, app ${s.px.poolSizes.defaultPoolSize} / app_b ${s.px.poolSizes.appBPoolSize} at the end (min_pool_size ${s.px.poolSizes.minPoolSize}), ${s.px.reloadsApplied} reloads applied`,
    `  transactions: ${ledger.issued} begun, ${stats.ackedTotal()} acknowledged (${kinds.map((k) => `${k} ${stats.acked.get(k) ?? 0}`).join(', ')}), ` +
      `${[...stats.failedTx.values()].reduce((a, b) => a + b, 0)} failed or cut; ` +
      `${ledger.count(TxState.Maybe)} in doubt, ${ledger.count(TxState.Open)} never sent COMMIT`,
    `  faults (${totalFaults}): ${list(stats.faults, [...CLIENT_FAULTS, ...ADMIN_FAULTS, RESTART_FAULT])}`,
    `  upstream restarts: ${s.db.restarts.length} (${s.db.restarts.map((ms) => `${(ms / 1000).toFixed(1)} s`).join(', ') || '-'} until accepting again)`,
    `  client errors by SQLSTATE: ${errorsByState.map(([k, n]) => `${k} ×${n}`).join(', ') || 'none'}`,
    ...errorsByState.slice(0, 8).map(([k]) => `    e.g. ${k}: ${(s.stats.errorSamples.get(k) ?? '').slice(0, 160)}`),
    s.rss === undefined
      ? '  RSS: not measured'
      : `  RSS: plateau ${mb(s.rss.plateauKb)} (median of ${s.rss.samples} samples after ${Math.round(s.warmupMs / 1000)} s warm-up), quarters ${s.rss.quartersKb.map(mb).join(' / ')}, ` +
        `max ${mb(s.rss.maxKb)}, final ${mb(s.rss.finalKb)} (${(((s.rss.finalKb - s.rss.plateauKb) / s.rss.plateauKb) * 100).toFixed(1)}%)`,
    s.servers === undefined
      ? '  servers after settling: not checked'
      : `  servers after settling: SHOW POOLS ${s.servers.pgmux}, pg_stat_activity ${s.servers.postgres}; leaks found: ${s.servers.pgmux === s.servers.postgres ? 0 : Math.abs(s.servers.postgres - s.servers.pgmux)}`,
    s.ledgerCheck === undefined
      ? '  ledger: not checked'
      : `  ledger: ${s.ledgerCheck.rows} rows of ${s.ledgerCheck.transactions} transactions; acknowledged present ${s.ledgerCheck.acked}, lost ${s.ledgerCheck.lostCommitCount}; ` +
        `half-applied ${s.ledgerCheck.halfAppliedCount}; applied without COMMIT ${s.ledgerCheck.appliedWithoutCommitCount}; phantom ${s.ledgerCheck.phantomCount}; ` +
        `in doubt committed ${s.ledgerCheck.maybeCommitted} / absent ${s.ledgerCheck.maybeAbsent}; counters ${s.ledgerCheck.counterMismatches.length === 0 ? 'agree' : 'DISAGREE'}`,
    `  stuck operations: ${stats.stuckCount}; unexplained errors: ${stats.unexplainedCount}; pgmux error log lines: ${[...s.px.errorLines.entries()].map(([m, n]) => `${m} ×${n}`).join('; ') || 'none'}`,
    `  pgmux shutdown: ${s.pgmuxExit ?? 'not stopped'}`,
    s.failures.length === 0 ? '  invariants: all held' : `  INVARIANTS FAILED (${s.failures.length}):\n${s.failures.map((f) => `  - ${f}`).join('\n')}`,
  ];
  return lines.join('\n');
}
