/**
 * What pgmux must do with the server's answers to the messages it forwarded, in order. Only
 * the answers pgmux may alter are tracked: ParseComplete, CloseComplete and ReadyForQuery
 * (the boundaries at which an error stops skipping). Two parallel arrays used as a queue: no
 * allocation per message.
 */
export const enum Expect {
  /** Forward the ParseComplete of a client's Parse. */
  ParsePass = 1,
  /** Swallow the ParseComplete of a Parse pgmux injected. */
  ParseSwallow,
  /** The client's Parse was replaced by a Close of nothing: turn its CloseComplete into ParseComplete. */
  ParseFake,
  /** Forward a CloseComplete. */
  ClosePass,
  /** Swallow the CloseComplete of a Close pgmux injected (LRU eviction). */
  CloseSwallow,
  /** A Sync, Query or FunctionCall: its ReadyForQuery ends a batch. */
  Boundary,
}

export class ResponseQueue {
  private readonly kinds: Expect[] = [];
  /** Server-side statement name for Parse entries (to forget it if the Parse never ran). */
  private readonly names: Array<string | null> = [];
  private head = 0;

  get length(): number {
    return this.kinds.length - this.head;
  }

  push(kind: Expect, name: string | null = null): void {
    this.kinds.push(kind);
    this.names.push(name);
  }

  /** The next expected answer, without removing it. */
  peek(): Expect | undefined {
    return this.head < this.kinds.length ? this.kinds[this.head] : undefined;
  }

  shift(): Expect | undefined {
    if (this.head >= this.kinds.length) return undefined;
    const kind = this.kinds[this.head++];
    if (this.head === this.kinds.length) this.clear();
    return kind;
  }

  /**
   * An ErrorResponse: the server skips everything up to the next Sync, so the Parse/Close
   * answers queued before the next boundary will not come. Calls `notCreated` with the names
   * of Parses that therefore never ran.
   */
  dropToBoundary(notCreated: (name: string) => void): void {
    while (this.head < this.kinds.length && this.kinds[this.head] !== Expect.Boundary) {
      const kind = this.kinds[this.head];
      const name = this.names[this.head];
      if ((kind === Expect.ParsePass || kind === Expect.ParseSwallow) && name !== null) notCreated(name);
      this.head++;
    }
    if (this.head === this.kinds.length) this.clear();
  }

  /** ReadyForQuery: consume up to and including the boundary. */
  popBoundary(): void {
    while (this.head < this.kinds.length) {
      if (this.kinds[this.head++] === Expect.Boundary) break;
    }
    if (this.head === this.kinds.length) this.clear();
  }

  clear(): void {
    // Keep the arrays' storage: the queue empties after every batch.
    this.kinds.length = 0;
    this.names.length = 0;
    this.head = 0;
  }
}
