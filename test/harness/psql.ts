/**
 * Runs the cluster's own psql (pgInfo().binDir) with a libpq connection string, in a clean
 * environment: no PG* variables of the caller, and HOME pointing at an empty directory so a
 * ~/.postgresql/root.crt or ~/.pgpass of the machine cannot change what sslmode=require means.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pgInfo } from './context.js';
import { libpqEnv, runProcess } from './process.js';

export interface PsqlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

let emptyHome: string | undefined;

/**
 * `psql -X -A -t -v ON_ERROR_STOP=1 <conninfo> -c <command> ...`; `password` goes in PGPASSWORD.
 * Never rejects for a failed login: look at `code` and `stderr`.
 */
export async function runPsql(conninfo: string, commands: string[], password?: string, timeoutMs = 15_000): Promise<PsqlResult> {
  emptyHome ??= mkdtempSync(path.join(tmpdir(), 'pgmux-psql-home-'));
  const args = ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', conninfo, ...commands.flatMap((c) => ['-c', c])];
  const { code, stdout, stderr } = await runProcess(path.join(pgInfo().binDir, 'psql'), args, {
    env: libpqEnv({ password, home: emptyHome }),
    timeoutMs,
  });
  return { code, stdout, stderr };
}
