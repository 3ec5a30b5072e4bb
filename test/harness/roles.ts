/**
 * Roles the test cluster is created with, one per upstream auth method pgmux supports.
 *
 * `method` is the pg_hba.conf method Postgres applies to that role over TCP from 127.0.0.1
 * (see `writeHba` in postgres.ts). Every role's password is stored as SCRAM except `pgmux_md5`,
 * whose password is stored as an md5 hash so md5 auth can work against it.
 */

export type HbaMethod = 'trust' | 'password' | 'md5' | 'scram-sha-256';

export interface TestRole {
  readonly name: string;
  /** Absent for the trust role: it has no password. */
  readonly password?: string;
  readonly method: HbaMethod;
}

/** Superuser created by initdb; its password is random per cluster (see PostgresInstance.password). */
export const SUPERUSER = 'postgres';

/** Trusted: Postgres asks for no password. */
export const TRUST_ROLE: TestRole = { name: 'pgmux_trust', method: 'trust' };
/** Cleartext password authentication (AuthenticationCleartextPassword). */
export const CLEAR_ROLE: TestRole = { name: 'pgmux_clear', password: 'clear-pass', method: 'password' };
/** md5 password authentication, password stored as md5. */
export const MD5_ROLE: TestRole = { name: 'pgmux_md5', password: 'md5-pass', method: 'md5' };
/** SCRAM-SHA-256 authentication. */
export const SCRAM_ROLE: TestRole = { name: 'pgmux_scram', password: 'scram-pass', method: 'scram-sha-256' };
/** Ordinary application role (SCRAM); owns the `app` database and every database createTestDatabase makes. */
export const APP_ROLE: TestRole = { name: 'app', password: 'app-pass', method: 'scram-sha-256' };

/** Database owned by APP_ROLE, created at cluster start. */
export const APP_DATABASE = 'app';

export const TEST_ROLES: readonly TestRole[] = [TRUST_ROLE, CLEAR_ROLE, MD5_ROLE, SCRAM_ROLE, APP_ROLE];
