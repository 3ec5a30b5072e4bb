/**
 * Python's drivers, used as applications use them, through pgmux in transaction mode and directly: the same
 * workload's transcript must be the same both ways (the oracle is PostgreSQL, not what pgmux is expected to do).
 *
 * Each workload (test/drivers/*_workload.py, Debian's python3-psycopg, python3-psycopg2 and python3-asyncpg) runs
 * many workers at once, each with its own startup settings, and records everything the application sees: rows and
 * their Python values, column names and type OIDs, status messages and row counts, SQLSTATEs and messages, the
 * parameter statuses reported at login, the transaction status. Through pgmux the workers share a pool of 2 server
 * connections, so their transactions move between servers and follow each other's SETs, prepared statements
 * (psycopg's auto-prepare, asyncpg's statement cache), COPY and server-side cursors. The run then checks that the pool
 * was really shared: at most 2 server connections, none left in a transaction.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDriverPool, type DriverPool } from './harness/driver-pool.js';
import { REPO_ROOT } from './harness/pgmux-process.js';
import { runProcess } from './harness/process.js';

let pool: DriverPool;

beforeAll(async () => {
  pool = await startDriverPool('python_drivers', 2);
});

afterAll(async () => pool?.stop());

/** Runs one workload against `url`; returns its transcript (one entry per worker). */
async function transcript(workload: string, url: string, workers: number): Promise<Record<string, unknown>> {
  const script = path.join(REPO_ROOT, 'test', 'drivers', `${workload}_workload.py`);
  const result = await runProcess('/usr/bin/python3', [script, url, String(workers)], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PYTHONDONTWRITEBYTECODE: '1' },
    timeoutMs: 90_000,
  });
  expect(result.code, `${workload} against ${url.replace(/:[^:@/]*@/, ':***@')} failed:\n${result.stderr.slice(-3000)}`).toBe(0);
  const parsed = JSON.parse(result.stdout) as Record<string, unknown>;
  // Every worker finished its script (a worker that died in a Python exception leaves null).
  for (let i = 0; i < workers; i++) expect(parsed[String(i)], `${workload} worker ${i} did not finish:\n${result.stderr.slice(-3000)}`).toBeInstanceOf(Array);
  return parsed;
}

describe('Python drivers through pgmux (transaction mode, pool of 2) answer as directly', () => {
  const cases: Array<[workload: string, workers: number]> = [
    ['psycopg', 16],
    ['psycopg2', 12],
    ['asyncpg', 12],
  ];
  for (const [workload, workers] of cases) {
    // This test found a cross-client cancel (an asyncpg worker got 57014 about 1 run in 4): a driver's cancel of its
    // own query reached PostgreSQL after the query had ended and the server had gone to another client.
    // test/cancel.test.ts reproduces it deterministically and pins the fix down.
    it(`${workload}: ${workers} concurrent workers, the same transcript through pgmux as directly`, async () => {
      const viaPgmux = await transcript(workload, pool.viaPgmux, workers);
      await pool.expectPoolShared();
      const direct = await transcript(workload, pool.direct, workers);
      for (let i = 0; i < workers; i++) expect(viaPgmux[String(i)], `${workload} worker ${i}`).toEqual(direct[String(i)]);
    }, 200_000);
  }
});
