/**
 * Readiness for `/readyz`: pgmux is ready when it is not draining or paused and every configured
 * database's upstream is reachable.
 *
 * A database counts as reachable while one of its pools holds a logged-in server connection (no
 * probe needed), and as unreachable while none does and a pool's latest server login failed (the
 * login error is reported: PostgreSQL starting up or refusing logins still accepts TCP); otherwise pgmux opens a TCP connection to its host:port and closes it without
 * sending anything (PostgreSQL does not log a connection that sends no data). Probe results are
 * cached per host:port and refreshed at most every PROBE_INTERVAL_MS, so a tight readiness loop
 * cannot turn into a connection storm; a stale result is answered at once and refreshed behind it.
 * Only the very first check of a target waits for its probe (at most PROBE_TIMEOUT_MS).
 */
import net from 'node:net';
import type { DatabaseConfig } from '../config/index.js';
import type { Pool } from '../pool/pool.js';

export const PROBE_INTERVAL_MS = 3000;
export const PROBE_TIMEOUT_MS = 2000;

export interface ReadinessSource {
  databases(): Readonly<Record<string, DatabaseConfig>>;
  pools(): Iterable<Pool>;
  draining(): boolean;
  /** Names of paused databases ("*" when everything is paused). */
  paused(): readonly string[];
}

export interface DatabaseReadiness {
  ready: boolean;
  /** Upstream host:port. */
  upstream: string;
  /** How it was judged: a live server connection, or the latest TCP probe (with its age). */
  detail: string;
}

export interface ReadinessReport {
  ready: boolean;
  /** What is not ready, one line each (empty when ready). */
  reasons: string[];
  draining: boolean;
  databases: Record<string, DatabaseReadiness>;
}

interface Probe {
  ok: boolean;
  error: string;
  /** Date.now() when the result arrived; 0 before the first. */
  checkedAt: number;
  running: Promise<void> | null;
}

export class Readiness {
  private readonly probes = new Map<string, Probe>();

  constructor(private readonly source: ReadinessSource) {}

  async check(now: number = Date.now()): Promise<ReadinessReport> {
    const databases = this.source.databases();
    const live = new Set<string>();
    /** Databases without a live server whose latest server login failed: the login error says more than a TCP probe. */
    const failing = new Map<string, Pool>();
    for (const pool of this.source.pools()) {
      if (pool.idle.length + pool.active.size + pool.resetting.size > 0) live.add(pool.database);
      else if (pool.logins.failing && !failing.has(pool.database)) failing.set(pool.database, pool);
    }

    const waits: Promise<void>[] = [];
    for (const [name, db] of Object.entries(databases)) {
      if (live.has(name)) continue;
      const probe = this.probeFor(db);
      if (probe.checkedAt === 0) waits.push(this.refresh(db, probe));
      else if (now - probe.checkedAt >= PROBE_INTERVAL_MS) void this.refresh(db, probe);
    }
    if (waits.length > 0) await Promise.all(waits);

    const report: ReadinessReport = { ready: true, reasons: [], draining: this.source.draining(), databases: {} };
    if (report.draining) report.reasons.push('pgmux is shutting down');
    const paused = this.source.paused();
    if (paused.includes('*')) report.reasons.push('pgmux is paused');
    const at = Date.now();
    for (const [name, db] of Object.entries(databases)) {
      const upstream = `${db.host}:${db.port}`;
      let entry: DatabaseReadiness;
      const down = failing.get(name);
      if (live.has(name)) {
        entry = { ready: true, upstream, detail: 'has a live server connection' };
      } else if (down !== undefined) {
        const { failures, lastError, lastFailureAt } = down.logins;
        const age = `${((at - lastFailureAt) / 1000).toFixed(1)}s ago`;
        entry = { ready: false, upstream, detail: `server login failed ${failures} time${failures === 1 ? '' : 's'} in a row, last ${age}: ${lastError?.sqlstate} ${lastError?.message}` };
      } else {
        const probe = this.probeFor(db);
        const age = `${((at - probe.checkedAt) / 1000).toFixed(1)}s ago`;
        entry = probe.ok
          ? { ready: true, upstream, detail: `TCP connect succeeded ${age}` }
          : { ready: false, upstream, detail: `TCP connect failed ${age}: ${probe.error}` };
      }
      if (entry.ready && paused.includes(name)) entry = { ready: false, upstream, detail: 'database is paused' };
      if (!entry.ready) report.reasons.push(`database "${name}" (${upstream}): ${entry.detail}`);
      report.databases[name] = entry;
    }
    report.ready = report.reasons.length === 0;
    return report;
  }

  private probeFor(db: DatabaseConfig): Probe {
    const key = `${db.host}\0${db.port}`;
    let probe = this.probes.get(key);
    if (probe === undefined) {
      probe = { ok: false, error: 'not checked yet', checkedAt: 0, running: null };
      this.probes.set(key, probe);
    }
    return probe;
  }

  /** One probe at a time per target; callers share it. */
  private refresh(db: DatabaseConfig, probe: Probe): Promise<void> {
    if (probe.running !== null) return probe.running;
    probe.running = tcpProbe(db.host, db.port).then((error) => {
      probe.ok = error === null;
      probe.error = error ?? '';
      probe.checkedAt = Date.now();
      probe.running = null;
    });
    return probe.running;
  }
}

/** Resolves with null when a TCP connection could be made, else with the reason. Never rejects. */
function tcpProbe(host: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let settled = false;
    const done = (error: string | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeAllListeners('connect');
      socket.on('error', () => {}); // late errors after destroy are of no interest
      socket.destroy();
      resolve(error);
    };
    const timer = setTimeout(() => done(`no answer within ${PROBE_TIMEOUT_MS} ms`), PROBE_TIMEOUT_MS);
    socket.once('connect', () => done(null));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
  });
}
