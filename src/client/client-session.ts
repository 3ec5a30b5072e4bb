/**
 * One client connection, from its first byte to its close: the state machine, and forwarding, holding and closing
 * once logged in. Each phase has a module of its own: client-startup.ts (the bytes before the startup packet, TLS,
 * the packet's checks), client-login.ts (authentication, joining a pool, the greeting), client-parameters.ts (the
 * values the client expects), message-limits.ts and message-screen.ts (what a client may send, what pgmux drops or
 * refuses itself), held-requests.ts (answers when no server comes); transaction mode adds transaction-intercepts.ts
 * and boundary-checks.ts.
 *
 * States: startup → authenticating → (logging-in: waiting for a server to learn parameters)
 * → idle ⇄ waiting (queued for a server) → active (attached to a server) → closed.
 *
 * Hot path: once logged in, client bytes are framed in place; frames are counted (requests in
 * flight) and forwarded to the attached server as views, one write per chunk. While the client
 * waits for a server its frames are held (views, no copies) and its socket is paused.
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { PgmuxConfig } from '../config/index.js';
import { Errors, PgmuxError } from '../errors.js';
import type { Pool, PoolClient } from '../pool/pool.js';
import { NOT_QUEUED, queueLink, type QueueLink } from '../pool/wait-queue.js';
import { readyForQuery } from '../protocol/backend-messages.js';
import { FrontendCode, TxStatus } from '../protocol/codes.js';
import { FrameReader, type FrameHandler, type MessageLimits } from '../protocol/frame-reader.js';
import { buildQuery, readQuery } from '../protocol/frontend-messages.js';
import { MalformedMessage } from '../protocol/malformed.js';
import { ParamMap } from '../server/param-map.js';
import type { ServerConnection } from '../server/server-connection.js';
import { BoundaryChecks, type BoundaryHost } from './boundary-checks.js';
import type { AdminConnection, ClientHost } from './client-host.js';
import type { RegisteredClient } from './client-info.js';
import { ClientLogin, type LoginSession } from './client-login.js';
import { resetTargets, resetToStartup } from './client-parameters.js';
import { ClientState } from './client-state.js';
import { admitStartup, StartupReader, tlsSocketOver, type StartupMessage } from './client-startup.js';
import { failedRequestsReply } from './held-requests.js';
import { messageLimit } from './message-limits.js';
import { Screened, screenMessage } from './message-screen.js';
import { queryWithStartupValues } from './reset-to-startup.js';
import { SegmentReplay } from './segment-replay.js';
import { SessionState } from './session-state.js';
import type { PinKind } from './sql-classifier.js';
import { NO_SERVER_STARTUP, NO_SETTINGS, overriddenCheckQuery, type ServerStartup } from './startup-settings.js';
import type { StatementRouter } from './statement-router.js';
import { TransactionIntercepts, type InterceptHost } from './transaction-intercepts.js';

/**
 * The session a client socket carries. Its listeners are the same three functions for every client (static methods
 * below, which find the session here), not closures made per connection: an idle client costs less memory.
 */
const SESSION = Symbol('pgmux client session');
type SessionSocket = Socket & { [SESSION]: ClientSession };

export class ClientSession implements FrameHandler, MessageLimits, PoolClient, RegisteredClient, LoginSession, InterceptHost, BoundaryHost {
  state: ClientState = ClientState.Startup;
  /** Its link in its pool's wait queue: made the first time it waits (waitQueueLink). */
  private ownWaitLink: QueueLink<PoolClient> | null = null;
  server: ServerConnection | null = null;
  waitingSince = 0;
  waitStartedAt = 0;
  waitNotified = false;
  /** Holds a max_client_logins_in_progress slot (the registry sets and clears it). */
  holdsLoginSlot = false;
  /** Its place in the registry's queue of logins waiting for a slot (made by the registry if it queues the client). */
  loginLink: QueueLink<RegisteredClient> | null = null;
  readonly params = new ParamMap();
  pool: Pool | null = null;
  user = '';
  database = '';
  applicationName = '';
  readonly connectedAt = Date.now();
  lastActive = Date.now();
  processId = 0;
  secretKey = 0;
  /** Logged in to the admin console (database pgbouncer / pgmux) instead of a pool. */
  admin: AdminConnection | null = null;

  get waitLink(): QueueLink<PoolClient> {
    return this.ownWaitLink ?? NOT_QUEUED;
  }

  waitQueueLink(): QueueLink<PoolClient> {
    this.ownWaitLink ??= queueLink<PoolClient>(this);
    return this.ownWaitLink;
  }

  get isAdmin(): boolean {
    return this.admin !== null;
  }

  /** Until the startup packet; then the frame reader takes the bytes. */
  private startup: StartupReader | null = new StartupReader();
  private reader: FrameReader | null = null;
  /** From the startup packet to the greeting. */
  private login: ClientLogin | null = null;
  /** The settings the client asked for at startup (canonical names): what RESET returns to. */
  startupParams: ReadonlyMap<string, string> = NO_SETTINGS;
  /** Startup settings a server may be opened with for this client (see Pool.openServer). */
  serverStartup: ServerStartup = NO_SERVER_STARTUP;
  /** Frames held while no server is ready; views into received chunks. */
  private readonly held: Buffer[] = [];
  /**
   * Transaction mode: the configuration in effect when the client joined its pool (its session_state_* policies and
   * max_prepared_statements); null in session mode. The machinery below is made from it when first needed
   * (transaction()): a client that logged in and has sent nothing yet holds none of it.
   */
  private transactionConfig: PgmuxConfig | null = null;
  /** Transaction mode: the current segment's messages, for the stale-plan retry. */
  private segmentReplay: SegmentReplay | null = null;
  /** Transaction mode: what pgmux does with messages before they are forwarded. */
  private intercepts: TransactionIntercepts | null = null;
  /** Transaction mode: what transactions leave on the server (null in session mode, where nothing moves). */
  private checks: BoundaryChecks | null = null;
  /** After pgmux failed an unsynced extended-protocol batch: drop messages up to the next Sync, as PostgreSQL does. */
  private skipUntilSync = false;
  private pausedForServer = false;
  /** The link settled while a client message was being streamed to this server: released after its last piece. */
  private releaseAfterStream: ServerConnection | null = null;
  /** Terminate came behind requests still owed answers: it went on to the server, which closes after them. */
  private terminating = false;
  /** Reading paused while queued for a server. */
  private pausedForWait = false;
  /** Inside onData: the chunk's messages are being handled and will be flushed together at its end. */
  private inChunk = false;
  private childLog: Logger | null = null;

  /**
   * This client's logger, made on first use: most clients never log anything of their own, and
   * a pino child per connection would cost an idle client more memory than everything else here.
   */
  get log(): Logger {
    this.childLog ??= this.baseLog.child(this.user === '' ? { client: this.id } : { client: this.id, user: this.user, db: this.database });
    return this.childLog;
  }
  private closeReason = 'client closed the connection';

  /** The socket the protocol runs on: TCP, or TLS once upgraded. */
  socket: Socket;
  /** The TCP socket (kept for addresses, and to survive errors under a TLS socket). */
  private readonly tcp: Socket;
  /** DER of the certificate pgmux presented on this connection's TLS handshake (channel binding). */
  private tlsCertificateDer: Buffer | null = null;

  constructor(
    readonly id: number,
    socket: Socket,
    private readonly host: ClientHost,
    private readonly baseLog: Logger,
    /** Accepted on the unix-domain socket (unix_socket_dir): local, never TLS, as PostgreSQL treats it. */
    readonly viaUnixSocket = false,
  ) {
    this.tcp = socket;
    this.socket = socket;
    this.bindSocket(socket);
  }

  private bindSocket(socket: Socket): void {
    (socket as SessionSocket)[SESSION] = this;
    socket.on('data', ClientSession.onSocketData);
    socket.on('error', ClientSession.onSocketError);
    socket.on('close', ClientSession.onSocketClose);
  }

  private static onSocketData(this: Socket, chunk: Buffer): void {
    (this as SessionSocket)[SESSION].onData(chunk);
  }

  private static onSocketError(this: Socket, err: NodeJS.ErrnoException): void {
    (this as SessionSocket)[SESSION].closeReason = `socket error: ${err.code ?? err.message}`;
  }

  private static onSocketClose(this: Socket): void {
    (this as SessionSocket)[SESSION].onClose();
  }

  get encrypted(): boolean {
    return this.socket instanceof TLSSocket;
  }

  get label(): string {
    if (this.viaUnixSocket) return 'unix';
    return `${this.tcp.remoteAddress ?? '?'}:${this.tcp.remotePort ?? '?'}`;
  }

  // ---- bytes from the client ----

  /**
   * The connection's error boundary: whatever goes wrong while handling this client's bytes
   * closes this client only (08P01 for a malformed message, XX000 for a bug in pgmux).
   */
  private onData(chunk: Buffer): void {
    // Login work (the startup packet, password messages) runs within client_login_slice per event-loop turn, so
    // a login storm cannot hold up the traffic of clients already logged in (LoginBudget keeps the order).
    if (this.state === ClientState.Startup || this.state === ClientState.Authenticating) {
      this.host.loginBudget.run(() => this.onDataNow(chunk));
      return;
    }
    this.onDataNow(chunk);
  }

  private onDataNow(chunk: Buffer): void {
    try {
      this.handleData(chunk);
    } catch (err) {
      this.inChunk = false;
      this.failOn(err);
    }
  }

  /** Close this client for an exception raised while handling it. */
  failOn(err: unknown): void {
    if (err instanceof MalformedMessage) return this.fail(Errors.malformedMessage(err.message));
    if (err instanceof PgmuxError) return this.fail(err);
    this.log.error({ err }, 'internal error handling a client connection; closing it');
    this.fail(Errors.internal(err instanceof Error ? err.message : String(err)));
  }

  private handleData(chunk: Buffer): void {
    if (this.state === ClientState.Closed) return; // closing: what still comes is read and dropped (see fail)
    if (this.pool !== null) this.pool.stats.bytesReceived += chunk.length;
    if (this.reader !== null) {
      this.inChunk = true;
      this.reader.push(chunk);
      this.inChunk = false;
      this.flushToServer();
      return;
    }
    this.onStartupData(chunk);
  }

  private onStartupData(chunk: Buffer): void {
    // TLS can still be negotiated: not yet encrypted, a certificate configured, and not a unix socket (PostgreSQL answers 'N' there).
    const tlsOffered = !this.encrypted && !this.viaUnixSocket && this.host.clientTls.context !== null;
    const step = (this.startup as StartupReader).read(chunk, this.socket, tlsOffered);
    switch (step.kind) {
      case 'wait':
        return;
      case 'tls':
        return this.upgradeToTls(step.prefix);
      case 'refused':
        return this.fail(step.error);
      case 'cancel':
        this.host.cancel(step.processId, step.secretKey);
        this.closeReason = 'cancel request';
        this.socket.end();
        return;
      case 'startup':
        this.onStartup(step.packet);
        if (step.rest.length > 0 && this.reader !== null) this.handleData(step.rest);
        return;
    }
  }

  private upgradeToTls(prefix: Buffer | null): void {
    const tls = this.host.clientTls;
    // The certificate this handshake presents: SCRAM-SHA-256-PLUS binds to it even if a reload
    // rotates the certificate before the client has authenticated.
    this.tlsCertificateDer = tls.certificateDer;
    this.socket = tlsSocketOver(this.tcp, prefix, tls);
    this.bindSocket(this.socket);
  }

  private onStartup(packet: StartupMessage): void {
    const params = packet.params;
    this.user = params.get('user') as string;
    this.database = params.get('database') as string;
    this.applicationName = params.get('application_name') ?? '';
    this.childLog = null; // later lines carry user and db
    this.startup = null;
    this.reader = new FrameReader(this, this);
    const admitted = admitStartup(packet, this, this.host);
    if (admitted instanceof PgmuxError) return this.fail(admitted);
    // Most clients ask for no settings: they share one empty map.
    const settings = admitted.settings.settings;
    this.startupParams = settings.size === 0 ? NO_SETTINGS : settings;
    this.serverStartup = admitted.settings.forServer;
    const certificate = this.encrypted ? this.tlsCertificateDer : null;
    this.login = new ClientLogin(this, this.host, this.baseLog, admitted.dbConfig, overriddenCheckQuery(admitted.settings.overridden), certificate);
    this.login.begin(admitted.authType);
  }

  /** MessageLimits: how long a message of this type may be, in the state the client is in now. */
  maxMessageLength(code: number): number {
    return messageLimit(this.state, code, this.login);
  }

  loginFinished(): void {
    this.login = null;
  }

  /** Authenticated: the pool's client from now on; transaction mode brings the machinery that moves it between servers. */
  joinPool(pool: Pool): void {
    this.pool = pool;
    pool.clients.add(this);
    if (pool.transactionMode) this.transactionConfig = this.host.config;
  }

  /**
   * Transaction mode's machinery (intercepts, boundary checks, segment replay), made the first time a message or a
   * server needs it, from the configuration the client joined under. Only in transaction mode.
   */
  private transaction(): TransactionIntercepts {
    if (this.intercepts !== null) return this.intercepts;
    const config = this.transactionConfig as PgmuxConfig;
    const session = new SessionState(config);
    this.checks = new BoundaryChecks(this, session);
    this.segmentReplay = new SegmentReplay();
    this.intercepts = new TransactionIntercepts(this, session, config.max_prepared_statements);
    return this.intercepts;
  }

  /** Transaction mode: what transactions leave on the server. */
  private get boundary(): BoundaryChecks {
    this.transaction();
    return this.checks as BoundaryChecks;
  }

  // ---- FrameHandler: messages after the startup packet ----

  onFrame(code: number, buf: Buffer, start: number, end: number): void {
    switch (this.state) {
      case ClientState.Authenticating:
        return (this.login as ClientLogin).onMessage(code, buf, start, end);
      case ClientState.Closed:
      case ClientState.Startup:
        return;
      default:
        break;
    }
    if (code === FrontendCode.Terminate) {
      this.closeReason = 'client sent Terminate';
      this.reader?.stop();
      if (this.admin === null && this.owesAnswers) {
        // PostgreSQL answers what came before a Terminate before it reads it: the Terminate follows those requests
        // to the server, and the client closes when the server does. (pgmux closed at once: their answers were
        // lost and the requests cancelled, even a COMMIT sent just before the Terminate.)
        this.terminating = true;
        this.forward(buf, start, end);
        return;
      }
      this.socket.end();
      return;
    }
    if (this.admin !== null) return this.admin.onFrame(code, buf, start, end);
    // Only while active is the server's link the client's: it says what the server skips, and whether COPY IN runs.
    const link = this.state === ClientState.Active ? (this.server?.link ?? null) : null;
    switch (screenMessage(code, end - start, this.state, link, this.transactionConfig !== null, this.skipUntilSync)) {
      case Screened.Pass:
        break;
      case Screened.Drop:
        return;
      case Screened.EndSkip:
        this.skipUntilSync = false;
        this.socket.write(readyForQuery(TxStatus.Idle));
        return;
      case Screened.UnknownType:
        // As PostgreSQL answers it; not forwarded, so no server connection is lost over it.
        return this.fail(Errors.protocolViolation(`invalid frontend message type ${code}`));
      case Screened.BreaksCopy:
        return this.copyBroken(code);
      case Screened.FlushWithBody:
        return this.fail(Errors.malformedMessage('Flush message with a body'));
    }
    if (this.transactionConfig !== null && this.transaction().intercept(code, buf, start, end)) return;
    this.forward(buf, start, end);
  }

  /** Transaction mode: the client's named statements, carried from server to server (ServerClient: for its link). */
  get router(): StatementRouter | null {
    return this.transactionConfig === null ? null : this.transaction().router;
  }

  /** Transaction mode: the current segment's messages, for the stale-plan retry (ServerClient: for its link). */
  get replay(): SegmentReplay | null {
    if (this.transactionConfig === null) return null;
    this.transaction();
    return this.segmentReplay;
  }

  // ---- InterceptHost ----

  get idle(): boolean {
    return this.state === ClientState.Idle && this.held.length === 0;
  }

  /** Messages wait to be sent to a server (LoginSession). */
  get holding(): boolean {
    return this.held.length > 0;
  }

  skipToSync(): void {
    this.skipUntilSync = true;
  }

  canStream(code: number): boolean {
    // Only COPY data passes through in pieces (while a server is attached); messages pgmux may
    // need to read or rewrite (Query, Parse, Bind ...) are taken whole.
    // Not while pgmux's own queries run: the pieces would go out between their bytes (held instead, whole).
    return this.state === ClientState.Active && code === FrontendCode.CopyData && !(this.server as ServerConnection).ownQueryRunning;
  }

  /** What DISCARD ALL leaves: the pool's defaults and this client's startup settings. Returns the reported parameters that changed. */
  resetParamsToStartup(): Array<[string, string]> {
    return resetToStartup(this.params, this.startupParams, this.pool?.defaultParams ?? null);
  }

  onPiece(_code: number, buf: Buffer, start: number, end: number, _first: boolean, last: boolean): void {
    // COPY data streamed through while a server is attached (see canStream): the server stays attached until the
    // message's last piece (transactionEnded waits for it).
    const server = this.server as ServerConnection;
    server.link?.fromClient(FrontendCode.CopyData, buf, start, end);
    if (last && this.releaseAfterStream === server) {
      this.releaseAfterStream = null;
      this.flushToServer(); // the message's last bytes go out before the server can go back to the pool
      if (this.state === ClientState.Active && this.server === server) this.transactionEnded(server);
    }
  }

  onProtocolError(reason: string): void {
    this.fail(Errors.protocolViolation(reason));
  }

  forward(buf: Buffer, start: number, end: number): void {
    if (this.state === ClientState.Active && !(this.server as ServerConnection).ownQueryRunning) {
      this.sendToServer(buf, start, end);
      return;
    }
    if (this.state === ClientState.Idle && this.host.draining) {
      // Between transactions, asking for a server to start another: the answer is that pgmux is stopping.
      this.fail(Errors.adminShutdown());
      return;
    }
    // Waiting for a server, or pgmux's own queries are running on it: held (views, no copies).
    this.held.push(start === 0 && end === buf.length ? buf : buf.subarray(start, end));
    if (this.state === ClientState.Idle) {
      this.state = ClientState.Waiting;
      (this.pool as Pool).acquire(this);
      // Usually an idle server was free and the client is active already; only a client left
      // queued stops reading (what it sends meanwhile would pile up in `held`).
      if (this.state === ClientState.Waiting && !this.pausedForWait) {
        this.pausedForWait = true;
        this.socket.pause();
      }
    }
  }

  /** To the attached server, through the link (which routes statements and records what is owed). */
  private sendToServer(buf: Buffer, start: number, end: number): void {
    const link = (this.server as ServerConnection).link;
    if (link === null) return;
    // A Flush with a body is refused (see onFrame) unless a COPY IN, which ignores it, may be in progress.
    if (buf[start] === FrontendCode.Flush && end - start !== 5 && !link.copyMayBeOpen) throw new MalformedMessage('Flush message with a body');
    const refusal = start === 0 ? this.intercepts?.takeRefusal(buf) : undefined;
    if (refusal !== undefined) return link.injectFailure(refusal.kind, buf, refusal.error);
    // RESET needs the client's startup values put back (reset-to-startup.ts). In transaction mode the classifier
    // has seen the query already: only one that set something is decoded again (a RESET counts as setting).
    if (buf[start] === FrontendCode.Query && (this.transactionConfig === null || this.boundary.session.settingsChanged)) {
      const server = this.server as ServerConnection;
      const targets = resetTargets(this.startupParams, server.startupSettings, this.pool?.defaultParams ?? null);
      if (targets.size > 0) {
        const query = queryWithStartupValues(readQuery(buf, start, end), targets, server.startupSettings);
        if (query !== null) return link.sendExtendedQuery(buildQuery(query.sql), query.own);
      }
    }
    link.fromClient(buf[start], buf, start, end);
  }

  /**
   * Send what was held while no server was ready (or pgmux's own queries ran). Called from the
   * server's side too, so a malformed held message is this client's failure, caught here.
   */
  private sendHeld(): void {
    try {
      for (const buf of this.held) this.sendToServer(buf, 0, buf.length);
    } catch (err) {
      this.held.length = 0;
      this.failOn(err);
      return;
    }
    this.held.length = 0;
    // Inside onData the rest of the chunk is still to come: it goes out with these, in one write.
    if (!this.inChunk) this.flushToServer();
  }

  private flushToServer(): void {
    const server = this.server;
    if (server === null || this.state !== ClientState.Active) return;
    const link = server.link;
    if (link === null) return;
    // pgmux's own replies, when it answered without the server: once the client asked for answers (Attachment.ownRepliesDue).
    if (link.ownRepliesDue) server.flushToClient();
    if (link.toServer.empty) return;
    this.lastActive = Date.now();
    if (!link.toServer.flush(server.socket) && !this.pausedForServer) {
      this.pausedForServer = true;
      this.socket.pause();
      this.resumeFromServer ??= () => this.resumeReading();
      server.socket.once('drain', this.resumeFromServer);
    }
  }

  /** The 'drain' listener of a server that pushed back: made the first time one does (most clients never see it). */
  private resumeFromServer: (() => void) | null = null;

  private resumeReading(): void {
    if (!this.pausedForServer) return;
    this.pausedForServer = false;
    if (this.state !== ClientState.Closed) this.socket.resume();
  }

  // ---- PoolClient: what the pool and the server tell us ----

  onServerReady(server: ServerConnection): void {
    if (this.state === ClientState.Closed) return;
    if (this.state === ClientState.LoggingIn && !(this.login as ClientLogin).serverReady(server)) return;
    this.state = ClientState.Active;
    // Still running pgmux's own queries (a check at the server's login): the held messages go when they are done.
    if (!server.ownQueryRunning) this.sendHeld();
    if (this.pausedForWait) {
      this.pausedForWait = false;
      if (!this.pausedForServer) this.socket.resume();
    }
  }

  /** query_wait_notify: a NOTICE while queued (reading is paused then, writing is not). */
  sendNotice(message: Buffer): void {
    if (this.state !== ClientState.Closed && this.socket.writable) this.socket.write(message);
  }

  privilegesChanged(): void {
    if (this.transactionConfig !== null) this.boundary.privilegesChanged();
  }

  transactionEnded(server: ServerConnection): void {
    // After a Terminate the server is closing (it has the Terminate): it must not go back to the pool.
    if (this.terminating) return;
    if (this.reader?.streaming === true) {
      // Part of a client message (CopyData, ignored outside COPY) went to this server and the rest has not come:
      // released now, the server would read the next client's messages as the rest of it, and the rest would go
      // nowhere (a TypeError, XX000). It goes back after the last piece (onPiece).
      this.releaseAfterStream = server;
      return;
    }
    this.boundary.transactionEnded(server);
  }

  ownQueriesDrained(server: ServerConnection): void {
    if (this.server === server && this.state === ClientState.Active && this.held.length > 0) this.sendHeld();
  }

  // ---- BoundaryHost ----

  get poolDefaults(): ReadonlyMap<string, string> | null {
    return this.pool?.defaultParams ?? null;
  }

  servedBy(server: ServerConnection): boolean {
    return this.server === server && this.state === ClientState.Active;
  }

  sendHeldMessages(): boolean {
    if (this.held.length === 0) return false;
    this.sendHeld();
    return true;
  }

  release(server: ServerConnection): void {
    (this.pool as Pool).serverReleased(server);
  }

  pinnedBy(kind: PinKind): void {
    this.host.clientPinned(this, kind);
  }

  statementsDeallocated(server: ServerConnection, tag: string): void {
    if (tag === 'DEALLOCATE ALL' || tag === 'DISCARD ALL') server.statements.clear();
    else if (tag === 'DEALLOCATE') server.statements.unknown = true; // which one is not known: clean up at release
  }

  /** Waiting for the server it needs to finish logging in (PoolClient.loggingIn). */
  get loggingIn(): boolean {
    return this.state === ClientState.LoggingIn;
  }

  /** Pinned to its server by unmovable session state (transaction mode). */
  get pinned(): boolean {
    return this.checks?.session.pinned ?? false;
  }

  get needsReset(): boolean {
    const session = this.checks?.session;
    return session !== undefined && (session.pinned || session.unsettled);
  }

  get pinReasons(): string[] {
    return this.checks?.session.pinReasons ?? [];
  }

  /** Named prepared statements this client has (SHOW CLIENTS; asking makes no machinery). */
  get preparedStatementCount(): number {
    return this.intercepts?.router.size ?? 0;
  }

  onReleased(): void {
    this.dropServerBackpressure();
    if (this.state === ClientState.Active) this.state = ClientState.Idle;
    this.lastActive = Date.now();
    // A transaction just ended; while shutting down that is the moment to say goodbye. Polling for
    // idle clients would rarely catch a busy one: it sends its next BEGIN right after COMMIT returns.
    if (this.host.draining) this.fail(Errors.adminShutdown());
  }

  onAcquireFailed(error: PgmuxError): void {
    if (this.state === ClientState.Closed) return;
    if (this.state === ClientState.LoggingIn || error.fatal) {
      this.fail(error);
      return;
    }
    this.log.warn({ code: error.code, sqlstate: error.sqlstate }, error.message);
    this.failHeldRequests(error);
    if (this.terminating) this.endAfterTerminate();
  }

  onServerLost(error: PgmuxError, midMessage = false): void {
    this.server = null;
    if (this.terminating) return this.endAfterTerminate();
    this.fail(error, !midMessage);
  }

  /** Requests sent are still to be answered (a server is attached and owes, or they wait for one). */
  private get owesAnswers(): boolean {
    if (this.held.length > 0 || this.state === ClientState.Waiting) return true;
    return this.state === ClientState.Active && this.server?.link?.ledger.empty === false;
  }

  /** The client sent Terminate and what it asked before has been answered: close, as PostgreSQL would. */
  private endAfterTerminate(): void {
    if (this.state === ClientState.Closed) return;
    this.closeReason = 'client sent Terminate';
    if (!this.socket.destroyed && this.socket.writable) this.socket.end();
    this.socket.destroySoon();
    this.detachFromPool();
  }

  /**
   * Nothing held reached a server: answer each request as PostgreSQL answers a failed one (an
   * error, then ReadyForQuery), and skip an unfinished extended-protocol batch up to its Sync.
   */
  private failHeldRequests(error: PgmuxError): void {
    this.pool?.stats.error(error.sqlstate);
    const { reply, unsynced } = failedRequestsReply(this.held, error);
    this.skipUntilSync = unsynced;
    this.held.length = 0;
    this.intercepts?.dropRefusals();
    this.state = ClientState.Idle;
    reply.flush(this.socket);
    this.pausedForWait = false;
    this.socket.resume();
  }

  /** A cancel request arrived for this client. */
  cancelRequested(): void {
    if (this.state === ClientState.Waiting && this.pool?.dequeue(this)) {
      this.failHeldRequests(Errors.canceledWhileWaiting());
      return;
    }
    if (this.state === ClientState.Active && this.server !== null) this.server.cancel();
  }

  /** Between transactions with nothing outstanding: safe to close at shutdown. */
  get atTransactionBoundary(): boolean {
    if (this.state === ClientState.Idle || this.state === ClientState.Startup || this.state === ClientState.Authenticating) return true;
    const server = this.server;
    return this.state === ClientState.Active && server !== null && server.link !== null && !server.link.busy && server.txStatus === TxStatus.Idle;
  }

  // ---- closing ----

  copyBroken(code: number): void {
    if (this.state === ClientState.Closed) return;
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(Errors.unexpectedDuringCopy(code).toWire());
    this.fail(Errors.copySyncLost());
  }

  /**
   * Send a FATAL (or ERROR) and close. `onWire` false: close without sending it (the client's stream stopped in
   * the middle of a message, where an ErrorResponse would be read as the rest of that message).
   */
  fail(error: PgmuxError, onWire = true): void {
    if (this.state === ClientState.Closed) return;
    this.closeReason = `${error.code}: ${error.message}`;
    this.log[error.logLevel]({ code: error.code, sqlstate: error.sqlstate, sent: onWire }, error.message);
    this.pool?.stats.error(error.sqlstate);
    this.reader?.stop();
    if (!this.socket.destroyed && this.socket.writable) {
      if (onWire) this.socket.end(error.toWire());
      else this.socket.end();
    }
    // Read (and drop) what the client still sends: a socket closed with unread input sends a reset
    // instead of a FIN, and the client's kernel may then throw away the error written just before.
    this.socket.resume();
    this.socket.destroySoon();
    this.detachFromPool();
  }

  /** Close without a message (shutdown of an idle client sends 57P01 through fail()). */
  private onClose(): void {
    if (this.state === ClientState.Closed) {
      this.host.clientClosed(this, this.closeReason);
      return;
    }
    this.reader?.stop();
    this.detachFromPool();
    this.host.clientClosed(this, this.closeReason);
  }

  private detachFromPool(): void {
    this.host.loginEnded(this);
    if (this.state === ClientState.Closed) return;
    this.state = ClientState.Closed;
    this.dropServerBackpressure();
    this.held.length = 0;
    this.intercepts?.dropRefusals();
    this.pool?.clientGone(this);
  }

  private dropServerBackpressure(): void {
    if (!this.pausedForServer) return;
    this.pausedForServer = false;
    if (this.resumeFromServer !== null) this.server?.socket.off('drain', this.resumeFromServer);
    if (this.state !== ClientState.Closed) this.socket.resume();
  }
}

