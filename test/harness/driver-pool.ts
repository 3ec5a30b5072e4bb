/**
 * What the driver-transcript tests (node-drivers, python-drivers, jdbc-driver) share: a database of their own, a
 * pgmux in transaction mode with a small pool in front of it, logged in as `app` with SCRAM, and the check that the
 * workers really shared that pool.
 */
import { expect } from 'vitest';
import { adminClient, createTestDatabase, dropTestDatabase, pgUrl } from './context.js';
import { startPgmux, transactionPool, type TestPgmux } from './pgmux.js';
import { APP_ROLE } from './roles.js';
import { waitFor } from './wait.js';

export interface DriverPool {
  readonly db: string;
  readonly poolSize: number;
  readonly px: TestPgmux;
  /** `postgres://app:...@127.0.0.1:<pgmux>/<db>`. */
  readonly viaPgmux: string;
  /** The same database directly. */
  readonly direct: string;
  /**
   * The workers shared the pool: at most `poolSize` server connections of `app` (pgmux keeps them open), all idle,
   * none left inside a transaction. Waited for: pgmux's own reset after a client leaves may still run a moment, and
   * backends of an earlier direct run may take a moment to exit.
   */
  expectPoolShared(): Promise<void>;
  stop(): Promise<void>;
}

export async function startDriverPool(prefix: string, poolSize: number): Promise<DriverPool> {
  const db = await createTestDatabase(prefix);
  const admin = await adminClient(db);
  const px = await startPgmux({
    settings: transactionPool(poolSize, { auth_type: 'scram-sha-256', query_wait_timeout: '30s' }),
    // Same name as the real database, so both runs see the same current_database().
    databases: { [db]: { dbname: db } },
    users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
  });
  const serverConnections = async (): Promise<Array<{ state: string | null }>> =>
    (
      await admin.query<{ state: string | null }>(
        "select state from pg_stat_activity where datname = $1 and usename = $2 and backend_type = 'client backend'",
        [db, APP_ROLE.name],
      )
    ).rows;
  return {
    db,
    poolSize,
    px,
    viaPgmux: px.url(db, APP_ROLE.name, APP_ROLE.password),
    direct: pgUrl(db),
    async expectPoolShared() {
      const servers = await waitFor(async () => {
        const rows = await serverConnections();
        return rows.length <= poolSize && rows.every((s) => s.state === 'idle') && rows;
      }, `at most ${poolSize} server connections, all idle (none left in a transaction)`);
      expect(servers.length).toBeGreaterThan(0);
    },
    async stop() {
      await px.stop();
      await admin.end();
      await dropTestDatabase(db);
    },
  };
}
