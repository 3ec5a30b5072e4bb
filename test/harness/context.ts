/**
 * Helpers for test files running against the cluster started by test/global-setup.ts.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import type { ProvidedPg } from '../global-setup.js';
import { APP_ROLE, type TestRole } from './roles.js';

export type { ProvidedPg } from '../global-setup.js';

/** Address and superuser credentials of the shared cluster. */
export function pgInfo(): ProvidedPg {
  return inject('pg');
}

/** A connected `pg.Client` as the superuser over TCP (database `postgres` unless given). Call `end()` when done. */
export async function adminClient(database = 'postgres'): Promise<pg.Client> {
  const info = pgInfo();
  const client = new pg.Client({
    host: info.host,
    port: info.port,
    user: info.superuser,
    password: info.password,
    database,
  });
  await client.connect();
  return client;
}

/**
 * Creates a fresh database owned by `app` and returns its name: `<prefix>_<random>`, lower-cased, at most
 * 63 bytes. Every test role may connect to it. Drop it with `dropTestDatabase` if the file wants to tidy up
 * (the cluster is thrown away at the end of the run anyway).
 */
export async function createTestDatabase(prefix = 'test'): Promise<string> {
  const clean = prefix.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 40) || 'test';
  const name = `${clean}_${process.pid}_${randomBytes(4).toString('hex')}`;
  const client = await adminClient();
  try {
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)} OWNER ${client.escapeIdentifier(APP_ROLE.name)}`);
  } finally {
    await client.end();
  }
  return name;
}

/** Drops a database made by createTestDatabase, disconnecting anyone still in it. */
export async function dropTestDatabase(name: string): Promise<void> {
  const client = await adminClient();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

/** `postgres://user:password@host:port/db` for the shared cluster as one of the test roles (default `app`). */
export function pgUrl(database: string, role: TestRole = APP_ROLE): string {
  const info = pgInfo();
  const user = encodeURIComponent(role.name);
  const auth = role.password === undefined ? user : `${user}:${encodeURIComponent(role.password)}`;
  return `postgres://${auth}@${info.host}:${info.port}/${encodeURIComponent(database)}`;
}
