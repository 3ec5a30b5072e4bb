/**
 * Traffic counters of one pool, as PgBouncer's SHOW STATS reports them (times in microseconds),
 * plus optional histogram sinks the metrics module attaches. Updated on the hot path with a few
 * additions per request; nothing is allocated.
 */
export interface DurationSink {
  observe(seconds: number): void;
}

export class PoolStats {
  xactCount = 0;
  queryCount = 0;
  /** Bytes received from clients / sent to clients. */
  bytesReceived = 0;
  bytesSent = 0;
  xactTimeUs = 0;
  queryTimeUs = 0;
  waitTimeUs = 0;
  /** Clients that got a server after waiting in the queue (for averages). */
  waitCount = 0;
  /** Times a server was given to a client (PgBouncer's server_assignment_count). */
  assignCount = 0;
  /** Errors pgmux sent to clients of this pool, by SQLSTATE class (first two characters). */
  readonly errorsByClass = new Map<string, number>();
  /** Clients of this pool pinned to their server, by reason (once per client and reason). */
  readonly pinsByReason = new Map<string, number>();
  /**
   * Transaction mode: a client's named statement was already prepared on the server it got (hit),
   * or pgmux had to prepare it there (miss). Counted where StatementRouter decides.
   */
  preparedHits = 0;
  preparedMisses = 0;
  /** Server connections whose connect or login failed (the upstream down, refusing, or too slow). */
  serverLoginFailures = 0;
  /** Logged-in server connections that the server or the network closed (not pgmux), and the latest reason. */
  serversLost = 0;
  lastServerLoss = '';
  /** The most server connections this pool ever had connecting and logging in at once (max_server_logins_per_pool). */
  serverLoginsPeak = 0;
  /** Requests refused because the queue was full (max_queued_clients_per_pool). */
  queueFullRefusals = 0;

  queryHistogram: DurationSink | null = null;
  xactHistogram: DurationSink | null = null;
  waitHistogram: DurationSink | null = null;

  query(ms: number): void {
    this.queryCount++;
    this.queryTimeUs += ms * 1000;
    this.queryHistogram?.observe(ms / 1000);
  }

  transaction(ms: number): void {
    this.xactCount++;
    this.xactTimeUs += ms * 1000;
    this.xactHistogram?.observe(ms / 1000);
  }

  wait(ms: number): void {
    this.waitCount++;
    this.waitTimeUs += ms * 1000;
    this.waitHistogram?.observe(ms / 1000);
  }

  pin(reason: string): void {
    this.pinsByReason.set(reason, (this.pinsByReason.get(reason) ?? 0) + 1);
  }

  /** The counters as they are now (for averages over stats_period, see StatsHistory). */
  snapshot(): StatsCounters {
    return {
      assignCount: this.assignCount,
      xactCount: this.xactCount,
      queryCount: this.queryCount,
      bytesReceived: this.bytesReceived,
      bytesSent: this.bytesSent,
      xactTimeUs: this.xactTimeUs,
      queryTimeUs: this.queryTimeUs,
      waitTimeUs: this.waitTimeUs,
    };
  }

  error(sqlstate: string): void {
    const cls = sqlstate.slice(0, 2);
    this.errorsByClass.set(cls, (this.errorsByClass.get(cls) ?? 0) + 1);
  }
}

/** The monotonically growing counters of PoolStats, as plain numbers. */
export interface StatsCounters {
  assignCount: number;
  xactCount: number;
  queryCount: number;
  bytesReceived: number;
  bytesSent: number;
  xactTimeUs: number;
  queryTimeUs: number;
  waitTimeUs: number;
}

export const ZERO_COUNTERS: Readonly<StatsCounters> = Object.freeze({
  assignCount: 0,
  xactCount: 0,
  queryCount: 0,
  bytesReceived: 0,
  bytesSent: 0,
  xactTimeUs: 0,
  queryTimeUs: 0,
  waitTimeUs: 0,
});

export function addCounters(into: StatsCounters, from: Readonly<StatsCounters>): StatsCounters {
  into.assignCount += from.assignCount;
  into.xactCount += from.xactCount;
  into.queryCount += from.queryCount;
  into.bytesReceived += from.bytesReceived;
  into.bytesSent += from.bytesSent;
  into.xactTimeUs += from.xactTimeUs;
  into.queryTimeUs += from.queryTimeUs;
  into.waitTimeUs += from.waitTimeUs;
  return into;
}

/**
 * PgBouncer's averages (SHOW STATS avg_*): per-second rates and per-transaction/query/assignment
 * times over the window from the older of the last two stats_period snapshots until now.
 */
export function averages(now: Readonly<StatsCounters>, then: Readonly<StatsCounters>, windowMs: number): StatsCounters {
  const avg = { ...ZERO_COUNTERS };
  if (windowMs <= 0) return avg;
  const rate = (d: number): number => Math.floor((d * 1000) / windowMs);
  const xacts = now.xactCount - then.xactCount;
  const queries = now.queryCount - then.queryCount;
  const assigns = now.assignCount - then.assignCount;
  avg.assignCount = rate(assigns);
  avg.xactCount = rate(xacts);
  avg.queryCount = rate(queries);
  avg.bytesReceived = rate(now.bytesReceived - then.bytesReceived);
  avg.bytesSent = rate(now.bytesSent - then.bytesSent);
  avg.xactTimeUs = xacts > 0 ? Math.floor((now.xactTimeUs - then.xactTimeUs) / xacts) : 0;
  avg.queryTimeUs = queries > 0 ? Math.floor((now.queryTimeUs - then.queryTimeUs) / queries) : 0;
  avg.waitTimeUs = assigns > 0 ? Math.floor((now.waitTimeUs - then.waitTimeUs) / assigns) : 0;
  return avg;
}

/**
 * Snapshots of every pool's counters, taken by the registry's janitor each stats_period (a ring
 * of two, as PgBouncer keeps "newer" and "older"). Averages run from the older snapshot to now,
 * so they always cover between one and two periods of the most recent traffic.
 */
export class StatsHistory {
  private older = new WeakMap<PoolStats, StatsCounters>();
  private newer = new WeakMap<PoolStats, StatsCounters>();
  private olderAt: number;
  private newerAt: number;

  constructor(now: number = Date.now()) {
    this.newerAt = now;
    this.olderAt = now - 1000;
  }

  /** Takes a snapshot when a period has passed; returns whether it did. */
  tick(now: number, periodMs: number, stats: Iterable<PoolStats>): boolean {
    if (now - this.newerAt < periodMs) return false;
    const snapshots = new WeakMap<PoolStats, StatsCounters>();
    for (const s of stats) snapshots.set(s, s.snapshot());
    this.older = this.newer;
    this.newer = snapshots;
    this.olderAt = this.newerAt;
    this.newerAt = now;
    return true;
  }

  /** The counters of `stats` at the start of the averaging window (zero for a pool born since). */
  baseline(stats: PoolStats): Readonly<StatsCounters> {
    return this.older.get(stats) ?? ZERO_COUNTERS;
  }

  /** When the averaging window started. */
  get windowStart(): number {
    return this.olderAt;
  }
}
