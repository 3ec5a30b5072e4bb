/**
 * Login storm against established traffic (issue 11): a 20-client pgbench runs through a pooler; its p99 latency is
 * measured alone (baseline), then while N clients (default 5,000) log in with SCRAM-SHA-256 at the same moment and
 * each runs one query. Per target (pgmux, then PgBouncer when installed, same Postgres, same run) it prints baseline
 * p99, storm p99 (transactions that completed during the storm only), their ratio, the storm's duration, and the CPU
 * the pooler and the storm clients used during the storm; then pgmux's figures against PgBouncer's. Bounded: about
 * 35 s per target plus setup.
 *
 *   npm run bench:login-storm [-- --clients 5000] [--targets pgmux,pgbouncer] [--settings '{"max_client_logins_in_progress":0}']
 *
 * What is measured, honestly: everything shares the machine's cores (pgbench, Postgres, the pooler, the storm clients).
 * The storm clients run in their own process (bench/conn-worker.ts) with the SCRAM keys derived once, so the
 * clients' own PBKDF2 does not count against the pooler; their remaining CPU (HMACs, 5,000 sockets in one node
 * process) does compete with the pooler for the cores, which is why the PgBouncer row of the same run is the fair
 * yardstick. The open-files limit is raised to 65,536 where allowed. `pgbouncer` is the one on PATH (Debian's),
 * `pgbouncer125` the 1.25.2 build in ../shared/bin/pgbouncer-1.25 (`--targets pgmux,pgbouncer125`).
 * PGMUX_BENCH_NODE_ARGS passes node flags to pgmux (e.g. --cpu-prof).
 *
 * Last measured (2-CPU machine at load average 10-20 from other jobs, so noisy; docs/operations.md has the table):
 * pgmux ratio median 3.2 [1.6-5.9] over 5 runs with client_login_slice 1ms (the default), 6.8 [3.5-7.9] with 2ms,
 * 7.4 [4.0-7.5] with 0; PgBouncer 1.25.2 in the same runs 1.5 [1.2-2.6]. All 5,000 clients served in every run.
 * On a quiet machine (2026-12-03, 3 runs): pgmux 9.1-10.7, PgBouncer 1.25.2 3.2-6.4 (baselines 1.2-2.0 ms).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runStormClients } from './connections.js';
import { buildPgmux } from './pgmux-process.js';
import { initPgbench } from './pgbench.js';
import { cleanEnv, effectiveNofile, runCommand, sleep } from './proc.js';
import type { Target } from './target.js';
import type { TargetName } from './target-names.js';
import { startTargets, type BenchEnv } from './targets.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const CLIENTS = Number(arg('clients', '5000'));
const TARGETS = arg('targets', 'pgmux,pgbouncer').split(',') as TargetName[];
const PGBENCH_CLIENTS = 20;
const BASELINE_S = 8;
const STORM_PGBENCH_S = 24;
const STORM_START_MS = 2000;
process.env.PGMUX_BENCH_SETTINGS = arg('settings', '{}');

interface Txn {
  /** Completion time, ms since the epoch. */
  endMs: number;
  latencyMs: number;
}

/** pgbench -l lines: client_id transaction_no time(µs) script_no time_epoch time_us. */
async function readTxns(dir: string, prefix: string): Promise<Txn[]> {
  const out: Txn[] = [];
  for (const file of await fsp.readdir(dir)) {
    if (!file.startsWith(prefix)) continue;
    for (const line of (await fsp.readFile(path.join(dir, file), 'utf8')).split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f.length < 6) continue;
      out.push({ latencyMs: Number(f[2]) / 1000, endMs: Number(f[4]) * 1000 + Number(f[5]) / 1000 });
    }
  }
  return out;
}

async function pgbench(binDir: string, port: number, user: string, password: string, database: string, seconds: number, logDir: string, prefix: string) {
  const args = ['-h', '127.0.0.1', '-p', String(port), '-U', user, '-n', '-b', 'select-only', '-M', 'simple', '-c', String(PGBENCH_CLIENTS), '-j', '2', '-T', String(seconds), '-l', `--log-prefix=${path.join(logDir, prefix)}`, database];
  const r = await runCommand(path.join(binDir, 'pgbench'), args, { env: cleanEnv({ PGPASSWORD: password, PGSSLMODE: 'disable', PGGSSENCMODE: 'disable' }), timeoutMs: (seconds + 60) * 1000 });
  const failed = Number(/number of failed transactions: (\d+)/.exec(r.stdout)?.[1] ?? 'NaN');
  if (r.code !== 0) throw new Error(`pgbench failed (${r.code}): ${r.stderr.split('\n').slice(-5).join('\n')}`);
  return { failed, txns: await readTxns(logDir, prefix) };
}

interface TargetResult {
  target: string;
  stormClients: number;
  stormOk: number;
  stormFailed: number;
  stormErrors: Record<string, number>;
  stormDurationMs: number;
  stormLoginP99Ms: number;
  baselineP50Ms: number;
  baselineP99Ms: number;
  stormP50Ms: number;
  stormP99Ms: number;
  ratio: number;
  baselineTps: number;
  stormTps: number;
  /** CPU the pooler process used during the storm, as a share of one core. */
  poolerCpuPct: number;
  /** CPU the storm clients' own process used during the storm (not charged to the pooler), share of one core. */
  stormClientCpuPct: number;
  pgbenchFailed: number;
  /** The storm lasted longer than the pgbench run: its tail is not measured. */
  stormOutlasted: boolean;
}

function percentile(values: number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * q) - 1)];
}

async function measure(env: BenchEnv, name: TargetName, logDir: string, log: (line: string) => void): Promise<TargetResult> {
  const target = env.targets.get(name) as Target;
  const run = (seconds: number, prefix: string) => pgbench(env.pg.binDir, target.port, env.user, env.password, env.database, seconds, logDir, `${name}-${prefix}`);
  log(`${name}: baseline: pgbench ${PGBENCH_CLIENTS} clients, ${BASELINE_S} s`);
  await run(2, 'warm');
  const baseline = await run(BASELINE_S, 'base');

  log(`${name}: storm: pgbench again, ${CLIENTS} clients log in after ${STORM_START_MS} ms`);
  const during = run(STORM_PGBENCH_S, 'storm');
  await sleep(STORM_START_MS);
  const stormStart = Date.now();
  const cpu0 = target.cpuUs();
  const storm = await runStormClients(env.login(target), CLIENTS, 'SELECT 1', 90_000);
  const poolerCpuUs = target.cpuUs() - cpu0;
  const stormEnd = Date.now();
  const stormRun = await during;
  const stormOutlasted = stormEnd > stormStart + (STORM_PGBENCH_S * 1000 - STORM_START_MS);
  if (stormOutlasted) log(`warning: ${name}: the storm outlasted the pgbench run; its tail is not measured`);
  const inStorm = stormRun.txns.filter((t) => t.endMs >= stormStart && t.endMs <= stormEnd);
  const stormMs = stormEnd - stormStart;
  const base = baseline.txns.map((t) => t.latencyMs);
  const during99 = inStorm.map((t) => t.latencyMs);
  const baseP99 = percentile(base, 0.99);
  const stormP99 = percentile(during99, 0.99);
  const result: TargetResult = {
    target: name,
    stormClients: CLIENTS,
    stormOk: storm.ok,
    stormFailed: storm.failed,
    stormErrors: storm.errors,
    stormDurationMs: stormMs,
    stormLoginP99Ms: Number(storm.p99Ms.toFixed(1)),
    baselineP50Ms: Number(percentile(base, 0.5).toFixed(3)),
    baselineP99Ms: Number(baseP99.toFixed(3)),
    stormP50Ms: Number(percentile(during99, 0.5).toFixed(3)),
    stormP99Ms: Number(stormP99.toFixed(3)),
    ratio: Number((stormP99 / baseP99).toFixed(2)),
    baselineTps: Math.round(baseline.txns.length / BASELINE_S),
    stormTps: Math.round(inStorm.length / (stormMs / 1000)),
    poolerCpuPct: Math.round(poolerCpuUs / 10 / stormMs),
    stormClientCpuPct: Math.round((100 * storm.clientCpuMs) / stormMs),
    pgbenchFailed: baseline.failed + stormRun.failed,
    stormOutlasted,
  };
  console.log(
    `${name}: baseline p99 ${result.baselineP99Ms} ms | storm p99 ${result.stormP99Ms} ms | ratio ${result.ratio} | ` +
      `storm ${stormMs} ms, ${storm.ok}/${CLIENTS} clients served, ${storm.failed} failed | ` +
      `cpu during storm: ${name} ${result.poolerCpuPct}%, storm clients ${result.stormClientCpuPct}% | pgbench failed txns ${result.pgbenchFailed}`,
  );
  return result;
}

async function main(): Promise<void> {
  const log = (line: string) => process.stderr.write(`${line}\n`);
  log(`open-files limit ${effectiveNofile()}; ${os.cpus().length} CPUs; storm of ${CLIENTS} SCRAM clients; targets ${TARGETS.join(', ')}; pgmux settings ${process.env.PGMUX_BENCH_SETTINGS}`);
  if (TARGETS.includes('pgmux')) await buildPgmux(log); // always: the benchmark must run the code of this tree
  const env = await startTargets({ wanted: TARGETS, log });
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgmux-login-storm-'));
  try {
    if (env.targets.size === 0) throw new Error(`no target started: ${[...env.missing.values()].join('; ')}`);
    await initPgbench({ binDir: env.pg.binDir, port: env.pg.port, user: env.user, password: env.password, database: env.database }, 1);
    const results: TargetResult[] = [];
    for (const name of TARGETS) if (env.targets.has(name)) results.push(await measure(env, name, logDir, log));
    const pgmux = results.find((r) => r.target === 'pgmux');
    for (const bouncer of results.filter((r) => r.target.startsWith('pgbouncer'))) {
      if (pgmux === undefined) break;
      console.log(`pgmux/${bouncer.target} in this run: storm p99 ${(pgmux.stormP99Ms / bouncer.stormP99Ms).toFixed(2)}x, ratio ${pgmux.ratio} vs ${bouncer.ratio}, storm duration ${(pgmux.stormDurationMs / bouncer.stormDurationMs).toFixed(2)}x`);
    }
    console.log(JSON.stringify(results));
  } finally {
    await fsp.rm(logDir, { recursive: true, force: true });
    await env.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
