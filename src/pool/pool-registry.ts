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
import type { ClientHost } from '../client/client-host.js';
import { ClientState, type ClientSession } from '../client/client-session.js';
import type { DatabaseConfig, PgmuxConfig } from '../config/index.js';
import { Errors, type PgmuxError } from '../errors.js';
import { TxStatus } from '../protocol/codes.js';
import { Pool, type PoolHost, type PoolSettings } from './pool.js';

const JANITOR_INTERVAL_MS = 200;

export class PoolRegistry implements ClientHost, PoolHost {
  readonly pools = new Map<string, Pool>();
  /** Every client connection, logged in or not. */
  readonly clients = new Set<ClientSession>();
  readonly secrets = new ScramSecretCache();
  readonly clientTls: ClientTls;
  readonly serverTls: ServerTls;
  readonly passwords: PasswordSource;
  private readonly byCancelKey = new Map<number, ClientSession>();
  private serverIds = 0;
  private failedLogins = 0;
  /** Clients pinned, by reason, since start (for the admin console and metrics). */
  readonly pinCounts = new Map<string, number>();
  private failedLoginsSince = Date.now();
  private janitor: NodeJS.Timeout | null = null;
  draining = false;

  /** Throws ConfigError when TLS files or the auth_file cannot be read. */
  constructor(
    public config: PgmuxConfig,
    private readonly log: Logger,
  ) {
    this.clientTls = loadClientTls(config);
    this.serverTls = loadServerTls(config);
    this.passwords = new PasswordSource(config, this.serverTls, log);
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
    const forced = dbConfig.user !== undefined;
    const upstreamUser = dbConfig.user ?? clientUser;
    const key = `${database}\0${upstreamUser}`;
    let pool = this.pools.get(key);
    if (pool !== undefined) {
      // Passwords looked up with auth_query can change; the newest proof is the one that works.
      if (!forced) pool.updateLogin(clientPassword, scramKeys);
    } else {
      const password = forced ? dbConfig.password : clientPassword;
      pool = new Pool(
        database,
        upstreamUser,
        this.poolSettings(dbConfig, upstreamUser),
        {
          host: dbConfig.host,
          port: dbConfig.port,
          keepalive: this.config.tcp_keepalive,
          login: { user: upstreamUser, database: dbConfig.dbname, password, scramKeys: forced ? undefined : scramKeys },
          tls: this.serverTls,
          connectQuery: dbConfig.connect_query,
          maxPreparedStatements: this.config.max_prepared_statements,
        },
        this,
        this.log.child({ pool: `${database}/${upstreamUser}` }),
      );
      this.pools.set(key, pool);
    }
    return pool;
  }

  /** Registers a new connection and gives it its cancel key. */
  addClient(client: ClientSession): void {
    this.clients.add(client);
    let processId: number;
    do processId = randomInt(1, 0x7fffffff);
    while (this.byCancelKey.has(processId));
    client.processId = processId;
    client.secretKey = randomInt(0, 0xffffffff) | 0;
    this.byCancelKey.set(processId, client);
  }

  clientLoggedIn(client: ClientSession): void {
    if (this.config.log_connections) client.log.info({ client: client.id, addr: client.label, app: client.applicationName }, 'client logged in');
  }

  loginFailed(client: ClientSession, error: PgmuxError): void {
    this.failedLogins++;
    client.log.warn({ client: client.id, addr: client.label, code: error.code, failedLoginsThisMinute: this.failedLogins }, 'client login failed');
  }

  clientClosed(client: ClientSession, reason: string): void {
    if (!this.clients.delete(client)) return;
    this.byCancelKey.delete(client.processId);
    if (client.pool !== null && this.config.log_disconnections) {
      client.log.info({ client: client.id, durationMs: Date.now() - client.connectedAt, reason }, 'client disconnected');
    }
  }

  clientPinned(client: ClientSession, kind: string): void {
    this.pinCounts.set(kind, (this.pinCounts.get(kind) ?? 0) + 1);
    client.log.info({ client: client.id, reason: kind }, 'client pinned to its server connection by session state');
  }

  cancel(processId: number, secretKey: number): void {
    const client = this.byCancelKey.get(processId);
    // A wrong key is ignored silently, as PostgreSQL does (no oracle for guessing keys).
    if (client === undefined || client.secretKey !== secretKey) return;
    client.cancelRequested();
  }

  // ---- PoolHost ----

  nextServerId(): number {
    return ++this.serverIds;
  }

  mayOpenServer(pool: Pool): boolean {
    const dbCap = this.config.databases[pool.database]?.max_db_connections ?? this.config.max_db_connections;
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
    const c = this.config;
    if (c.client_login_timeout === 0 && c.client_idle_timeout === 0 && c.idle_transaction_timeout === 0 && c.query_timeout === 0) return;
    for (const client of this.clients) this.checkClientTimeouts(client, now);
  }

  private checkClientTimeouts(client: ClientSession, now: number): void {
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
        if (server === null) return;
        if (client.inFlight === 0) {
          const inTransaction = server.txStatus !== TxStatus.Idle;
          if (inTransaction && c.idle_transaction_timeout > 0 && now - server.readyAt >= c.idle_transaction_timeout) {
            client.fail(Errors.idleTransactionTimeout(c.idle_transaction_timeout));
          }
        } else if (c.query_timeout > 0 && performance.now() - client.requestSince >= c.query_timeout && !client.cancelSent) {
          client.cancelSent = true;
          client.log.info({ client: client.id, timeoutMs: c.query_timeout }, 'query_timeout reached: cancelling');
          server.cancel();
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

  // ---- internals ----

  private userConfig(user: string) {
    return Object.hasOwn(this.config.users, user) ? this.config.users[user] : undefined;
  }

  private poolSettings(dbConfig: DatabaseConfig, user: string): PoolSettings {
    const c = this.config;
    const u = this.userConfig(user);
    const mode = u?.pool_mode ?? dbConfig.pool_mode ?? c.pool_mode;
    return {
      // Statement mode is served as transaction mode for now (documented in the README).
      mode: mode === 'session' ? 'session' : 'transaction',
      poolSize: u?.pool_size ?? dbConfig.pool_size ?? c.default_pool_size,
      minPoolSize: dbConfig.min_pool_size ?? c.min_pool_size,
      reservePoolSize: dbConfig.reserve_pool_size ?? c.reserve_pool_size,
      reservePoolTimeoutMs: c.reserve_pool_timeout,
      queryWaitTimeoutMs: c.query_wait_timeout,
      serverIdleTimeoutMs: c.server_idle_timeout,
      serverLifetimeMs: c.server_lifetime,
      serverConnectTimeoutMs: c.server_connect_timeout,
      serverLoginRetryMs: c.server_login_retry,
      resetQuery: c.server_reset_query === '' ? null : c.server_reset_query,
      resetQueryAlways: c.server_reset_query_always,
      checkQuery: c.server_check_query === '' ? null : c.server_check_query,
      checkDelayMs: c.server_check_delay,
    };
  }

  private count(match: (p: Pool) => boolean): number {
    let n = 0;
    for (const p of this.pools.values()) if (match(p)) n += p.serverCount;
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
