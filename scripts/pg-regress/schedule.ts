/**
 * The regression schedule and pg_regress's progress output (PostgreSQL 15 format):
 *
 *   parallel group (20 tests, in groups of 1):  boolean char name ...   ← names appear as each test ends
 *        boolean                      ... ok           84 ms           ← results once the whole group ended
 *   test fast_default                 ... ok          206 ms           ← a single test, result on its line
 *
 * "serial" runs parallel_schedule with --max-connections=1, as PostgreSQL's `make installcheck` does.
 */
import fs from 'node:fs';

export type TestStatus = 'passed' | 'failed' | 'ignored' | 'not run';

export interface TestResult {
  readonly name: string;
  readonly status: TestStatus;
  /** pg_regress's note after the status, e.g. "(test process exited with exit code 2)". */
  readonly note: string;
  readonly ms: number | undefined;
}

/** The groups of the schedule file, in order (a `test:` line is one group). */
export function readSchedule(file: string): string[][] {
  const groups: string[][] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^\s*test:\s*(.*)$/.exec(line);
    if (m !== null) groups.push(m[1].split(/\s+/).filter((n) => n !== ''));
  }
  return groups;
}

const RESULT_LINE = /^(?:test\s+|\s+)(\S+)\s+\.\.\.\s+(ok|FAILED|failed \(ignored\))(.*)$/;

export function parseResultLine(line: string): TestResult | undefined {
  const m = RESULT_LINE.exec(line);
  if (m === null) return undefined;
  const status: TestStatus = m[2] === 'ok' ? 'passed' : m[2] === 'FAILED' ? 'failed' : 'ignored';
  const rest = m[3];
  const ms = /(\d+)\s*ms\s*$/.exec(rest)?.[1];
  return { name: m[1], status, note: rest.replace(/\s*\d+\s*ms\s*$/, '').trim(), ms: ms === undefined ? undefined : Number(ms) };
}

/** Every test of the schedule with its result from pg_regress's output; those without one are "not run". */
export function collectResults(groups: readonly string[][], output: string): TestResult[] {
  const seen = new Map<string, TestResult>();
  for (const line of output.split('\n')) {
    const r = parseResultLine(line);
    if (r !== undefined) seen.set(r.name, r);
  }
  return groups.flat().map((name) => seen.get(name) ?? { name, status: 'not run', note: '', ms: undefined });
}

/**
 * Tests started but not finished when output stops (pg_regress killed): those of the last group header not yet
 * named on it, or the single test whose line has no result.
 */
export function unfinishedTests(groups: readonly string[][], output: string): string[] {
  const lines = output.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i];
    const single = /^test\s+(\S+)\s+\.\.\.\s*$/.exec(line);
    if (single !== null) return [single[1]];
    if (parseResultLine(line) !== undefined) return [];
    const group = /^parallel group \((\d+) tests[^)]*\):\s*(.*)$/.exec(line);
    if (group !== null) {
      const done = new Set(group[2].split(/\s+/).filter((n) => n !== ''));
      // The group is the first in the schedule of that size whose tests have no result line yet.
      const count = Number(group[1]);
      const finished = new Set(collectResults(groups, output).filter((r) => r.status !== 'not run').map((r) => r.name));
      const match = groups.find((g) => g.length === count && g.every((n) => !finished.has(n)) && [...done].every((n) => g.includes(n)));
      return (match ?? []).filter((n) => !done.has(n));
    }
  }
  return [];
}
