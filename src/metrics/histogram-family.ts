/**
 * Histograms fed from the hot path without allocating.
 *
 * prom-client's own `Histogram` hashes a label object on every `observe()` (a few allocations per
 * query), so each (database, user, pool_mode) series here is a `DurationHistogram`: a fixed array of
 * bucket counts that `PoolStats` calls directly through its `DurationSink` hooks. A `HistogramFamily`
 * holds the series of one metric name and renders them for the prom-client `Registry` at scrape
 * time, through the same `get()` contract prom-client's own metrics implement.
 */
import type { Metric, Registry } from 'prom-client';
import type { DurationSink } from '../pool/pool-stats.js';

/** Upper bounds in seconds: sub-millisecond statements up to waits of minutes (query_wait_timeout is 2 min). */
export const DURATION_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export class DurationHistogram implements DurationSink {
  /** Observations per bucket (not cumulative); the last slot is above the highest bound (+Inf). */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(seconds: number): void {
    if (!(seconds >= 0)) return; // NaN or a clock step backwards: not a duration
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]) i++;
    this.counts[i]++;
    this.sum += seconds;
    this.count++;
  }
}

interface MetricValue {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

export class HistogramFamily<L extends string> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, { labels: Record<L, string>; histogram: DurationHistogram }>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[] = DURATION_BUCKETS,
  ) {}

  /** The series for these label values, created on first use; kept for the registry's life so counts only grow. */
  child(key: string, labels: Record<L, string>): DurationHistogram {
    let entry = this.series.get(key);
    if (entry === undefined) {
      entry = { labels, histogram: new DurationHistogram(this.bounds) };
      this.series.set(key, entry);
    }
    return entry.histogram;
  }

  /** Every series' histogram (for the status page's per-second percentiles). */
  histograms(): IterableIterator<{ histogram: DurationHistogram }> {
    return this.series.values();
  }

  /** What prom-client's Registry asks every metric for (text rendering, JSON, Registry.merge). */
  async get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: MetricValue[] }> {
    const values: MetricValue[] = [];
    for (const { labels, histogram } of this.series.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += histogram.counts[i];
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: this.bounds[i] }, value: cumulative });
      }
      values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: histogram.count });
      values.push({ metricName: `${this.name}_sum`, labels, value: histogram.sum });
      values.push({ metricName: `${this.name}_count`, labels, value: histogram.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Registry.resetMetrics(): counts start again from zero (in place: pools keep their sinks). */
  reset(): void {
    for (const { histogram } of this.series.values()) {
      histogram.counts.fill(0);
      histogram.sum = 0;
      histogram.count = 0;
    }
  }

  register(registry: Registry): void {
    // prom-client's typings only admit its own classes; the registry itself needs only name, help,
    // type, aggregator, get() and reset(), which this class provides.
    registry.registerMetric(this as unknown as Metric);
  }
}
