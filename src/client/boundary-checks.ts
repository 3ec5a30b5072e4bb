/**
 * Transaction mode: at the end of each transaction, what it left on the server, and whether the
 * server may go back to the pool.
 *
 * Settings are not parsed from SQL: after a transaction that ran SET, RESET, set_config() or
 * DISCARD (or whose privileges visibly changed), pgmux asks the server which settings the
 * session now has, plus its role and session user, and takes them as the client's, so SET LOCAL,
 * rollbacks and savepoints come out exactly as PostgreSQL decided. State that cannot move
 * (LISTEN, advisory locks, temp tables, WITH HOLD cursors, SQL PREPARE) is asked for the same way
 * and pins the client while it exists. These are pgmux's own queries: the client's messages sent
 * meanwhile wait, so the answers cannot mix, and then go to the same server.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { parameterStatus } from '../protocol/backend-messages.js';
import { WriteBatch } from '../protocol/write-batch.js';
import type { ParamMap } from '../server/param-map.js';
import type { ServerClient, ServerConnection } from '../server/server-connection.js';
import { NO_ROLE, ROLE, SYNCED_PARAMETERS } from '../server/session-params.js';
import { captureSettingsSql, PIN_CHECK_SQL, ROLE_SQL, type SessionState } from './session-state.js';
import type { PinKind } from './sql-classifier.js';

/** What the checks need of the client session. */
export interface BoundaryHost extends ServerClient {
  readonly log: Logger;
  readonly socket: Socket;
  readonly params: ParamMap;
  /** The client's startup settings: what RESET returns to. */
  readonly startupParams: ReadonlyMap<string, string>;
  /** The pool's reported parameter defaults. */
  readonly poolDefaults: ReadonlyMap<string, string> | null;
  /** Still active on `server`. */
  servedBy(server: ServerConnection): boolean;
  /** Send what the client sent while pgmux's queries ran (it keeps its server); false if nothing. */
  sendHeldMessages(): boolean;
  /** Give the server back to the pool. */
  release(server: ServerConnection): void;
  /** The session now holds unmovable state of this kind (log, metrics). */
  pinnedBy(kind: PinKind): void;
}

export class BoundaryChecks {
  /** The role was asked for at this transaction boundary already (checkRole). */
  private roleChecked = false;

  constructor(
    private readonly host: BoundaryHost,
    readonly session: SessionState,
  ) {}

  /** A ParameterStatus showed the privileges changing (maybe inside a function): capture at the end. */
  privilegesChanged(): void {
    this.session.settingsChanged = true;
  }

  /** Every answer owed arrived and the server is idle. Release it, unless state must be checked first or pins it. */
  transactionEnded(server: ServerConnection): void {
    const session = this.session;
    if (session.settingsChanged || session.pinCheckDue) {
      this.checkSession(server);
      return;
    }
    if (server.roleMayChangeUnseen && !this.roleChecked) {
      this.checkRole(server);
      return;
    }
    this.roleChecked = false;
    if (!session.pinned) this.host.release(server);
  }

  /** The role, where a function could have changed it unseen (see ServerConnection.roleMayChangeUnseen). */
  private checkRole(server: ServerConnection): void {
    this.roleChecked = true;
    server.runOwnQuery(ROLE_SQL, (error, rows) => {
      const role = rows[0]?.[0];
      const params = this.host.params;
      if (error !== null || role === null || role === undefined) {
        // Not known: whoever gets this server next must not inherit it.
        this.session.unknown = true;
        this.host.log.warn({ err: error?.message }, 'could not check the session role; keeping the client pinned');
      } else if (role !== (params.get(ROLE) ?? NO_ROLE)) {
        params.set(ROLE, role);
        server.roleChanged(role);
      }
      this.ownQueriesDone(server);
    });
  }

  /** Ask the server for the session's settings (taken as the client's) and unmovable state (pins). */
  private checkSession(server: ServerConnection): void {
    const session = this.session;
    const capture = session.settingsChanged;
    const check = session.pinCheckDue;
    session.settingsChanged = false;
    session.pinCheckDue = false;
    if (capture) {
      session.capturing = true;
      server.runOwnQuery(captureSettingsSql(session.customSettings), (error, rows) => {
        session.capturing = false;
        if (error !== null) this.host.log.warn({ err: error.message }, 'could not capture session settings');
        else this.settingsCaptured(server, rows);
        if (!check) this.ownQueriesDone(server);
      });
    }
    if (check) {
      session.checking = true;
      server.runOwnQuery(PIN_CHECK_SQL, (error, rows) => {
        if (error !== null || rows.length === 0) {
          session.checking = false;
          session.unknown = true;
          this.host.log.warn({ err: error?.message }, 'could not check session state; keeping the client pinned');
        } else {
          for (const kind of session.pinsChecked(rows[0])) this.host.pinnedBy(kind);
        }
        this.ownQueriesDone(server);
      });
    }
  }

  /** pgmux's own queries are done: send what the client sent meanwhile, or decide about the server again. */
  private ownQueriesDone(server: ServerConnection): void {
    const host = this.host;
    if (!host.servedBy(server)) return;
    // A RESET left this server with values other than the client's (see settingsCaptured).
    if (!server.inStepWith(host)) {
      server.bringInStep(host, () => this.ownQueriesDone(server));
      return;
    }
    if (host.sendHeldMessages()) return;
    if (server.link?.settled === true) this.transactionEnded(server);
  }

  /**
   * The session's settings as the server has them now become the client's. A setting no longer
   * set in the session (RESET) goes back to what PostgreSQL's RESET gives the client: its startup
   * value, else the pool's default. Where this server's own RESET value differs (it was opened for
   * other startup settings), the client is told the right value and the server is set to it
   * before it runs anything else of this client's (see ownQueriesDone).
   */
  private settingsCaptured(server: ServerConnection, rows: Array<Array<string | null>>): void {
    const params = this.host.params;
    const captured = new Map<string, string>();
    for (const [name, value] of rows) if (name !== null && value !== null) captured.set(name, value);
    for (const [name, value] of captured) params.set(name, value);
    const defaults = this.host.poolDefaults;
    let corrections: WriteBatch | null = null;
    for (const name of [...params.keys()]) {
      if (captured.has(name)) continue;
      // Not set in this session, and was not before either: the client's value is the server's own (the sync
      // had nothing to SET), unchanged. Only a setting the session had and lost was RESET.
      if (!server.hasSessionValue(name) && server.params.get(name) === params.get(name)) continue;
      const expected = this.host.startupParams.get(name) ?? (SYNCED_PARAMETERS.has(name) ? defaults?.get(name) : undefined);
      if (expected === undefined) {
        if (!(SYNCED_PARAMETERS.has(name) && server.reports(name))) params.delete(name);
        continue;
      }
      if (server.reports(name) && server.params.get(name) !== expected) {
        corrections ??= new WriteBatch();
        corrections.addBuffer(parameterStatus(name, expected));
      }
      params.set(name, expected);
    }
    server.settingsCaptured(captured);
    corrections?.flush(this.host.socket);
  }
}
