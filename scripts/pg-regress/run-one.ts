/**
 * One run: a fresh cluster, pgmux in front of it (session/transaction), the startup-parameter check, the
 * `regression` database created through the port under test, pg_regress with the watchdog and the time limit,
 * then the upstream health check, the log scans, the diffs, and the artifacts copied out. Everything it started
 * is stopped before it returns, whatever happened.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startCluster, type Cluster } from './cluster.js';
import { readDiffs, type TestDiff } from './diffs.js';
import { checkUpstream, scanServerLog, type ServerLogScan, type UpstreamHealth } from './health.js';
import type { RunSpec } from './options.js';
import { makeUserDir, type OsUser } from './os-user.js';
import { isFailureLine, runPgRegress } from './pg-regress.js';
import { scanPgmuxLog, startPgmux, type PgmuxInstance, type PgmuxLogScan } from './pgmux.js';
import type { PgInstall } from './prerequisites.js';
import { forgetTempDir, removeAtExit, type ExitStatus } from './proc.js';
import { createRegressionDatabase, type PsqlTarget } from './psql.js';
import { collectResults, readSchedule, unfinishedTests, type TestResult } from './schedule.js';
import type { RegressSources } from './sources.js';
import { stageRun } from './stage.js';
import { checkStartupParameters, type StartupCheck } from './startup-check.js';
import { describeIncident, Watchdog, type StuckQuery } from './watchdog.js';

export interface RunContext {
  readonly install: PgInstall;
  readonly user: OsUser;
  readonly sources: RegressSources;
  readonly libDir: string;
  readonly pgmuxDir: string;
  /** Names the pgmux build in the report and the artifacts dir (e.g. "main", "before"). */
  readonly label: string;
  readonly poolSize: number | undefined;
  readonly timeLimitMs: number;
  readonly stuckAfterMs: number;
  readonly busyLimitMs: number;
  readonly watchIntervalMs: number;
  readonly artifactsDir: string;
  readonly keep: boolean;
  readonly verbose: boolean;
  readonly log: (line: string) => void;
}

export interface PgmuxOutcome {
  /** pgmux exited before the run ended (a crash), with its status. */
  readonly diedDuringRun: ExitStatus | undefined;
  readonly stopStatus: ExitStatus | undefined;
  readonly logScan: PgmuxLogScan;
}

export interface RunReport {
  readonly spec: RunSpec;
  readonly label: string;
  readonly poolSize: number | undefined;
  readonly results: TestResult[];
  readonly diffs: ReadonlyMap<string, TestDiff>;
  readonly setupError: string | undefined;
  readonly timedOut: boolean;
  /** Tests still running when the time limit struck. */
  readonly unfinished: string[];
  /** pg_stat_activity (non-idle) when the time limit struck. */
  readonly activityAtTimeLimit: string[];
  readonly incidents: StuckQuery[];
  readonly startup: StartupCheck | undefined;
  readonly health: UpstreamHealth | undefined;
  readonly serverLog: ServerLogScan | undefined;
  readonly pgmux: PgmuxOutcome | undefined;
  readonly pgRegressExit: ExitStatus | undefined;
  /** Wall time of pg_regress alone, and of the whole run with setup and teardown. */
  readonly testMs: number;
  readonly totalMs: number;
  /** Mean of the 1-minute load average, sampled every 10 s during the run (timings on a busy machine). */
  readonly load: number;
  readonly artifacts: string;
}

/** Temp dirs of runs are os.tmpdir()/pgmux-pgregress-<mode>-<schedule>-XXXXXX. */
export const RUN_DIR_PREFIX = 'pgmux-pgregress-';

/** Removes run dirs left by a runner that was SIGKILLed (older than an hour, no live postmaster). */
export async function sweepStaleRunDirs(): Promise<void> {
  let names: string[] = [];
  try {
    names = await fsp.readdir(os.tmpdir());
  } catch {
    return;
  }
  for (const name of names.filter((n) => n.startsWith(RUN_DIR_PREFIX))) {
    const dir = path.join(os.tmpdir(), name);
    try {
      const stat = await fsp.stat(dir);
      if (Date.now() - stat.mtimeMs < 3_600_000) continue;
      const pid = Number.parseInt((await fsp.readFile(path.join(dir, 'data', 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0] ?? '', 10);
      if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) continue;
      await fsp.rm(dir, { recursive: true, force: true });
    } catch {
      // gone meanwhile, or not ours to remove
    }
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function runName(spec: RunSpec, label: string): string {
  return spec.mode === 'direct' ? `direct-${spec.schedule}` : `${label}-${spec.mode}-${spec.schedule}`;
}

async function copyArtifacts(runDir: string, outputDir: string, dest: string): Promise<void> {
  await fsp.rm(dest, { recursive: true, force: true });
  await fsp.mkdir(dest, { recursive: true });
  const files: Array<[string, string]> = [
    [path.join(runDir, 'pg_regress.log'), 'pg_regress.log'],
    [path.join(outputDir, 'regression.diffs'), 'regression.diffs'],
    [path.join(outputDir, 'regression.out'), 'regression.out'],
    [path.join(runDir, 'postgres.log'), 'postgres.log'],
    [path.join(runDir, 'pgmux.log'), 'pgmux.log'],
    [path.join(runDir, 'pgmux.yaml'), 'pgmux.yaml'],
  ];
  for (const [from, name] of files) {
    if (fs.existsSync(from)) await fsp.copyFile(from, path.join(dest, name));
  }
}

export async function runOne(spec: RunSpec, ctx: RunContext): Promise<RunReport> {
  const started = Date.now();
  const name = runName(spec, ctx.label);
  const artifacts = path.join(ctx.artifactsDir, name);
  const runDir = await makeUserDir(ctx.user, os.tmpdir(), `${RUN_DIR_PREFIX}${spec.mode}-${spec.schedule}-`);
  if (!ctx.keep) removeAtExit(runDir);
  const groups = readSchedule(path.join(ctx.sources.regressDir, 'parallel_schedule'));
  const loadSamples = [os.loadavg()[0]];
  const loadTimer = setInterval(() => loadSamples.push(os.loadavg()[0]), 10_000);

  let cluster: Cluster | undefined;
  let pgmux: PgmuxInstance | undefined;
  let watchdog: Watchdog | undefined;
  let outputDir = path.join(runDir, 'out');
  let setupError: string | undefined;
  let startup: StartupCheck | undefined;
  let output = '';
  let timedOut = false;
  let activityAtTimeLimit: string[] = [];
  let pgRegressExit: ExitStatus | undefined;
  let testMs = 0;
  let health: UpstreamHealth | undefined;
  let diedDuringRun: ExitStatus | undefined;
  let stopStatus: ExitStatus | undefined;

  try {
    const staged = await stageRun(runDir, ctx.sources, ctx.libDir, ctx.user);
    outputDir = staged.outputDir;
    cluster = await startCluster(ctx.install, ctx.user, runDir);
    let port = cluster.port;
    if (spec.mode !== 'direct') {
      pgmux = await startPgmux({ dir: ctx.pgmuxDir, mode: spec.mode, poolSize: ctx.poolSize ?? 5, upstreamPort: cluster.port, runDir });
      port = pgmux.port;
    }
    const target: PsqlTarget = { install: ctx.install, user: ctx.user, port, home: runDir };
    startup = await checkStartupParameters(target);
    for (const m of startup.mismatches) ctx.log(`startup parameters: ${m}`);
    await createRegressionDatabase(target);

    const dog = new Watchdog({
      port: cluster.port,
      user: cluster.superuser,
      stuckAfterMs: ctx.stuckAfterMs,
      busyLimitMs: ctx.busyLimitMs,
      intervalMs: ctx.watchIntervalMs,
      onIncident: (i) => ctx.log(`watchdog: ${describeIncident(i)}`),
    });
    watchdog = dog;
    dog.start();
    const run = await runPgRegress({
      install: ctx.install,
      user: ctx.user,
      staged,
      schedule: spec.schedule,
      port,
      runDir,
      timeLimitMs: ctx.timeLimitMs,
      onLine: (line) => {
        if (ctx.verbose) ctx.log(line);
        else if (isFailureLine(line)) ctx.log(line.trim().replace(/\s+/g, ' '));
      },
      onTimeLimit: async () => {
        ctx.log(`time limit (${Math.round(ctx.timeLimitMs / 1000)} s) reached: stopping pg_regress`);
        activityAtTimeLimit = await dog.snapshot();
      },
    });
    output = run.output;
    timedOut = run.timedOut;
    pgRegressExit = run.exit;
    testMs = run.ms;
    await dog.stop();
    diedDuringRun = pgmux?.exitStatus();
    health = await checkUpstream(cluster.port, cluster.superuser, ['postgres', 'regression']);
  } catch (err) {
    setupError = (err as Error).message;
    ctx.log(`run failed: ${setupError}`);
  } finally {
    await watchdog?.stop();
    if (pgmux !== undefined) stopStatus = await pgmux.stop();
    if (cluster !== undefined && health === undefined && setupError !== undefined && cluster.running()) {
      health = await checkUpstream(cluster.port, cluster.superuser, ['postgres']);
    }
    await cluster?.stop();
    clearInterval(loadTimer);
  }

  const serverLog = cluster === undefined ? undefined : await scanServerLog(cluster.logFile);
  const pgmuxOutcome: PgmuxOutcome | undefined =
    pgmux === undefined ? undefined : { diedDuringRun, stopStatus, logScan: await scanPgmuxLog(pgmux.logFile) };
  const results = collectResults(groups, output);
  const diffs = readDiffs(path.join(outputDir, 'regression.diffs'));
  await copyArtifacts(runDir, outputDir, artifacts).catch((err: unknown) => ctx.log(`could not copy artifacts: ${(err as Error).message}`));
  if (!ctx.keep) {
    await fsp.rm(runDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 }).catch(() => undefined);
    forgetTempDir(runDir);
  } else ctx.log(`kept ${runDir}`);

  return {
    spec,
    label: ctx.label,
    poolSize: spec.mode === 'direct' ? undefined : ctx.poolSize,
    results,
    diffs,
    setupError,
    timedOut,
    unfinished: timedOut ? unfinishedTests(groups, output) : [],
    activityAtTimeLimit,
    incidents: watchdog?.incidents ?? [],
    startup,
    health,
    serverLog,
    pgmux: pgmuxOutcome,
    pgRegressExit,
    testMs,
    totalMs: Date.now() - started,
    load: loadSamples.reduce((a, b) => a + b, 0) / loadSamples.length,
    artifacts,
  };
}
