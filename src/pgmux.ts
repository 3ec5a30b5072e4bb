/**
 * Composition root: the client listener, the pool registry and shutdown. `main.ts` wires it to
 * the command line and signals; tests create it directly with a config.
 */
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { ClientSession, ClientState } from './client/client-session.js';
import type { PgmuxConfig } from './config/index.js';
import { Errors } from './errors.js';
import { createLogger } from './logger.js';
import { PoolRegistry } from './pool/pool-registry.js';

export const VERSION = '0.1.0';

export class Pgmux {
  readonly registry: PoolRegistry;
  readonly log: Logger;
  private listener: Server | null = null;
  private clientIds = 0;
  private stopping: Promise<void> | null = null;

  constructor(
    readonly config: PgmuxConfig,
    log?: Logger,
  ) {
    this.log = log ?? createLogger(config.log_level);
    this.registry = new PoolRegistry(config, this.log);
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
    this.log.info({ addr: address.address, port: address.port, pool_mode: this.config.pool_mode, databases: Object.keys(this.config.databases) }, 'pgmux listening');
    return address;
  }

  get port(): number {
    return (this.listener?.address() as AddressInfo | null)?.port ?? 0;
  }

  private accept(socket: Socket): void {
    if (this.stopping !== null) {
      socket.destroy();
      return;
    }
    if (this.config.tcp_keepalive) socket.setKeepAlive(true, 60_000);
    const id = ++this.clientIds;
    const client = new ClientSession(id, socket, this.registry, this.log.child({ client: id }));
    this.registry.addClient(client);
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
    this.registry.draining = true;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
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
    this.log.info('pgmux stopped');
  }
}
