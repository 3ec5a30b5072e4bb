/** What a run's report says: the per-run block, the closing table, and the JSON summary in the artifacts dir. */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { firstDifferences } from './diffs.js';
import type { RunReport } from './run-one.js';
import { describeIncident } from './watchdog.js';

export function counts(r: RunReport): { passed: number; failed: number; notRun: number; total: number } {
  const passed = r.results.filter((t) => t.status === 'passed').length;
  const failed = r.results.filter((t) => t.status === 'failed' || t.status === 'ignored').length;
  const notRun = r.results.filter((t) => t.status === 'not run').length;
  return { passed, failed, notRun, total: r.results.length };
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

export function title(r: RunReport): string {
  const what = r.spec.mode === 'direct' ? 'direct' : `${r.label} ${r.spec.mode} (pool ${r.poolSize ?? '?'})`;
  return `${what}, ${r.spec.schedule} schedule`;
}

/** Problems that make a run untrustworthy whatever its test results: each fails the CI. */
export function incidents(r: RunReport): string[] {
  const out: string[] = [];
  if (r.setupError !== undefined) out.push(`setup failed: ${r.setupError.split('\n')[0]}`);
  if (r.timedOut) out.push(`timed out; still running: ${r.unfinished.join(', ') || '(unknown)'}`);
  if (r.incidents.length > 0) out.push(`${r.incidents.length} stuck ${r.incidents.length === 1 ? 'query' : 'queries'} cancelled by the watchdog`);
  if (r.serverLog !== undefined && r.serverLog.panics.length > 0) out.push(`upstream PANIC (${r.serverLog.panics.length} lines)`);
  if (r.serverLog !== undefined && r.serverLog.crashes.length > 0) out.push(`upstream backend crash / restart (${r.serverLog.crashes.length} lines)`);
  if (r.health !== undefined && !r.health.healthy) out.push(`upstream unhealthy after the run: ${r.health.problems.join('; ')}`);
  if (r.pgmux?.diedDuringRun !== undefined) {
    const s = r.pgmux.diedDuringRun;
    out.push(`pgmux exited during the run (${s.code ?? s.signal})`);
  }
  return out;
}

export function formatRun(r: RunReport, diffLines: number): string[] {
  const c = counts(r);
  const lines: string[] = [];
  const notRun = c.notRun > 0 ? `, ${c.notRun} not run` : '';
  lines.push(`== ${title(r)}: ${c.passed} passed, ${c.failed} failed${notRun} (of ${c.total})  [tests ${formatDuration(r.testMs)}, total ${formatDuration(r.totalMs)}, load ${r.load.toFixed(1)}]`);
  for (const p of incidents(r)) lines.push(`   !! ${p}`);
  for (const m of r.startup?.mismatches ?? []) lines.push(`   startup parameters: ${m}`);
  for (const i of r.incidents) lines.push(`   watchdog: ${describeIncident(i)}`);
  if (r.activityAtTimeLimit.length > 0) {
    lines.push('   pg_stat_activity at the time limit:');
    for (const a of r.activityAtTimeLimit) lines.push(`     ${a}`);
  }
  const log = r.serverLog;
  if (log !== undefined && (log.panics.length > 0 || log.crashes.length > 0)) {
    for (const l of [...log.panics.slice(0, 3), ...log.crashes.slice(0, 3)]) lines.push(`   server log: ${l}`);
    lines.push('   server log before the first PANIC/crash:');
    for (const l of log.context) lines.push(`     ${l.slice(0, 200)}`);
  }
  if (r.pgmux !== undefined) {
    const scan = r.pgmux.logScan;
    if (scan.errors > 0) lines.push(`   pgmux logged ${scan.errors} error(s); first: ${scan.samples.join(' | ')}`);
    if (r.pgmux.diedDuringRun !== undefined) for (const l of scan.rawTail) lines.push(`   pgmux: ${l}`);
  }
  for (const t of r.results.filter((x) => x.status === 'failed' || x.status === 'ignored')) {
    const d = r.diffs.get(t.name);
    const note = t.note === '' ? '' : ` ${t.note}`;
    if (d === undefined) {
      lines.push(`   ${t.name}${note}: (no diff)`);
      continue;
    }
    lines.push(`   ${t.name}${note}: ${d.hunks} hunk(s), -${d.removed} +${d.added}`);
    for (const l of firstDifferences(d, diffLines)) lines.push(`       ${l}`);
  }
  lines.push(`   artifacts: ${r.artifacts}`);
  return lines;
}

export function formatTable(reports: readonly RunReport[]): string[] {
  const lines = ['', 'Summary:'];
  for (const r of reports) {
    const c = counts(r);
    const problems = incidents(r);
    lines.push(
      `  ${title(r).padEnd(44)} ${String(c.passed).padStart(3)} passed, ${String(c.failed).padStart(3)} failed` +
        `${c.notRun > 0 ? `, ${c.notRun} not run` : ''}  ${formatDuration(r.testMs).padStart(6)} (load ${r.load.toFixed(1)})` +
        `${problems.length > 0 ? `  !! ${problems.map((p) => p.split(';')[0]).join(', ')}` : ''}`,
    );
  }
  return lines;
}

export async function writeSummary(file: string, reports: readonly RunReport[]): Promise<void> {
  const data = reports.map((r) => ({
    run: title(r),
    mode: r.spec.mode,
    schedule: r.spec.schedule,
    label: r.label,
    poolSize: r.poolSize,
    ...counts(r),
    testSeconds: Math.round(r.testMs / 1000),
    totalSeconds: Math.round(r.totalMs / 1000),
    load: Number(r.load.toFixed(2)),
    failedTests: r.results.filter((t) => t.status === 'failed' || t.status === 'ignored').map((t) => t.name),
    notRun: r.results.filter((t) => t.status === 'not run').map((t) => t.name),
    incidents: incidents(r),
    watchdog: r.incidents,
    startupMismatches: r.startup?.mismatches ?? [],
    panics: r.serverLog?.panics ?? [],
    crashes: r.serverLog?.crashes ?? [],
    artifacts: r.artifacts,
  }));
  await fsp.mkdir(path.dirname(file), { recursive: true });
  await fsp.writeFile(file, `${JSON.stringify(data, null, 2)}\n`);
}
