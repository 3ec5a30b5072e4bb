/**
 * The circuit breaker of one pool's server logins: after a failed login, no new connection is opened
 * before a wait that starts at `server_login_retry_min` and doubles with each further failure, up to
 * `server_login_retry`; then at most one attempt is in flight at a time (the pool checks `connecting`),
 * so a dead or refusing upstream sees a bounded connect rate, not one attempt per client. The first
 * login that succeeds closes the breaker. While it is open and no server connection is up or coming,
 * clients are answered at once with the last login error instead of queueing.
 */
import type { PgmuxError } from '../errors.js';

export class LoginBackoff {
  /** Failed logins since the last one that succeeded. */
  failures = 0;
  /** The error of the latest failed login (what fast-failed clients are told). */
  lastError: PgmuxError | null = null;
  /** Date.now() of the latest failure. */
  lastFailureAt = 0;
  /** Date.now() before which no new server connection is opened. */
  retryAt = 0;
  /**
   * Failures that lengthened the wait. Connections opened together (a burst up to pool_size when an
   * upstream goes away) fail together: only one started after the previous counted failure doubles it.
   */
  private rounds = 0;
  private roundAt = 0;

  /**
   * @param minMs first wait (server_login_retry_min); 0 or ≥ maxMs: every wait is maxMs (PgBouncer's behaviour)
   * @param maxMs the longest wait (server_login_retry)
   */
  constructor(
    public minMs: number,
    public maxMs: number,
  ) {}

  /** The breaker is open: the latest login failed and none has succeeded since. */
  get failing(): boolean {
    return this.failures > 0;
  }

  /** Whether a new connection may be opened now (the wait after the latest failure is over). */
  mayConnect(now: number): boolean {
    return now >= this.retryAt;
  }

  /**
   * A login failed: wait longer before the next attempt. `startedAt`: when that connection was opened.
   * Returns the wait (ms) from now.
   */
  failed(now: number, error: PgmuxError, startedAt: number = now): number {
    this.failures++;
    this.lastError = error;
    this.lastFailureAt = now;
    if (this.rounds === 0 || startedAt >= this.roundAt) {
      this.rounds++;
      this.roundAt = now;
      this.retryAt = now + this.waitAfter(this.rounds);
    }
    return Math.max(0, this.retryAt - now);
  }

  /** A login succeeded: connect freely again. */
  succeeded(): void {
    this.failures = 0;
    this.rounds = 0;
    this.lastError = null;
    this.retryAt = 0;
  }

  /** The wait after the n-th counted failure (n ≥ 1). */
  waitAfter(n: number): number {
    const { minMs, maxMs } = this;
    if (minMs <= 0 || minMs >= maxMs) return maxMs;
    // 2^(n-1) overflows nothing: the exponent is capped well before the product passes maxMs.
    return Math.min(maxMs, minMs * 2 ** Math.min(n - 1, 30));
  }
}
