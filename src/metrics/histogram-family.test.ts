import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { DurationHistogram, HistogramFamily } from './histogram-family.js';

describe('DurationHistogram', () => {
  it('counts a value equal to a bound in that bucket (le is inclusive), above the last in +Inf', () => {
    const h = new DurationHistogram([0.1, 1]);
    for (const v of [0, 0.1, 0.1000001, 1, 5]) h.observe(v);
    expect([...h.counts]).toEqual([2, 2, 1]);
    expect(h.count).toBe(5);
    expect(h.sum).toBeCloseTo(6.2000001);
  });

  it('ignores NaN and negative durations', () => {
    const h = new DurationHistogram([1]);
    h.observe(Number.NaN);
    h.observe(-0.5);
    expect(h.count).toBe(0);
    expect(h.sum).toBe(0);
  });
});

describe('HistogramFamily', () => {
  it('renders cumulative buckets, +Inf, _sum and _count per label set through a prom-client Registry', async () => {
    const family = new HistogramFamily<'database'>('t_seconds', 'Test.', [0.1, 1]);
    const a = family.child('a', { database: 'a' });
    expect(family.child('a', { database: 'a' })).toBe(a);
    a.observe(0.05);
    a.observe(0.5);
    a.observe(3);
    family.child('b', { database: 'b' }).observe(0.2);
    const registry = new Registry();
    family.register(registry);
    const text = await registry.metrics();
    expect(text).toBe(
      [
        '# HELP t_seconds Test.',
        '# TYPE t_seconds histogram',
        't_seconds_bucket{database="a",le="0.1"} 1',
        't_seconds_bucket{database="a",le="1"} 2',
        't_seconds_bucket{database="a",le="+Inf"} 3',
        't_seconds_sum{database="a"} 3.55',
        't_seconds_count{database="a"} 3',
        't_seconds_bucket{database="b",le="0.1"} 0',
        't_seconds_bucket{database="b",le="1"} 1',
        't_seconds_bucket{database="b",le="+Inf"} 1',
        't_seconds_sum{database="b"} 0.2',
        't_seconds_count{database="b"} 1',
        '',
      ].join('\n'),
    );
    registry.resetMetrics();
    expect(a.count).toBe(0);
    a.observe(0.05); // the pool's sink still feeds the same series after a reset
    expect(await registry.metrics()).toContain('t_seconds_count{database="a"} 1');
  });
});
