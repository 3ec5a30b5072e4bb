/** What the server has of a statement beneath a Parse of it in flight: another Parse in flight, it, or nothing. */
const CONFIRMED = 'confirmed';
const ABSENT = 'absent';
type Below = Pending | typeof CONFIRMED | typeof ABSENT;

interface Pending {
  readonly segment: number;
  readonly injected: boolean;
  below: Below;
}

/**
 * The named statements one server connection has prepared, by server-side name, with the key
 * (a hash of query text and parameter types) each was prepared from; least recently used first.
 */
export class PreparedCache {
  private readonly entries = new Map<string, string>();
  /**
   * What the server has is not known exactly (a DEALLOCATE of a name pgmux cannot tell, an
   * eviction Close the server skipped): cleared with DEALLOCATE ALL before the next client.
   */
  unknown = false;
  /**
   * Whose unnamed statement the server has (a token of the client's StatementRouter), or null when
   * it is nobody's or not known: it lives until the next unnamed Parse or simple Query, whoever sends it.
   */
  unnamedOwner: object | null = null;

  /**
   * Statements whose Parse is in flight: the segment it was sent in (Syncs sent before it on this link) and
   * whether pgmux sent it. Until its ParseComplete the server may skip it (an earlier message failed).
   */
  private readonly pending = new Map<string, Pending>();

  constructor(private readonly capacity: number) {}

  /**
   * A Parse creating `name` was sent in `segment`. When it prepares again a statement whose Parse is still in
   * flight (closed first, see StatementRouter.closeFirst), what the server has if this pair is skipped is what
   * the earlier Parse leaves: that is kept beneath it.
   */
  sent(name: string, segment: number, injected: boolean): void {
    const earlier = this.pending.get(name);
    // Only a statement still in flight is prepared again; otherwise the server lacked it (it was just added).
    this.pending.set(name, { segment, injected, below: earlier ?? ABSENT });
  }

  /** The Parse of `name` sent in `segment` was answered: the server has it. */
  confirm(name: string, segment: number): void {
    const top = this.pending.get(name);
    if (top === undefined) return;
    if (top.segment === segment) {
      this.pending.delete(name);
      return;
    }
    // An earlier Parse ran: if the later ones are skipped, the server still has it.
    for (let p: Pending = top; ; ) {
      const below = p.below;
      if (below === CONFIRMED || below === ABSENT) return;
      if (below.segment === segment) {
        p.below = CONFIRMED;
        return;
      }
      p = below;
    }
  }

  /**
   * The Parse of `name` sent in `segment` never ran. If it was the latest, the server has what the Parse below
   * it leaves (nothing, if none); an earlier one skipped leaves the later ones to decide, on nothing.
   */
  notPrepared(name: string, segment: number): void {
    const top = this.pending.get(name);
    if (top === undefined || top.segment === segment) {
      const below = top?.below ?? ABSENT;
      if (below === CONFIRMED) this.pending.delete(name);
      else if (below === ABSENT) {
        this.pending.delete(name);
        this.entries.delete(name);
      } else this.pending.set(name, below);
      return;
    }
    for (let p: Pending = top; ; ) {
      const below = p.below;
      if (below === CONFIRMED || below === ABSENT) return;
      if (below.segment === segment) {
        p.below = ABSENT;
        return;
      }
      p = below;
    }
  }

  /**
   * Whether `name` rests on a Parse pgmux sent in an earlier segment that is not answered yet: the server
   * may skip it, so a later segment must not count on it.
   */
  uncertain(name: string, segment: number): boolean {
    if (this.pending.size === 0) return false;
    const p = this.pending.get(name);
    return p !== undefined && p.injected && p.segment < segment;
  }

  /** Nothing is in flight. */
  settle(): void {
    if (this.pending.size > 0) this.pending.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  /** The key prepared under `name`, marking it recently used. */
  use(name: string): string | undefined {
    const key = this.entries.get(name);
    if (key !== undefined) {
      this.entries.delete(name);
      this.entries.set(name, key);
    }
    return key;
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** Records a statement; returns the [name, key] pairs evicted to stay within capacity (to Close on the server). */
  add(name: string, key: string): Array<[string, string]> {
    this.entries.delete(name);
    this.entries.set(name, key);
    const evicted: Array<[string, string]> = [];
    if (this.capacity > 0) {
      for (const [oldest, oldKey] of this.entries) {
        if (this.entries.size - evicted.length <= this.capacity) break;
        if (oldest !== name) evicted.push([oldest, oldKey]);
      }
      for (const [e] of evicted) this.entries.delete(e);
    }
    return evicted;
  }

  /** An evicted statement is still on the server after all (its Close did not run): known again, as least recently used. */
  restore(name: string, key: string): void {
    if (this.entries.has(name)) return;
    const rest = [...this.entries];
    this.entries.clear();
    this.entries.set(name, key);
    for (const [n, k] of rest) this.entries.set(n, k);
  }

  delete(name: string): void {
    this.entries.delete(name);
  }

  clear(): void {
    this.entries.clear();
    this.pending.clear();
    this.unknown = false;
    this.unnamedOwner = null;
  }
}
