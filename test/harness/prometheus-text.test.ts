import { describe, expect, it } from 'vitest';
import { parseExposition, sampleSum, sampleValue } from './prometheus-text.js';

const GOOD = `# HELP req_total Requests.
# TYPE req_total counter
req_total{path="/a",code="200"} 3
req_total{path="/b\\\\x\\"y\\nz",code="500"} 1
# HELP lat Latency.
# TYPE lat histogram
lat_bucket{le="0.1"} 1
lat_bucket{le="1"} 2
lat_bucket{le="+Inf"} 3
lat_sum 4.5
lat_count 3
# TYPE up gauge
up 1 1700000000000
`;

describe('strict Prometheus text parser', () => {
  it('reads families, labels with escapes, histograms', () => {
    const exp = parseExposition(GOOD);
    expect(exp.get('req_total')?.type).toBe('counter');
    expect(sampleValue(exp, 'req_total', { path: '/a', code: '200' })).toBe(3);
    expect(sampleValue(exp, 'req_total', { path: '/b\\x"y\nz', code: '500' })).toBe(1);
    expect(sampleSum(exp, 'req_total')).toBe(4);
    expect(sampleValue(exp, 'lat_bucket', { le: '+Inf' })).toBe(3);
    expect(sampleValue(exp, 'lat_count')).toBe(3);
    expect(sampleValue(exp, 'up')).toBe(1);
  });

  it.each([
    ['no final newline', GOOD.trimEnd()],
    ['a bad metric name', GOOD.replace('up 1', '1up 1')],
    ['an unterminated label value', GOOD.replace('code="200"}', 'code="200}')],
    ['a bad escape', GOOD.replace('/a', '/\\a')],
    ['a bad value', GOOD.replace('req_total{path="/a",code="200"} 3', 'req_total{path="/a",code="200"} three')],
    ['a negative counter', GOOD.replace('code="200"} 3', 'code="200"} -3')],
    ['a duplicate series', GOOD.replace('code="500"} 1', 'code="200"} 1').replace('/b\\\\x\\"y\\nz', '/a')],
    ['a TYPE after samples', `${GOOD}# TYPE req_total counter\n`],
    ['samples away from their family', `${GOOD}req_total{path="/c"} 1\n`],
    ['buckets that are not cumulative', GOOD.replace('lat_bucket{le="1"} 2', 'lat_bucket{le="1"} 0')],
    ['+Inf bucket different from count', GOOD.replace('lat_count 3', 'lat_count 4')],
    ['a histogram without +Inf', GOOD.replace('lat_bucket{le="+Inf"} 3\n', '')],
    ['a repeated label', GOOD.replace('code="200"}', 'code="200",code="201"}')],
  ])('rejects %s', (_what, text) => {
    expect(() => parseExposition(text)).toThrow();
  });
});
