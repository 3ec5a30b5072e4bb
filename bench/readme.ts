/**
 * Puts the latest results into README.md between `<!-- bench:start -->` and `<!-- bench:end -->`, leaving the rest
 * of the file as it is. Run by `npm run bench` after a full run, or alone: `npm run bench:readme [results.json]`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { markdownBody } from './report.js';
import type { BenchResults } from './results.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const START = '<!-- bench:start -->';
export const END = '<!-- bench:end -->';

/** The README text with the section between the markers replaced; throws when the markers are missing. */
export function replaceSection(readme: string, content: string): string {
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error(`README has no ${START} ... ${END} section`);
  return `${readme.slice(0, start + START.length)}\n${content.trimEnd()}\n${readme.slice(end)}`;
}

/** What goes between the markers: the chart (relative to the README) and the tables. */
export function readmeSection(results: BenchResults, chartPath = 'bench/results/latest.svg'): string {
  return `![pgmux, PgBouncer and direct Postgres compared](${chartPath})\n\n${markdownBody(results)}`;
}

export function updateReadme(results: BenchResults, readmePath = path.join(ROOT, 'README.md')): void {
  const text = fs.readFileSync(readmePath, 'utf8');
  fs.writeFileSync(readmePath, replaceSection(text, readmeSection(results)));
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = path.resolve(process.argv[2] ?? path.join(ROOT, 'bench', 'results', 'latest.json'));
  const results = JSON.parse(fs.readFileSync(file, 'utf8')) as BenchResults;
  updateReadme(results);
  process.stdout.write(`README.md: Performance section updated from ${path.relative(ROOT, file)}\n`);
}
