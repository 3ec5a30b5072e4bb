/**
 * The named statements one server connection has prepared, by server-side name, with the key
 * (a hash of query text and parameter types) each was prepared from; least recently used first.
 */
export class PreparedCache {
  private readonly entries = new Map<string, string>();

  constructor(private readonly capacity: number) {}

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

  /** Records a statement; returns the names evicted to stay within capacity (to Close on the server). */
  add(name: string, key: string): string[] {
    this.entries.delete(name);
    this.entries.set(name, key);
    const evicted: string[] = [];
    if (this.capacity > 0) {
      for (const oldest of this.entries.keys()) {
        if (this.entries.size - evicted.length <= this.capacity) break;
        if (oldest !== name) evicted.push(oldest);
      }
      for (const e of evicted) this.entries.delete(e);
    }
    return evicted;
  }

  delete(name: string): void {
    this.entries.delete(name);
  }

  clear(): void {
    this.entries.clear();
  }
}
