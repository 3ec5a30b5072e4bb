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
  private readonly pending = new Map<string, { segment: number; injected: boolean }>();

  constructor(private readonly capacity: number) {}

  /** A Parse creating `name` was sent in `segment`. */
  sent(name: string, segment: number, injected: boolean): void {
    this.pending.set(name, { segment, injected });
  }

  /** The Parse of `name` sent in `segment` was answered: the server has it. */
  confirm(name: string, segment: number): void {
    if (this.pending.get(name)?.segment === segment) this.pending.delete(name);
  }

  /** The Parse of `name` sent in `segment` never ran: the server does not have it (unless a later one was sent). */
  notPrepared(name: string, segment: number): void {
    const p = this.pending.get(name);
    if (p !== undefined && p.segment !== segment) return;
    this.pending.delete(name);
    this.entries.delete(name);
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
