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
  /** Errors pgmux sent to clients of this pool, by SQLSTATE class (first two characters). */
  readonly errorsByClass = new Map<string, number>();

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

  error(sqlstate: string): void {
    const cls = sqlstate.slice(0, 2);
    this.errorsByClass.set(cls, (this.errorsByClass.get(cls) ?? 0) + 1);
  }
}
