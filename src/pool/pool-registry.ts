/**
 * Owns every pool and every client connection of the process: creates pools per (database,
 * user) from the configuration, enforces the limits shared between pools (max_client_conn,
 * max_db_connections, max_user_connections), routes cancel requests, and runs the one janitor
 * timer that drives timeouts everywhere.
 */
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { PasswordSource } from '../auth/password-source.js';
import { ScramSecretCache } from '../client/client-auth.js';
import { loadClientTls, loadServerTls, type ClientTls, type ServerTls } from '../net/tls-config.js';
import type { AdminEntry, ClientHost } from '../client/client-host.js';
import type { RegisteredClient } from '../client/client-info.js';
import { ClientState } from '../client/client-state.js';
import { resolveDatabase, type DatabaseConfig, type PgmuxConfig } from '../config/index.js';
import { Errors, type PgmuxError } from '../errors.js';
import { TxStatus } from '../protocol/codes.js';
import type { ServerTarget } from '../server/server-connection.js';
import { EventLog } from './event-log.js';
import { Pool, type PoolHost, type PoolSettings } from './pool.js';
import { queueLink, WaitQueue } from './wait-queue.js';
import { addCounters, averages, StatsHistory, ZERO_COUNTERS } from './pool-stats.js';
import { LoginBudget } from './login-budget.js';

const JANITOR_INTERVAL_MS = 200;

export class PoolRegistry implements ClientHost, PoolHost {
  readonly pools = new Map<string, Pool>();
  /** Every client connection, logged in or not. */
  readonly clients = new Set<RegisteredClient>();
  readonly secrets = new ScramSecretCache();
  // Replaced as a whole by a reload (applyConfig).
  clientTls: ClientTls;
  serverTls: ServerTls;
  passwords: PasswordSource;
  /** The admin console behind the virtual databases pgbouncer/pgmux, when the process has one. */
  adminConsole: AdminEntry | null = null;
  /** Counter snapshots every stats_period, for the averages of SHOW STATS. */
  readonly statsHistory = new StatsHistory();
  /** PAUSE (or KILL) with no database named: every pool is paused. */
  private pausedAll = false;
  private readonly pausedDbs = new Set<string>();
  private readonly disabledDbs = new Set<string>();
  private orphans = 0;
  /** Configuration reloads (RELOAD, SIGHUP) that were applied / rejected, for metrics. */
  readonly reloads = { ok: 0, failed: 0 };
  /** Reloads, pauses, kills, upstream trouble: the status page's events list. */
  readonly events = new EventLog();
  private readonly byCancelKey = new Map<number, RegisteredClient>();
  private serverIds = 0;
  private failedLogins = 0;
  /** Clients pinned, by reason, since start (for the admin console and metrics). */
  readonly pinCounts = new Map<string, number>();
  private failedLoginsSince = Date.now();
  /** Failed client logins since start (monotonic, for metrics; failedLogins above is per minute). */
  loginFailuresTotal = 0;
  /** Called once for each pool created (the metrics module attaches its histograms here). */
  onPoolCreated: ((pool: Pool) => void) | null = null;
  private janitor: NodeJS.Timeout | null = null;
  /** Clients holding a max_client_logins_in_progress slot, and those waiting (unread) for one, in arrival order. */
  loginsInProgress = 0;
  readonly loginQueue = new WaitQueue<RegisteredClient>();
  /** client_login_slice: login work gets a bounded share of each event-loop turn. */
  readonly loginBudget: LoginBudget;
  /** Set by Pgmux.stop(): see ClientHost.draining. */
  draining = false;

  /** Throws ConfigError when TLS files or the auth_file cannot be read. */
  constructor(
    public config: PgmuxConfig,
    private readonly log: Logger,
  ) {
    this.loginBudget = new LoginBudget(config.client_login_slice);
    this.clientTls = loadClientTls(config);
    this.serverTls = loadServerTls(config);
    this.passwords = new PasswordSource(config, this.serverTls, log);
    this.secrets.useKey(this.passwords.saltKey());
  }

  start(): void {
    this.janitor = setInterval(() => this.tick(Date.now()), JANITOR_INTERVAL_MS);
    this.janitor.unref();
  }

  stop(): void {
    if (this.janitor !== null) clearInterval(this.janitor);
    this.janitor = null;
  }

  // ---- ClientHost ----

  tooManyClients(): boolean {
    // The asking client is already in the set.
    return this.clients.size > this.config.max_client_conn;
  }

  poolFor(
    database: string,
    dbConfig: DatabaseConfig,
    clientUser: string,
    clientPassword: string | undefined,
    scramKeys?: { clientKey: Buffer; serverKey: Buffer },
  ): Pool {
    if (this.disabledDbs.has(database)) throw Errors.databaseDisabled(database);
    const forced = dbConfig.user !== undefined;
    const upstreamUser = dbConfig.user ?? clientUser;
    const key = `${database}\0${upstreamUser}`;
    let pool = this.pools.get(key);
    if (pool !== undefined) {
      // Passwords looked up with auth_query can change; the newest proof is the one that works.
      if (!forced) pool.updateLogin(clientPassword, scramKeys);
    } else {
      pool = new Pool(
        database,
        upstreamUser,
        this.poolSettings(dbConfig, upstreamUser),
        this.targetFor(dbConfig, upstreamUser, { password: clientPassword, scramKeys }),
        this,
        this.log.child({ pool: `${database}/${upstreamUser}` }),
      );
      pool.paused = this.isPaused(database);
      this.pools.set(key, pool);
      this.onPoolCreated?.(pool);
    }
    return pool;
  }

  /** Registers a new connection and gives it its cancel key. */
  addClient(client: RegisteredClient): void {
    this.clients.add(client);
    let processId: number;
    do processId = randomInt(1, 0x7fffffff);
    while (this.byCancelKey.has(processId));
    client.processId = processId;
    client.secretKey = randomInt(0, 0xffffffff) | 0;
    this.byCancelKey.set(processId, client);
    // Admission control (max_client_logins_in_progress): a login storm is let in a slot at a time, so its
    // password exchanges cannot crowd out the traffic of clients already logged in. Beyond the cap the
    // socket is not read (the kernel holds what it sends) until a slot frees, first come first served.
    const max = this.config.max_client_logins_in_progress;
    if (max === 0 || this.loginsInProgress < max) {
      this.loginsInProgress++;
      client.holdsLoginSlot = true;
    } else {
      client.socket.pause();
      client.loginLink ??= queueLink(client);
      this.loginQueue.push(client.loginLink);
    }
  }

  loginEnded(client: RegisteredClient): void {
    if (client.loginLink?.queued === true) {
      this.loginQueue.remove(client.loginLink);
      client.loginLink = null;
      return;
    }
    if (!client.holdsLoginSlot) return;
    client.holdsLoginSlot = false;
    this.loginsInProgress--;
    this.admitLogins();
  }

  /** Let queued logins in while slots are free (also after a reload raised the cap). */
  private admitLogins(): void {
    const max = this.config.max_client_logins_in_progress;
    while (this.loginQueue.length > 0 && (max === 0 || this.loginsInProgress < max)) {
      const next = this.loginQueue.shift() as RegisteredClient;
      next.loginLink = null; // made again should it ever queue again; an idle client keeps none
      this.loginsInProgress++;
      next.holdsLoginSlot = true;
      next.socket.resume();
    }
  }

  clientLoggedIn(client: RegisteredClient): void {
    // The registry's logger with the client's fields: no per-client child logger just for this line.
    if (this.config.log_connections) this.log.info({ client: client.id, user: client.user, db: client.database, addr: client.label, app: client.applicationName }, 'client logged in');
  }

  loginFailed(client: RegisteredClient, error: PgmuxError): void {
    this.failedLogins++;
    this.loginFailuresTotal++;
    client.log.warn({ addr: client.label, code: error.code, failedLoginsThisMinute: this.failedLogins }, 'client login failed');
  }

  clientClosed(client: RegisteredClient, reason: string): void {
    this.loginEnded(client);
    if (!this.clients.delete(client)) return;
    this.byCancelKey.delete(client.processId);
    if (client.pool !== null && this.config.log_disconnections) {
      this.log.info({ client: client.id, user: client.user, db: client.database, durationMs: Date.now() - client.connectedAt, reason }, 'client disconnected');
    }
  }

  clientPinned(client: RegisteredClient, kind: string): void {
    this.pinCounts.set(kind, (this.pinCounts.get(kind) ?? 0) + 1);
    client.pool?.stats.pin(kind);
    client.log.info({ reason: kind }, 'client pinned to its server connection by session state');
  }

  cancel(processId: number, secretKey: number, done: () => void): void {
    const client = this.byCancelKey.get(processId);
    // A wrong key is ignored silently, as PostgreSQL does (no oracle for guessing keys).
    if (client === undefined || client.secretKey !== secretKey) {
      done();
      return;
    }
    client.cancelRequested(done);
  }

  // ---- PoolHost ----

  nextServerId(): number {
    return ++this.serverIds;
  }

  mayOpenServer(pool: Pool): boolean {
    const dbCap = resolveDatabase(this.config, pool.database)?.max_db_connections ?? this.config.max_db_connections;
    const userCap = this.userConfig(pool.user)?.max_user_connections ?? this.config.max_user_connections;
    if (dbCap > 0 && this.count((p) => p.database === pool.database) >= dbCap) return this.makeRoom(pool, (p) => p.database === pool.database);
    if (userCap > 0 && this.count((p) => p.user === pool.user) >= userCap) return this.makeRoom(pool, (p) => p.user === pool.user);
    return true;
  }

  capacityFreed(pool: Pool): void {
    for (const other of this.pools.values()) {
      if (other !== pool && other.waiting.length > 0 && (other.database === pool.database || other.user === pool.user)) other.grow();
    }
  }

  // ---- housekeeping ----

  tick(now: number): void {
    if (now - this.failedLoginsSince >= 60_000) {
      // The rate of failed logins, once a minute when there were any: password spraying shows up here.
      if (this.failedLogins > 0) this.log.warn({ failedLogins: this.failedLogins, periodMs: now - this.failedLoginsSince }, 'failed client logins in the last minute');
      this.failedLogins = 0;
      this.failedLoginsSince = now;
    }
    for (const pool of this.pools.values()) pool.tick(now);
    this.forgetDrainedPools();
    if (this.statsHistory.tick(now, this.config.stats_period, [...this.pools.values()].map((p) => p.stats))) this.logStats(now);
    const c = this.config;
    if (c.client_login_timeout === 0 && c.client_idle_timeout === 0 && c.idle_transaction_timeout === 0 && c.query_timeout === 0) return;
    for (const client of this.clients) this.checkClientTimeouts(client, now);
  }

  private checkClientTimeouts(client: RegisteredClient, now: number): void {
    const c = this.config;
    switch (client.state) {
      case ClientState.Startup:
      case ClientState.Authenticating:
        if (c.client_login_timeout > 0 && now - client.connectedAt >= c.client_login_timeout) client.fail(Errors.loginTimeout(c.client_login_timeout));
        return;
      case ClientState.Idle:
        if (c.client_idle_timeout > 0 && now - client.lastActive >= c.client_idle_timeout) client.fail(Errors.clientIdleTimeout(c.client_idle_timeout));
        return;
      case ClientState.Active: {
        const server = client.server;
        const link = server?.link ?? null;
        if (server === null || link === null) return;
        if (!link.busy) {
          const inTransaction = server.txStatus !== TxStatus.Idle;
          if (inTransaction && c.idle_transaction_timeout > 0 && now - server.readyAt >= c.idle_transaction_timeout) {
            client.fail(Errors.idleTransactionTimeout(c.idle_transaction_timeout));
          }
        } else if (c.query_timeout > 0) {
          const running = performance.now() - link.requestSince;
          if (running >= c.query_timeout && !link.cancelSent) {
            link.cancelSent = true;
            client.log.info({ timeoutMs: c.query_timeout }, 'query_timeout reached: cancelling');
            server.cancel();
          } else if (link.cancelSent && running >= 2 * c.query_timeout) {
            // The cancel went unanswered (a blackholed network, a server that stopped reading): the
            // server's state is unknown, so the client goes, and its server is closed on the way out.
            client.fail(Errors.queryTimeoutUnanswered(server.owner.name, c.query_timeout));
          }
        }
        return;
      }
      default:
        return;
    }
  }

  /** Stop all pools (shutdown): waiting clients are told, idle servers closed. */
  closePools(): void {
    for (const pool of this.pools.values()) pool.close();
  }

  get serverCount(): number {
    let n = 0;
    for (const pool of this.pools.values()) n += pool.serverCount;
    return n;
  }

  // ---- admin control: PAUSE, RESUME, RECONNECT, KILL, DISABLE, ENABLE, KILL_CLIENT ----

  /** The pools of one database (all pools when `database` is undefined), pools of removed databases included. */
  poolsOf(database?: string): Pool[] {
    const out: Pool[] = [];
    for (const pool of this.pools.values()) if (database === undefined || pool.database === database) out.push(pool);
    return out;
  }

  isPaused(database: string): boolean {
    return this.pausedAll || this.pausedDbs.has(database);
  }

  isDisabled(database: string): boolean {
    return this.disabledDbs.has(database);
  }

  /** Names of paused databases; "*" when everything is paused (PAUSE without a name). */
  pausedDatabases(): string[] {
    return this.pausedAll ? ['*'] : [...this.pausedDbs];
  }

  /** PAUSE [db]: hand out no servers, close them as they are released. Done when `pauseDone(db)` says so. */
  pause(database?: string): void {
    if (database === undefined) this.pausedAll = true;
    else this.pausedDbs.add(database);
    for (const pool of this.poolsOf(database)) pool.pause();
    this.events.add('pause', database ?? '', database === undefined ? 'PAUSE: every database paused' : `PAUSE ${database}`);
  }

  /** Whether PAUSE [db] has finished: no server connection of the database(s) left. */
  pauseDone(database?: string): boolean {
    return this.poolsOf(database).every((p) => p.serverCount === 0);
  }

  /** RESUME [db]; without a name, everything paused (globally or per database) is resumed. */
  resume(database?: string): void {
    if (database === undefined) {
      this.pausedAll = false;
      this.pausedDbs.clear();
    } else {
      this.pausedDbs.delete(database);
    }
    for (const pool of this.poolsOf(database)) if (!this.isPaused(pool.database)) pool.resume();
    this.events.add('resume', database ?? '', database === undefined ? 'RESUME: every database resumed' : `RESUME ${database}`);
  }

  /** RECONNECT [db]: servers close when next released; new ones connect as needed. */
  reconnect(database?: string): void {
    for (const pool of this.poolsOf(database)) pool.reconnect();
  }

  /** Whether servers marked by RECONNECT or a reload are all gone (WAIT_CLOSE). */
  closeDone(database?: string): boolean {
    return this.poolsOf(database).every((p) => p.closeNeeded.size === 0);
  }

  /** KILL [db]: drop its clients and servers at once; the database stays paused until RESUME. */
  kill(database?: string): void {
    if (database === undefined) this.pausedAll = true;
    else this.pausedDbs.add(database);
    const pools = this.poolsOf(database);
    const clients = pools.reduce((n, p) => n + p.clients.size, 0);
    for (const pool of pools) pool.kill(Errors.databaseKilled(pool.database));
    this.events.add('kill', database ?? '', `${database === undefined ? 'KILL' : `KILL ${database}`}: ${clients} client(s) dropped, paused until RESUME`);
  }

  /** DISABLE db / ENABLE db: refuse or allow new client logins. */
  setDisabled(database: string, disabled: boolean): void {
    if (disabled) this.disabledDbs.add(database);
    else this.disabledDbs.delete(database);
  }

  /** KILL_CLIENT id: close one client, and the server it holds. Returns whether it existed. */
  killClient(id: number): boolean {
    for (const client of this.clients) {
      if (client.id !== id) continue;
      const server = client.server;
      if (server !== null) client.pool?.closeNeeded.add(server);
      client.fail(Errors.clientKilled(id));
      this.events.add('kill-client', client.pool?.name ?? '', `KILL_CLIENT ${id}`);
      return true;
    }
    return false;
  }

  // ---- reload ----

  /**
   * Takes a new configuration (RELOAD, SIGHUP, SET). Everything that can fail (TLS files, the
   * auth_file) is read first: on a ConfigError nothing has changed. Then pools are updated in
   * place: new sizes and timeouts at once, a new upstream target with RECONNECT semantics;
   * pools of databases that are gone (or whose forced user changed) take no new clients and are
   * forgotten once their clients have left. No client is dropped.
   */
  applyConfig(next: PgmuxConfig): ReloadSummary {
    const clientTls = loadClientTls(next);
    const loadedServerTls = loadServerTls(next);
    const serverTls = sameServerTls(loadedServerTls, this.serverTls) ? this.serverTls : loadedServerTls;
    const passwords = new PasswordSource(next, serverTls, this.log);

    const previous = this.config;
    this.config = next;
    this.loginBudget.setBudget(next.client_login_slice);
    this.clientTls = clientTls;
    this.serverTls = serverTls;
    this.passwords = passwords;
    this.secrets.useKey(passwords.saltKey());
    const summary: ReloadSummary = {
      added: Object.keys(next.databases).filter((name) => !Object.hasOwn(previous.databases, name)),
      resized: [],
      retargeted: [],
      removed: [],
    };
    for (const [key, pool] of [...this.pools]) {
      if (key.includes('\0orphan')) continue;
      const db = resolveDatabase(next, pool.database);
      const wasForced = resolveDatabase(previous, pool.database)?.user !== undefined;
      if (db === undefined || (db.user !== undefined) !== wasForced || (db.user !== undefined && db.user !== pool.user)) {
        this.orphan(key, pool);
        summary.removed.push(pool.name);
        continue;
      }
      const settings = this.poolSettings(db, pool.user);
      if (!sameSettings(settings, pool.settings)) {
        pool.updateSettings(settings);
        summary.resized.push(pool.name);
      }
      const login = pool.target.login;
      const target = this.targetFor(db, pool.user, { password: login.password, scramKeys: login.scramKeys });
      if (sameTarget(target, pool.target)) {
        pool.target = target; // keepalive, max_prepared_statements: for servers opened from now on
      } else {
        pool.retarget(target);
        summary.retargeted.push(pool.name);
      }
    }
    for (const pool of this.pools.values()) if (pool.waiting.length > 0) pool.grow();
    this.admitLogins();
    return summary;
  }

  /** A pool that takes no new clients: kept (under another key) until its clients have left. */
  private orphan(key: string, pool: Pool): void {
    this.pools.delete(key);
    this.pools.set(`${key}\0orphan${++this.orphans}`, pool);
    pool.log.info('database removed or changed by reload: the pool takes no new clients and closes when its clients have left');
    if (pool.clients.size === 0) pool.close();
  }

  private forgetDrainedPools(): void {
    for (const [key, pool] of this.pools) {
      if (!key.includes('\0orphan')) continue;
      if (pool.clients.size === 0) pool.close();
      if (pool.drained) this.pools.delete(key);
    }
  }

  /** Once per stats_period, as PgBouncer does: the averages of the last period, when there was traffic. */
  private logStats(now: number): void {
    const live = { ...ZERO_COUNTERS };
    const then = { ...ZERO_COUNTERS };
    for (const pool of this.pools.values()) {
      addCounters(live, pool.stats.snapshot());
      addCounters(then, this.statsHistory.baseline(pool.stats));
    }
    if (live.queryCount === then.queryCount && live.bytesReceived === then.bytesReceived) return;
    const avg = averages(live, then, now - this.statsHistory.windowStart);
    this.log.info(
      {
        xactsPerSec: avg.xactCount,
        queriesPerSec: avg.queryCount,
        bytesInPerSec: avg.bytesReceived,
        bytesOutPerSec: avg.bytesSent,
        xactUs: avg.xactTimeUs,
        queryUs: avg.queryTimeUs,
        waitUs: avg.waitTimeUs,
      },
      'stats',
    );
  }

  // ---- internals ----

  private targetFor(
    dbConfig: DatabaseConfig,
    upstreamUser: string,
    client: { password: string | undefined; scramKeys?: { clientKey: Buffer; serverKey: Buffer } },
  ): ServerTarget {
    const forced = dbConfig.user !== undefined;
    return {
      host: dbConfig.host,
      port: dbConfig.port,
      keepalive: this.config.tcp_keepalive,
      keepidleMs: this.config.tcp_keepidle,
      login: {
        user: upstreamUser,
        database: dbConfig.dbname,
        password: forced ? dbConfig.password : client.password,
        scramKeys: forced ? undefined : client.scramKeys,
        ...startupParameters(dbConfig),
      },
      tls: this.serverTls,
      connectQuery: dbConfig.connect_query,
      maxPreparedStatements: this.config.max_prepared_statements,
    };
  }

  private userConfig(user: string) {
    return Object.hasOwn(this.config.users, user) ? this.config.users[user] : undefined;
  }

  private poolSettings(dbConfig: DatabaseConfig, user: string): PoolSettings {
    const c = this.config;
    const u = this.userConfig(user);
    const mode = u?.pool_mode ?? dbConfig.pool_mode ?? c.pool_mode;
    return {
      mode,
      poolSize: u?.pool_size ?? dbConfig.pool_size ?? c.default_pool_size,
      minPoolSize: dbConfig.min_pool_size ?? c.min_pool_size,
      reservePoolSize: dbConfig.reserve_pool_size ?? c.reserve_pool_size,
      reservePoolTimeoutMs: c.reserve_pool_timeout,
      queryWaitTimeoutMs: c.query_wait_timeout,
      queryWaitNotifyMs: c.query_wait_notify,
      maxQueuedClients: c.max_queued_clients_per_pool,
      maxServerLogins: c.max_server_logins_per_pool,
      serverConnectRate: c.server_connect_rate,
      serverIdleTimeoutMs: c.server_idle_timeout,
      serverLifetimeMs: c.server_lifetime,
      serverConnectTimeoutMs: c.server_connect_timeout,
      serverLoginRetryMs: c.server_login_retry,
      serverLoginRetryMinMs: c.server_login_retry_min,
      resetQuery: c.server_reset_query === '' ? null : c.server_reset_query,
      resetQueryAlways: c.server_reset_query_always,
      checkQuery: c.server_check_query === '' ? null : c.server_check_query,
      checkDelayMs: c.server_check_delay,
    };
  }

  private count(match: (p: Pool) => boolean): number {
    let n = 0;
    for (const p of this.pools.values()) if (match(p)) n += p.serverSlots;
    return n;
  }

  /** At a shared cap: close an idle connection of a sibling pool so this one can grow next time. */
  private makeRoom(pool: Pool, sibling: (p: Pool) => boolean): boolean {
    for (const other of this.pools.values()) {
      if (other !== pool && sibling(other) && other.evictIdle()) return false;
    }
    return false;
  }
}

/** What a reload changed, by pool name (database/user). */
export interface ReloadSummary {
  /** Databases the new configuration has and the previous one did not (their pools open with their first client). */
  added: string[];
  /** New pool size, mode or timeouts. */
  resized: string[];
  /** New upstream target: servers close when released (RECONNECT semantics). */
  retargeted: string[];
  /** Database gone (or its forced user changed): no new clients, forgotten when the last leaves. */
  removed: string[];
}

/** The database's own startup parameters for its server logins (see UpstreamLogin.parameters). */
function startupParameters(db: DatabaseConfig): { parameters?: Readonly<Record<string, string>> } {
  const parameters: Record<string, string> = {};
  if (db.application_name !== undefined) parameters.application_name = db.application_name;
  if (db.options !== undefined) parameters.options = db.options;
  return Object.keys(parameters).length === 0 ? {} : { parameters };
}

function sameParameters(a: Readonly<Record<string, string>> | undefined, b: Readonly<Record<string, string>> | undefined): boolean {
  return a?.application_name === b?.application_name && a?.options === b?.options;
}

function sameSettings(a: PoolSettings, b: PoolSettings): boolean {
  for (const key of Object.keys(a) as Array<keyof PoolSettings>) if (a[key] !== b[key]) return false;
  return true;
}

/** Whether servers of target `b` can go on serving target `a` (what they connected to is the same). */
function sameTarget(a: ServerTarget, b: ServerTarget): boolean {
  return (
    a.host === b.host &&
    a.port === b.port &&
    a.login.user === b.login.user &&
    a.login.database === b.login.database &&
    a.login.password === b.login.password &&
    sameParameters(a.login.parameters, b.login.parameters) &&
    a.tls === b.tls &&
    a.connectQuery === b.connectQuery
  );
}

function sameServerTls(a: ServerTls, b: ServerTls): boolean {
  const eq = (x: Buffer | undefined, y: Buffer | undefined): boolean => (x === undefined ? y === undefined : y !== undefined && x.equals(y));
  return a.mode === b.mode && eq(a.ca, b.ca) && eq(a.cert, b.cert) && eq(a.key, b.key);
}
