/**
 * pgmux as its own process, `node --import tsx src/main.ts ...`, started as an operator or a container would:
 * configured by its arguments and an environment that holds nothing of the test runner's but PATH.
 * (startPgmux in pgmux.ts runs it inside the test process instead.)
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startProcess, type ChildProc } from './process.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = path.join(REPO_ROOT, 'src', 'main.ts');
/** Resolved here, so the child can run from a temp dir that has no node_modules. */
const TSX = import.meta.resolve('tsx');

export interface PgmuxProcessOptions {
  args?: readonly string[];
  /**
   * The process's environment besides PATH, HOME (= cwd) and TSX_TSCONFIG_PATH. METRICS_PORT is 0 (off) unless
   * given: test files run in parallel, and the default 9127 would clash between them.
   */
  env?: Record<string, string>;
  /** Working directory (default: a fresh empty one, so no config/pgmux.yaml is picked up). */
  cwd?: string;
}

export function startPgmuxProcess(options: PgmuxProcessOptions = {}): ChildProc {
  const cwd = options.cwd ?? mkdtempSync(path.join(tmpdir(), 'pgmux-process-'));
  return startProcess(process.execPath, ['--import', TSX, MAIN, ...(options.args ?? [])], {
    cwd,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: cwd,
      TSX_TSCONFIG_PATH: path.join(REPO_ROOT, 'tsconfig.json'),
      METRICS_PORT: '0',
      ...options.env,
    },
  });
}

/** pgmux's JSON log lines (throws if a non-empty line is not JSON). */
export function logLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}
