/**
 * Composition root: the client listener, the pool registry and shutdown. `main.ts` wires it to
 * the command line and signals; tests create it directly with a config.
 */
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { ClientSession } from './client/client-session.js';
import { ClientState } from './client/client-state.js';
import { ConfigError, type PgmuxConfig } from './config/index.js';
import { AdminConsole } from './admin/admin-console.js';
import { RESTART_SETTINGS, type AdminHost, type ReloadResult } from './admin/admin-host.js';
import { Errors } from './errors.js';
import { createLogger } from './logger.js';
import { PoolRegistry, type ReloadSummary } from './pool/pool-registry.js';
import { MetricsServer } from './metrics/http-server.js';
import { Metrics } from './metrics/metrics.js';
import { Readiness } from './metrics/readiness.js';
import { listenUnix, parseSocketMode, socketDirectory } from './net/unix-listener.js';

export const VERSION = '0.1.0';

export interface PgmuxOptions {
  /**
   * Serve /metrics on this port instead of metrics_port; 0 picks a free port. For tests, which run
   * many instances at once (metrics_port 0 means "off" in the config, so it cannot ask for that).
   */
  metricsPort?: number;
  /** Reads the configuration again from where it came from (RELOAD, SIGHUP); without it a reload fails. */
  reloadConfig?: () => PgmuxConfig;
  /** Called when a SHUTDOWN from the admin console has finished stopping pgmux (main.ts exits). */
  onShutdown?: () => void;
}

export class Pgmux implements AdminHost {
  readonly registry: PoolRegistry;
  readonly log: Logger;
  private listener: Server | null = null;
  /** The unix-domain socket listener (unix_socket_dir), when there is one. */
  private unixListener: Server | null = null;
  /** Its socket file, for the log and tests. */
  unixSocketPath: string | null = null;
  private clientIds = 0;
  private stopping: Promise<void> | null = null;
  /** Prometheus metrics and the status page's data; served by metricsServer when metrics_port is set. */
  readonly metrics: Metrics;
  private metricsServer: MetricsServer | null = null;

  /** For SHOW commands of the admin console. */
  readonly startedAt = Date.now();
  readonly version = VERSION;

  constructor(
    /** The configuration in effect; replaced by reload() and the admin console's SET. */
    public config: PgmuxConfig,
    log?: Logger,
    private readonly options: PgmuxOptions = {},
  ) {
    this.log = log ?? createLogger(config.log_level);
    this.registry = new PoolRegistry(config, this.log);
    this.registry.adminConsole = new AdminConsole(this, this.log.child({ admin: true }));
    this.metrics = new Metrics({
      pools: this.registry,
      version: VERSION,
      draining: () => this.stopping !== null,
      reloads: () => this.registry.reloads,
    });
  }

  /** Start listening; resolves with the bound address (listen_port 0 picks a free port). */
  async start(): Promise<AddressInfo> {
    this.registry.start();
    const listener = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
    this.listener = listener;
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen({ host: this.config.listen_addr, port: this.config.listen_port, backlog: 4096 }, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    listener.on('error', (err) => this.log.error({ err: err.message }, 'listener error'));
    const address = listener.address() as AddressInfo;
    try {
      await this.startUnixListener(address.port);
      this.log.info(
        { addr: address.address, port: address.port, unix_socket: this.unixSocketPath, pool_mode: this.config.pool_mode, databases: Object.keys(this.config.databases) },
        'pgmux listening',
      );
      await this.startMetricsServer();
    } catch (err) {
      listener.close();
      this.unixListener?.close();
      this.registry.stop();
      this.metrics.stop();
      throw err;
    }
    return address;
  }

  /** unix_socket_dir: `<dir>/.s.PGSQL.<port>`, the port being the TCP one (as PgBouncer and PostgreSQL name it). */
  private async startUnixListener(port: number): Promise<void> {
    const dir = socketDirectory(this.config.unix_socket_dir);
    if (dir === null) return;
    const { server, path } = await listenUnix({
      dir,
      port,
      mode: parseSocketMode(this.config.unix_socket_mode) as number,
      group: this.config.unix_socket_group,
      onConnection: (socket) => this.accept(socket, true),
    });
    server.on('error', (err) => this.log.error({ err: err.message }, 'unix socket listener error'));
    this.unixListener = server;
    this.unixSocketPath = path;
  }

  // ---- metrics endpoint (src/metrics): /metrics, /healthz, /readyz, status page ----

  private async startMetricsServer(): Promise<void> {
    const port = this.options.metricsPort ?? this.config.metrics_port;
    if (this.options.metricsPort === undefined && port === 0) return; // metrics_port 0: off
    const readiness = new Readiness({
      databases: () => this.registry.config.databases,
      pools: () => this.registry.pools.values(),
      draining: () => this.stopping !== null,
      paused: () => this.registry.pausedDatabases(),
    });
    const server = new MetricsServer(this.metrics, readiness, () => this.stopping !== null, this.log);
    const host = this.config.metrics_addr;
    try {
      const address = await server.listen(host, port);
      this.metricsServer = server;
      this.metrics.start(); // the status page's history sampler
      this.log.info({ addr: address.address, port: address.port }, 'metrics endpoint listening (/metrics, /healthz, /readyz, /)');
    } catch (err) {
      throw new Error(`cannot serve metrics on ${host}:${port} (metrics_addr, metrics_port): ${(err as Error).message}`);
    }
  }

  /** Port of the metrics endpoint; 0 when it is off. */
  get metricsPort(): number {
    return this.metricsServer?.port ?? 0;
  }

  get port(): number {
    return (this.listener?.address() as AddressInfo | null)?.port ?? 0;
  }

  private accept(socket: Socket, viaUnixSocket = false): void {
    if (this.stopping !== null) {
      socket.destroy();
      return;
    }
    if (this.config.tcp_keepalive && !viaUnixSocket) socket.setKeepAlive(true, this.config.tcp_keepidle);
    const id = ++this.clientIds;
    const client = new ClientSession(id, socket, this.registry, this.log, viaUnixSocket);
    this.registry.addClient(client);
  }

  // ---- admin console and live reload (src/admin): AdminHost ----

  /**
   * RELOAD / SIGHUP: read the configuration again with the inputs pgmux started with and apply
   * it. A configuration that does not load is rejected whole: the previous one stays in effect,
   * and the reason (naming the key) is logged and returned.
   */
  reload(): ReloadResult {
    if (this.stopping !== null) return this.reloadFailed('pgmux is shutting down');
    const load = this.options.reloadConfig;
    if (load === undefined) return this.reloadFailed('pgmux was started without a configuration source to read again');
    let next: PgmuxConfig;
    try {
      next = load();
    } catch (err) {
      if (err instanceof ConfigError) return this.reloadFailed(err.message, err.key);
      throw err;
    }
    const result = this.applyConfig(next, 'reload');
    if (result.ok) this.registry.reloads.ok++;
    else this.registry.reloads.failed++;
    return result;
  }

  /**
   * Apply a configuration (a reload, or SET from the admin console). Settings of the listening
   * sockets keep their running value and are reported as needing a restart.
   */
  applyConfig(next: PgmuxConfig, reason: string): ReloadResult {
    const running = this.config;
    const restartNeeded = RESTART_SETTINGS.filter((key) => next[key as keyof PgmuxConfig] !== running[key as keyof PgmuxConfig]);
    const effective =
      restartNeeded.length === 0
        ? next
        : (Object.freeze({ ...next, ...Object.fromEntries(restartNeeded.map((key) => [key, running[key as keyof PgmuxConfig]])) }) as PgmuxConfig);
    let summary;
    try {
      summary = this.registry.applyConfig(effective);
    } catch (err) {
      if (err instanceof ConfigError) return { ok: false, error: this.logReloadError(err.message, reason), key: err.key };
      throw err;
    }
    this.config = effective;
    this.log.level = effective.log_level;
    this.log.info({ reason, ...summary, restartNeeded }, `configuration applied${describeReload(summary)}`);
    this.registry.events.add(
      'reload',
      '',
      `${reason}: configuration applied${describeReload(summary)}${restartNeeded.length > 0 ? ` (restart needed for ${restartNeeded.join(', ')})` : ''}`,
    );
    for (const key of restartNeeded) this.log.warn({ key }, `${key} changed in the configuration: restart pgmux to apply it`);
    return { ok: true, summary, restartNeeded };
  }

  /** SHUTDOWN from the admin console: the same graceful stop as SIGTERM. */
  shutdown(): void {
    void this.stop().then(() => this.options.onShutdown?.());
  }

  private reloadFailed(error: string, key?: string): ReloadResult {
    this.registry.reloads.failed++;
    return { ok: false, error: this.logReloadError(error, 'reload'), key };
  }

  private logReloadError(error: string, reason: string): string {
    this.log.error({ reason, err: error }, 'configuration rejected; the previous configuration stays in effect');
    this.registry.events.add('reload-failed', '', `${reason}: configuration rejected (${error}); the previous configuration stays in effect`);
    return error;
  }

  /**
   * Graceful stop: no new connections; clients between transactions are told 57P01 and closed;
   * clients in a transaction get until `timeoutMs` to finish it; then everything is closed.
   */
  stop(timeoutMs: number = this.config.shutdown_timeout): Promise<void> {
    if (this.stopping === null) this.stopping = this.drain(timeoutMs);
    return this.stopping;
  }

  private async drain(timeoutMs: number): Promise<void> {
    this.log.info({ timeoutMs, clients: this.registry.clients.size }, 'shutting down');
    this.listener?.close();
    this.unixListener?.close(); // removes the socket file
    this.registry.draining = true;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // Transaction mode closes clients as their transactions end (ClientSession.onReleased); this
      // catches idle ones, session-mode ones between transactions, and those queued for a server
      // (in transaction mode a client without a server is between transactions).
      for (const client of this.registry.clients) {
        if (client.atTransactionBoundary || client.state === ClientState.Waiting) client.fail(Errors.adminShutdown());
      }
      if (this.registry.clients.size === 0 || Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const client of this.registry.clients) client.fail(Errors.adminShutdown());
    this.registry.closePools();
    this.registry.stop();
    // Give Terminate messages to servers a moment to leave.
    const closeBy = Date.now() + 2000;
    while (this.registry.serverCount > 0 && Date.now() < closeBy) await new Promise((r) => setTimeout(r, 20));
    // Last: the metrics endpoint stays scrapeable for the whole drain.
    this.metrics.stop();
    await this.metricsServer?.close();
    this.log.info('pgmux stopped');
  }
}

/** ": databases added: b; pools resized: a/app" — what a reload changed, in the log line's message; "" for nothing. */
function describeReload(summary: ReloadSummary): string {
  const parts: string[] = [];
  if (summary.added.length > 0) parts.push(`databases added: ${summary.added.join(', ')}`);
  if (summary.resized.length > 0) parts.push(`pools resized: ${summary.resized.join(', ')}`);
  if (summary.retargeted.length > 0) parts.push(`pools retargeted: ${summary.retargeted.join(', ')}`);
  if (summary.removed.length > 0) parts.push(`pools removed: ${summary.removed.join(', ')}`);
  return parts.length === 0 ? ': no database or pool changed' : `: ${parts.join('; ')}`;
}
