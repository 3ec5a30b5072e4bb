/**
 * `npm run test:pg-regress -- --mode direct|session|transaction|all --schedule serial|parallel|both [--ci]`
 *
 * PostgreSQL's own regression suite, run directly and through pgmux. Prepares (once, cached in
 * .cache/pg-regress): apt prerequisites, the Debian source package of the installed server, and regress.so,
 * autoinc.so, refint.so built with pgxs. Then each requested run gets a fresh cluster; see run-one.ts.
 *
 * Exit status: 0 when every run passed cleanly (with --ci: when the failures are exactly the expected ones and
 * no run had an incident), 1 otherwise, 2 when the runner itself could not start.
 */
import path from 'node:path';
import { installMatchingSources } from './binaries.js';
import { ensureRegressLibs } from './build.js';
import { compareWithExpected, loadExpectedFailures, type ExpectedFailures } from './expected-failures.js';
import { HELP, parseOptions, UsageError, type Options } from './options.js';
import { ensureOsUser } from './os-user.js';
import { buildPgmux, pgmuxEntry } from './pgmux.js';
import { defaultMajor, ensurePrerequisites } from './prerequisites.js';
import { stopAllChildren } from './proc.js';
import { counts, formatRun, formatTable, incidents, title, writeSummary } from './report.js';
import { runOne, sweepStaleRunDirs, type RunReport } from './run-one.js';
import { ensureRegressSources } from './sources.js';

function log(line: string): void {
  process.stdout.write(`pg-regress: ${line}\n`);
}

function installSignalHandlers(): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(130);
    stopping = true;
    log(`${signal}: stopping everything this run started`);
    void stopAllChildren(5_000).finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/** CI verdict lines and whether the CI passes. */
function ciVerdict(reports: readonly RunReport[], expected: ExpectedFailures, file: string): { ok: boolean; lines: string[] } {
  const lines: string[] = ['', `CI: comparing with ${path.relative(process.cwd(), file) || file}`];
  let ok = true;
  for (const r of reports) {
    const list = expected[r.spec.mode] ?? {};
    const cmp = compareWithExpected(r.results, list);
    const problems = incidents(r);
    const name = `${r.spec.mode}/${r.spec.schedule}`;
    if (cmp.unexpectedFailures.length === 0 && cmp.unexpectedPasses.length === 0 && cmp.unknown.length === 0 && problems.length === 0) {
      lines.push(`  ${name}: OK (${counts(r).failed} expected failures)`);
      continue;
    }
    ok = false;
    for (const t of cmp.unexpectedFailures) lines.push(`  ${name}: FAILED, not expected: ${t}`);
    for (const t of cmp.unexpectedPasses) lines.push(`  ${name}: PASSED, remove it from the expected failures: "${t}"`);
    for (const t of cmp.unknown) lines.push(`  ${name}: listed but not in the schedule: "${t}"`);
    for (const t of cmp.unconfirmed) lines.push(`  ${name}: listed, not run: ${t}`);
    for (const p of problems) lines.push(`  ${name}: ${p}`);
  }
  lines.push(ok ? 'CI: pass' : 'CI: FAIL');
  return { ok, lines };
}

async function main(options: Options): Promise<number> {
  const major = options.pgMajor ?? defaultMajor();
  const expected = options.ci ? loadExpectedFailures(options.expectedFailures) : undefined;
  const system = await ensurePrerequisites(major, log);
  const user = await ensureOsUser();
  await sweepStaleRunDirs();
  const sources = await ensureRegressSources(options.cacheDir, major, log);
  const install = await installMatchingSources(system, sources, log);
  if (install.libraryPath !== undefined) process.env.LD_LIBRARY_PATH = install.libraryPath;
  const libDir = await ensureRegressLibs(sources, install, log);
  log(`PostgreSQL ${sources.installedVersion} installed, regression sources ${sources.sourceVersion}, binaries in ${install.binDir}, OS user ${user.name}`);
  if (options.runs.some((r) => r.mode !== 'direct')) {
    if (options.build) await buildPgmux(options.pgmuxDir, log);
    log(`pgmux: node ${pgmuxEntry(options.pgmuxDir)}`);
  }

  const reports: RunReport[] = [];
  for (const spec of options.runs) {
    const poolSize = spec.mode === 'direct' ? undefined : options.poolSize[spec.mode];
    log(`running ${spec.mode}/${spec.schedule}${poolSize === undefined ? '' : ` (${options.label}, default_pool_size ${poolSize})`}`);
    const report = await runOne(spec, {
      install,
      user,
      sources,
      libDir,
      pgmuxDir: options.pgmuxDir,
      label: options.label,
      poolSize,
      timeLimitMs: options.timeLimitMs,
      stuckAfterMs: options.stuckAfterMs,
      busyLimitMs: options.busyLimitMs,
      watchIntervalMs: options.watchIntervalMs,
      artifactsDir: options.artifactsDir,
      keep: options.keep,
      verbose: options.verbose,
      log,
    });
    reports.push(report);
    process.stdout.write(`${formatRun(report, options.diffLines).join('\n')}\n`);
  }
  process.stdout.write(`${formatTable(reports).join('\n')}\n`);
  await writeSummary(path.join(options.artifactsDir, 'summary.json'), reports);

  if (expected !== undefined) {
    const verdict = ciVerdict(reports, expected, options.expectedFailures);
    process.stdout.write(`${verdict.lines.join('\n')}\n`);
    return verdict.ok ? 0 : 1;
  }
  const clean = reports.every((r) => incidents(r).length === 0 && counts(r).passed === counts(r).total);
  if (!clean) log(`not clean: ${reports.filter((r) => incidents(r).length > 0 || counts(r).passed !== counts(r).total).map(title).join('; ')}`);
  return clean ? 0 : 1;
}

let options: Options;
try {
  options = parseOptions(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`pg-regress: ${err.message}\n`);
  process.exit(2);
}
if (options.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
installSignalHandlers();
main(options).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`pg-regress: ${(err as Error).stack ?? String(err)}\n`);
    void stopAllChildren(2_000).finally(() => process.exit(2));
  },
);
