/**
 * The token bucket behind server_connect_rate: a pool may open `rate` server connections per second,
 * and at most one second's worth at once. Refilled lazily from the clock when asked, so it needs no timer.
 */
export class ConnectBucket {
  private tokens: number;
  private refilledAt: number;

  /** `rate` 0: unlimited. */
  constructor(
    private rate: number,
    now: number = Date.now(),
  ) {
    this.tokens = rate;
    this.refilledAt = now;
  }

  /** A reload changed server_connect_rate: the bucket keeps what it holds, within the new size. */
  setRate(rate: number, now: number = Date.now()): void {
    this.refill(now);
    this.rate = rate;
    this.tokens = Math.min(this.tokens, rate);
  }

  /** Whole connections that may be opened now (Infinity when unlimited). */
  available(now: number): number {
    if (this.rate === 0) return Number.POSITIVE_INFINITY;
    this.refill(now);
    return Math.floor(this.tokens);
  }

  /** One connection was opened. */
  take(): void {
    if (this.rate > 0) this.tokens = Math.max(0, this.tokens - 1);
  }

  private refill(now: number): void {
    const elapsed = now - this.refilledAt;
    this.refilledAt = now;
    if (elapsed > 0 && this.rate > 0) this.tokens = Math.min(this.rate, this.tokens + (elapsed * this.rate) / 1000);
  }
}
