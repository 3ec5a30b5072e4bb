/**
 * vitest globalSetup: one PostgreSQL cluster for the whole run, shared by every test file.
 * Test files read its address with `pgInfo()` (test/harness/context.ts) and isolate themselves with
 * `createTestDatabase()` or their own pgmux instance.
 */
import type { TestProject } from 'vitest/node';
import { startPostgres } from './harness/postgres.js';

export interface ProvidedPg {
  host: string;
  port: number;
  superuser: string;
  password: string;
  /** Directory with the server's psql/pgbench (same version as the cluster). */
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
    binDir: cluster.binDir,
    socketDir: cluster.socketDir,
  });
  return async () => {
    await cluster.stop();
  };
}
