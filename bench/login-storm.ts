/**
 * Login storm against established traffic (issue 11): a 20-client pgbench runs through pgmux; its p99 latency is
 * measured alone (baseline), then while N clients (default 5,000) log in with SCRAM-SHA-256 at the same moment and
 * each runs one query. Prints baseline p99, storm p99 (transactions that completed during the storm only), their
 * ratio and the storm's duration. Bounded: about 30 s plus setup.
 *
 *   npm run bench:login-storm [-- --clients 5000] [--settings '{"max_client_logins_in_progress":0}']
 *
 * The storm clients run in their own process (bench/conn-worker.ts) with the SCRAM keys derived once, so the
 * clients' own PBKDF2 does not count against pgmux; the open-files limit is raised to 65,536 where allowed.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runStormClients } from './connections.js';
import { buildPgmux } from './pgmux-process.js';
import { initPgbench } from './pgbench.js';
import { cleanEnv, effectiveNofile, runCommand, sleep } from './proc.js';
import { startTargets } from './targets.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const CLIENTS = Number(arg('clients', '5000'));
const PGBENCH_CLIENTS = 20;
const BASELINE_S = 8;
const STORM_PGBENCH_S = 14;
const STORM_START_MS = 2000;
process.env.PGMUX_BENCH_SETTINGS = arg('settings', '{}');

interface Txn {
  /** Completion time, ms since the epoch. */
  endMs: number;
  latencyMs: number;
}

function p99(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)];
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

async function main(): Promise<void> {
  const log = (line: string) => process.stderr.write(`${line}\n`);
  log(`open-files limit ${effectiveNofile()}; ${os.cpus().length} CPUs; storm of ${CLIENTS} SCRAM clients; pgmux settings ${process.env.PGMUX_BENCH_SETTINGS}`);
  await buildPgmux(log); // always: the benchmark must run the code of this tree
  const env = await startTargets({ wanted: ['pgmux'], log });
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgmux-login-storm-'));
  try {
    const target = env.targets.get('pgmux');
    if (target === undefined) throw new Error(`pgmux did not start: ${env.missing.get('pgmux')}`);
    await initPgbench({ binDir: env.pg.binDir, port: env.pg.port, user: env.user, password: env.password, database: env.database }, 1);
    const run = (seconds: number, prefix: string) => pgbench(env.pg.binDir, target.port, env.user, env.password, env.database, seconds, logDir, prefix);

    log(`baseline: pgbench ${PGBENCH_CLIENTS} clients, ${BASELINE_S} s`);
    await run(2, 'warm');
    const baseline = await run(BASELINE_S, 'base');

    log(`storm: pgbench again, ${CLIENTS} clients log in after ${STORM_START_MS} ms`);
    const during = run(STORM_PGBENCH_S, 'storm');
    await sleep(STORM_START_MS);
    const stormStart = Date.now();
    const storm = await runStormClients(env.login(target), CLIENTS, 'SELECT 1', 90_000);
    const stormEnd = Date.now();
    const stormRun = await during;
    if (stormEnd > stormStart + (STORM_PGBENCH_S * 1000 - STORM_START_MS)) log('warning: the storm outlasted the pgbench run; its tail is not measured');
    const inStorm = stormRun.txns.filter((t) => t.endMs >= stormStart && t.endMs <= stormEnd);

    const baseP99 = p99(baseline.txns.map((t) => t.latencyMs));
    const stormP99 = p99(inStorm.map((t) => t.latencyMs));
    const result = {
      stormClients: CLIENTS,
      stormOk: storm.ok,
      stormFailed: storm.failed,
      stormErrors: storm.errors,
      stormDurationMs: stormEnd - stormStart,
      stormLoginP99Ms: storm.p99Ms,
      baselineP99Ms: Number(baseP99.toFixed(3)),
      stormP99Ms: Number(stormP99.toFixed(3)),
      ratio: Number((stormP99 / baseP99).toFixed(2)),
      baselineTxns: baseline.txns.length,
      stormTxns: inStorm.length,
      pgbenchFailed: baseline.failed + stormRun.failed,
    };
    console.log(`baseline p99 ${result.baselineP99Ms} ms | storm p99 ${result.stormP99Ms} ms | ratio ${result.ratio} | storm ${result.stormDurationMs} ms, ${storm.ok}/${CLIENTS} clients served, ${storm.failed} failed | pgbench failed txns ${result.pgbenchFailed}`);
    console.log(JSON.stringify(result));
  } finally {
    await fsp.rm(logDir, { recursive: true, force: true });
    await env.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
