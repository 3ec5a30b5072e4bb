/**
 * One client connection, from its first byte to its close: the state machine that drives the phases, and closing.
 * Each phase has a module of its own: client-startup.ts (the bytes before the startup packet, TLS, the packet's
 * checks), client-login.ts (authentication, joining a pool, the greeting), client-parameters.ts (the values the
 * client expects), message-limits.ts and message-screen.ts (what a client may send, what pgmux drops or refuses
 * itself), server-forwarding.ts (forwarding to the attached server, holding while none is ready, backpressure),
 * held-requests.ts (answers when no server comes); transaction mode adds transaction-machinery.ts (with
 * transaction-intercepts.ts and boundary-checks.ts). The socket's listeners are client-socket.ts's.
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
import { MalformedMessage } from '../protocol/malformed.js';
import { ParamMap } from '../server/param-map.js';
import type { ServerConnection } from '../server/server-connection.js';
import type { BoundaryHost } from './boundary-checks.js';
import type { AdminConnection, ClientHost } from './client-host.js';
import type { RegisteredClient } from './client-info.js';
import { ClientLogin, type LoginSession } from './client-login.js';
import { resetTargets, resetToStartup } from './client-parameters.js';
import { restoreAfterReset } from './reset-to-startup.js';
import { carrySession, type SocketSession } from './client-socket.js';
import { ClientState } from './client-state.js';
import { admitStartup, StartupReader, tlsSocketOver, type StartupMessage } from './client-startup.js';
import { messageLimit } from './message-limits.js';
import { Screened, screenMessage } from './message-screen.js';
import type { SegmentReplay } from './segment-replay.js';
import { ServerForwarding, type ForwardingHost } from './server-forwarding.js';
import type { PinKind } from './sql-classifier.js';
import { NO_SERVER_STARTUP, NO_SETTINGS, overriddenCheckQuery, type ServerStartup } from './startup-settings.js';
import type { StatementRouter } from './statement-router.js';
import type { InterceptHost, Refusal } from './transaction-intercepts.js';
import { TransactionMachinery } from './transaction-machinery.js';

/** What a client may send while its input is held (a password being checked) before pgmux stops reading it. */
const HELD_INPUT_LIMIT = 256 * 1024;

/** How long a client pgmux closed with an error may keep its end open (see fail). */
const FAIL_LINGER_MS = 1000;

function destroyIfOpen(socket: Socket): void {
  if (!socket.destroyed) socket.destroy();
}

export class ClientSession implements FrameHandler, MessageLimits, PoolClient, RegisteredClient, LoginSession, InterceptHost, BoundaryHost, ForwardingHost, SocketSession {
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
  /** Forwarding to the server and holding while none is ready (server-forwarding.ts): made when first needed (forwarder()). */
  private forwarding: ServerForwarding | null = null;
  /**
   * Transaction mode: the configuration in effect when the client joined its pool (its session_state_* policies and
   * max_prepared_statements); null in session mode. The machinery is made from it when first needed
   * (transaction()): a client that logged in and has sent nothing yet holds none of it.
   */
  private transactionConfig: PgmuxConfig | null = null;
  /** Transaction mode: intercepts, boundary checks, segment replay (transaction-machinery.ts); null in session mode, where nothing moves. */
  private tx: TransactionMachinery | null = null;
  /** After pgmux failed an unsynced extended-protocol batch: drop messages up to the next Sync, as PostgreSQL does. */
  private skipUntilSync = false;
  /** Terminate came behind requests still owed answers: it went on to the server, which closes after them. */
  private terminating = false;
  /** Inside onData: the chunk's messages are being handled and will be flushed together at its end. */
  inChunk = false;
  /** Cancels that came while the client's requests were held behind pgmux's own queries (their `done`s): sent after them. */
  private cancelsWhenSent: Array<() => void> | null = null;
  /** holdInput() is in force: the reader keeps what comes (see holdInput). */
  private inputHeld = false;
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
    // Its listeners are shared by every client and find the session on the socket (client-socket.ts).
    carrySession(socket, this);
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
  onData(chunk: Buffer): void {
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
      if (this.inputHeld && this.reader.heldBytes > HELD_INPUT_LIMIT) this.socket.pause();
      // Nothing forwarded yet: nothing to flush.
      this.forwarding?.flush();
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
        this.closeReason = 'cancel request';
        // Closed once the cancel has been acted on, as PostgreSQL closes it (libpq's PQcancel waits for that).
        this.host.cancel(step.processId, step.secretKey, () => this.socket.end());
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
    carrySession(this.socket, this);
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
    const refusal = admitted.settings.refusal;
    this.login = new ClientLogin(
      this,
      this.host,
      this.baseLog,
      admitted.dbConfig,
      overriddenCheckQuery(admitted.settings.overridden),
      certificate,
      refusal === null ? null : Errors.optionsRefused(refusal),
    );
    this.login.begin(admitted.authType);
  }

  /** MessageLimits: how long a message of this type may be, in the state the client is in now. */
  maxMessageLength(code: number): number {
    return messageLimit(this.state, code, this.login);
  }

  loginFinished(): void {
    this.login = null;
  }

  holdInput(): void {
    // The socket is still read (the reader keeps what comes), up to a bound: a socket closed with input unread
    // ends with a reset, which can make the client's kernel drop the error written just before (see fail).
    this.inputHeld = true;
    this.reader?.hold();
  }

  resumeInput(): void {
    this.inputHeld = false;
    // Reading resumes first (handling what was kept may pause it again, for a server's backpressure); its data
    // events come later, so what was kept is handled first.
    this.socket.resume();
    const reader = this.reader;
    if (reader === null) return;
    this.inChunk = true;
    try {
      reader.resume();
    } finally {
      this.inChunk = false;
    }
    this.forwarding?.flush();
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
  private transaction(): TransactionMachinery {
    this.tx ??= new TransactionMachinery(this, this.transactionConfig as PgmuxConfig);
    return this.tx;
  }

  /** The path to the server (server-forwarding.ts), made the first time the client forwards anything. */
  private forwarder(): ServerForwarding {
    this.forwarding ??= new ServerForwarding(this);
    return this.forwarding;
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
    return this.transactionConfig === null ? null : this.transaction().replay;
  }

  // ---- InterceptHost ----

  get idle(): boolean {
    return this.state === ClientState.Idle && !this.holding;
  }

  /** Messages wait to be sent to a server (LoginSession). */
  get holding(): boolean {
    return this.forwarding !== null && this.forwarding.holding;
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

  /** After a RESET of `names` ran on the attached server (extended protocol): what puts the startup values back. */
  startupRestore(names: readonly string[] | 'all'): readonly string[] {
    const server = this.server;
    if (server === null || this.startupParams.size === 0) return [];
    return restoreAfterReset(names, resetTargets(this.startupParams, server.startupSettings, this.pool?.defaultParams ?? null), server.startupSettings);
  }

  onPiece(_code: number, buf: Buffer, start: number, end: number, _first: boolean, last: boolean): void {
    this.forwarder().onPiece(buf, start, end, last);
  }

  onProtocolError(reason: string): void {
    this.fail(Errors.protocolViolation(reason));
  }

  /** On to the attached server, or held until one is ready (server-forwarding.ts). */
  forward(buf: Buffer, start: number, end: number): void {
    this.forwarder().forward(buf, start, end);
  }

  // ---- ForwardingHost ----

  get draining(): boolean {
    return this.host.draining;
  }

  get queryMayReset(): boolean {
    return this.transactionConfig === null || this.transaction().settingsChanged;
  }

  takeRefusal(buf: Buffer): Refusal | undefined {
    return this.tx?.takeRefusal(buf);
  }

  // ---- PoolClient: what the pool and the server tell us ----

  onServerReady(server: ServerConnection): void {
    if (this.state === ClientState.Closed) return;
    if (this.state === ClientState.LoggingIn && !(this.login as ClientLogin).serverReady(server)) return;
    this.state = ClientState.Active;
    // Nothing forwarded yet: nothing held, reading not paused.
    this.forwarding?.serverReady(server);
  }

  /** query_wait_notify: a NOTICE while queued (reading is paused then, writing is not). */
  sendNotice(message: Buffer): void {
    if (this.state !== ClientState.Closed && this.socket.writable) this.socket.write(message);
  }

  privilegesChanged(): void {
    if (this.transactionConfig !== null) this.transaction().privilegesChanged();
  }

  transactionEnded(server: ServerConnection): void {
    // After a Terminate the server is closing (it has the Terminate): it must not go back to the pool.
    if (this.terminating) return;
    if (this.reader?.streaming === true) {
      // Part of a client message (CopyData, ignored outside COPY) went to this server and the rest has not come:
      // released now, the server would read the next client's messages as the rest of it, and the rest would go
      // nowhere (a TypeError, XX000). It goes back after the last piece (onPiece).
      this.forwarder().releaseAfterLastPiece(server);
      return;
    }
    this.transaction().transactionEnded(server);
  }

  ownQueriesDrained(server: ServerConnection): void {
    if (this.server === server && this.state === ClientState.Active && this.holding) this.forwarder().sendHeld();
  }

  // ---- BoundaryHost ----

  get poolDefaults(): ReadonlyMap<string, string> | null {
    return this.pool?.defaultParams ?? null;
  }

  servedBy(server: ServerConnection): boolean {
    return this.server === server && this.state === ClientState.Active;
  }

  sendHeldMessages(): boolean {
    if (!this.holding) return false;
    this.forwarder().sendHeld();
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
    return this.tx?.pinned ?? false;
  }

  get needsReset(): boolean {
    return this.tx?.needsReset ?? false;
  }

  get pinReasons(): string[] {
    return this.tx?.pinReasons ?? [];
  }

  /** Named prepared statements this client has (SHOW CLIENTS; asking makes no machinery). */
  get preparedStatementCount(): number {
    return this.tx?.preparedStatementCount ?? 0;
  }

  onReleased(): void {
    this.forwarding?.dropBackpressure();
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
    if (this.holding || this.state === ClientState.Waiting) return true;
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
    const forwarding = this.forwarder();
    const { reply, unsynced } = forwarding.failHeld(error);
    this.skipUntilSync = unsynced;
    this.tx?.dropRefusals();
    this.state = ClientState.Idle;
    reply.flush(this.socket);
    forwarding.resumeAfterWait();
  }

  /**
   * A cancel request arrived for this client. Forwarded only while the server runs a request of this client's: when
   * it runs nothing (or only pgmux's own queries), PostgreSQL would ignore it, and the cancel must not reach pgmux's
   * queries or, later, another client's.
   */
  cancelRequested(done: () => void): void {
    if (this.state === ClientState.Waiting && this.pool?.dequeue(this)) {
      this.failHeldRequests(Errors.canceledWhileWaiting());
      done();
      return;
    }
    const server = this.server;
    if (this.state === ClientState.Active && server !== null && server.link?.busy !== true && this.holding) {
      // The client's requests wait for pgmux's own queries on its server: the cancel follows them there (heldSent).
      (this.cancelsWhenSent ??= []).push(done);
      return;
    }
    this.forwardCancel(done);
  }

  private forwardCancel(done: () => void): void {
    const server = this.server;
    const pool = this.pool;
    if (this.state !== ClientState.Active || server === null || pool === null || server.link?.busy !== true) {
      done();
      return;
    }
    pool.cancelRequestsInFlight++;
    server.cancel(() => {
      pool.cancelRequestsInFlight--;
      done();
    });
  }

  heldSent(): void {
    const waiting = this.cancelsWhenSent;
    if (waiting === null) return;
    this.cancelsWhenSent = null;
    // One cancel request to the server acts for all of them.
    this.forwardCancel(() => {
      for (const done of waiting) done();
    });
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
    // Read (and drop) what the client still sends until it closes its end too: a socket closed with input unread, or
    // input arriving after the close, answers with a reset instead of a FIN, and the client's kernel may then throw
    // away the error written just before (a client still sending when its login failed lost it so). A client that
    // does not close is cut off after FAIL_LINGER_MS; the registry forgets it at once.
    this.socket.resume();
    setTimeout(destroyIfOpen, FAIL_LINGER_MS, this.socket).unref();
    this.detachFromPool();
    this.host.clientClosed(this, this.closeReason);
  }

  onSocketError(err: NodeJS.ErrnoException): void {
    this.closeReason = `socket error: ${err.code ?? err.message}`;
  }

  /** Close without a message (shutdown of an idle client sends 57P01 through fail()). */
  onClose(): void {
    if (this.state === ClientState.Closed) {
      this.host.clientClosed(this, this.closeReason);
      return;
    }
    this.reader?.stop();
    this.detachFromPool();
    this.host.clientClosed(this, this.closeReason);
  }

  private detachFromPool(): void {
    // Cancels waiting for requests that will not be sent now: their connections are closed (nothing to cancel).
    const waiting = this.cancelsWhenSent;
    this.cancelsWhenSent = null;
    if (waiting !== null) for (const done of waiting) done();
    this.host.loginEnded(this);
    if (this.state === ClientState.Closed) return;
    this.state = ClientState.Closed;
    this.forwarding?.drop();
    this.tx?.dropRefusals();
    this.pool?.clientGone(this);
  }
}

