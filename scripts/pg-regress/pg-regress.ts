/**
 * Runs Debian's pg_regress against an existing server (--use-existing) as the regression OS user, in its own
 * process group so that the whole-run time limit can kill it together with the psql it started.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Schedule } from './options.js';
import type { OsUser } from './os-user.js';
import type { PgInstall } from './prerequisites.js';
import { startChild, type ExitStatus } from './proc.js';
import { regressEnv } from './psql.js';
import { parseResultLine } from './schedule.js';
import type { StagedRun } from './stage.js';

export interface PgRegressRun {
  readonly exit: ExitStatus;
  readonly timedOut: boolean;
  readonly output: string;
  readonly ms: number;
}

export interface PgRegressOptions {
  readonly install: PgInstall;
  readonly user: OsUser;
  readonly staged: StagedRun;
  readonly schedule: Schedule;
  readonly port: number;
  readonly runDir: string;
  readonly timeLimitMs: number;
  /** Called with each complete output line. */
  readonly onLine: (line: string) => void;
  /** Called when the time limit is reached, before pg_regress is killed (to see what is still running). */
  readonly onTimeLimit: () => Promise<void>;
}

export function pgRegressArgs(o: PgRegressOptions): string[] {
  return [
    '--use-existing',
    '--host=127.0.0.1',
    `--port=${o.port}`,
    `--user=${o.user.name}`,
    `--bindir=${o.install.binDir}`,
    `--dlpath=${o.staged.libDir}`,
    `--inputdir=${o.staged.inputDir}`,
    `--outputdir=${o.staged.outputDir}`,
    `--schedule=${o.staged.schedule}`,
    // as src/test/regress's Makefile: at most 20 tests at once; installcheck (serial) adds --max-connections=1
    '--max-concurrent-tests=20',
    ...(o.schedule === 'serial' ? ['--max-connections=1'] : []),
  ];
}

export async function runPgRegress(o: PgRegressOptions): Promise<PgRegressRun> {
  const started = Date.now();
  const child = startChild(o.install.pgRegress, pgRegressArgs(o), {
    cwd: o.runDir,
    env: regressEnv(o.runDir),
    user: o.user.ids,
    output: 'pipe',
    group: true,
  });
  let output = '';
  let partial = '';
  const onData = (chunk: string): void => {
    output += chunk;
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) o.onLine(line);
  };
  child.process.stdout?.setEncoding('utf8').on('data', onData);
  child.process.stderr?.setEncoding('utf8').on('data', onData);

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void o
      .onTimeLimit()
      .catch(() => undefined)
      .then(() => child.stop('SIGTERM', 5_000));
  }, o.timeLimitMs);
  const exit = await child.exited;
  clearTimeout(timer);
  if (partial !== '') o.onLine(partial);
  fs.writeFileSync(path.join(o.runDir, 'pg_regress.log'), output);
  return { exit, timedOut, output, ms: Date.now() - started };
}

/** Whether a line of pg_regress's output reports a failed test (to echo while the run goes on). */
export function isFailureLine(line: string): boolean {
  const r = parseResultLine(line);
  return r !== undefined && r.status !== 'passed';
}
