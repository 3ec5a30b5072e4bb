/**
 * A client connection's state, and the view of a client that the registry, the admin console
 * and the metrics read. No dependencies on the session's code: those modules need the names,
 * not the machinery.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { PgmuxError } from '../errors.js';
import type { Pool } from '../pool/pool.js';
import type { ServerConnection } from '../server/server-connection.js';

/** startup → authenticating → [logging-in] → idle ⇄ waiting → active → closed. */
export const enum ClientState {
  Startup = 'startup',
  Authenticating = 'authenticating',
  /** Waiting for a server to learn the parameters it reports (first client of a pool, new settings). */
  LoggingIn = 'logging-in',
  Idle = 'idle',
  /** Queued for a server. */
  Waiting = 'waiting',
  /** A server is attached. */
  Active = 'active',
  Closed = 'closed',
}

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
  /** A CancelRequest with this client's key arrived. */
  cancelRequested(): void;
}

/** A client as an operator sees it: queued for a server, served by one, between requests, or still logging in. */
export type OperatorState = 'waiting' | 'active' | 'idle' | 'login';

/** One place for that view (SHOW CLIENTS, the status page): a client logging in counts as waiting until its server is attached. */
export function operatorState(client: ClientInfo): OperatorState {
  switch (client.state) {
    case ClientState.Waiting:
      return 'waiting';
    case ClientState.Active:
      return 'active';
    case ClientState.LoggingIn:
      return client.server === null ? 'waiting' : 'active';
    case ClientState.Idle:
      return 'idle';
    default:
      return 'login';
  }
}
