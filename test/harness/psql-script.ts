/**
 * psql running a script file as pg_regress runs its tests: `psql -X -a -q -f file`, stdout and stderr into one
 * file (so errors stay in place between the echoed statements), libpq settings from the environment given
 * (PGTZ, PGDATESTYLE, PGOPTIONS, PGAPPNAME ...) and nothing else of the caller's PG* variables.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pgInfo } from './context.js';
import { libpqEnv, runProcess } from './process.js';

export interface PsqlScriptOptions {
  port: number;
  database: string;
  user: string;
  password?: string;
  /** Extra environment for libpq (PGTZ, PGDATESTYLE, PGOPTIONS, ...). */
  env?: Record<string, string>;
  /** Extra psql arguments (default none; -X -a -q are always given). */
  args?: string[];
  timeoutMs?: number;
}

export interface PsqlScriptResult {
  code: number | null;
  /** stdout and stderr as one stream, in order. */
  output: string;
}

let scratch: string | undefined;
let counter = 0;

export async function runPsqlScript(script: string, options: PsqlScriptOptions): Promise<PsqlScriptResult> {
  scratch ??= mkdtempSync(path.join(tmpdir(), 'pgmux-psql-script-'));
  const n = counter++;
  const input = path.join(scratch, `script-${n}.sql`);
  const output = path.join(scratch, `output-${n}.out`);
  writeFileSync(input, script);
  const psql = path.join(pgInfo().binDir, 'psql');
  const conninfo = `host=127.0.0.1 port=${options.port} dbname=${options.database} user=${options.user}`;
  const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const args = ['-X', '-a', '-q', ...(options.args ?? []), '-d', conninfo, '-f', input].map(quote).join(' ');
  const env = { ...libpqEnv({ password: options.password, home: scratch }), ...options.env };
  const r = await runProcess('/bin/sh', ['-c', `exec ${quote(psql)} ${args} > ${quote(output)} 2>&1`], { env, timeoutMs: options.timeoutMs ?? 30_000 });
  // psql names the script in its error lines: make that path the same for every run.
  const text = readFileSync(output, 'utf8').split(input).join('script.sql');
  return { code: r.code, output: text };
}
