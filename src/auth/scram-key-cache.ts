/**
 * Derived SCRAM keys, cached per (password, salt, iterations), so the PBKDF2 a plaintext password costs (about a
 * millisecond at 4096 iterations) is paid once and not at every login.
 *
 * Bounded (least recently used entries go first) and keyed by an HMAC of the triple under a random key of the
 * cache's own: the cache holds no password, nor an unkeyed hash that would be a faster offline target than the
 * SCRAM keys themselves. The values are the keys a SCRAM verifier holds (StoredKey, ServerKey) plus ClientKey,
 * which is what SCRAM passthrough already keeps per pool.
 */
import { createHmac, randomBytes } from 'node:crypto';

import { deriveScramKeys, deriveScramKeysAsync, type ScramKeys } from './scram-crypto.js';

export const DEFAULT_SCRAM_KEY_CACHE_SIZE = 4096;

/** A Map bounded to `capacity` entries, in least-recently-used order (a hit moves an entry to the end). */
export class LruMap<K, V> {
  private readonly map = new Map<K, V>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('LruMap capacity must be a positive integer');
  }

  get size(): number {
    return this.map.size;
  }

  get(key: K): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) {
      this.map.delete(key);
      this.map.set(key, value);
    }
    return value;
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as K);
  }

  delete(key: K): void {
    this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }
}

export interface ScramKeyCacheStats {
  /** Lookups answered from the cache. */
  hits: number;
  /** PBKDF2 runs on the calling thread (deriveSync misses). */
  derivedSync: number;
  /** PBKDF2 runs in the threadpool (derive misses; a derivation shared by concurrent callers counts once). */
  derivedAsync: number;
}

export class ScramKeyCache {
  private readonly entries: LruMap<string, ScramKeys>;
  private readonly inFlight = new Map<string, Promise<ScramKeys>>();
  private readonly idKey = randomBytes(32);
  /** Bumped by clear(): a derivation started before it does not fill the cache after it. */
  private generation = 0;
  readonly stats: ScramKeyCacheStats = { hits: 0, derivedSync: 0, derivedAsync: 0 };

  constructor(capacity = DEFAULT_SCRAM_KEY_CACHE_SIZE) {
    this.entries = new LruMap(capacity);
  }

  get size(): number {
    return this.entries.size;
  }

  get capacity(): number {
    return this.entries.capacity;
  }

  /** The keys of (password, salt, iterations) if they are cached. */
  get(password: string, salt: Buffer, iterations: number): ScramKeys | undefined {
    return this.lookup(this.id(password, salt, iterations));
  }

  /** Caches keys derived elsewhere (e.g. a derivation made with `remember: false` that turned out to be right). */
  set(password: string, salt: Buffer, iterations: number, keys: ScramKeys): void {
    this.entries.set(this.id(password, salt, iterations), keys);
  }

  /**
   * The keys, derived now on the calling thread if not cached: for flows that cannot wait. `remember: false`
   * derives without caching (a password not yet known to be right must not push right ones out).
   */
  deriveSync(password: string, salt: Buffer, iterations: number, remember = true): ScramKeys {
    const id = this.id(password, salt, iterations);
    const cached = this.lookup(id);
    if (cached !== undefined) return cached;
    const keys = deriveScramKeys(password, salt, iterations);
    this.stats.derivedSync++;
    if (remember) this.entries.set(id, keys);
    return keys;
  }

  /**
   * The keys, derived in libuv's threadpool if not cached (the event loop only does the HMACs). Callers asking
   * for one entry while it is being derived share the derivation.
   */
  derive(password: string, salt: Buffer, iterations: number, remember = true): Promise<ScramKeys> {
    const id = this.id(password, salt, iterations);
    const cached = this.lookup(id);
    if (cached !== undefined) return Promise.resolve(cached);
    const running = this.inFlight.get(id);
    if (running !== undefined) return running;
    const generation = this.generation;
    this.stats.derivedAsync++;
    const done = deriveScramKeysAsync(password, salt, iterations).then(
      (keys) => {
        if (this.inFlight.get(id) === done) this.inFlight.delete(id);
        if (remember && generation === this.generation) this.entries.set(id, keys);
        return keys;
      },
      (err: unknown) => {
        if (this.inFlight.get(id) === done) this.inFlight.delete(id);
        throw err;
      },
    );
    this.inFlight.set(id, done);
    return done;
  }

  clear(): void {
    this.entries.clear();
    this.inFlight.clear();
    this.generation++;
  }

  private lookup(id: string): ScramKeys | undefined {
    const keys = this.entries.get(id);
    if (keys !== undefined) this.stats.hits++;
    return keys;
  }

  /** HMAC(idKey, iterations ‖ salt length ‖ salt ‖ password): unambiguous, and nothing of the password kept. */
  private id(password: string, salt: Buffer, iterations: number): string {
    const head = Buffer.allocUnsafe(8);
    head.writeUInt32BE(iterations >>> 0, 0);
    head.writeUInt32BE(salt.length, 4);
    return createHmac('sha256', this.idKey).update(head).update(salt).update(password, 'utf8').digest('base64');
  }
}
