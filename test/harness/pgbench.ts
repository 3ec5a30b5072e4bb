/**
 * The cluster's own pgbench (pgInfo().binDir), run as APP_ROLE in a clean libpq environment.
 */
import path from 'node:path';
import { pgInfo } from './context.js';
import { libpqEnv, runProcess, type RunResult } from './process.js';
import { APP_ROLE } from './roles.js';

/** `pgbench <args>` with PGPASSWORD of APP_ROLE; never rejects for a failed run: look at `code` and `output`. */
export function runPgbench(args: readonly string[], timeoutMs: number): Promise<RunResult> {
  return runProcess(path.join(pgInfo().binDir, 'pgbench'), args, { env: libpqEnv({ password: APP_ROLE.password }), timeoutMs });
}

/** `pgbench -i -s <scale>` of `database` directly on the cluster, as APP_ROLE; throws with pgbench's output if it fails. */
export async function initPgbench(database: string, scale = 1): Promise<void> {
  const info = pgInfo();
  const r = await runPgbench(['-i', '-s', String(scale), '-q', '-h', info.host, '-p', String(info.port), '-U', APP_ROLE.name, database], 60_000);
  if (r.code !== 0) throw new Error(`pgbench -i ${database} failed (${r.code ?? r.signal}):\n${r.output}`);
}
