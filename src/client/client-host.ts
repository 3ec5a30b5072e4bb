import type { PgmuxConfig, DatabaseConfig } from '../config/index.js';
import type { PgmuxError } from '../errors.js';
import type { Pool } from '../pool/pool.js';
import type { PasswordSource } from '../auth/password-source.js';
import type { ClientTls } from '../net/tls-config.js';
import type { ScramSecretCache } from './client-auth.js';
import type { ClientInfo, RegisteredClient } from './client-info.js';
import type { LoginBudget } from '../pool/login-budget.js';

/** A logged-in admin console session, as its client connection sees it: it takes every message after login. */
export interface AdminConnection {
  onFrame(code: number, buf: Buffer, start: number, end: number): void;
}

/** The admin console (virtual databases pgbouncer / pgmux), as a client logging in sees it. */
export interface AdminEntry {
  /** The stand-in database entry the console's logins go through (TLS policy, auth_type). */
  readonly database: DatabaseConfig;
  /** The stand-in entry when `name` is one of the console's names. */
  databaseFor(name: string): DatabaseConfig | undefined;
  /** An authenticated client: greeted, or failed (null) when it may not use the console. */
  open(client: ClientInfo, authMessages: Buffer[]): AdminConnection | null;
}

/** What a client session needs from the process around it (the pool registry implements it). */
export interface ClientHost {
  readonly config: PgmuxConfig;
  readonly secrets: ScramSecretCache;
  readonly clientTls: ClientTls;
  readonly passwords: PasswordSource;
  /** Runs login work (startup packets, password messages) within client_login_slice per event-loop turn. */
  readonly loginBudget: LoginBudget;
  /** The admin console, when the process has one. */
  readonly adminConsole: AdminEntry | null;
  /** Shutting down: clients are closed (57P01) at their next transaction boundary; no new transaction starts. */
  readonly draining: boolean;
  /** Whether accepting one more logged-in client would exceed max_client_conn. */
  tooManyClients(): boolean;
  /**
   * The pool for this (database, user), given the user's stored password and, after a SCRAM
   * login against a verifier, the keys for SCRAM passthrough. Throws PgmuxError when it cannot be made.
   */
  poolFor(database: string, dbConfig: DatabaseConfig, user: string, password: string | undefined, scramKeys?: { clientKey: Buffer; serverKey: Buffer }): Pool;
  /** Route a CancelRequest (pgmux-issued key) to the client it belongs to; `done` runs once it has been acted on. */
  cancel(processId: number, secretKey: number, done: () => void): void;
  clientLoggedIn(client: RegisteredClient): void;
  /** The client became pinned to its server for this reason (first time per client and reason). */
  clientPinned(client: RegisteredClient, kind: string): void;
  loginFailed(client: RegisteredClient, error: PgmuxError): void;
  clientClosed(client: RegisteredClient, reason: string): void;
  /** The client finished logging in, failed or left: its max_client_logins_in_progress slot (or queue place) goes. */
  loginEnded(client: RegisteredClient): void;
}
