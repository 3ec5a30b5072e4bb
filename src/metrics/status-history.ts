/**
 * The status page's history: one sample per second for the last 15 minutes, kept in fixed-size
 * columns (a `Float64Array` per series, written in place as a ring), so the page's charts are full
 * the moment it opens and a sample costs no allocation.
 *
 * Rates and percentiles are per sample window: counters and histogram buckets are differenced
 * against the previous sample, and percentiles are read from the bucket deltas as Prometheus's
 * `histogram_quantile` reads them (linear interpolation inside the bucket the rank falls in).
 * Keyed series (errors by SQLSTATE class, pins by reason) get a column when a key first appears;
 * there are few keys (SQLSTATE classes, pin reasons), so that is bounded.
 */

/** Samples kept: 15 minutes at one a second. */
export const HISTORY_CAPACITY = 900;
export const SAMPLE_INTERVAL_MS = 1000;

/** Scalar series of a sample, in the order of the JSON's columns. `null` (NaN inside) where a window had no data. */
export const HISTORY_FIELDS = [
  /** Transactions and requests completed per second. */
  'tps',
  'qps',
  'clients',
  'clientsActive',
  'clientsWaiting',
  'serversActive',
  'serversIdle',
  'serversConnecting',
  /** Average wait of the requests served in the window (seconds); the oldest still waiting at the sample. */
  'waitAvg',
  'waitOldest',
  /** Percentiles of the window's observations (seconds). */
  'waitP50',
  'waitP99',
  'queryP50',
  'queryP99',
  'xactP50',
  'xactP99',
  /** Events in the window (counts, not rates: one sample a second). */
  'serverLoginFailures',
  'clientLoginFailures',
  'errors',
] as const;
export type HistoryField = (typeof HISTORY_FIELDS)[number];

/** What one sample records (scalars), filled in by the sampler into a reused object. */
export type SampleValues = Record<HistoryField, number>;

/** The history as /status.json carries it: columns, oldest first; times in ms since the epoch. */
export interface HistoryReport {
  intervalMs: number;
  capacity: number;
  /** Sample times. */
  t: number[];
  series: Record<HistoryField, (number | null)[]>;
  /** Errors sent to clients per sample, by SQLSTATE class. */
  errorsByClass: Record<string, number[]>;
  /** Pins per sample, by reason. */
  pinsByReason: Record<string, number[]>;
}

/** Keyed event counts, one column per key, created when the key first shows up. */
class KeyedColumns {
  readonly columns = new Map<string, Float64Array>();

  constructor(private readonly capacity: number) {}

  column(key: string): Float64Array {
    let c = this.columns.get(key);
    if (c === undefined) {
      c = new Float64Array(this.capacity);
      this.columns.set(key, c);
    }
    return c;
  }

  clear(slot: number): void {
    for (const c of this.columns.values()) c[slot] = 0;
  }
}

export class StatusHistory {
  private readonly times: Float64Array;
  private readonly columns: Record<HistoryField, Float64Array>;
  readonly errorsByClass: KeyedColumns;
  readonly pinsByReason: KeyedColumns;
  /** Samples written so far (the ring's head is `written % capacity`). */
  private written = 0;
  /** The sample being filled by `begin()`…`commit()`. */
  readonly next: SampleValues;

  constructor(readonly capacity: number = HISTORY_CAPACITY) {
    this.times = new Float64Array(capacity);
    const columns = {} as Record<HistoryField, Float64Array>;
    const next = {} as SampleValues;
    for (const f of HISTORY_FIELDS) {
      columns[f] = new Float64Array(capacity);
      next[f] = 0;
    }
    this.columns = columns;
    this.next = next;
    this.errorsByClass = new KeyedColumns(capacity);
    this.pinsByReason = new KeyedColumns(capacity);
  }

  get size(): number {
    return Math.min(this.written, this.capacity);
  }

  /** The slot the next sample goes to, with its keyed counts cleared; fill `next` and the keyed columns, then commit. */
  begin(): number {
    const slot = this.written % this.capacity;
    this.errorsByClass.clear(slot);
    this.pinsByReason.clear(slot);
    return slot;
  }

  commit(at: number): void {
    const slot = this.written % this.capacity;
    this.times[slot] = at;
    for (const f of HISTORY_FIELDS) this.columns[f][slot] = this.next[f];
    this.written++;
  }

  /** Samples taken after `since` (ms), oldest first; all of them when `since` is 0. */
  report(since = 0): HistoryReport {
    const size = this.size;
    const first = this.written - size;
    const slots: number[] = [];
    for (let i = first; i < this.written; i++) {
      const slot = i % this.capacity;
      if (this.times[slot] > since) slots.push(slot);
    }
    const series = {} as HistoryReport['series'];
    for (const f of HISTORY_FIELDS) {
      const col = this.columns[f];
      series[f] = slots.map((s) => (Number.isFinite(col[s]) ? round(col[s]) : null));
    }
    const keyed = (k: KeyedColumns): Record<string, number[]> => {
      const out: Record<string, number[]> = {};
      for (const [key, col] of [...k.columns].sort(([a], [b]) => a.localeCompare(b))) out[key] = slots.map((s) => col[s]);
      return out;
    };
    return {
      intervalMs: SAMPLE_INTERVAL_MS,
      capacity: this.capacity,
      t: slots.map((s) => this.times[s]),
      series,
      errorsByClass: keyed(this.errorsByClass),
      pinsByReason: keyed(this.pinsByReason),
    };
  }
}

/** Six significant digits: enough for a chart, and the JSON stays small. */
function round(v: number): number {
  return v === 0 ? 0 : Number(v.toPrecision(6));
}

/**
 * The q-quantile (0 ≤ q ≤ 1) of observations counted per bucket (not cumulative; the last slot
 * above the highest bound), as Prometheus's histogram_quantile computes it: the bucket holding the
 * rank q·total is found and the value interpolated linearly between its bounds (the first bucket
 * starts at 0); a rank in the +Inf bucket gives the highest finite bound. NaN when nothing was counted.
 */
export function histogramQuantile(q: number, bounds: readonly number[], counts: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i];
  if (!(total > 0) || Number.isNaN(q)) return Number.NaN;
  if (q <= 0) q = 0;
  if (q >= 1) q = 1;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    const inBucket = counts[i];
    if (below + inBucket >= rank && inBucket > 0) {
      if (i >= bounds.length) return bounds[bounds.length - 1];
      const lower = i === 0 ? 0 : bounds[i - 1];
      const upper = bounds[i];
      return lower + (upper - lower) * ((rank - below) / inBucket);
    }
    below += inBucket;
  }
  return bounds[bounds.length - 1];
}

/**
 * The change of a group of histograms since the last call, summed over them: `sum` adds the
 * current counts, then `delta` gives the window's counts per bucket and remembers the totals.
 * Counts that went down (a registry reset) count as a fresh start. Preallocated; nothing per call.
 */
export class HistogramWindow {
  private readonly current: Float64Array;
  private readonly last: Float64Array;
  readonly window: Float64Array;
  private primed = false;

  constructor(readonly bounds: readonly number[]) {
    this.current = new Float64Array(bounds.length + 1);
    this.last = new Float64Array(bounds.length + 1);
    this.window = new Float64Array(bounds.length + 1);
  }

  reset(): void {
    this.current.fill(0);
  }

  sum(counts: ArrayLike<number>): void {
    for (let i = 0; i < this.current.length; i++) this.current[i] += counts[i];
  }

  /** The window's bucket counts (into `window`); empty for the first call, which only sets the baseline. */
  delta(): Float64Array {
    for (let i = 0; i < this.current.length; i++) {
      const d = this.current[i] - this.last[i];
      this.window[i] = this.primed ? (d >= 0 ? d : this.current[i]) : 0;
      this.last[i] = this.current[i];
    }
    this.primed = true;
    return this.window;
  }

  quantile(q: number): number {
    return histogramQuantile(q, this.bounds, this.window);
  }
}
