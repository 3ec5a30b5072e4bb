/**
 * The views of a client connection that the rest of pgmux reads: the admin console and the metrics
 * (`ClientInfo`), the registry (`RegisteredClient`). Types only, so those modules never import the session.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { PgmuxError } from '../errors.js';
import type { Pool } from '../pool/pool.js';
import type { QueueLink } from '../pool/wait-queue.js';
import type { ServerConnection } from '../server/server-connection.js';
import type { ClientState } from './client-state.js';

/** What the rest of pgmux reads of a client connection. */
export interface ClientInfo {
  readonly id: number;
  readonly state: ClientState;
  readonly user: string;
  readonly database: string;
  /** Remote address:port. */
  readonly label: string;
  readonly socket: Socket;
  readonly log: Logger;
  readonly pool: Pool | null;
  readonly server: ServerConnection | null;
  readonly params: ReadonlyMap<string, string>;
  readonly applicationName: string;
  readonly connectedAt: number;
  /** Last command (client_idle_timeout); the admin console sets it too. */
  lastActive: number;
  /** Queued for a server, and since when (Date.now() ms). */
  readonly waitLink: { readonly queued: boolean };
  readonly waitingSince: number;
  /** Logged in to the admin console instead of a pool. */
  readonly isAdmin: boolean;
  readonly processId: number;
  readonly secretKey: number;
  readonly pinned: boolean;
  readonly pinReasons: readonly string[];
  readonly preparedStatementCount: number;
  /** Between transactions with nothing outstanding: safe to close at shutdown. */
  readonly atTransactionBoundary: boolean;
  /** Send an error (FATAL unless it says otherwise) and close. */
  fail(error: PgmuxError): void;
  /** A CancelRequest with this client's key arrived; `done` runs once it has been acted on (PostgreSQL closes the request's connection then). */
  cancelRequested(done: () => void): void;
}

/** A client as the registry holds it: its cancel key and its max_client_logins_in_progress slot are the registry's to set. */
export interface RegisteredClient extends ClientInfo {
  processId: number;
  secretKey: number;
  /** Holds a max_client_logins_in_progress slot. */
  holdsLoginSlot: boolean;
  /** Its place in the registry's queue of logins waiting for a slot: made by the registry when it queues the client. */
  loginLink: QueueLink<RegisteredClient> | null;
}
