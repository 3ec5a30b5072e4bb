/**
 * `npm run bench`: pgmux against PgBouncer 1.18 and 1.25, direct Postgres and the Node.js floor on this machine, in
 * one command.
 *
 * Starts Postgres (the test harness's throwaway cluster), both PgBouncers, the built pgmux and the floor (a bare
 * forwarder, floor.ts) as separate processes with equivalent settings, runs every scenario against every target
 * that takes part in it in turn (targets interleaved per scenario, their order rotated each time, so background
 * noise hits all alike), repeats the lot `--repeat` times, and writes JSON (every run + medians + machine), Markdown
 * and an SVG chart under bench/results/. See `--help`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderChart } from './chart.js';
import { runIdleMemory } from './idle-memory.js';
import { machineInfo } from './machine.js';
import { parseOptions, USAGE, UsageError, type BenchOptions } from './options.js';
import { initPgbench, runPgbench, type PgbenchConnection } from './pgbench.js';
import { buildPgmux } from './pgmux-process.js';
import { effectiveNofile, sleep, treeCpuUs } from './proc.js';
import { updateReadme } from './readme.js';
import { markdownReport } from './report.js';
import { computeMedians, toJson, type BenchResults, type Measured, type RunRecord } from './results.js';
import { allScenarios, selectScenarios, type Scenario } from './scenarios.js';
import { runStorm } from './storm.js';
import { PG_MAX_CONNECTIONS, POOL_SETTINGS, type Target } from './target.js';
import { runsScenario, TARGET_LABELS, TARGET_NAMES, targetLabel } from './target-names.js';
import { startTargets, type BenchEnv } from './targets.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS = path.join(ROOT, 'bench', 'results');
const COOLDOWN_MS = 1000;

function log(line: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

function pgbenchConnection(env: BenchEnv, target: Target): PgbenchConnection {
  return { binDir: env.pg.binDir, port: target.port, user: env.user, password: env.password, database: env.database };
}

async function measurePgbench(env: BenchEnv, target: Target, scenario: Extract<Scenario, { kind: 'pgbench' }>, opts: BenchOptions): Promise<Measured> {
  const postmaster = env.postmasterPid;
  const cpu0 = target.cpuUs();
  const pg0 = treeCpuUs(postmaster);
  const r = await runPgbench(pgbenchConnection(env, target), scenario, opts.durationS, env.workDir);
  const cpuUs = target.cpuUs() - cpu0;
  const pgUs = treeCpuUs(postmaster) - pg0;
  const perTxn = (us: number): number => (r.transactions > 0 ? us / r.transactions : Number.NaN);
  return {
    metrics: {
      tps: r.tps,
      latencyMeanMs: r.latencyMeanMs,
      latencyP50Ms: r.latencyP50Ms,
      latencyP99Ms: r.latencyP99Ms,
      transactions: r.transactions,
      failed: r.failed,
      aborted: r.aborted,
      cpuUsPerTxn: perTxn(cpuUs),
      postgresCpuUsPerTxn: perTxn(pgUs),
      connectMs: r.connectMs,
    },
    errors: r.errors,
    errorSamples: r.errorSamples,
  };
}

function summary(scenario: Scenario, m: Measured): string {
  const v = m.metrics;
  const f = (x: number, digits = 0): string => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');
  if (scenario.kind === 'pgbench') return `${f(v.tps)} tps, p99 ${f(v.latencyP99Ms, 2)} ms, ${f(v.cpuUsPerTxn, 1)} µs CPU/txn, ${m.errors} errors`;
  if (scenario.kind === 'storm') return `all served in ${f(v.wallMs / 1000, 2)} s, ${v.failed} failed, p99 ${f(v.p99Ms)} ms, ${f(v.poolerCpuUsPerClient)} µs CPU/client`;
  return `RSS ${f(v.rssBeforeBytes / 2 ** 20, 1)} → ${f(v.rssAfterBytes / 2 ** 20, 1)} MiB, ${f(v.bytesPerClient)} B/client, ${v.failed} failed`;
}

async function measure(env: BenchEnv, target: Target, scenario: Scenario, opts: BenchOptions): Promise<Measured> {
  try {
    if (scenario.kind === 'pgbench') return await measurePgbench(env, target, scenario, opts);
    if (scenario.kind === 'storm') return await runStorm(env, target, scenario.clients);
    return await runIdleMemory(env, target, scenario.clients);
  } catch (err) {
    // One broken measurement should not lose the rest of a 20-minute run.
    return { metrics: {}, errors: 1, errorSamples: [`run failed: ${(err as Error).message.split('\n')[0]}`] };
  }
}

async function warmUp(env: BenchEnv, opts: BenchOptions): Promise<void> {
  for (const target of env.targets.values()) {
    log(`warming up ${TARGET_LABELS[target.name]} (${opts.warmupS} s select-only)`);
    await runPgbench(pgbenchConnection(env, target), { script: 'select-only', protocol: 'simple', clients: 8, connectPerTransaction: false }, opts.warmupS, env.workDir);
  }
}

function writeOutputs(results: BenchResults, name: string, dir: string): { md: string; files: string[] } {
  fs.mkdirSync(dir, { recursive: true });
  const json = path.join(dir, `${name}.json`);
  const md = path.join(dir, `${name}.md`);
  const svg = path.join(dir, `${name}.svg`);
  const markdown = markdownReport(results, `${name}.svg`);
  fs.writeFileSync(json, toJson(results));
  fs.writeFileSync(md, markdown);
  fs.writeFileSync(svg, renderChart(results));
  return { md: markdown, files: [json, md, svg] };
}

/** Every scenario against every eligible target, `opts.repeat` times; targets interleaved and rotated. */
async function runAll(env: BenchEnv, scenarios: readonly Scenario[], opts: BenchOptions, stopped: () => boolean): Promise<RunRecord[]> {
  const runs: RunRecord[] = [];
  const withPgbench = scenarios.some((s) => s.kind === 'pgbench');
  if (withPgbench) {
    log(`pgbench -i -s ${opts.scale}`);
    await initPgbench({ binDir: env.pg.binDir, port: env.pg.port, user: env.user, password: env.password, database: env.database }, opts.scale);
  }
  const available = TARGET_NAMES.filter((t) => env.targets.has(t));
  for (let repeat = 1; repeat <= opts.repeat; repeat++) {
    // Every repeat: the idle-memory test restarts the poolers, and a fresh pgmux has a cold JIT.
    if (withPgbench) await warmUp(env, opts);
    for (const [si, scenario] of scenarios.entries()) {
      const eligible = available.filter((t) => runsScenario(t, scenario.kind));
      const shift = (repeat - 1 + si) % Math.max(1, eligible.length);
      for (const name of [...eligible.slice(shift), ...eligible.slice(0, shift)]) {
        if (stopped()) return runs;
        const startedAt = new Date().toISOString();
        const measured = await measure(env, env.targets.get(name) as Target, scenario, opts);
        runs.push({ scenario: scenario.id, target: name, repeat, startedAt, ...measured });
        log(`[${repeat}/${opts.repeat}] ${scenario.id} ${TARGET_LABELS[name]}: ${summary(scenario, measured)}`);
        for (const e of measured.errorSamples.slice(0, 2)) log(`    ${e}`);
        await sleep(COOLDOWN_MS);
      }
    }
  }
  return runs;
}

function assemble(env: BenchEnv, scenarios: readonly Scenario[], opts: BenchOptions, startedAt: string, runs: RunRecord[]): BenchResults {
  const targets = {} as BenchResults['targets'];
  for (const t of opts.targets) {
    const target = env.targets.get(t);
    targets[t] = { label: targetLabel(t, target?.version), available: target !== undefined, version: target?.version, reason: env.missing.get(t) };
  }
  const scenarioInfo = scenarios.map((s) => ({ id: s.id, title: s.title, kind: s.kind, ...(s.kind === 'pgbench' ? { script: s.script } : {}) }));
  return {
    schema: 1,
    startedAt,
    finishedAt: new Date().toISOString(),
    quick: opts.quick,
    options: { durationS: opts.durationS, repeat: opts.repeat, scale: opts.scale, only: opts.only ?? null, stormClients: opts.stormClients, idleClients: opts.idleClients },
    machine: machineInfo(env.pg.binDir, {
      pgbouncer: env.targets.get('pgbouncer')?.version ?? null,
      pgbouncer125: env.targets.get('pgbouncer125')?.version ?? null,
      pgmux: env.targets.get('pgmux')?.version ?? null,
    }),
    settings: { ...POOL_SETTINGS, pg_max_connections: PG_MAX_CONNECTIONS, pgbench_threads: 2 },
    targets,
    scenarios: scenarioInfo,
    runs,
    medians: computeMedians(scenarioInfo, runs),
  };
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  if (opts.help) {
    process.stdout.write(USAGE);
    return;
  }
  const scenarios = selectScenarios(allScenarios(opts), opts.only);
  const full = !opts.quick && opts.only === undefined && opts.targets.length === TARGET_NAMES.length;
  const perRepeat = scenarios.reduce((n, s) => n + opts.targets.filter((t) => runsScenario(t, s.kind)).length, 0);
  log(`${scenarios.length} scenarios × ${opts.repeat} repeats (${perRepeat * opts.repeat} runs, pgbench ${opts.durationS} s each)`);

  const nofile = effectiveNofile();
  log(`open-files limit for poolers and clients: ${nofile}`);
  if (scenarios.some((s) => s.kind === 'idle') && nofile < opts.idleClients + 100) {
    log(`warning: ${opts.idleClients} idle clients need more open files than ${nofile}; raise the hard limit (ulimit -Hn) or use --idle-clients`);
  }
  if (opts.targets.includes('pgmux')) await buildPgmux(log);
  const env = await startTargets({ wanted: opts.targets, log });
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log('interrupted: stopping (again to exit at once)');
    void env.stop().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const startedAt = new Date().toISOString();
    const runs = await runAll(env, scenarios, opts, () => interrupted);
    if (interrupted) return;
    const results = assemble(env, scenarios, opts, startedAt, runs);
    const name = opts.out ?? (full ? 'latest' : opts.quick ? 'quick' : 'partial');
    const dir = opts.out === undefined && !full ? path.join(RESULTS, 'tmp') : RESULTS;
    const { md, files } = writeOutputs(results, name, dir);
    if (full) {
      const dated = path.join(RESULTS, `${startedAt.slice(0, 16).replace(':', '')}.json`);
      fs.copyFileSync(path.join(dir, `${name}.json`), dated);
      files.push(dated);
      if (opts.readme) {
        updateReadme(results);
        files.push(path.join(ROOT, 'README.md'));
      }
    }
    process.stdout.write(`\n${md}\n`);
    log(`wrote ${files.map((f) => path.relative(ROOT, f)).join(', ')}`);
  } finally {
    await env.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof UsageError ? err.message : ((err as Error).stack ?? String(err))}\n`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
