/**
 * The HTTP endpoint on metrics_addr:metrics_port (node:http, no framework):
 *
 *   GET /metrics      Prometheus text exposition
 *   GET /healthz      200 while the process runs (draining included)
 *   GET /readyz       200 when not draining or paused and every upstream is reachable, else 503 (JSON says why)
 *   GET /             the status page
 *   GET /status.json  the status page's data; ?history=1 adds the sampled history (15 min at 1 s),
 *                     ?since=<ms> only the samples taken after that time (the page's incremental polls)
 *   GET /status/pool.json?database=&user=  one pool's clients and server connections (the page's drill-down)
 *
 * It stays up while pgmux drains, so the end of a shutdown can still be scraped; Pgmux closes it last.
 */
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Metrics, StatusReport } from './metrics.js';
import type { Readiness } from './readiness.js';
import { STATUS_PAGE, STATUS_PAGE_CSP } from './status-page.js';

export class MetricsServer {
  private server: Server | null = null;

  constructor(
    private readonly metrics: Metrics,
    private readonly readiness: Readiness,
    private readonly draining: () => boolean,
    private readonly log: Logger,
  ) {}

  /** Resolves with the bound address (port 0 picks a free one); rejects if it cannot listen. */
  async listen(host: string, port: number): Promise<AddressInfo> {
    const server = http.createServer((req, res) => this.handle(req, res));
    // Scrapers keep connections open; a short keep-alive lets a stop finish promptly anyway.
    server.keepAliveTimeout = 5000;
    server.requestTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ err: err.message }, 'metrics endpoint error'));
    this.server = server;
    return server.address() as AddressInfo;
  }

  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (server === null) return;
    this.server = null;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    const target = req.url ?? '/';
    const q = target.indexOf('?');
    const path = q < 0 ? target : target.slice(0, q);
    this.route(path, new URLSearchParams(q < 0 ? '' : target.slice(q + 1)), res).catch((err: unknown) => {
      this.log.error({ err: (err as Error).message, path }, 'metrics endpoint request failed');
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('internal error\n');
    });
  }

  private async route(path: string, query: URLSearchParams, res: ServerResponse): Promise<void> {
    switch (path) {
      case '/metrics': {
        const body = await this.metrics.render();
        send(res, 200, this.metrics.contentType, body);
        return;
      }
      case '/healthz':
        send(res, 200, 'application/json', json({ status: 'ok', draining: this.draining() }));
        return;
      case '/readyz': {
        const report = await this.readiness.check();
        send(res, report.ready ? 200 : 503, 'application/json', json({ status: report.ready ? 'ready' : 'not ready', ...report }));
        return;
      }
      case '/status.json': {
        // With /readyz's verdict, so the page's badge cannot be green while a probe gets 503.
        const { ready, reasons } = await this.readiness.check();
        const status: StatusReport = { ...this.metrics.status(), readiness: { ready, reasons } };
        const since = Number(query.get('since'));
        if (query.get('history') === '1') status.history = this.metrics.historyReport();
        else if (query.has('since') && Number.isFinite(since)) status.history = this.metrics.historyReport(since);
        send(res, 200, 'application/json', json(status));
        return;
      }
      case '/status/pool.json': {
        const detail = this.metrics.poolDetail(query.get('database') ?? '', query.get('user') ?? '');
        if (detail === null) send(res, 404, 'application/json', json({ error: 'no such pool' }));
        else send(res, 200, 'application/json', json(detail));
        return;
      }
      case '/':
      case '/index.html':
        send(res, 200, 'text/html; charset=utf-8', STATUS_PAGE, {
          'Content-Security-Policy': STATUS_PAGE_CSP,
          'X-Frame-Options': 'DENY',
          'Referrer-Policy': 'no-referrer',
        });
        return;
      default:
        send(res, 404, 'text/plain; charset=utf-8', 'not found: try /metrics, /healthz, /readyz, / or /status.json\n');
    }
  }
}

function json(value: unknown): string {
  return `${JSON.stringify(value)}\n`;
}

function send(res: ServerResponse, status: number, contentType: string, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    'Content-Type': contentType,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    ...headers,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
