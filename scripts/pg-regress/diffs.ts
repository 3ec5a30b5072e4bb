/**
 * The differences pg_regress found, from regression.diffs in the output directory (one `diff -U3 expected
 * results/<test>.out` section per failing test), summarised per test: the first differing lines, each run of
 * them after the nearest unchanged statement line before it (the statement whose output differs).
 */
import fs from 'node:fs';

export interface TestDiff {
  readonly test: string;
  readonly hunks: number;
  readonly added: number;
  readonly removed: number;
  /** The whole section, for the artifacts. */
  readonly text: string;
}

export function readDiffs(file: string): Map<string, TestDiff> {
  const out = new Map<string, TestDiff>();
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return out;
  }
  const sections = text.split(/^(?=diff )/m).filter((s) => s.startsWith('diff '));
  for (const section of sections) {
    const header = section.slice(0, section.indexOf('\n'));
    const test = /\/results\/([^/\s]+)\.out\s*$/.exec(header)?.[1];
    if (test === undefined) continue;
    let hunks = 0;
    let added = 0;
    let removed = 0;
    for (const line of section.split('\n')) {
      if (line.startsWith('@@')) hunks++;
      else if (line.startsWith('+') && !line.startsWith('+++')) added++;
      else if (line.startsWith('-') && !line.startsWith('---')) removed++;
    }
    const prev = out.get(test);
    out.set(test, prev === undefined ? { test, hunks, added, removed, text: section } : { test, hunks: prev.hunks + hunks, added: prev.added + added, removed: prev.removed + removed, text: prev.text + section });
  }
  return out;
}

/**
 * Up to `max` lines: the changed lines in order, each run of them after the last unchanged statement line before
 * it (prefixed with a space) unless that one was shown already.
 */
export function firstDifferences(diff: TestDiff, max: number): string[] {
  const lines: string[] = [];
  let context: string | undefined;
  let shown: string | undefined;
  let inHunk = false;
  for (const line of diff.text.split('\n')) {
    if (lines.length >= max) break;
    if (line.startsWith('@@')) {
      inHunk = true;
      context = undefined;
      continue;
    }
    if (!inHunk) continue;
    if (line.startsWith('+') || line.startsWith('-')) {
      if (context !== undefined && context !== shown && lines.length < max - 1) {
        lines.push(` ${context}`);
        shown = context;
      }
      lines.push(line);
    } else if (line.startsWith(' ')) {
      // Statements (and ERROR lines) start in column 0 of psql's echo; rows and table borders do not.
      if (/^[A-Za-z\\]/.test(line.slice(1))) context = line.slice(1);
    }
  }
  return lines.map((l) => (l.length > 150 ? `${l.slice(0, 147)}...` : l));
}
