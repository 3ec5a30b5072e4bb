/**
 * Connection storm: thousands of clients connect to a pooler at the same moment, log in with SCRAM, run one
 * `SELECT 1` each and leave. Measures the time until the last one is served, failures, and the pooler's CPU.
 */
import { runStormClients } from './connections.js';
import type { Measured } from './results.js';
import { sleep } from './proc.js';
import type { Target } from './target.js';
import type { BenchEnv } from './targets.js';

/** Opens every server connection of the pool (20 clients each holding one for 50 ms), so runs start alike. */
export async function warmPool(env: BenchEnv, target: Target): Promise<void> {
  await runStormClients(env.login(target), 20, 'SELECT pg_sleep(0.05)', 30_000);
}

export async function runStorm(env: BenchEnv, target: Target, clients: number): Promise<Measured> {
  await warmPool(env, target);
  await sleep(500);
  const cpu0 = target.cpuUs();
  const outcome = await runStormClients(env.login(target), clients, 'SELECT 1', 120_000);
  const cpuUs = target.cpuUs() - cpu0;
  return {
    metrics: {
      wallMs: outcome.wallMs,
      p50Ms: outcome.p50Ms,
      p99Ms: outcome.p99Ms,
      maxMs: outcome.maxMs,
      ok: outcome.ok,
      failed: outcome.failed,
      poolerCpuMs: cpuUs / 1000,
      poolerCpuUsPerClient: outcome.ok > 0 ? cpuUs / outcome.ok : Number.NaN,
      clientCpuMs: outcome.clientCpuMs,
    },
    errors: outcome.failed,
    errorSamples: Object.entries(outcome.errors).map(([message, n]) => `${n} × ${message}`),
  };
}
