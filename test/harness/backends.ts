/**
 * Server connections as Postgres sees them: the client backends of a database in pg_stat_activity. Tests
 * that cap pgmux's server connections check the cap here, where pgmux's own accounting cannot hide a leak.
 */
import type pg from 'pg';
import { sleep } from './wait.js';

export interface BackendFilter {
  database: string;
  /** Only backends of this role (default: every role). */
  user?: string;
}

/** Client backends connected to the database now, not counting the connection of `admin` that asks. */
export async function countBackends(admin: pg.Client, filter: BackendFilter): Promise<number> {
  const r = await admin.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = $1 AND ($2::text IS NULL OR usename = $2) AND backend_type = 'client backend' AND pid <> pg_backend_pid()`,
    [filter.database, filter.user ?? null],
  );
  return r.rows[0].n;
}

export interface BackendWatch {
  /** The highest count seen so far. */
  readonly max: number;
  /** Stops sampling (after the sample in progress) and returns the highest count seen. */
  stop(): Promise<number>;
}

/**
 * Samples countBackends every `intervalMs` until stop(), keeping the highest count. Other queries on `admin`
 * meanwhile wait their turn behind the samples (a pg.Client runs one query at a time).
 */
export function watchBackends(admin: pg.Client, filter: BackendFilter, intervalMs = 20): BackendWatch {
  let max = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      max = Math.max(max, await countBackends(admin, filter));
      await sleep(intervalMs);
    }
  })();
  // A failed sample is reported by stop(); until then it must not count as an unhandled rejection.
  loop.catch(() => undefined);
  return {
    get max() {
      return max;
    },
    async stop() {
      running = false;
      await loop;
      return max;
    },
  };
}
