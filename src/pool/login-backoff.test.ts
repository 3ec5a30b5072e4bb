import { describe, expect, it } from 'vitest';
import { Errors } from '../errors.js';
import { LoginBackoff } from './login-backoff.js';

const refused = Errors.serverConnectFailed('app/app', '127.0.0.1:1', 'ECONNREFUSED');

describe('LoginBackoff', () => {
  it('waits server_login_retry_min after the first failure, doubling up to server_login_retry', () => {
    const b = new LoginBackoff(100, 1000);
    expect([1, 2, 3, 4, 5, 6, 40].map((n) => b.waitAfter(n))).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
  });

  it('waits server_login_retry every time when the minimum is 0 or not below it (PgBouncer)', () => {
    expect(new LoginBackoff(0, 15_000).waitAfter(1)).toBe(15_000);
    expect(new LoginBackoff(20_000, 15_000).waitAfter(3)).toBe(15_000);
  });

  it('is open from a failure until a success, and lets a connection through once the wait is over', () => {
    const b = new LoginBackoff(100, 1000);
    expect(b.failing).toBe(false);
    expect(b.mayConnect(0)).toBe(true);
    expect(b.failed(1000, refused)).toBe(100);
    expect(b.failed(1100, refused)).toBe(200);
    expect(b).toMatchObject({ failing: true, failures: 2, lastError: refused, lastFailureAt: 1100, retryAt: 1300 });
    expect(b.mayConnect(1299)).toBe(false);
    expect(b.mayConnect(1300)).toBe(true);
    b.succeeded();
    expect(b).toMatchObject({ failing: false, failures: 0, lastError: null });
    expect(b.failed(5000, refused)).toBe(100); // a new run of failures starts short again
  });

  it('counts connections that were opened together and failed together as one failure for the wait', () => {
    const b = new LoginBackoff(100, 15_000);
    // A burst of three opened at 0, failing at 10, 11, 12: one wait of 100 ms.
    expect(b.failed(10, refused, 0)).toBe(100);
    expect(b.failed(11, refused, 0)).toBe(99);
    expect(b.failed(12, refused, 0)).toBe(98);
    expect(b.failures).toBe(3);
    // The next attempt (opened after the failures) doubles it.
    expect(b.failed(130, refused, 110)).toBe(200);
  });
});
