/**
 * A pool of server connections for one (database, user) pair, and the clients waiting for them.
 *
 * Every server connection is in exactly one container, matching its state: connecting, idle
 * (a LIFO stack, so warm connections are reused), active (attached to a client) or resetting.
 * `place()` is the only way between them; the counts shown to operators are these containers'
 * sizes, so they cannot drift. Waiting clients queue FIFO.
 */
import type { Logger } from 'pino';
import { noticeResponse } from '../protocol/backend-messages.js';
import { Errors, PgmuxError } from '../errors.js';
import { ServerConnection, ServerState, type ServerClient, type ServerOwner, type ServerTarget } from '../server/server-connection.js';
import { startupKeyOf } from '../server/session-params.js';
import { ConnectBucket } from './connect-bucket.js';
import { LoginBackoff } from './login-backoff.js';
import { PoolStats } from './pool-stats.js';
import { WaitQueue, type QueueLink } from './wait-queue.js';

/** Distinct (setting, value) pairs remembered per pool (see acceptedStartup). */
const MAX_ACCEPTED_STARTUP = 1024;

export type PoolMode = 'session' | 'transaction' | 'statement';


export interface PoolSettings {
  mode: PoolMode;
  poolSize: number;
  minPoolSize: number;
  reservePoolSize: number;
  reservePoolTimeoutMs: number;
  queryWaitTimeoutMs: number;
  /** A logged-in client queued longer than this gets one NOTICE (query_wait_notify); 0: never. */
  queryWaitNotifyMs: number;
  /** Clients that may wait in the queue (max_queued_clients_per_pool); 0: unlimited. */
  maxQueuedClients: number;
  /** Server connections connecting and logging in at once (max_server_logins_per_pool); 0: unlimited. */
  maxServerLogins: number;
  /** New server connections per second, a token bucket of one second's worth (server_connect_rate); 0: unlimited. */
  serverConnectRate: number;
  serverIdleTimeoutMs: number;
  serverLifetimeMs: number;
  serverConnectTimeoutMs: number;
  /** The longest wait between connection attempts after failed logins (server_login_retry). */
  serverLoginRetryMs: number;
  /** The first wait after a failed login, doubling per failure (server_login_retry_min); 0: always serverLoginRetryMs. */
  serverLoginRetryMinMs: number;
  resetQuery: string | null;
  resetQueryAlways: boolean;
  /** Run on a connection idle for checkDelayMs before it is handed out (server_check_query). */
  checkQuery: string | null;
  checkDelayMs: number;
}

/** A client as the pool sees it. */
export interface PoolClient extends ServerClient {
  readonly id: number;
  /** Its link in the wait queue, to see whether it is queued: NOT_QUEUED until it first waits. */
  readonly waitLink: QueueLink<PoolClient>;
  /** Its own link, made the first time it waits (most clients are served at once and never need one). */
  waitQueueLink(): QueueLink<PoolClient>;
  /** The server assigned to it (possibly still syncing parameters), or null. */
  server: ServerConnection | null;
  waitingSince: number;
  /** performance.now() at the request: the wait is timed on the monotonic clock, to the microsecond. */
  waitStartedAt: number;
  /** Told (query_wait_notify) that it is queued, during the current wait. */
  waitNotified: boolean;
  /** Send a NoticeResponse (a buffer shared between clients: never modified). */
  sendNotice(message: Buffer): void;
  /** No server became free in time, or none could be connected. */
  onAcquireFailed(error: PgmuxError): void;
  /** The server was taken back at a transaction boundary. */
  onReleased(): void;
  /** Still logging in: it needs a server to finish, and a failure to get one closes it (FATAL). */
  readonly loggingIn: boolean;
  /** Holds unmovable session state (transaction mode): its server must be reset before reuse. */
  readonly pinned: boolean;
  /** Pinned, or left while what its session holds on the server was still being established: reset before reuse. */
  readonly needsReset: boolean;
  /** Send a FATAL error and close the connection (KILL from the admin console). */
  fail(error: PgmuxError): void;
  /**
   * The client's own startup settings that a server may be opened with (see openServer), and a
   * key equal for equal settings.
   */
  readonly serverStartup: { readonly settings: ReadonlyMap<string, string>; readonly key: string };
}

/** What a pool asks of the registry that owns it (limits shared between pools). */
export interface PoolHost {
  nextServerId(): number;
  /** Whether per-database / per-user caps allow one more server connection for this pool. */
  mayOpenServer(pool: Pool): boolean;
  /** A server connection of this pool went away: pools blocked on shared caps may grow. */
  capacityFreed(pool: Pool): void;
}

export class Pool implements ServerOwner {
  readonly name: string;
  readonly waiting = new WaitQueue<PoolClient>();
  readonly connecting = new Set<ServerConnection>();
  readonly idle: ServerConnection[] = [];
  readonly active = new Set<ServerConnection>();
  readonly resetting = new Set<ServerConnection>();
  /** Retired by the pool, their backends not gone yet: still counted against the shared caps (serverSlots). */
  readonly closing = new Set<ServerConnection>();
  /** Logged-in clients of this pool (waiting, active or between transactions). */
  readonly clients = new Set<PoolClient>();
  readonly stats = new PoolStats();
  /** Clients' cancel requests forwarded to a server and not yet acted on (SHOW POOLS cl_active_cancel_req). */
  cancelRequestsInFlight = 0;
  /** ParameterStatus values of the first server to log in (reported ones only): what new clients are told. */
  defaultParams: ReadonlyMap<string, string> | null = null;
  /**
   * Startup settings a server has already accepted (name and requested value → the value the
   * server reports). A client asking only for these logs in without a server round trip, as it
   * would with PgBouncer; a new value is still tried on a server first, so a bad one fails at login.
   */
  private readonly acceptedStartup = new Map<string, string>();
  /**
   * PAUSE / KILL from the admin console: no server is handed out or opened, servers close as they
   * are released, and clients that want one wait in the queue until RESUME.
   */
  paused = false;
  /**
   * Servers to close when next released, whatever their state (RECONNECT, or a reload that changed
   * the upstream target): a flag, not a container; place() drops it when the server closes.
   */
  readonly closeNeeded = new Set<ServerConnection>();
  /** A pool_mode change from a reload, applied once no client uses the pool (see tick). */
  private pendingSettings: PoolSettings | null = null;
  /** The circuit breaker of server logins (see login-backoff.ts). */
  readonly logins: LoginBackoff;
  /** server_connect_rate. */
  private readonly connectBucket: ConnectBucket;
  private closed = false;

  constructor(
    readonly database: string,
    readonly user: string,
    public settings: PoolSettings,
    public target: ServerTarget,
    private readonly host: PoolHost,
    readonly log: Logger,
  ) {
    this.name = `${database}/${user}`;
    this.logins = new LoginBackoff(settings.serverLoginRetryMinMs, settings.serverLoginRetryMs);
    this.connectBucket = new ConnectBucket(settings.serverConnectRate);
  }

  /** Transaction and statement mode: servers go back to the pool between transactions. */
  get transactionMode(): boolean {
    return this.settings.mode !== 'session';
  }

  /** Statement mode: additionally, no transaction may stay open across requests. */
  get statementMode(): boolean {
    return this.settings.mode === 'statement';
  }

  /** All server connections, whatever their state. */
  get serverCount(): number {
    return this.connecting.size + this.idle.length + this.active.size + this.resetting.size;
  }

  /**
   * Server connections still taking a slot at the server: serverCount and those retired whose backends have not gone
   * yet. The shared caps (max_db_connections, max_user_connections) count these, so room made under a cap is used
   * once the backend has exited, not while it still counts against the server's max_connections. The pool's own
   * size does not wait for them (a blackholed upstream's backends may never answer).
   */
  get serverSlots(): number {
    return this.serverCount + this.closing.size;
  }

  /** New credentials for future server logins (auth_query results, SCRAM passthrough keys). */
  updateLogin(password: string | undefined, scramKeys: { clientKey: Buffer; serverKey: Buffer } | undefined): void {
    const login = this.target.login;
    if (password !== undefined && password !== login.password) {
      login.password = password;
      login.scramKeys = undefined;
    }
    if (scramKeys !== undefined) login.scramKeys = scramKeys;
  }

  // ---- clients ----

  /** The value the server reported for this startup setting when a client last asked for it, if any. */
  acceptedStartupValue(name: string, requested: string): string | undefined {
    return this.acceptedStartup.get(`${name}\u0000${requested}`);
  }

  rememberStartupValue(name: string, requested: string, reported: string): void {
    // Bounded: clients inventing a new application_name each time must not grow this forever.
    if (this.acceptedStartup.size < MAX_ACCEPTED_STARTUP) this.acceptedStartup.set(`${name}\u0000${requested}`, reported);
  }

  /** Find a server for the client: an idle one now, else queue it (and open one if allowed). */
  acquire(client: PoolClient, now: number = Date.now()): void {
    if (this.closed) {
      client.onAcquireFailed(Errors.adminShutdown());
      return;
    }
    client.waitingSince = now;
    client.waitStartedAt = performance.now();
    client.waitNotified = false;
    const max = this.settings.maxQueuedClients;
    if (this.paused) {
      if (max > 0 && this.waiting.length >= max) return this.queueFull(client);
      this.waiting.push(client.waitQueueLink());
      return;
    }
    const server = this.takeIdle(now, client.serverStartup.key);
    if (server !== null && !this.needsCheck(server, now)) {
      this.assign(server, client);
      return;
    }
    // With a server being checked the client is served next (it goes to the head of the queue): not refused.
    if (server === null && max > 0 && this.waiting.length >= max) return this.queueFull(client);
    if (server === null && this.serverCount === 0 && this.logins.failing && !this.logins.mayConnect(now)) {
      // Logins are failing, nothing is up or coming, and the next attempt is not due: queueing would
      // only make the client wait for server_login_retry or query_wait_timeout. Tell it why now.
      this.failAcquire(client, this.loginFailingError(now));
      return;
    }
    this.waiting.push(client.waitQueueLink());
    if (server !== null) {
      // Long idle: prove it still works before use; it then serves the head of the queue.
      this.place(server, ServerState.Resetting);
      server.reset([this.settings.checkQuery]);
      return;
    }
    this.grow(now);
  }

  /**
   * A client that could not be given a server. A logged-in transaction-mode client only loses the
   * request (ERROR, its connection stays usable); one still logging in, or in session mode, is closed.
   */
  private failAcquire(client: PoolClient, error: PgmuxError): void {
    if (error.fatal && this.transactionMode && this.hasLoggedIn(client)) {
      error = new PgmuxError(error.code, error.sqlstate, error.message, { ...error.options, severity: 'ERROR' });
    }
    client.onAcquireFailed(error);
  }

  /** max_queued_clients_per_pool reached: fail fast rather than queue (53300). */
  private queueFull(client: PoolClient): void {
    this.stats.queueFullRefusals++;
    this.failAcquire(client, Errors.poolQueueFull(this.name, this.settings.maxQueuedClients, !this.hasLoggedIn(client)));
  }

  /** The latest login error, with a DETAIL saying pgmux is backing off (the server's own fields unchanged). */
  private loginFailingError(now: number): PgmuxError {
    const b = this.logins;
    const last = b.lastError as PgmuxError;
    const inMs = Math.max(0, b.retryAt - now);
    const detail =
      last.options.detail ??
      `pgmux has failed to log in to the server ${b.failures} time${b.failures === 1 ? '' : 's'} in a row; it tries again in ${inMs} ms (server_login_retry_min, doubling up to server_login_retry).`;
    return new PgmuxError(last.code, last.sqlstate, last.message, { ...last.options, detail });
  }

  /** The client disconnected: leave the queue, and hand its server back safely. */
  clientGone(client: PoolClient): void {
    this.clients.delete(client);
    this.waiting.remove(client.waitLink);
    const server = client.server;
    if (server === null) return;
    client.server = null;
    const resetQuery =
      this.settings.mode === 'session' || this.settings.resetQueryAlways
        ? this.settings.resetQuery
        : client.needsReset || server.statementsUnknown
          ? (this.settings.resetQuery ?? 'DISCARD ALL')
          : null;
    this.place(server, ServerState.Resetting);
    server.clientGone(client, resetQuery);
  }

  /** Remove a waiting client from the queue (cancel request). Returns whether it was waiting. */
  dequeue(client: PoolClient): boolean {
    if (!client.waitLink.queued) return false;
    this.waiting.remove(client.waitLink);
    return true;
  }

  private assign(server: ServerConnection, client: PoolClient): void {
    // Every assignment is one wait, 0 ms for a client served at once: averages and percentiles are of all
    // requests. (Timed with Date.now() and counted only from 1 ms, they were stuck at 0 or 1 ms.)
    if (client.waitLink.queued === false && client.waitStartedAt > 0) {
      this.stats.wait(Math.max(0, performance.now() - client.waitStartedAt));
      client.waitStartedAt = 0;
    }
    this.stats.assignCount++;
    this.place(server, ServerState.Active);
    client.server = server;
    server.attach(client);
  }

  /**
   * An idle server, warmest first; preferably one opened with the client's startup settings,
   * so that RESET on it returns to the client's values, as on a direct connection.
   */
  private takeIdle(now: number, startupKey: string): ServerConnection | null {
    for (;;) {
      let i = this.idle.length - 1;
      while (i > 0 && this.idle[i].startupKey !== startupKey) i--;
      if (i < 0) return null;
      const server = this.idle[i].startupKey === startupKey ? this.idle.splice(i, 1)[0] : (this.idle.pop() as ServerConnection);
      if (this.expired(server, now)) {
        this.retire(server, 'server_lifetime reached');
        continue;
      }
      return server;
    }
  }

  // ---- ServerOwner: reports from server connections ----

  serverFree(server: ServerConnection): void {
    if (server.beingCanceled) {
      // A cancel request for the client just served is still on its way to PostgreSQL; handed on now, the server
      // could have the next client's query cancelled instead. Held until it is done (SHOW POOLS sv_being_canceled);
      // its own queries (a reset) wait for it too, in ServerConnection.runOwnQuery.
      this.place(server, ServerState.Resetting);
      server.whenCancelsDone(() => this.serverFree(server));
      return;
    }
    if (this.defaultParams === null) this.defaultParams = server.reportedParams();
    const wasLogin = server.state === ServerState.Connecting;
    if (server.state === ServerState.Connecting && this.logins.failing) {
      this.log.info({ server: server.id, failures: this.logins.failures, downForMs: Date.now() - this.logins.lastFailureAt }, 'server login succeeded again');
      this.logins.succeeded();
    }
    const now = Date.now();
    const surplus = this.serverCount > this.settings.poolSize + this.settings.reservePoolSize;
    if (this.closed || this.paused || this.closeNeeded.has(server) || surplus || this.expired(server, now)) {
      this.retire(server, this.retireReason(server, surplus));
      return;
    }
    const next = this.waiting.shift();
    if (next !== undefined) {
      this.assign(server, next);
      // A login slot (max_server_logins_per_pool) is free: the next connection for the queue may start.
      if (wasLogin && this.waiting.length > 0) this.grow(now);
      return;
    }
    server.idleSince = now;
    this.place(server, ServerState.Idle);
  }

  serverReleased(server: ServerConnection): void {
    const client = server.client as PoolClient | null;
    server.detach();
    if (client !== null) {
      client.server = null;
      client.onReleased();
    }
    if (this.settings.resetQueryAlways && this.settings.resetQuery !== null) {
      this.place(server, ServerState.Resetting);
      server.reset([this.settings.resetQuery]);
      return;
    }
    if (server.statementsUnknown) {
      this.place(server, ServerState.Resetting);
      server.reset(['DEALLOCATE ALL']);
      return;
    }
    this.serverFree(server);
  }

  serverLoginFailed(server: ServerConnection, error: PgmuxError): void {
    this.closing.delete(server);
    this.place(server, ServerState.Closed);
    this.stats.serverLoginFailures++;
    const retryInMs = this.logins.failed(Date.now(), error, server.createdAt);
    // The first failure of a run is an error; repeats while the breaker stays open are warnings.
    this.log[this.logins.failures === 1 ? 'error' : 'warn'](
      { server: server.id, sqlstate: error.sqlstate, err: error.message, failures: this.logins.failures, retryInMs },
      'server login failed',
    );
    // With no connection up or coming, nobody queued would ever be served: tell them why now
    // rather than after query_wait_timeout.
    if (this.serverCount === 0) {
      for (let c = this.waiting.shift(); c !== undefined; c = this.waiting.shift()) this.failAcquire(c, error);
    }
    this.host.capacityFreed(this);
  }

  serverClosed(server: ServerConnection): void {
    this.closing.delete(server);
    this.place(server, ServerState.Closed);
    this.host.capacityFreed(this);
    if (this.waiting.length > 0) this.grow(Date.now());
  }

  // ---- growth and housekeeping ----

  /** Open server connections for queued clients, within pool_size (+ reserve) and shared caps. */
  grow(now: number = Date.now()): void {
    let allowed = this.connectsAllowed(now);
    while (allowed > 0 && this.waiting.length > this.connecting.size && this.serverCount < this.limit(now)) {
      if (!this.host.mayOpenServer(this)) break;
      this.openServer(this.waiting.peek());
      allowed--;
    }
  }

  /**
   * How many server connections may be opened now: any number while logins succeed; while they
   * fail, one once the backoff wait is over and no other attempt is in flight (half-open), else none.
   */
  private connectsAllowed(now: number): number {
    if (this.closed || this.paused) return 0;
    // Admission control against login storms: logins in flight and the connect rate, per pool.
    const maxLogins = this.settings.maxServerLogins;
    const admitted = Math.min(maxLogins > 0 ? maxLogins - this.connecting.size : Number.POSITIVE_INFINITY, this.connectBucket.available(now));
    if (admitted <= 0) return 0;
    if (!this.logins.failing) return admitted;
    return this.logins.mayConnect(now) && this.connecting.size === 0 ? 1 : 0;
  }

  /** Close one idle connection to make room for another pool under a shared cap. */
  evictIdle(): boolean {
    const server = this.idle[0]; // the one idle longest
    if (server === undefined) return false;
    this.retire(server, 'making room under max_db_connections/max_user_connections');
    return true;
  }

  /** Periodic work, driven by the registry's single janitor timer. */
  tick(now: number): void {
    if (this.pendingSettings !== null && this.clients.size === 0) this.applyPendingSettings();
    const s = this.settings;
    if (s.queryWaitTimeoutMs > 0) {
      for (let head = this.waiting.peek(); head !== undefined && now - head.waitingSince >= s.queryWaitTimeoutMs; head = this.waiting.peek()) {
        this.waiting.shift();
        head.onAcquireFailed(Errors.poolWaitTimeout(this.name, s.queryWaitTimeoutMs, head.server === null && !this.hasLoggedIn(head)));
      }
    }
    if (s.queryWaitNotifyMs > 0 && this.waiting.length > 0) this.notifyWaiting(now, s.queryWaitNotifyMs);
    if (this.waiting.length > 0) this.grow(now);
    for (const server of this.connecting) {
      if (now - server.createdAt >= s.serverConnectTimeoutMs) server.close(`server_connect_timeout (${s.serverConnectTimeoutMs} ms) reached`);
    }
    // pgmux's own queries (check, reset, parameter sync) are small: one unanswered for as long as a
    // login may take means the server stopped answering.
    for (const set of [this.resetting, this.active]) {
      for (const server of set) {
        const sql = server.ownQueryOverdue(now, s.serverConnectTimeoutMs);
        if (sql !== null) server.close(`pgmux's own query "${sql.length > 40 ? `${sql.slice(0, 37)}...` : sql}" got no answer within server_connect_timeout (${s.serverConnectTimeoutMs} ms)`);
      }
    }
    // Oldest idle connections sit at the bottom of the stack.
    for (let i = 0; i < this.idle.length; ) {
      const server = this.idle[i];
      const idleTooLong = s.serverIdleTimeoutMs > 0 && now - server.idleSince >= s.serverIdleTimeoutMs && this.serverCount > s.minPoolSize;
      if (idleTooLong || this.expired(server, now)) this.retire(server, idleTooLong ? 'server_idle_timeout reached' : 'server_lifetime reached');
      else i++;
    }
    if (this.clients.size > 0) {
      for (let allowed = this.connectsAllowed(now); allowed > 0 && this.serverCount < s.minPoolSize && this.host.mayOpenServer(this); allowed--) {
        this.openServer();
      }
    }
    // Half-open probe: while logins fail, a connection now and then (at the backoff's pace) finds out
    // when the upstream is back, even with nobody asking (readiness, min_pool_size).
    if (this.logins.failing && this.serverCount === 0 && this.connectsAllowed(now) > 0 && this.host.mayOpenServer(this)) this.openServer();
  }

  /**
   * query_wait_notify: one NOTICE per wait to each logged-in client queued longer than `afterMs`, as PgBouncer
   * 1.25 sends. The queue is in arrival order, so the walk stops at the first client that has not waited long enough.
   */
  private notifyWaiting(now: number, afterMs: number): void {
    let notice: Buffer | null = null;
    for (const client of this.waiting) {
      if (now - client.waitingSince < afterMs) break;
      if (client.waitNotified || !this.hasLoggedIn(client)) continue;
      client.waitNotified = true;
      notice ??= noticeResponse({
        severity: 'NOTICE',
        code: '00000',
        message: `No server connection available in pool "${this.name}", client being queued`,
        detail: `The client has waited more than ${afterMs} ms for a server connection (query_wait_notify); it keeps waiting up to query_wait_timeout.`,
      });
      client.sendNotice(notice);
    }
  }

  // ---- admin control (PAUSE, RESUME, RECONNECT, KILL) and reload ----

  /** PAUSE: hand out no server; close idle ones now and the rest as they are released. */
  pause(): void {
    this.paused = true;
    for (const server of [...this.idle]) this.retire(server, 'PAUSE');
  }

  /** RESUME: serve the queue again. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.grow();
  }

  /** RECONNECT: every server now open closes when next released (idle ones at once); new ones are opened as needed. */
  reconnect(reason = 'RECONNECT'): void {
    for (const set of [this.connecting, this.active, this.resetting]) for (const server of set) this.closeNeeded.add(server);
    for (const server of [...this.idle]) this.retire(server, reason);
  }

  /** KILL: pause, drop every client with `error`, close every server at once. */
  kill(error: PgmuxError): void {
    this.paused = true;
    for (const client of [...this.clients]) client.fail(error);
    for (let c = this.waiting.shift(); c !== undefined; c = this.waiting.shift()) c.fail(error);
    for (const set of [this.idle, this.active, this.resetting]) {
      for (const server of [...set]) this.retire(server, 'KILL');
    }
    // Closing a connection still logging in would count as a failed login (and delay new ones by
    // server_login_retry): those close as soon as they are up instead.
    for (const server of this.connecting) this.closeNeeded.add(server);
  }

  /**
   * New settings from a reload or SET. Sizes and timeouts apply at once (a smaller pool closes
   * servers beyond its size as they are released); a pool_mode change waits until no client uses
   * the pool, because clients keep the mode they logged in with.
   */
  updateSettings(settings: PoolSettings): void {
    if (settings.mode !== this.settings.mode) {
      this.pendingSettings = settings;
      if (this.clients.size === 0) this.applyPendingSettings();
      else this.log.info({ from: this.settings.mode, to: settings.mode }, 'pool_mode changes when the pool\'s current clients have left');
      return;
    }
    this.pendingSettings = null;
    this.settings = settings;
    this.logins.minMs = settings.serverLoginRetryMinMs;
    this.logins.maxMs = settings.serverLoginRetryMs;
    this.connectBucket.setRate(settings.serverConnectRate);
    for (let i = 0; i < this.idle.length && this.serverCount > settings.poolSize + settings.reservePoolSize; ) {
      this.retire(this.idle[i], 'pool size reduced');
    }
    if (this.waiting.length > 0) this.grow();
  }

  /** A new upstream target (host, port, dbname, login, TLS...): servers of the old one close when released. */
  retarget(target: ServerTarget): void {
    this.target = target;
    this.logins.succeeded(); // failures against the old target say nothing about the new one
    this.reconnect('upstream changed by reload');
  }

  /** Whether the pool is not serving new clients any more and holds nothing: the registry may forget it. */
  get drained(): boolean {
    return this.closed && this.clients.size === 0 && this.serverCount === 0;
  }

  private applyPendingSettings(): void {
    const settings = this.pendingSettings as PoolSettings;
    this.pendingSettings = null;
    this.log.info({ pool_mode: settings.mode }, 'pool_mode changed');
    this.settings = settings;
    this.logins.minMs = settings.serverLoginRetryMinMs;
    this.logins.maxMs = settings.serverLoginRetryMs;
    this.connectBucket.setRate(settings.serverConnectRate);
    // Servers used in the other mode may carry state the new mode does not expect.
    this.reconnect('pool_mode changed');
  }

  private retireReason(server: ServerConnection, surplus: boolean): string {
    if (this.closed) return 'pool closed';
    if (this.paused) return 'PAUSE';
    if (this.closeNeeded.has(server)) return 'RECONNECT';
    return surplus ? 'pool size reduced' : 'server_lifetime reached';
  }

  /** Stop handing out servers; close idle ones now and the rest as they come back. */
  close(): void {
    this.closed = true;
    for (const server of [...this.idle]) this.retire(server, 'pool closed');
    for (let c = this.waiting.shift(); c !== undefined; c = this.waiting.shift()) c.onAcquireFailed(Errors.adminShutdown());
  }

  // ---- internals ----

  private hasLoggedIn(client: PoolClient): boolean {
    return this.clients.has(client) && !client.loggingIn;
  }

  private limit(now: number): number {
    const s = this.settings;
    const head = this.waiting.peek();
    const reserveOpen = s.reservePoolSize > 0 && head !== undefined && now - head.waitingSince >= s.reservePoolTimeoutMs;
    return s.poolSize + (reserveOpen ? s.reservePoolSize : 0);
  }

  private needsCheck(server: ServerConnection, now: number): boolean {
    return this.settings.checkQuery !== null && now - server.idleSince >= this.settings.checkDelayMs;
  }

  private expired(server: ServerConnection, now: number): boolean {
    return this.settings.serverLifetimeMs > 0 && now - server.createdAt >= this.settings.serverLifetimeMs;
  }

  /**
   * Open a server connection, with the startup settings of the client it is opened for where a
   * server has accepted them before (a bad value must not fail the login of a shared connection).
   * The first servers open plain: their values are the defaults clients are told (defaultParams).
   */
  private openServer(forClient?: PoolClient): void {
    let settings: Map<string, string> | null = null;
    let key = '';
    if (forClient !== undefined && this.defaultParams !== null) {
      for (const [name, value] of forClient.serverStartup.settings) {
        if (this.acceptedStartupValue(name, value) === undefined) continue;
        // Only what this server version reports: pgmux must know each server's value to set it back for other
        // clients (search_path is reported from PostgreSQL 18 on; opened with it, an older server would keep it
        // unseen, and a RESET there would return to it).
        if (!this.defaultParams.has(name)) continue;
        settings ??= new Map();
        settings.set(name, value);
      }
      if (settings !== null) key = startupKeyOf(settings);
    }
    const id = this.host.nextServerId();
    const server = new ServerConnection(id, this, this.target, this.log.child({ server: id }), settings, key);
    this.connectBucket.take();
    this.place(server, ServerState.Connecting);
    if (this.connecting.size > this.stats.serverLoginsPeak) this.stats.serverLoginsPeak = this.connecting.size;
  }

  private retire(server: ServerConnection, reason: string): void {
    this.place(server, ServerState.Closed);
    // Counted until its backend has gone (ServerConnection.close waits for it): serverClosed.
    if (!server.socket.destroyed) this.closing.add(server);
    server.log.debug({ reason }, 'closing server connection');
    server.close(reason);
  }

  /** The one place a server connection changes container. */
  private place(server: ServerConnection, state: ServerState): void {
    switch (server.state) {
      case ServerState.Connecting:
        this.connecting.delete(server);
        break;
      case ServerState.Idle: {
        const i = this.idle.indexOf(server);
        if (i >= 0) this.idle.splice(i, 1);
        break;
      }
      case ServerState.Active:
        this.active.delete(server);
        break;
      case ServerState.Resetting:
        this.resetting.delete(server);
        break;
      case ServerState.Closed:
        break;
    }
    server.state = state;
    switch (state) {
      case ServerState.Connecting:
        this.connecting.add(server);
        break;
      case ServerState.Idle:
        this.idle.push(server);
        break;
      case ServerState.Active:
        this.active.add(server);
        break;
      case ServerState.Resetting:
        this.resetting.add(server);
        break;
      case ServerState.Closed:
        this.closeNeeded.delete(server);
        break;
    }
  }
}
