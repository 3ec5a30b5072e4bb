/**
 * One client connection, from its startup packet to its close.
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
import { tlsServerEndPoint } from '../auth/channel-binding.js';
import { prefixedStream } from '../net/prefixed-stream.js';
import type { Logger } from 'pino';
import { resolveDatabase, type AuthType, type DatabaseConfig } from '../config/index.js';
import { Errors, PgmuxError } from '../errors.js';
import type { Pool, PoolClient } from '../pool/pool.js';
import { queueLink, type QueueLink } from '../pool/wait-queue.js';
import {
  AUTHENTICATION_OK,
  backendKeyData,
  errorResponse,
  negotiateProtocolVersion,
  parameterStatus,
  readyForQuery,
  SSL_NOT_SUPPORTED,
  SSL_SUPPORTED,
} from '../protocol/backend-messages.js';
import { FrontendCode, TxStatus } from '../protocol/codes.js';
import { FrameReader, type FrameHandler } from '../protocol/frame-reader.js';
import {
  parseStartupPacket,
  startupPacketLength,
  type Negotiated,
  StartupPacketError,
  type StartupPacket,
} from '../protocol/startup.js';
import { WriteBatch } from '../protocol/write-batch.js';
import type { ServerConnection } from '../server/server-connection.js';
import { SYNCED_PARAMETERS } from '../server/session-params.js';
import { MalformedMessage } from '../protocol/malformed.js';
import { breaksCopy } from '../link/attachment.js';
import { ParamMap } from '../server/param-map.js';
import { ClientAuth } from './client-auth.js';
import { checkClientCertificate, checkTlsPolicy } from './client-tls-policy.js';
import { NO_SERVER_STARTUP, NO_SETTINGS, overriddenCheckQuery, startupSettings, type ServerStartup } from './startup-settings.js';
import type { PinKind } from './sql-classifier.js';
import { SessionState, type PinPolicy } from './session-state.js';
import { SegmentReplay } from './segment-replay.js';
import { TransactionIntercepts, type InterceptHost } from './transaction-intercepts.js';
import { BoundaryChecks, type BoundaryHost } from './boundary-checks.js';
import { queryWithStartupValues } from './reset-to-startup.js';
import { StatementRouter } from './statement-router.js';
import { buildQuery, readQuery } from '../protocol/frontend-messages.js';
import type { ClientHost } from './client-host.js';
import { ClientState, type ClientInfo } from './client-state.js';

export { ClientState } from './client-state.js';
import type { AdminSession } from '../admin/admin-console.js';


/** First byte of a TLS record carrying a handshake (a ClientHello, for direct TLS). */
const TLS_HANDSHAKE = 0x16;

type ScramKeys = { clientKey: Buffer; serverKey: Buffer };

/** Message types a logged-in client may send. */
function isFrontendMessage(code: number): boolean {
  switch (code) {
    case FrontendCode.Query:
    case FrontendCode.Parse:
    case FrontendCode.Bind:
    case FrontendCode.Execute:
    case FrontendCode.Describe:
    case FrontendCode.Close:
    case FrontendCode.Sync:
    case FrontendCode.Flush:
    case FrontendCode.FunctionCall:
    case FrontendCode.CopyData:
    case FrontendCode.CopyDone:
    case FrontendCode.CopyFail:
      return true;
    default:
      return false;
  }
}

/**
 * The longest message a client may declare, as PostgreSQL reads them: after login, per type (postgres.c
 * SocketBackend: PQ_LARGE_MESSAGE_LIMIT or PQ_SMALL_MESSAGE_LIMIT; 0 for a type it refuses at its first byte),
 * during authentication only a password message (auth.c: PG_MAX_AUTH_TOKEN_LENGTH, PG_MAX_SASL_MESSAGE_LENGTH
 * for SASL). Without these a client could make pgmux wait for (and buffer) up to 1 GB where PostgreSQL closes
 * the connection, e.g. a Sync declaring 20000 bytes, an unknown type byte, or a password message before login.
 */
const LARGE_MESSAGE_LIMIT = 0x3ffffffe;
const SMALL_MESSAGE_LIMIT = 10000;
const AUTH_MESSAGE_LIMIT = 65535;
const SASL_MESSAGE_LIMIT = 1024;

function loggedInMessageLimit(code: number): number {
  switch (code) {
    case FrontendCode.Query:
    case FrontendCode.FunctionCall:
    case FrontendCode.Parse:
    case FrontendCode.Bind:
    case FrontendCode.CopyData:
      return LARGE_MESSAGE_LIMIT;
    case FrontendCode.Execute:
    case FrontendCode.Describe:
    case FrontendCode.Close:
    case FrontendCode.Sync:
    case FrontendCode.Flush:
    case FrontendCode.CopyDone:
    case FrontendCode.CopyFail:
    case FrontendCode.Terminate:
      return SMALL_MESSAGE_LIMIT;
    default:
      return 0;
  }
}

export class ClientSession implements FrameHandler, PoolClient, ClientInfo, InterceptHost, BoundaryHost {
  state: ClientState = ClientState.Startup;
  readonly waitLink: QueueLink<PoolClient> = queueLink<PoolClient>(this);
  server: ServerConnection | null = null;
  waitingSince = 0;
  waitStartedAt = 0;
  waitNotified = false;
  /** Holds a max_client_logins_in_progress slot (the registry sets and clears it). */
  holdsLoginSlot = false;
  /** Its place in the registry's queue of logins waiting for a slot. */
  readonly loginLink: QueueLink<ClientSession> = queueLink<ClientSession>(this);
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
  admin: AdminSession | null = null;

  get isAdmin(): boolean {
    return this.admin !== null;
  }

  private startupBuffer: Buffer | null = null;
  /** SSLRequest / GSSENCRequest already answered on this connection. */
  private readonly negotiated: Negotiated = { ssl: false, gss: false };
  private reader: FrameReader | null = null;
  private auth: ClientAuth | null = null;
  /** The settings the client asked for at startup (canonical names): what RESET returns to. */
  startupParams: ReadonlyMap<string, string> = NO_SETTINGS;
  /** Startup settings a server may be opened with for this client (see Pool.openServer). */
  serverStartup: ServerStartup = NO_SERVER_STARTUP;
  /** Startup values PostgreSQL would apply and then override: checked on the server at login (overriddenCheckQuery). */
  private overriddenCheck: string | null = null;
  /** The user's stored password as found at login (config, auth_file or auth_query). */
  private storedPassword: string | undefined = undefined;
  private pendingDbConfig: DatabaseConfig | null = null;
  /** Frames held while no server is ready; views into received chunks. */
  private readonly held: Buffer[] = [];
  /** Transaction mode: the current segment's messages, for the stale-plan retry. */
  replay: SegmentReplay | null = null;
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
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.closeReason = `socket error: ${err.code ?? err.message}`;
    });
    socket.on('close', () => this.onClose());
  }

  get encrypted(): boolean {
    return this.socket instanceof TLSSocket;
  }

  /** TLS can still be negotiated: not yet encrypted, a certificate configured, and not a unix socket (PostgreSQL answers 'N' there). */
  private get tlsOffered(): boolean {
    return !this.encrypted && !this.viaUnixSocket && this.host.clientTls.context !== null;
  }

  /**
   * Continue over TLS: after answering SSLRequest with 'S' (nothing read ahead), or at once
   * for direct TLS (`prefix` holds the ClientHello already read).
   */
  private upgradeToTls(prefix: Buffer | null): void {
    const tlsConfig = this.host.clientTls;
    // The certificate this handshake presents: SCRAM-SHA-256-PLUS binds to it even if a reload
    // rotates the certificate before the client has authenticated.
    this.tlsCertificateDer = tlsConfig.certificateDer;
    const raw = this.tcp;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    const secure = new TLSSocket(prefix === null ? raw : prefixedStream(raw, prefix), {
      isServer: true,
      secureContext: tlsConfig.context ?? undefined,
      requestCert: tlsConfig.requestCert,
      rejectUnauthorized: false, // pgmux decides per sslmode/auth_type, with a clear error
      ALPNProtocols: ['postgresql'],
    });
    this.socket = secure;
    this.bindSocket(secure);
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
  private failOn(err: unknown): void {
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
    if (this.startupBuffer === null && chunk[0] === TLS_HANDSHAKE && this.tlsOffered) {
      // Direct TLS (PostgreSQL 17 sslnegotiation=direct): a ClientHello instead of a startup packet.
      this.upgradeToTls(chunk);
      return;
    }
    let buf = this.startupBuffer === null ? chunk : Buffer.concat([this.startupBuffer, chunk]);
    this.startupBuffer = null;
    let packet: StartupPacket;
    let length: number;
    try {
      length = startupPacketLength(buf);
      if (length < 0 || buf.length < length) {
        this.startupBuffer = buf;
        return;
      }
      packet = parseStartupPacket(buf.subarray(0, length), this.negotiated);
    } catch (err) {
      if (err instanceof StartupPacketError) return this.fail(new PgmuxError('BAD_STARTUP', err.sqlstate, err.message, { logLevel: 'info', protocol2: err.protocol2 }));
      throw err;
    }
    buf = buf.subarray(length);
    switch (packet.kind) {
      case 'ssl':
      case 'gssenc':
        if (buf.length > 0) {
          // Bytes sent before our answer would be read as if they were inside the encrypted channel.
          return this.fail(Errors.protocolViolation('received unencrypted data after SSL/GSSENC request'));
        }
        // Each is answered once, as PostgreSQL does (after TLS, a GSSENCRequest is not one either): a repeated
        // request is then read as a protocol version and refused. Before, pgmux answered every one of them.
        if (packet.kind === 'gssenc') this.negotiated.gss = true;
        else this.negotiated.ssl = true;
        if (packet.kind === 'ssl' && this.tlsOffered) {
          this.negotiated.gss = true;
          this.socket.write(SSL_SUPPORTED);
          this.upgradeToTls(null);
          return;
        }
        this.socket.write(SSL_NOT_SUPPORTED);
        return;
      case 'cancel':
        this.host.cancel(packet.processId, packet.secretKey);
        this.closeReason = 'cancel request';
        this.socket.end();
        return;
      case 'startup':
        this.onStartup(packet);
        if (buf.length > 0 && this.reader !== null) this.handleData(buf);
        return;
    }
  }

  private onStartup(packet: Extract<StartupPacket, { kind: 'startup' }>): void {
    const params = packet.params;
    this.user = params.get('user') as string;
    this.database = params.get('database') as string;
    this.applicationName = params.get('application_name') ?? '';
    this.childLog = null; // later lines carry user and db
    this.reader = new FrameReader(this, (code) => this.messageLimit(code));

    // replication=off/no/0/false is an ordinary connection, as in PostgreSQL (these were refused before).
    if (packet.replication) return this.fail(Errors.replicationRefused());
    if (this.host.tooManyClients()) return this.fail(Errors.tooManyClients(this.host.config.max_client_conn));
    if (packet.minorVersion > 0 || packet.protocolOptions.length > 0) {
      this.socket.write(negotiateProtocolVersion(0, packet.protocolOptions));
    }
    // An entry of its own, else the wildcard "*" entry (same-named upstream database).
    const dbConfig = resolveDatabase(this.host.config, this.database) ?? this.host.adminConsole?.databaseFor(this.database);
    if (dbConfig === undefined) return this.fail(Errors.unknownDatabase(this.database));
    // client_tls_sslmode does not apply to the unix socket, which never leaves the host (as in PgBouncer).
    const tlsRefusal = this.viaUnixSocket ? null : checkTlsPolicy(this.socket, this.host.clientTls, this.user);
    if (tlsRefusal !== null) return this.fail(tlsRefusal);

    const startup = startupSettings(params, this.host.config.application_name_add_host ? this.label : null, packet.repeated);
    this.overriddenCheck = overriddenCheckQuery(startup.overridden);
    this.startupParams = startup.settings;
    this.serverStartup = startup.forServer;
    if (startup.unsupported.length > 0) this.log.info({ options: startup.unsupported }, 'ignoring unsupported switches in the options startup parameter');

    const userConfig = Object.hasOwn(this.host.config.users, this.user) ? this.host.config.users[this.user] : undefined;
    const authType = userConfig?.auth_type ?? dbConfig.auth_type ?? this.host.config.auth_type;
    if (authType === 'cert') {
      const certError = checkClientCertificate(this.socket, this.host.clientTls, this.user, true);
      if (certError !== null) return this.fail(certError);
    }
    if (authType === 'plain' && !this.encrypted && !this.viaUnixSocket && !this.host.config.auth_plain_without_tls) {
      return this.fail(Errors.plainNeedsTls());
    }
    this.state = ClientState.Authenticating;
    // Even without a password exchange (trust, cert) the stored password is what pgmux logs in upstream with.
    const password = this.host.passwords.resolve(this.user, this.database, dbConfig);
    if (!(password instanceof Promise)) return this.beginAuth(authType, dbConfig, password);
    password.then(
      (found) => {
        try {
          this.beginAuth(authType, dbConfig, found);
        } catch (err) {
          this.failOn(err);
        }
      },
      (err: Error) => this.fail(Errors.passwordLookupFailed(this.user, err.message)),
    );
  }

  /** The longest message of this type the client may send now (0: none of this type), as PostgreSQL reads them. */
  private messageLimit(code: number): number {
    if (this.state === ClientState.Startup || this.state === ClientState.Authenticating) {
      if (code !== FrontendCode.PasswordMessage) return 0;
      return this.auth?.sasl === true ? SASL_MESSAGE_LIMIT : AUTH_MESSAGE_LIMIT;
    }
    return loggedInMessageLimit(code);
  }

  private beginAuth(authType: AuthType, dbConfig: DatabaseConfig, password: string | undefined): void {
    if (this.state !== ClientState.Authenticating) return; // gone while the password was looked up
    this.storedPassword = password;
    if (authType === 'trust' || authType === 'cert') return this.loggedIn(dbConfig, [], undefined);
    const certificate = this.encrypted ? this.tlsCertificateDer : null;
    let binding: Buffer | null = null;
    if (certificate !== null) {
      try {
        binding = tlsServerEndPoint(certificate);
      } catch {
        binding = null; // certificate type without a binding hash: SCRAM-SHA-256-PLUS not offered
      }
    }
    this.auth = new ClientAuth(this.user, password, authType, this.host.secrets, binding);
    this.pendingDbConfig = dbConfig;
    this.socket.write(this.auth.start());
  }

  private onAuthMessage(code: number, buf: Buffer, start: number, end: number): void {
    const auth = this.auth;
    if (auth === null) return this.fail(Errors.authProtocol('message sent before the authentication request'));
    if (code !== FrontendCode.PasswordMessage) return this.fail(Errors.authProtocol(`expected a password message, got '${String.fromCharCode(code)}'`));
    const step = auth.onMessage(buf, start, end);
    switch (step.kind) {
      case 'send':
        this.socket.write(step.message);
        return;
      case 'fail':
        this.host.loginFailed(this, step.error);
        return this.fail(step.error);
      case 'ok':
        this.auth = null;
        this.loggedIn(this.pendingDbConfig as DatabaseConfig, step.messages, step.scramKeys);
        return;
    }
  }

  /** Authenticated: join the pool, then greet the client (after a server told us the parameters, if needed). */
  private loggedIn(dbConfig: DatabaseConfig, authMessages: Buffer[], scramKeys: ScramKeys | undefined): void {
    this.host.loginEnded(this);
    if (dbConfig === this.host.adminConsole?.database) {
      this.state = ClientState.Idle;
      this.admin = this.host.adminConsole.open(this, authMessages);
      return;
    }
    let pool: Pool;
    try {
      pool = this.host.poolFor(this.database, dbConfig, this.user, this.storedPassword, scramKeys);
    } catch (err) {
      if (err instanceof PgmuxError) return this.fail(err);
      throw err;
    }
    this.pool = pool;
    pool.clients.add(this);
    if (pool.transactionMode) {
      const config = this.host.config;
      const session = new SessionState((kind: PinKind): PinPolicy => config[`session_state_${kind}`]);
      this.checks = new BoundaryChecks(this, session);
      this.intercepts = new TransactionIntercepts(this, session, config.max_prepared_statements);
      this.replay = new SegmentReplay();
    }
    const defaults = pool.defaultParams;
    if (defaults !== null) for (const name of SYNCED_PARAMETERS) {
      const value = defaults.get(name);
      if (value !== undefined) this.params.set(name, value);
    }
    let needServer = defaults === null || this.overriddenCheck !== null;
    for (const [name, value] of this.startupParams) {
      const accepted = defaults?.get(name) === value ? value : pool.acceptedStartupValue(name, value);
      if (accepted === undefined) needServer = true;
      this.params.set(name, accepted ?? value);
    }
    this.host.clientLoggedIn(this);
    if (!needServer) {
      // One write for the whole welcome (SASL final, AuthenticationOk, settings, key, ReadyForQuery): in a login
      // storm every write is a syscall that can wake another process, and they used to be three.
      this.sendWelcome(defaults as ReadonlyMap<string, string>, authMessages);
      return;
    }
    for (const m of authMessages) this.socket.write(m);
    this.socket.write(AUTHENTICATION_OK);
    // The first client of a pool, or one asking for non-default settings: log in through a
    // server so the client is told the values the server really has (and bad settings fail now).
    this.state = ClientState.LoggingIn;
    pool.acquire(this);
  }

  /** ParameterStatus for each setting, BackendKeyData, ReadyForQuery; with `authMessages` and AuthenticationOk first when given. */
  private sendWelcome(serverParams: ReadonlyMap<string, string>, authMessages: Buffer[] | null = null): void {
    const parts: Buffer[] = authMessages === null ? [] : [...authMessages, AUTHENTICATION_OK];
    for (const [name, value] of serverParams) parts.push(parameterStatus(name, this.params.get(name) ?? value));
    parts.push(backendKeyData(this.processId, this.secretKey), readyForQuery(TxStatus.Idle));
    this.socket.write(Buffer.concat(parts)); // small fresh buffers: one copy, one plain write (no cork/writev)
    this.state = ClientState.Idle;
    // Not through this.log unless debug is on: it would make this client a pino child logger for nothing.
    if (this.baseLog.isLevelEnabled('debug')) this.log.debug('client logged in');
  }

  // ---- FrameHandler: messages after the startup packet ----

  onFrame(code: number, buf: Buffer, start: number, end: number): void {
    switch (this.state) {
      case ClientState.Authenticating:
        return this.onAuthMessage(code, buf, start, end);
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
    if (!isFrontendMessage(code)) {
      // As PostgreSQL answers it; not forwarded, so no server connection is lost over it.
      return this.fail(Errors.protocolViolation(`invalid frontend message type ${code}`));
    }
    if (this.skipUntilSync) {
      if (code !== FrontendCode.Sync) return;
      this.skipUntilSync = false;
      this.socket.write(readyForQuery(TxStatus.Idle));
      return;
    }
    if (this.state === ClientState.Idle && (code === FrontendCode.CopyData || code === FrontendCode.CopyDone || code === FrontendCode.CopyFail)) {
      return; // COPY messages after a COPY ended (e.g. failed): the server would ignore them too
    }
    // What the server discards (it skips to Sync after an error) is discarded here too, before it has any effect.
    if (code !== FrontendCode.Sync && this.serverSkipping) return;
    // PostgreSQL reads a request sent in the middle of COPY IN as part of the COPY: refused there, and it closes. (In
    // transaction mode, where the server may not get the request as sent; session mode lets the server answer it.)
    if (this.router !== null && this.state === ClientState.Active && this.server?.link?.copyIn === true && breaksCopy(code)) return this.copyBroken(code);
    // A Flush with a body fails on the server (an ERROR, then it skips to Sync) though a Flush earns no answer:
    // the link would then take the error for the next request's and lose step with the server (a desync that
    // cost the client its server connection). Refused here instead, as the protocol violation it is.
    // Where a COPY IN may be in progress it goes on: PostgreSQL ignores it there (the link keeps an entry for the error
    // it earns should no COPY begin). That is known when it reaches the server (sendToServer); with nothing in flight
    // it cannot be.
    if (code === FrontendCode.Flush && end - start !== 5 && this.state === ClientState.Idle) return this.fail(Errors.malformedMessage('Flush message with a body'));
    if (this.intercepts !== null && this.intercepts.intercept(code, buf, start, end)) return;
    this.forward(buf, start, end);
  }

  /** The attached server is discarding messages up to the next Sync (the link discards them too). */
  private get serverSkipping(): boolean {
    return this.state === ClientState.Active && (this.server as ServerConnection).link?.ledger.skippingToSync === true;
  }

  /** Transaction mode: the client's named statements, carried from server to server. */
  get router(): StatementRouter | null {
    return this.intercepts?.router ?? null;
  }

  // ---- InterceptHost ----

  get idle(): boolean {
    return this.state === ClientState.Idle && this.held.length === 0;
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
    const before = new Map(this.params);
    const defaults = this.pool?.defaultParams;
    this.params.clear();
    if (defaults) for (const name of SYNCED_PARAMETERS) {
      const value = defaults.get(name);
      if (value !== undefined) this.params.set(name, value);
    }
    for (const [name, value] of this.startupParams) this.params.set(name, value);
    return [...this.params].filter(([name, value]) => before.get(name) !== value && defaults?.has(name) === true);
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
    if (buf[start] === FrontendCode.Query && (this.checks === null || this.checks.session.settingsChanged)) {
      const server = this.server as ServerConnection;
      const targets = this.resetTargets(server);
      if (targets.size > 0) {
        const query = queryWithStartupValues(readQuery(buf, start, end), targets, server.startupSettings);
        if (query !== null) return link.sendExtendedQuery(buildQuery(query.sql), query.own);
      }
    }
    link.fromClient(buf[start], buf, start, end);
  }

  /**
   * What RESET must return this client's settings to on `server`: its startup values, and the pool's default for a
   * setting the server was opened with that this client did not give (the server would return to the value of the
   * client it was opened for: search_path, reported and so opened with from PostgreSQL 18 on).
   */
  private resetTargets(server: ServerConnection): ReadonlyMap<string, string> {
    const opened = server.startupSettings;
    const defaults = this.pool?.defaultParams;
    if (opened === null || defaults === null || defaults === undefined) return this.startupParams;
    let targets: Map<string, string> | null = null;
    for (const name of opened.keys()) {
      const value = defaults.get(name);
      if (this.startupParams.has(name) || value === undefined) continue;
      targets ??= new Map(this.startupParams);
      targets.set(name, value);
    }
    return targets ?? this.startupParams;
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
    server.flushToClient(); // pgmux's own replies, when it answered without the server
    if (link.toServer.empty) return;
    this.lastActive = Date.now();
    if (!link.toServer.flush(server.socket) && !this.pausedForServer) {
      this.pausedForServer = true;
      this.socket.pause();
      server.socket.once('drain', this.resumeFromServer);
    }
  }

  private readonly resumeFromServer = (): void => {
    if (!this.pausedForServer) return;
    this.pausedForServer = false;
    if (this.state !== ClientState.Closed) this.socket.resume();
  };

  // ---- PoolClient: what the pool and the server tell us ----

  onServerReady(server: ServerConnection): void {
    if (this.state === ClientState.Closed) return;
    if (this.state === ClientState.LoggingIn && this.overriddenCheck !== null) {
      // A setting given twice: PostgreSQL applies the earlier value too, and a bad one fails the login.
      const check = this.overriddenCheck;
      this.overriddenCheck = null;
      server.runOwnQuery(check, (error) => {
        if (error !== null) return this.fail(error);
        this.onServerReady(server);
      });
      return;
    }
    if (this.state === ClientState.LoggingIn) {
      // The server took these settings: later clients asking for the same need no server to log in.
      for (const [name, value] of this.startupParams) {
        // As the server reports it (`DateStyle = German` is "German, DMY"), whether or not this sync changed it.
        const reported = server.reports(name) ? (server.params.get(name) ?? value) : value;
        (this.pool as Pool).rememberStartupValue(name, value, reported);
        this.params.set(name, reported);
      }
      // What the client did not ask for is the pool's default, whatever another client left on a server.
      const defaults = (this.pool as Pool).defaultParams ?? server.params;
      for (const name of SYNCED_PARAMETERS) {
        const value = defaults.get(name);
        if (!this.params.has(name) && value !== undefined) this.params.set(name, value);
      }
      this.sendWelcome(server.reportedParams());
      if ((this.pool as Pool).transactionMode && this.held.length === 0) {
        (this.pool as Pool).serverReleased(server);
        return;
      }
      if (!server.inStepWith(this)) {
        // The defaults just filled in may differ from what the server has.
        this.state = ClientState.Waiting;
        server.bringInStep(this, () => this.onServerReady(server));
        return;
      }
    }
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
    this.checks?.privilegesChanged();
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
    (this.checks as BoundaryChecks).transactionEnded(server);
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

  /** Named prepared statements this client has (SHOW CLIENTS). */
  get preparedStatementCount(): number {
    return this.router?.size ?? 0;
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
    const batch = new WriteBatch();
    const wire = errorResponse(error.toFields());
    // Each request fails as it would in PostgreSQL: a Query gets the error and ReadyForQuery; an
    // extended-protocol batch gets one error, then the server skips to Sync, which answers.
    let batchFailed = false;
    for (const buf of this.held) {
      switch (buf[0]) {
        case FrontendCode.Query:
        case FrontendCode.FunctionCall:
          if (batchFailed) break;
          batch.addBuffer(wire);
          batch.addBuffer(readyForQuery(TxStatus.Idle));
          break;
        case FrontendCode.Sync:
          if (!batchFailed) batch.addBuffer(wire);
          batch.addBuffer(readyForQuery(TxStatus.Idle));
          batchFailed = false;
          break;
        case FrontendCode.Parse:
        case FrontendCode.Bind:
        case FrontendCode.Describe:
        case FrontendCode.Execute:
        case FrontendCode.Close:
          if (!batchFailed) batch.addBuffer(wire);
          batchFailed = true;
          break;
        default:
          break;
      }
    }
    this.skipUntilSync = batchFailed;
    this.held.length = 0;
    this.intercepts?.dropRefusals();
    this.state = ClientState.Idle;
    batch.flush(this.socket);
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

  /**
   * Send a FATAL (or ERROR) and close. `onWire` false: close without sending it (the client's stream stopped in
   * the middle of a message, where an ErrorResponse would be read as the rest of that message).
   */
  copyBroken(code: number): void {
    if (this.state === ClientState.Closed) return;
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(Errors.unexpectedDuringCopy(code).toWire());
    this.fail(Errors.copySyncLost());
  }

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
    this.server?.socket.off('drain', this.resumeFromServer);
    if (this.state !== ClientState.Closed) this.socket.resume();
  }
}

