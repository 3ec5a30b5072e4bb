import { describe, expect, it } from 'vitest';
import { DurationHistogram } from './histogram-family.js';
import { histogramQuantile, HistogramWindow, StatusHistory } from './status-history.js';

describe('histogramQuantile (as Prometheus histogram_quantile)', () => {
  const bounds = [0.1, 0.5, 1];

  it('interpolates linearly inside the bucket the rank falls in', () => {
    // 10 in (0, 0.1], 10 in (0.1, 0.5], 0 in (0.5, 1], 0 above.
    const counts = [10, 10, 0, 0];
    expect(histogramQuantile(0.5, bounds, counts)).toBeCloseTo(0.1); // rank 10: the top of the first bucket
    expect(histogramQuantile(0.25, bounds, counts)).toBeCloseTo(0.05); // rank 5 of 10 in (0, 0.1]
    expect(histogramQuantile(0.75, bounds, counts)).toBeCloseTo(0.3); // rank 15: half-way through (0.1, 0.5]
    expect(histogramQuantile(1, bounds, counts)).toBeCloseTo(0.5);
  });

  it('matches Prometheus on a worked example', () => {
    // Cumulative le=0.1:1, le=0.5:3, le=1:9, +Inf:10. q=0.99 → rank 9.9 in +Inf → highest finite bound;
    // q=0.5 → rank 5 in (0.5, 1]: 0.5 + 0.5 * (5 - 3) / 6.
    const counts = [1, 2, 6, 1];
    expect(histogramQuantile(0.5, bounds, counts)).toBeCloseTo(0.5 + (0.5 * 2) / 6);
    expect(histogramQuantile(0.99, bounds, counts)).toBe(1);
    expect(histogramQuantile(0.9, bounds, counts)).toBeCloseTo(1); // rank 9: the top of (0.5, 1]
  });

  it('skips empty buckets and gives NaN for no observations', () => {
    expect(histogramQuantile(0.5, bounds, [0, 0, 4, 0])).toBeCloseTo(0.75);
    expect(histogramQuantile(0, bounds, [0, 0, 4, 0])).toBeCloseTo(0.5); // lower edge of the first non-empty bucket
    expect(histogramQuantile(0.5, bounds, [0, 0, 0, 0])).toBeNaN();
    expect(histogramQuantile(Number.NaN, bounds, [1, 0, 0, 0])).toBeNaN();
  });

  it('reads percentiles from bucket deltas between samples (HistogramWindow)', () => {
    const h = new DurationHistogram(bounds);
    const w = new HistogramWindow(bounds);
    for (let i = 0; i < 100; i++) h.observe(0.05); // before the first sample: only the baseline
    w.reset();
    w.sum(h.counts);
    expect([...w.delta()]).toEqual([0, 0, 0, 0]);
    for (let i = 0; i < 4; i++) h.observe(0.8);
    w.reset();
    w.sum(h.counts);
    expect([...w.delta()]).toEqual([0, 0, 4, 0]);
    expect(w.quantile(0.5)).toBeCloseTo(0.75); // the old fast observations do not count
    w.reset();
    w.sum(h.counts);
    w.delta();
    expect(w.quantile(0.99)).toBeNaN(); // a quiet second
  });
});

describe('StatusHistory', () => {
  it('keeps the last `capacity` samples in order, and the ones after a time', () => {
    const h = new StatusHistory(3);
    for (let i = 1; i <= 5; i++) {
      const slot = h.begin();
      h.next.tps = i * 10;
      h.next.waitP99 = i === 4 ? Number.NaN : i / 100;
      if (i === 5) h.errorsByClass.column('42')[slot] = 2;
      h.commit(i * 1000);
    }
    const all = h.report();
    expect(all.t).toEqual([3000, 4000, 5000]);
    expect(all.series.tps).toEqual([30, 40, 50]);
    expect(all.series.waitP99).toEqual([0.03, null, 0.05]);
    expect(all.errorsByClass).toEqual({ '42': [0, 0, 2] });
    const later = h.report(4000);
    expect(later.t).toEqual([5000]);
    expect(later.series.tps).toEqual([50]);
    // A slot reused by the ring starts with its keyed counts cleared.
    h.begin();
    h.commit(6000);
    expect(h.report().errorsByClass['42']).toEqual([0, 2, 0]);
  });
});
