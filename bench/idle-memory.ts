/**
 * Idle memory: a pooler's resident memory before and after thousands of authenticated clients sit idle on it.
 * The pooler is restarted first so every repeat starts from the same heap, and its pool is filled before the
 * "before" reading, so the difference is the clients alone.
 */
import { openIdleClients } from './connections.js';
import { rssBytes, sleep } from './proc.js';
import type { Measured } from './results.js';
import { warmPool } from './storm.js';
import type { Target } from './target.js';
import type { BenchEnv } from './targets.js';

/** Logins in flight at once while the idle clients connect. */
const LOGIN_CONCURRENCY = 200;
const SETTLE_MS = 2000;

export async function runIdleMemory(env: BenchEnv, target: Target, clients: number): Promise<Measured> {
  await target.restart();
  await warmPool(env, target);
  await sleep(SETTLE_MS);
  const before = rssBytes(target.pid());
  const cpu0 = target.cpuUs();
  const idle = await openIdleClients(env.login(target), clients, LOGIN_CONCURRENCY, 60_000);
  const loginCpuUs = target.cpuUs() - cpu0;
  try {
    await sleep(SETTLE_MS);
    const after = rssBytes(target.pid());
    const { connected, failed, wallMs, errors } = idle.outcome;
    return {
      metrics: {
        rssBeforeBytes: before,
        rssAfterBytes: after,
        bytesPerClient: connected > 0 ? (after - before) / connected : Number.NaN,
        connected,
        failed,
        loginWallMs: wallMs,
        poolerCpuUsPerLogin: connected > 0 ? loginCpuUs / connected : Number.NaN,
      },
      errors: failed,
      errorSamples: Object.entries(errors).map(([message, n]) => `${n} × ${message}`),
    };
  } finally {
    await idle.close();
  }
}
