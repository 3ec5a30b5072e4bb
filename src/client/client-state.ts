/**
 * A client connection's state, and how an operator reads it. No imports: the registry, the admin console and the
 * metrics need the names, not the session's machinery (the view of a client they read is client-info.ts).
 */

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

/** A client as an operator sees it: queued for a server, served by one, between requests, or still logging in. */
export type OperatorState = 'waiting' | 'active' | 'idle' | 'login';

/** One place for that view (SHOW CLIENTS, the status page): a client logging in counts as waiting until its server is attached. */
export function operatorState(client: { readonly state: ClientState; readonly server: object | null }): OperatorState {
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
