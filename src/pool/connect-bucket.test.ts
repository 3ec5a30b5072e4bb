import { describe, expect, it } from 'vitest';
import { ConnectBucket } from './connect-bucket.js';

describe('ConnectBucket', () => {
  it('allows one second of connections at once, then refills at the rate', () => {
    const b = new ConnectBucket(10, 0);
    expect(b.available(0)).toBe(10);
    for (let i = 0; i < 10; i++) b.take();
    expect(b.available(0)).toBe(0);
    expect(b.available(99)).toBe(0);
    expect(b.available(100)).toBe(1);
    expect(b.available(5000)).toBe(10); // never more than one second's worth
  });

  it('is unlimited at rate 0 and shrinks to a lower rate on reload', () => {
    const b = new ConnectBucket(0, 0);
    b.take();
    expect(b.available(0)).toBe(Number.POSITIVE_INFINITY);
    const c = new ConnectBucket(100, 0);
    c.setRate(2, 0);
    expect(c.available(0)).toBe(2);
  });
});
