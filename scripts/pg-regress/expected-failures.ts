/**
 * The CI's expected-failures list (scripts/pg-regress/expected-failures.json): per pooled mode (serial schedule),
 * test name → why it fails and why that cannot (yet) be fixed. The list may only shrink: a failure not on it
 * fails the run, and so does a listed test that passes (it must then be removed).
 */
import fs from 'node:fs';
import type { Mode } from './options.js';
import type { TestResult } from './schedule.js';

export type ExpectedFailures = Partial<Record<Mode, Record<string, string>>>;

export interface Comparison {
  /** Failed, not on the list. */
  readonly unexpectedFailures: string[];
  /** On the list, passed: remove them. */
  readonly unexpectedPasses: string[];
  /** On the list, not run (the run stopped early): neither confirmed nor refuted. */
  readonly unconfirmed: string[];
  /** On the list, not a test of the schedule (a typo, or a test that no longer exists). */
  readonly unknown: string[];
}

export function loadExpectedFailures(file: string): ExpectedFailures {
  const parsed: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`${file}: expected an object of modes`);
  const out: ExpectedFailures = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (key.startsWith('$')) continue; // "$comment"
    if (key !== 'direct' && key !== 'session' && key !== 'transaction') throw new Error(`${file}: unknown mode "${key}"`);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${file}: "${key}" must map test names to reasons`);
    const tests: Record<string, string> = {};
    for (const [test, reason] of Object.entries(value)) {
      if (typeof reason !== 'string' || reason.trim().length < 10) throw new Error(`${file}: ${key}.${test} needs a specific reason`);
      tests[test] = reason;
    }
    out[key] = tests;
  }
  return out;
}

export function compareWithExpected(results: readonly TestResult[], expected: Readonly<Record<string, string>>): Comparison {
  const status = new Map(results.map((r) => [r.name, r.status]));
  const unexpectedFailures = results.filter((r) => (r.status === 'failed' || r.status === 'ignored') && !Object.hasOwn(expected, r.name)).map((r) => r.name);
  const unexpectedPasses = Object.keys(expected).filter((t) => status.get(t) === 'passed');
  const unconfirmed = Object.keys(expected).filter((t) => status.get(t) === 'not run');
  const unknown = Object.keys(expected).filter((t) => !status.has(t));
  return { unexpectedFailures, unexpectedPasses, unconfirmed, unknown };
}
