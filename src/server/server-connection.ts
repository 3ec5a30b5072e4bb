/**
 * One connection from pgmux to an upstream PostgreSQL server.
 *
 * States: connecting (TCP + login) → idle ⇄ active (attached to a client) → resetting (pgmux's
 * own queries: parameter sync, ROLLBACK, server_reset_query) → closed. The pool owns which
 * container the connection is in; this class only reports transitions to it.
 *
 * Hot path: bytes from the server are framed in place and forwarded to the attached client as
 * views, one write per chunk. Only ReadyForQuery, ParameterStatus and CopyInResponse are looked at.
 */
import net, { type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { serialize } from 'pg-protocol';
import { Errors, PgmuxError, UpstreamError } from '../errors.js';
import { BackendCode, isBackendCode, TxStatus } from '../protocol/codes.js';
import { readDataRow, readErrorFields, readParameterStatus } from '../protocol/fields.js';
import { ParamMap } from './param-map.js';
import { NO_ROLE, ROLE, SESSION_AUTHORIZATION, tracksParameter as tracks } from './session-params.js';
import { PreparedCache } from './prepared-cache.js';
import type { SegmentReplay } from '../client/segment-replay.js';
import type { StatementRouter } from '../client/statement-router.js';
import type { PoolStats } from '../pool/pool-stats.js';
import { Attachment, LinkEvent } from '../link/attachment.js';
import { Reply } from '../link/request-ledger.js';
import { FrameReader, type FrameHandler } from '../protocol/frame-reader.js';
import { negotiateUpstreamTls, wantsTls } from '../net/upstream-tls.js';
import type { ServerTls } from '../net/tls-config.js';
import { ServerLogin, type UpstreamLogin } from './server-login.js';

export const enum ServerState {
  Connecting = 'connecting',
  Idle = 'idle',
  Active = 'active',
  Resetting = 'resetting',
  Closed = 'closed',
}

/** What a server connection needs from the client it serves. */
export interface ServerClient {
  readonly socket: Socket;
  /** Transaction mode: the client's named statements, carried from server to server (null in session mode). */
  readonly router: StatementRouter | null;
  /** Transaction mode: the messages of the current segment, for a retry after 0A000 (stale cached plan). */
  readonly replay: SegmentReplay | null;
  /** pgmux's own queries on this server are done: messages the client sent meanwhile may go. */
  ownQueriesDrained(server: ServerConnection): void;
  /** A ParameterStatus showed the session's privileges changing (is_superuser, session_authorization). */
  privilegesChanged(): void;
  /** Transaction mode: every answer owed arrived and the server said idle; the client decides whether to release. */
  transactionEnded(server: ServerConnection): void;
  /** A CommandComplete tag of DEALLOCATE / DEALLOCATE ALL / DISCARD ALL passed by (SQL-level statement cleanup). */
  statementsDeallocated(server: ServerConnection, tag: string): void;
  /** Parameter values the client expects the server to have (reported GUCs and startup settings). */
  readonly params: ParamMap;
  /** The server is attached and its parameters match; flush held messages. */
  onServerReady(server: ServerConnection): void;
  /**
   * The server failed while serving this client. `midMessage`: part of a message was passed on already (a row
   * streamed through), so nothing more can be framed for the client: it is closed without an error message.
   */
  onServerLost(error: PgmuxError, midMessage: boolean): void;
  /** Send this error and close the client (its server is cleaned up as for any client that leaves). */
  fail(error: PgmuxError): void;
  /** The client broke a COPY IN with a request of type `code` (LinkEvent.CopyBroken): answer as PostgreSQL does, and close. */
  copyBroken(code: number): void;
}

/** What a server connection reports to its pool. */
export interface ServerOwner {
  readonly name: string;
  readonly stats: PoolStats;
  readonly transactionMode: boolean;
  /** Statement mode: a transaction left open after a request is refused (and rolled back). */
  readonly statementMode: boolean;
  /** The reported parameters' defaults (what a client that asked for nothing is told), once known. */
  readonly defaultParams: ReadonlyMap<string, string> | null;
  /** Login done, or a reset finished: the connection is clean and free. */
  serverFree(server: ServerConnection): void;
  /** Login failed; the connection is closed. */
  serverLoginFailed(server: ServerConnection, error: PgmuxError): void;
  /** The connection closed (after having logged in). */
  serverClosed(server: ServerConnection): void;
  /** The attached client reached a transaction boundary with nothing outstanding. */
  serverReleased(server: ServerConnection): void;
}

export interface ServerTarget {
  host: string;
  port: number;
  login: UpstreamLogin;
  tls: ServerTls;
  keepalive: boolean;
  /** tcp_keepidle: idle time before the first probe (0: the OS default). */
  keepidleMs: number;
  /** Run once after login, before the connection is first used (connect_query). */
  connectQuery?: string;
  /** Named statements kept prepared per connection (max_prepared_statements). */
  maxPreparedStatements: number;
}

/** Whether the login role could switch to another role: not a superuser, member of some role ('t'/'f'). */
const ROLE_SWITCH_CHECK_SQL =
  'SELECT NOT r.rolsuper AND EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m WHERE m.member = r.oid) FROM pg_catalog.pg_roles r WHERE r.rolname = session_user';

const IS_SUPERUSER = 'is_superuser';

/** Rows of pgmux's own queries, as text. */
export type OwnRows = Array<Array<string | null>>;
export type OwnQueryDone = (error: UpstreamError | null, rows: OwnRows) => void;

/** A query pgmux runs on its own behalf; its answers are read here and never reach a client. */
interface OwnQuery {
  sql: string;
  done: OwnQueryDone;
  error: UpstreamError | null;
  rows: OwnRows;
}

export class ServerConnection implements FrameHandler {
  /** Set only by the owning pool, which keeps the matching container. */
  state: ServerState = ServerState.Connecting;
  client: ServerClient | null = null;
  /** The link to the attached client: what it is owed, and when the server is done with it. */
  link: Attachment | null = null;
  /** Current parameter values on this server (from ParameterStatus, or set by pgmux). */
  readonly params = new ParamMap();
  /** Client parameters (ParamMap signature) this server was last brought in line with, and its own params version then. */
  private syncedSignature: string | null = null;
  private syncedVersion = -1;
  /** Non-reported parameters set on this server (by pgmux or a client), to undo for the next client. */
  private readonly customParams = new Set<string>();
  /** Named statements prepared on this server (transaction mode). */
  readonly statements: PreparedCache;
  /** What statements the server has is not known exactly: DEALLOCATE ALL before reuse (see PreparedCache.unknown). */
  get statementsUnknown(): boolean {
    return this.statements.unknown;
  }
  /** Parameters this server reports by itself (their values are always current in `params`). */
  private readonly reportedAtLogin = new Set<string>();
  /** Reported parameters changed in this session since login (a SET, pgmux's sync): not at the server's own value. */
  private readonly reportedChanged = new Set<string>();
  txStatus: number = TxStatus.Idle;
  processId = 0;
  secretKey = 0;
  readonly createdAt = Date.now();
  /** When it last became idle (for server_idle_timeout and server_check_delay). */
  idleSince = Date.now();
  /** When the last ReadyForQuery reached the attached client (for idle_transaction_timeout). */
  readyAt = Date.now();
  /** The socket the protocol runs on: the TCP socket, or the TLS socket over it. */
  socket: Socket;
  private login: ServerLogin | null = null;
  private readonly reader: FrameReader;
  /**
   * pgmux's own queries, in order; the head is on the wire. While any is queued the server's
   * answers are theirs alone: client messages are held until the queue drains, and own queries
   * start only when the client is owed nothing, so the two can never interleave.
   */
  private readonly own: OwnQuery[] = [];
  /** Run once the own-query queue drains (a client left while one was running). */
  private afterOwnQueries: (() => void) | null = null;
  /** Date.now() when the own query at the head of the queue was sent (or queued, while a cancel holds it back). */
  private ownSince = 0;
  /** The own query at the head of the queue is on the wire. */
  private ownHeadSent = false;
  private closeReason = 'closed by server';
  /** A FATAL ErrorResponse of the server went to the attached client (the server closes next). */
  private fatalPassedOn = false;
  private loginError: PgmuxError | null = null;
  /** Login finished; before that a close is a failed login. */
  private loggedIn = false;
  private closeHandled = false;
  /** The server ended this connection (an error on an idle connection), although pgmux closes the socket. */
  private endedByServer = false;
  /** close() was called: the connection is never handed out or reset again. */
  private closing = false;
  /** The user this connection logged in as (its session_authorization at login), once logged in. */
  private loginUser: string | null = null;
  /** Cancel requests sent for this backend whose connection PostgreSQL has not closed yet (see cancel). */
  private cancelsInFlight = 0;
  /** Run when the last cancel in flight is done (the pool holds the server until then). */
  private readonly afterCancels: Array<() => void> = [];
  private pausedForClient = false;
  /** When the current transaction began (performance.now() ms). */
  private xactSince = 0;
  /**
   * The login role is not a superuser but a member of other roles: a function may SET ROLE
   * with nothing in the client's SQL to show it, and no ParameterStatus either, so the role is
   * asked for at the end of every transaction. (A superuser login's switch to another role is
   * reported through is_superuser; a role that is a member of nothing cannot switch.)
   */
  roleMayChangeUnseen = true;

  constructor(
    readonly id: number,
    readonly owner: ServerOwner,
    readonly target: ServerTarget,
    readonly log: Logger,
    /**
     * Settings sent in the startup packet (a client's accepted startup values, see
     * Pool.openServer): the session's RESET values. `startupKey` identifies them.
     */
    readonly startupSettings: ReadonlyMap<string, string> | null = null,
    readonly startupKey = '',
  ) {
    this.reader = new FrameReader(this);
    this.statements = new PreparedCache(target.maxPreparedStatements);
    const raw = net.connect({ host: target.host, port: target.port, noDelay: true });
    this.socket = raw;
    if (target.keepalive) raw.setKeepAlive(true, target.keepidleMs);
    raw.once('connect', () => {
      if (!wantsTls(target.tls.mode)) return this.startLogin(raw);
      negotiateUpstreamTls(raw, target.host, target.tls).then(
        (socket) => this.startLogin(socket),
        (err: NodeJS.ErrnoException) => {
          this.loginError = Errors.serverConnectFailed(this.owner.name, this.label, err.code ?? err.message);
          raw.destroy();
        },
      );
    });
    // Until login starts, failures arrive here; afterwards on the protocol socket.
    raw.on('error', (err: NodeJS.ErrnoException) => {
      this.closeReason = err.code ?? err.message;
    });
    raw.once('close', () => this.onClose());
  }

  private startLogin(socket: Socket): void {
    if (socket.destroyed) return;
    this.login = new ServerLogin(this.target.login, (buf) => socket.write(buf), socket instanceof TLSSocket ? socket : null, this.startupSettings);
    if (socket !== this.socket) {
      this.socket = socket;
      socket.on('error', (err: NodeJS.ErrnoException) => {
        this.closeReason = err.code ?? err.message;
      });
      socket.once('close', () => this.onClose());
    }
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.login.start();
  }

  get label(): string {
    return `${this.target.host}:${this.target.port}`;
  }

  /** performance.now() ms when the attached client's transaction began (its first request); null between transactions. */
  get transactionSince(): number | null {
    if (this.txStatus !== TxStatus.Idle) return this.xactSince;
    return this.link?.busy ? this.link.requestSince : null;
  }

  /** pgmux's own queries are running: the attached client's messages wait. */
  get ownQueryRunning(): boolean {
    return this.own.length > 0;
  }

  /**
   * The own query on the wire, if it has gone unanswered for `limitMs` (a server that stopped answering:
   * its check, reset or parameter sync would hold the connection, and a client, forever); else null.
   */
  ownQueryOverdue(now: number, limitMs: number): string | null {
    if (this.own.length === 0 || !this.loggedIn || now - this.ownSince < limitMs) return null;
    return this.own[0].sql;
  }

  // ---- FrameHandler: bytes from the server ----

  private onData(chunk: Buffer): void {
    if (this.client !== null) this.owner.stats.bytesSent += chunk.length;
    try {
      this.reader.push(chunk);
    } catch (err) {
      // One connection's failure must not take the process down: this server (and its client) go.
      // Closing first, so the client's departure cannot hand it to anyone else.
      this.log.error({ err }, 'internal error handling server data; closing the server connection');
      this.reader.stop();
      this.close('internal error');
      this.client?.fail(Errors.internal((err as Error).message));
      return;
    }
    this.flushToClient();
    const link = this.link;
    if (link !== null && !link.toServer.empty) link.toServer.flush(this.socket); // a stale-plan retry
  }

  onFrame(code: number, buf: Buffer, start: number, end: number): void {
    if (!this.loggedIn) return this.onLoginFrame(code, buf, start, end);
    // Not a PostgreSQL message: garbage from the network (or a broken server). Never passed on.
    if (!isBackendCode(code)) return this.desync(`unknown message type 0x${code.toString(16).padStart(2, '0')} from the server`);
    if (this.own.length > 0) return this.onOwnFrame(code, buf, start, end);
    const link = this.link;
    const client = this.client;
    if (link === null || client === null) return this.onUnattachedFrame(code, buf, start, end);

    let fatal = false;
    switch (code) {
      case BackendCode.ParameterStatus: {
        const [name, value] = readParameterStatus(buf, start, end);
        this.params.set(name, value);
        this.reportedChanged.add(name);
        if (tracks(client.params, name)) client.params.set(name, value);
        // The session's privileges changed, maybe inside a function: take them as the client's.
        if (name === IS_SUPERUSER || name === SESSION_AUTHORIZATION) client.privilegesChanged();
        break;
      }
      case BackendCode.ErrorResponse: {
        const fields = readErrorFields(buf, start, end);
        this.owner.stats.error(fields.get('C') ?? 'XX000');
        // The server is ending the session; if the link passes its reason on, no error of pgmux's follows at the close.
        fatal = (fields.get('V') === 'FATAL' || fields.get('V') === 'PANIC') && (link.ledger.empty || link.ledger.nextReply === Reply.Forward);
        break;
      }
      case BackendCode.CommandComplete:
        // D(EALLOCATE ...) or DI(SCARD ALL): statements went away on the server.
        if (buf[start + 5] === 0x44 && (buf[start + 6] === 0x49 || (buf[start + 6] === 0x45 && buf[start + 7] === 0x41))) {
          client.statementsDeallocated(this, buf.toString('latin1', start + 5, end - 1));
        }
        break;
      case BackendCode.ReadyForQuery:
        if (this.owner.statementMode && buf[start + 5] !== TxStatus.Idle && link.ledger.length === 1) {
          // A transaction block left open: refuse it as PgBouncer does. The client goes (without
          // this ReadyForQuery), and its server is rolled back before anyone else gets it.
          link.withholdReady(buf[start + 5]);
          this.txStatus = link.txStatus;
          this.flushToClient();
          client.fail(Errors.transactionInStatementMode(this.owner.name));
          return;
        }
        break;
      default:
        break;
    }
    const event = link.fromServer(code, buf, start, end);
    if (fatal && event !== LinkEvent.Desync) this.fatalPassedOn = true;
    if (event === LinkEvent.None) return;
    if (event === LinkEvent.Desync) return this.desync(link.desyncReason);
    if (event === LinkEvent.CopyBroken) {
      // The server fails the COPY at the client's request, then closes: nothing more it sends is the client's.
      this.reader.stop();
      this.flushToClient();
      client.copyBroken(link.copyBrokenBy);
      return;
    }

    const previous = this.txStatus;
    this.txStatus = link.txStatus;
    this.countCompleted(link, previous);
    if (link.settled && this.owner.transactionMode) {
      this.flushToClient();
      client.transactionEnded(this);
    }
  }

  /** A request completed (ReadyForQuery): count it, and the transaction if one ended. */
  private countCompleted(link: Attachment, previous: number): void {
    const now = performance.now();
    this.readyAt = Date.now();
    const stats = this.owner.stats;
    stats.query(now - link.requestSince);
    if (previous === TxStatus.Idle) this.xactSince = link.requestSince;
    if (this.txStatus === TxStatus.Idle) stats.transaction(now - this.xactSince);
    link.requestSince = now;
  }

  /** The server's answers no longer match what was sent: nothing about this connection can be trusted. */
  private desync(reason: string): void {
    this.log.error({ reason }, 'server answer does not match the requests sent; closing');
    // Nothing after this in the stream is read: it would reach the client as if nothing had happened.
    this.reader.stop();
    this.cancel();
    this.close(`protocol desynchronisation: ${reason}`);
  }

  canStream(code: number): boolean {
    return (code === BackendCode.DataRow || code === BackendCode.CopyData) && this.link !== null && this.own.length === 0 && this.loggedIn;
  }

  onPiece(_code: number, buf: Buffer, start: number, end: number): void {
    this.link?.streamPiece(buf, start, end);
  }

  onProtocolError(reason: string): void {
    this.close(`protocol error from server: ${reason}`);
  }

  /** Write what the link has for the client; a slow reader pauses the server. */
  flushToClient(): void {
    const client = this.client;
    const link = this.link;
    if (client === null || link === null || link.toClient.empty) return;
    link.clientFlushed();
    if (!link.toClient.flush(client.socket) && !this.pausedForClient) {
      // Slow reader: stop reading from the server until the client's socket drains.
      this.pausedForClient = true;
      this.socket.pause();
      client.socket.once('drain', this.resumeFromClient);
    }
  }

  private readonly resumeFromClient = (): void => {
    if (!this.pausedForClient) return;
    this.pausedForClient = false;
    if (!this.socket.destroyed) this.socket.resume();
  };

  // ---- login ----

  private onLoginFrame(code: number, buf: Buffer, start: number, end: number): void {
    const login = this.login;
    if (login === null) return;
    let ready: boolean;
    try {
      ready = login.onMessage(code, buf, start, end);
    } catch (err) {
      this.loginError = err instanceof PgmuxError ? err : Errors.serverConnectFailed(this.owner.name, this.label, (err as Error).message);
      this.reader.stop();
      this.socket.destroy();
      return;
    }
    if (!ready) return;
    this.login = null;
    this.loggedIn = true;
    for (const [k, v] of login.params) {
      this.params.set(k, v);
      this.reportedAtLogin.add(k);
    }
    this.params.set(ROLE, NO_ROLE);
    this.loginUser = login.params.get(SESSION_AUTHORIZATION) ?? null;
    this.processId = login.processId;
    this.secretKey = login.secretKey;
    this.txStatus = buf[start + 5];
    this.log.debug({ processId: this.processId }, 'server login complete');
    // Whether a function could SET ROLE here without pgmux seeing it in the SQL (see roleMayChangeUnseen).
    this.runOwnQuery(ROLE_SWITCH_CHECK_SQL, (error, rows) => {
      this.roleMayChangeUnseen = error !== null || rows[0]?.[0] !== 'f';
      this.reset([this.target.connectQuery ?? null]);
    });
  }

  // ---- attach / detach ----

  /** Give this idle server to a client: sync parameters, then tell the client it may send. */
  attach(client: ServerClient): void {
    this.client = client;
    this.link = new Attachment(this.statements, this.owner.stats, client.router, client.replay, this.txStatus);
    this.bringInStep(client, () => client.onServerReady(this));
  }

  /** Whether this server's parameters are known to be what `client` expects. */
  inStepWith(client: ServerClient): boolean {
    return this.syncedVersion === this.params.version && this.syncedSignature === client.params.signature;
  }

  /**
   * Make this server's parameters what the attached client expects (one query of SET/RESET, its
   * answers swallowed), then call `ready`. A refused setting (a bad startup value) closes the
   * client instead; the server is fine and goes back to the pool through the client's departure.
   */
  bringInStep(client: ServerClient, ready: () => void): void {
    // Same settings as the last client it was synced for, and nothing changed here since: ready.
    if (this.inStepWith(client)) return ready();
    const sync = this.parameterSyncQuery(client.params);
    if (sync === null) {
      this.markSynced(client.params);
      return ready();
    }
    this.runOwnQuery(sync.sql, (error) => {
      if (this.client !== client) return; // the client left meanwhile
      if (error !== null) {
        client.fail(error);
        return;
      }
      for (const [k, v] of sync.applied) {
        if (v === null) {
          this.params.delete(k);
          this.customParams.delete(k);
        } else if (!this.reportedAtLogin.has(k)) {
          // (A reported one is set already, to the value the server reported: `DateStyle = German`
          // is reported as "German, DMY".)
          this.params.set(k, v);
          if (this.resettable(k)) this.customParams.add(k);
        }
      }
      this.markSynced(client.params);
      ready();
    });
  }

  private markSynced(wanted: ParamMap): void {
    this.syncedSignature = wanted.signature;
    this.syncedVersion = this.params.version;
  }

  /**
   * Run a query of pgmux's own (parameter sync, settings capture, pin check, reset, check);
   * rows are text. Only when the attached client is owed nothing: its answers and the client's
   * can then never interleave.
   */
  runOwnQuery(sql: string, done: OwnQueryDone): void {
    if (this.link !== null && this.link.busy) throw new Error('pgmux query started while the client is owed answers');
    this.statements.unnamedOwner = null; // a simple Query destroys the unnamed statement
    this.own.push({ sql, done, error: null, rows: [] });
    if (this.own.length > 1) return;
    // Queued (the client's messages held) but not sent while a cancel is on its way: it would cancel pgmux's query.
    if (this.cancelsInFlight === 0) this.sendOwnHead();
    else this.ownSince = Date.now();
  }

  private sendOwnHead(): void {
    this.ownSince = Date.now();
    this.ownHeadSent = true;
    this.socket.write(serialize.query(this.own[0].sql));
  }

  /**
   * The settings the server reports as set in this session (`source = 'session'`), captured at the
   * end of a transaction that changed some: this server now has exactly these beyond its defaults.
   */
  settingsCaptured(captured: ReadonlyMap<string, string>): void {
    for (const [name, value] of captured) {
      this.params.set(name, value);
      if (this.resettable(name)) this.customParams.add(name);
    }
    for (const name of [...this.customParams]) {
      if (!captured.has(name)) {
        this.customParams.delete(name);
        this.params.delete(name);
      }
    }
    for (const name of [...this.reportedChanged]) if (!captured.has(name)) this.reportedChanged.delete(name);
  }

  /** Whether `name` is set in this server's session (pgmux's sync, or a client's SET captured), not at its default. */
  hasSessionValue(name: string): boolean {
    return this.customParams.has(name) || this.reportedChanged.has(name);
  }

  /** The attached client's role, found by asking (see roleMayChangeUnseen). */
  roleChanged(role: string): void {
    this.params.set(ROLE, role);
  }

  /** A setting that is undone with RESET for a client that does not want it (the role has its own rule). */
  private resettable(name: string): boolean {
    return !this.reportedAtLogin.has(name) && name !== ROLE;
  }

  /** The parameters this server reports (ParameterStatus), with their current values: what a client is told at login. */
  reportedParams(): Map<string, string> {
    const reported = new Map<string, string>();
    for (const [name, value] of this.params) if (this.reportedAtLogin.has(name)) reported.set(name, value);
    return reported;
  }

  /** Whether the server reports this parameter itself (ParameterStatus), so its value here is always current. */
  reports(name: string): boolean {
    return this.reportedAtLogin.has(name);
  }

  /** The client is done with this server (transaction boundary, or it left cleanly). */
  detach(): void {
    const client = this.client;
    this.client = null;
    this.link?.clear();
    this.link = null;
    if (this.pausedForClient) {
      this.pausedForClient = false;
      client?.socket.off('drain', this.resumeFromClient);
      if (!this.socket.destroyed) this.socket.resume();
    }
  }

  /**
   * The attached client disconnected. A server with a request still running cannot be proven
   * clean, so it is cancelled and closed; one idle in a transaction is rolled back; a clean
   * one goes back to the pool.
   */
  clientGone(client: ServerClient, resetQuery: string | null): void {
    if (this.client !== client) return;
    const busy = this.link?.busy ?? false;
    this.detach();
    if (busy) {
      this.cancel();
      this.close('client disconnected with a request in progress');
      return;
    }
    if (this.own.length > 0) {
      // Only pgmux's own query is running (a settings capture or pin check): let it finish, then clean up.
      this.afterOwnQueries = () => this.finishAfterClient(resetQuery);
      return;
    }
    this.finishAfterClient(resetQuery);
  }

  private finishAfterClient(resetQuery: string | null): void {
    if (this.txStatus !== TxStatus.Idle) {
      this.reset(['ROLLBACK', resetQuery]);
      return;
    }
    this.reset([resetQuery]);
  }

  /** Run cleanup queries (null entries skipped), then hand the server back as free. */
  reset(queries: Array<string | null>): void {
    if (this.closing) return; // its close is reported to the pool when the socket closes
    const list = queries.filter((q): q is string => q !== null && q !== '');
    if (list.length === 0) {
      this.owner.serverFree(this);
      return;
    }
    const runNext = (i: number): void => {
      if (i === list.length) {
        if (this.txStatus !== TxStatus.Idle) {
          this.close('still in a transaction after reset');
          return;
        }
        const joined = list.join(';');
        if (/discard\s+all|reset\s+all/i.test(joined)) {
          // Back to the server's defaults: forget the values pgmux or a client had set.
          for (const name of this.customParams) this.params.delete(name);
          this.customParams.clear();
          this.reportedChanged.clear();
          // RESET ALL leaves the role alone; DISCARD ALL does not (session_authorization is reported).
          this.params.set(ROLE, /discard\s+all/i.test(joined) ? NO_ROLE : (this.params.get(ROLE) ?? NO_ROLE));
        }
        if (/discard\s+all|deallocate\s+all/i.test(joined)) {
          this.statements.clear();
        }
        this.owner.serverFree(this);
        return;
      }
      this.runOwnQuery(list[i], (error) => {
        if (error !== null) {
          this.log.warn({ query: list[i], sqlstate: error.sqlstate, err: error.message }, 'reset query failed; closing server connection');
          this.close('reset query failed');
          return;
        }
        runNext(i + 1);
      });
    };
    runNext(0);
  }

  /**
   * SET/RESET statements that make this server's parameters match what the client expects.
   * The settings as the login user, then the session user (setting it resets the role), then the role.
   */
  private parameterSyncQuery(wanted: ReadonlyMap<string, string>): { sql: string; applied: Array<[string, string | null]> } | null {
    let sql = '';
    const applied: Array<[string, string | null]> = [];
    const set = (name: string, value: string): void => {
      // set_config takes the value as the server reported it, list-valued settings (search_path) included.
      sql += `SELECT pg_catalog.set_config(${quoteLiteral(name)}, ${quoteLiteral(value)}, false);`;
      applied.push([name, value]);
    };
    const becomeUser = (user: string): void => {
      set(SESSION_AUTHORIZATION, user);
      userHere = user;
      roleHere = NO_ROLE; // setting the session user resets the role
      applied.push([ROLE, NO_ROLE]);
    };
    let userHere = this.params.get(SESSION_AUTHORIZATION);
    let roleHere = this.params.get(ROLE) ?? NO_ROLE;
    const changed = [...wanted].filter(([name, value]) => name !== SESSION_AUTHORIZATION && name !== ROLE && this.params.get(name) !== value);
    const resets = [...this.customParams].filter((name) => !wanted.has(name));
    // The settings first, as the user the connection logged in as: one set as a superuser before a SET ROLE (by the
    // client, or by the client before) cannot be set or reset under that role (42501 "permission denied to set
    // parameter", found by the regression suite's parallel schedule: session_replication_role left by one test, the
    // next test's client closed). The client's session user and role come last.
    const loginUser = this.loginUser;
    const asOther = roleHere !== NO_ROLE || userHere !== loginUser;
    if (loginUser !== null && asOther && (changed.length > 0 || resets.length > 0)) becomeUser(loginUser);
    for (const [name, value] of changed) {
      // A partial DateStyle ("ymd", "German") merges with the current value: start from the default, as a
      // fresh backend would.
      const base = name === 'DateStyle' ? this.owner.defaultParams?.get(name) : undefined;
      if (base !== undefined && base !== value) set(name, base);
      set(name, value);
    }
    for (const name of resets) {
      sql += `RESET ${quoteIdent(name)};`;
      applied.push([name, null]);
    }
    const user = wanted.get(SESSION_AUTHORIZATION);
    if (user !== undefined && user !== userHere) becomeUser(user);
    const role = wanted.get(ROLE) ?? NO_ROLE;
    if (role !== roleHere) set(ROLE, role);
    return sql === '' ? null : { sql, applied };
  }

  // ---- pgmux's own queries ----

  private onOwnFrame(code: number, buf: Buffer, start: number, end: number): void {
    const query = this.own[0];
    switch (code) {
      case BackendCode.ErrorResponse:
        query.error = new UpstreamError(readErrorFields(buf, start, end));
        return;
      case BackendCode.ParameterStatus: {
        const [name, value] = readParameterStatus(buf, start, end);
        this.params.set(name, value);
        if (this.loggedIn) this.reportedChanged.add(name);
        const client = this.client;
        if (client !== null && tracks(client.params, name)) client.params.set(name, value);
        return;
      }
      case BackendCode.DataRow:
        query.rows.push(readDataRow(buf, start));
        return;
      case BackendCode.ReadyForQuery: {
        this.txStatus = buf[start + 5];
        if (this.link !== null) this.link.txStatus = this.txStatus;
        this.own.shift();
        this.ownHeadSent = false;
        if (this.own.length > 0 && this.cancelsInFlight === 0) this.sendOwnHead();
        query.done(query.error, query.rows);
        if (this.own.length > 0) return;
        if (this.afterOwnQueries !== null) {
          const after = this.afterOwnQueries;
          this.afterOwnQueries = null;
          after();
        } else {
          this.client?.ownQueriesDrained(this);
        }
        return;
      }
      default:
        return; // CommandComplete, RowDescription, notices: pgmux's own business, not the client's
    }
  }

  private onUnattachedFrame(code: number, buf: Buffer, start: number, end: number): void {
    switch (code) {
      case BackendCode.ParameterStatus: {
        const [name, value] = readParameterStatus(buf, start, end);
        this.params.set(name, value);
        return;
      }
      case BackendCode.ErrorResponse: {
        const fields = readErrorFields(buf, start, end);
        this.log.warn({ sqlstate: fields.get('C'), err: fields.get('M') }, 'idle server connection got an error');
        this.close(`server error ${fields.get('C')}: ${fields.get('M')}`);
        this.endedByServer = true; // e.g. 57P01 at an upstream shutdown: a loss, though pgmux closes the socket
        return;
      }
      default:
        return; // notices and notifications for nobody
    }
  }

  // ---- cancel / close ----

  /**
   * Ask the server to cancel what this connection is running, on a separate connection; `done` runs when that
   * connection has closed. PostgreSQL closes it only after it has signalled the backend, and until then the cancel
   * can still land on whatever the backend runs next: a server with a cancel in flight is not handed to another
   * client, nor given pgmux's own queries (see beingCanceled, whenCancelsDone), or the next client's query would be
   * the one cancelled.
   */
  cancel(done?: () => void): void {
    if (this.processId === 0) {
      done?.();
      return;
    }
    this.cancelsInFlight++;
    const socket = net.connect({ host: this.target.host, port: this.target.port });
    socket.on('connect', () => socket.end(serialize.cancel(this.processId, this.secretKey)));
    socket.on('error', (err) => this.log.warn({ err: err.message }, 'cancel request to server failed'));
    // A cancel connection that hangs holds the server at most this long.
    socket.setTimeout(CANCEL_TIMEOUT_MS, () => socket.destroy());
    socket.on('close', () => {
      this.cancelsInFlight--;
      done?.();
      if (this.cancelsInFlight > 0 || this.closing) return;
      // An own query queued meanwhile (see runOwnQuery) goes out now.
      if (this.own.length > 0 && !this.ownHeadSent) this.sendOwnHead();
      for (const next of this.afterCancels.splice(0)) next();
    });
  }

  /** A cancel request for this backend is still on its way: the server must not serve anything else yet. */
  get beingCanceled(): boolean {
    return this.cancelsInFlight > 0;
  }

  /** Cancel requests on their way (SHOW POOLS sv_active_cancel). */
  get activeCancels(): number {
    return this.cancelsInFlight;
  }

  /** Runs `next` once no cancel is in flight any more (at once if none is); never once the connection is closing. */
  whenCancelsDone(next: () => void): void {
    if (this.cancelsInFlight > 0) this.afterCancels.push(next);
    else if (!this.closing) next();
  }

  close(reason: string): void {
    this.closing = true;
    if (this.socket.destroyed) return;
    this.closeReason = reason;
    if (!this.socket.destroyed) {
      if (this.loggedIn && this.socket.writable) {
        // Terminate, then wait for the backend to close its end: until it has exited it still counts against the
        // server's max_connections, so the shared caps count it too (Pool.serverSlots) rather than let another open
        // in its place at once (max_db_connections exceeded for a moment; at the server's own limit, "too many
        // clients"). A backend that does not go within CLOSE_WAIT_MS is cut off.
        this.socket.end(serialize.end());
        setTimeout(destroyIfOpen, CLOSE_WAIT_MS, this.socket).unref();
      } else {
        this.socket.destroySoon();
      }
    }
  }

  private onClose(): void {
    if (this.closeHandled) return;
    this.closeHandled = true;
    const midMessage = this.reader.streaming && this.client !== null;
    this.reader.stop();
    if (!this.loggedIn) {
      this.login = null;
      this.owner.serverLoginFailed(this, this.loginError ?? Errors.serverConnectFailed(this.owner.name, this.label, this.closeReason));
      return;
    }
    const client = this.client;
    const own = this.own.splice(0);
    this.afterOwnQueries = null;
    this.detach();
    this.log.debug({ reason: this.closeReason }, 'server connection closed');
    if (!this.closing || this.endedByServer) {
      this.owner.stats.serversLost++;
      this.owner.stats.lastServerLoss = this.closeReason;
    }
    // After the server's own FATAL the client closes as it would directly: a second FATAL (08006, "server
    // connection lost") after PostgreSQL's was one PostgreSQL never sends.
    if (client !== null) client.onServerLost(Errors.serverConnectionLost(this.owner.name, this.closeReason), midMessage || this.fatalPassedOn);
    const lost = new UpstreamError(new Map([['C', '08006'], ['M', `server connection closed: ${this.closeReason}`]]));
    for (const query of own) query.done(lost, []);
    this.owner.serverClosed(this);
  }
}

/** How long a cancel request's connection may stay open before pgmux gives up on it (see cancel). */
const CANCEL_TIMEOUT_MS = 5000;

/** How long a server connection pgmux closed may take to be closed by the backend (see close). */
const CLOSE_WAIT_MS = 1000;

function destroyIfOpen(socket: Socket): void {
  if (!socket.destroyed) socket.destroy();
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}
