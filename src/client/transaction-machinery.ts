/**
 * Transaction mode's machinery for one client: what pgmux does with its messages before they are forwarded
 * (transaction-intercepts.ts, with the statement router), what its transactions leave on the server
 * (boundary-checks.ts, with the session state both share) and its current segment for the stale-plan retry
 * (segment-replay.ts). Made the first time a message or a server needs it (ClientSession.transaction), from the
 * configuration the client joined its pool under: a client that logged in and has sent nothing holds none of it.
 */
import type { PgmuxConfig } from '../config/index.js';
import type { ServerConnection } from '../server/server-connection.js';
import { BoundaryChecks, type BoundaryHost } from './boundary-checks.js';
import { SegmentReplay } from './segment-replay.js';
import { SessionState } from './session-state.js';
import type { PinKind } from './sql-classifier.js';
import type { StatementRouter } from './statement-router.js';
import { TransactionIntercepts, type InterceptHost, type Refusal } from './transaction-intercepts.js';

export class TransactionMachinery {
  /** What transactions leave on the server. */
  private readonly checks: BoundaryChecks;
  /** The current segment's messages, for the stale-plan retry. */
  readonly replay: SegmentReplay;
  /** What pgmux does with messages before they are forwarded. */
  private readonly intercepts: TransactionIntercepts;

  /** `config`: the client's session_state_* policies and max_prepared_statements, as when it joined its pool. */
  constructor(host: InterceptHost & BoundaryHost, config: PgmuxConfig) {
    const session = new SessionState(config);
    this.checks = new BoundaryChecks(host, session);
    this.replay = new SegmentReplay();
    this.intercepts = new TransactionIntercepts(host, session, config.max_prepared_statements);
  }

  /** The client's named statements, carried from server to server. */
  get router(): StatementRouter {
    return this.intercepts.router;
  }

  /** Look at a message before it is forwarded; true when pgmux dealt with it itself (TransactionIntercepts.intercept). */
  intercept(code: number, buf: Buffer, start: number, end: number): boolean {
    return this.intercepts.intercept(code, buf, start, end);
  }

  /** The refusal a replacement message stands for, if it is one (taken: each is sent once). */
  takeRefusal(buf: Buffer): Refusal | undefined {
    return this.intercepts.takeRefusal(buf);
  }

  /** Held messages were dropped (failed before reaching a server, or the client left). */
  dropRefusals(): void {
    this.intercepts.dropRefusals();
  }

  /** A SET/RESET-like statement ran in this transaction (settings are captured at its end). */
  get settingsChanged(): boolean {
    return this.checks.session.settingsChanged;
  }

  /** A ParameterStatus showed the privileges changing (maybe inside a function): capture at the end. */
  privilegesChanged(): void {
    this.checks.privilegesChanged();
  }

  /** Every answer owed arrived and the server is idle. Release it, unless state must be checked first or pins it. */
  transactionEnded(server: ServerConnection): void {
    this.checks.transactionEnded(server);
  }

  /** Pinned to its server by unmovable session state. */
  get pinned(): boolean {
    return this.checks.session.pinned;
  }

  /** Pinned, or what the session holds on the server is still being established: its server is reset before reuse. */
  get needsReset(): boolean {
    const session = this.checks.session;
    return session.pinned || session.unsettled;
  }

  get pinReasons(): PinKind[] {
    return this.checks.session.pinReasons;
  }

  /** Named prepared statements the client has. */
  get preparedStatementCount(): number {
    return this.intercepts.router.size;
  }
}
