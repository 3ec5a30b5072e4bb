/**
 * Runs the cluster's own psql (pgInfo().binDir) with a libpq connection string, in a clean
 * environment: no PG* variables of the caller, and HOME pointing at an empty directory so a
 * ~/.postgresql/root.crt or ~/.pgpass of the machine cannot change what sslmode=require means.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pgInfo } from './context.js';

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
export function runPsql(conninfo: string, commands: string[], password?: string, timeoutMs = 15_000): Promise<PsqlResult> {
  emptyHome ??= mkdtempSync(path.join(tmpdir(), 'pgmux-psql-home-'));
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  env.HOME = emptyHome;
  env.PGCONNECT_TIMEOUT = '10';
  if (password !== undefined) env.PGPASSWORD = password;
  const args = ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', conninfo, ...commands.flatMap((c) => ['-c', c])];
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(pgInfo().binDir, 'psql'), args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
