/**
 * What the matrix scripts share (scripts/test-versions.ts: PostgreSQL majors; scripts/test-node.ts: Node majors):
 * comparing version strings, running a command under a timeout that kills its whole process group, running vitest
 * with a JSON report and reading that report into passed/failed/skipped and the failures, the result table, and the
 * matrix itself (runMatrix: options, the newest package per major from the registry, one run each, the totals).
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

// ---------------------------------------------------------------------------------------------------------------
// Versions

/** Numeric sort key of "17.10.0-beta.17": [17, 10, 0, 17]. */
export function versionKey(version: string): number[] {
  return version.split(/[.-]/).filter((p) => /^\d+$/.test(p)).map(Number);
}

export function compareVersions(a: string, b: string): number {
  const ka = versionKey(a);
  const kb = versionKey(b);
  for (let i = 0; i < Math.max(ka.length, kb.length); i++) {
    const d = (ka[i] ?? 0) - (kb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The newest of `versions` per major (the first number), among those `accept` lets through. */
export function newestPerMajor(versions: readonly string[], accept: (v: string) => boolean = () => true): Map<number, string> {
  const newest = new Map<number, string>();
  for (const v of versions) {
    if (!accept(v)) continue;
    const major = versionKey(v)[0];
    const cur = newest.get(major);
    if (cur === undefined || compareVersions(v, cur) > 0) newest.set(major, v);
  }
  return newest;
}

// ---------------------------------------------------------------------------------------------------------------
// Processes

export interface TimedRun {
  /** Exit code; null when it could not be started or was killed by a signal. */
  code: number | null;
  timedOut: boolean;
}

/**
 * `command args` in its own process group (detached), output to the file descriptor `out`; after `timeoutMs` the
 * whole group is SIGKILLed (vitest and its workers, and what they started: postgres, pgmux, drivers).
 */
export async function runWithTimeout(
  command: string,
  args: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; out: number; timeoutMs: number },
): Promise<TimedRun> {
  let timedOut = false;
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', options.out, options.out], detached: true });
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch {
        // already gone
      }
    }, options.timeoutMs);
    child.on('error', () => {
      clearTimeout(timer);
      resolve(null);
    });
    child.on('close', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  return { code, timedOut };
}

// ---------------------------------------------------------------------------------------------------------------
// vitest

export interface RunResult {
  /** The table's first column: the PostgreSQL or Node major. */
  major: number;
  /** The package version the run used. */
  version: string;
  passed: number;
  failed: number;
  skipped: number;
  durationMs: number;
  /** Why the run as a whole failed (timeout, setup error), beyond failed tests. */
  problem?: string;
  failures: string[];
}

interface VitestJson {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  success: boolean;
  testResults: Array<{ name: string; status: string; message?: string; assertionResults: Array<{ fullName: string; status: string }> }>;
}

export interface VitestRunOptions {
  /** The repository: cwd of the run, and what failure paths are relative to. */
  root: string;
  /** How vitest is started: e.g. ['npx', 'vitest'] or [node, 'node_modules/vitest/vitest.mjs']. */
  vitest: readonly [string, ...string[]];
  /** Arguments after `run` (projects, files); the reporters are added here. */
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  /** Where vitest's output goes: truncated first, unless `appendLog` (a step before it wrote there). */
  logFile: string;
  appendLog?: boolean;
  /** Where the JSON report goes (removed first). */
  jsonFile: string;
  timeoutMs: number;
}

/** The outcome of one vitest run, from its JSON report; `problem` when there is no report or it exited oddly. */
export async function runVitest(
  run: VitestRunOptions,
  result: Pick<RunResult, 'major' | 'version'>,
): Promise<RunResult> {
  await fsp.rm(run.jsonFile, { force: true });
  const [command, ...prefix] = run.vitest;
  const args = [...prefix, 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${run.jsonFile}`, ...run.args];
  const started = Date.now();
  const out = fs.openSync(run.logFile, run.appendLog === true ? 'a' : 'w');
  const { code, timedOut } = await runWithTimeout(command, args, { cwd: run.root, env: run.env, out, timeoutMs: run.timeoutMs });
  fs.closeSync(out);
  const r: RunResult = { ...result, passed: 0, failed: 0, skipped: 0, durationMs: Date.now() - started, failures: [] };
  let report: VitestJson | undefined;
  try {
    report = JSON.parse(await fsp.readFile(run.jsonFile, 'utf8')) as VitestJson;
  } catch {
    // no report: timeout or a crash before the end
  }
  if (report !== undefined) {
    r.passed = report.numPassedTests;
    r.failed = report.numFailedTests;
    r.skipped = report.numPendingTests + report.numTodoTests;
    for (const file of report.testResults) {
      const rel = path.relative(run.root, file.name);
      for (const a of file.assertionResults) if (a.status === 'failed') r.failures.push(`${rel} > ${a.fullName}`);
      if (file.status === 'failed' && file.assertionResults.every((a) => a.status !== 'failed')) {
        r.failures.push(`${rel}: ${(file.message ?? 'failed').split('\n')[0]}`);
      }
    }
  }
  if (timedOut) r.problem = `timed out after ${Math.round(run.timeoutMs / 60_000)} min`;
  else if (report === undefined) r.problem = `vitest exited ${code} without a report`;
  else if (code !== 0 && r.failures.length === 0) r.problem = `vitest exited ${code}`;
  return r;
}

// ---------------------------------------------------------------------------------------------------------------
// Reporting

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(0)} s`;
}

export function isFailure(r: RunResult): boolean {
  return r.problem !== undefined || r.failed > 0 || r.failures.length > 0;
}

/** One line per run, "<label> 17: 161 passed, 0 failed, 5 skipped in 110 s", and its failed tests. */
export function summaryLines(label: string, r: RunResult): string[] {
  return [
    `${label} ${r.major}: ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped in ${seconds(r.durationMs)}${r.problem === undefined ? '' : ` (${r.problem})`}`,
    ...r.failures.map((f) => `  FAILED ${f}`),
  ];
}

/** Columns: `majorHeader`, `versionHeader`, passed, failed, skipped, duration, result. */
export function table(results: readonly RunResult[], majorHeader = 'major', versionHeader = 'package version'): string {
  const rows = [
    [majorHeader, versionHeader, 'passed', 'failed', 'skipped', 'duration', 'result'],
    ...results.map((r) => [
      String(r.major),
      r.version,
      String(r.passed),
      String(r.failed),
      String(r.skipped),
      seconds(r.durationMs),
      r.problem !== undefined ? `FAIL (${r.problem})` : isFailure(r) ? 'FAIL' : 'ok',
    ]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

export function totals(results: readonly RunResult[]): { passed: number; failed: number; skipped: number } {
  return results.reduce((acc, r) => ({ passed: acc.passed + r.passed, failed: acc.failed + r.failed, skipped: acc.skipped + r.skipped }), { passed: 0, failed: 0, skipped: 0 });
}

/** A run that did not get as far as vitest (no package, fetch or build failed). */
export function notRun(major: number, version: string, problem: string): RunResult {
  return { major, version, passed: 0, failed: 0, skipped: 0, durationMs: 0, problem, failures: [] };
}

// ---------------------------------------------------------------------------------------------------------------
// The matrix: one run per major of a package from the npm registry

export class UsageError extends Error {}

export interface MatrixOptions {
  majors: number[];
  timeoutMs: number;
  files: string[];
}

/** `--majors a,b`, `--timeout-minutes N`, `--files a,b`, `--help`; `badMajor` says why a major is refused (null: fine). */
export function parseMatrixOptions(argv: readonly string[], defaults: MatrixOptions, badMajor: (major: number) => string | null): MatrixOptions {
  const opts: MatrixOptions = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${arg} needs a value`);
      return v;
    };
    if (arg === '--majors') {
      opts.majors = value()
        .split(',')
        .map((m) => Number(m.trim()));
      for (const m of opts.majors) {
        const why = badMajor(m);
        if (why !== null) throw new UsageError(`--majors: ${m} ${why}`);
      }
    } else if (arg === '--timeout-minutes') {
      const m = Number(value());
      if (!(m > 0)) throw new UsageError('--timeout-minutes must be a positive number');
      opts.timeoutMs = m * 60_000;
    } else if (arg === '--files') {
      opts.files = value()
        .split(',')
        .map((f) => f.trim())
        .filter((f) => f !== '');
    } else if (arg === '--help' || arg === '-h') {
      throw new UsageError('');
    } else {
      throw new UsageError(`unknown argument ${arg}`);
    }
  }
  return opts;
}

/** The newest version per major of `pkg` on the npm registry, among those `accept` lets through. */
export async function newestOnRegistry(pkg: string, accept?: (v: string) => boolean): Promise<Map<number, string>> {
  const { stdout } = await execFileAsync('npm', ['view', pkg, 'versions', '--json'], { timeout: 120_000, maxBuffer: 16 << 20 });
  return newestPerMajor(JSON.parse(stdout) as string[], accept);
}

/** `npm pack pkg@version` extracted into `dir` (emptied first): the package is then at <dir>/package. */
export async function npmPackInto(pkg: string, version: string, dir: string): Promise<void> {
  await fsp.rm(dir, { recursive: true, force: true });
  await fsp.mkdir(dir, { recursive: true });
  const { stdout } = await execFileAsync('npm', ['pack', `${pkg}@${version}`, '--silent'], { cwd: dir, timeout: 600_000 });
  const tarball = path.join(dir, stdout.trim().split('\n').pop() ?? '');
  await execFileAsync('tar', ['xzf', tarball, '-C', dir], { timeout: 300_000 });
  await fsp.rm(tarball, { force: true });
}

export interface Matrix<Prepared> {
  /** The script's name in its output: `test:node`. */
  tool: string;
  /** What a major is of, in messages: `Node`, `PostgreSQL`. */
  subject: string;
  /** The npm package whose versions are run. */
  pkg: string;
  usage: string;
  defaults: MatrixOptions;
  badMajor: (major: number) => string | null;
  /** Where packages (and logs/) are kept. */
  cache: string;
  /** Restrict the registry's versions (e.g. releases only). */
  accept?: (version: string) => boolean;
  /** Fetch and set up one version (cached), returning what the run needs. */
  prepare: (version: string, log: (line: string) => void) => Promise<Prepared>;
  /** What one major runs, for the log line. */
  describe: (opts: MatrixOptions) => string;
  run: (major: number, version: string, prepared: Prepared, opts: MatrixOptions) => Promise<RunResult>;
  /** The table's first two column headers. */
  headers?: [string, string];
}

/** Parse the options, run each major, print the table and totals; the process's exit status. */
export async function runMatrix<Prepared>(m: Matrix<Prepared>, argv: readonly string[]): Promise<number> {
  const log = (line: string): void => void process.stdout.write(`${m.tool}: ${line}\n`);
  let opts: MatrixOptions;
  try {
    opts = parseMatrixOptions(argv, m.defaults, m.badMajor);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    if (err.message !== '') process.stderr.write(`${m.tool}: ${err.message}\n`);
    process.stderr.write(`usage: ${m.usage}\n`);
    return 2;
  }
  await fsp.mkdir(m.cache, { recursive: true });
  let newest: Map<number, string>;
  try {
    newest = await newestOnRegistry(m.pkg, m.accept);
  } catch (err) {
    log(`could not list ${m.pkg} versions: ${String(err)}`);
    return 2;
  }
  const results: RunResult[] = [];
  for (const major of opts.majors) {
    const version = newest.get(major);
    if (version === undefined) {
      log(`no ${m.pkg} release for ${m.subject} ${major}`);
      results.push(notRun(major, '(none)', 'no package'));
      continue;
    }
    let prepared: Prepared;
    try {
      prepared = await m.prepare(version, log);
    } catch (err) {
      log(`${m.subject} ${major}: could not prepare ${m.pkg}@${version}: ${String(err)}`);
      results.push(notRun(major, version, 'package not prepared'));
      continue;
    }
    log(`${m.subject} ${major} (${version}): ${m.describe(opts)}, log in ${path.join(m.cache, 'logs')}`);
    const r = await m.run(major, version, prepared, opts);
    for (const line of summaryLines(m.subject, r)) log(line);
    results.push(r);
  }
  process.stdout.write(`\n${table(results, ...(m.headers ?? []))}\n`);
  const total = totals(results);
  const bad = results.filter(isFailure);
  process.stdout.write(`\n${m.tool}: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped\n`);
  if (bad.length > 0) process.stdout.write(`${m.tool}: FAILED on ${m.subject} ${bad.map((r) => r.major).join(', ')}\n`);
  return bad.length > 0 ? 1 : 0;
}
