import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';

import { deriveScramKeys, publicRandomBytes, randomNonce } from './scram-crypto.js';
import { LruMap, ScramKeyCache } from './scram-key-cache.js';

const SALT = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
/** Few iterations: these tests are about caching, not PBKDF2. */
const ITERATIONS = 16;

/** The cache's entry names, read through its private fields: to check what it holds. */
function entryNames(cache: ScramKeyCache): string[] {
  const lru = (cache as unknown as { entries: { map: Map<string, unknown> } }).entries;
  return [...lru.map.keys()];
}

describe('LruMap', () => {
  it('keeps at most `capacity` entries, dropping the least recently used', () => {
    const lru = new LruMap<string, number>(3);
    lru.set('a', 1);
    lru.set('b', 2);
    lru.set('c', 3);
    expect(lru.get('a')).toBe(1); // a is now the most recently used
    lru.set('d', 4);
    expect(lru.size).toBe(3);
    expect(lru.has('b')).toBe(false);
    expect([lru.get('a'), lru.get('c'), lru.get('d')]).toEqual([1, 3, 4]);
  });

  it('replacing a key does not grow it', () => {
    const lru = new LruMap<string, number>(2);
    lru.set('a', 1);
    lru.set('a', 2);
    lru.set('b', 3);
    expect(lru.size).toBe(2);
    expect(lru.get('a')).toBe(2);
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new LruMap(0)).toThrow(RangeError);
    expect(() => new LruMap(1.5)).toThrow(RangeError);
  });
});

describe('ScramKeyCache', () => {
  it('derives on a miss and answers the next lookup from the cache, with the same keys', () => {
    const cache = new ScramKeyCache(8);
    expect(cache.get('pencil', SALT, ITERATIONS)).toBeUndefined();
    const first = cache.deriveSync('pencil', SALT, ITERATIONS);
    expect(first).toEqual(deriveScramKeys('pencil', SALT, ITERATIONS));
    expect(cache.stats).toEqual({ hits: 0, derivedSync: 1, derivedAsync: 0 });
    expect(cache.deriveSync('pencil', SALT, ITERATIONS)).toBe(first);
    expect(cache.get('pencil', SALT, ITERATIONS)).toBe(first);
    expect(cache.stats).toEqual({ hits: 2, derivedSync: 1, derivedAsync: 0 });
  });

  it('keys an entry on password, salt and iteration count alike', () => {
    const cache = new ScramKeyCache(8);
    cache.deriveSync('pencil', SALT, ITERATIONS);
    expect(cache.get('pencil2', SALT, ITERATIONS)).toBeUndefined();
    expect(cache.get('pencil', randomBytes(16), ITERATIONS)).toBeUndefined();
    expect(cache.get('pencil', SALT, ITERATIONS + 1)).toBeUndefined();
    // A salt byte that moves into the password must not name the same entry (the fields are length-prefixed).
    const cache2 = new ScramKeyCache(8);
    cache2.deriveSync('bc', Buffer.from('a'), ITERATIONS);
    expect(cache2.get('c', Buffer.from('ab'), ITERATIONS)).toBeUndefined();
  });

  it('is bounded: the least recently used entry is dropped and derived again when asked for', () => {
    const cache = new ScramKeyCache(3);
    for (const p of ['p1', 'p2', 'p3']) cache.deriveSync(p, SALT, ITERATIONS);
    cache.get('p1', SALT, ITERATIONS);
    cache.deriveSync('p4', SALT, ITERATIONS);
    expect(cache.size).toBe(3);
    expect(cache.get('p2', SALT, ITERATIONS)).toBeUndefined();
    expect(cache.get('p1', SALT, ITERATIONS)).toBeDefined();
    const before = cache.stats.derivedSync;
    cache.deriveSync('p2', SALT, ITERATIONS);
    expect(cache.stats.derivedSync).toBe(before + 1);
    expect(cache.size).toBe(3);
  });

  it('holds no password: entries are named by a keyed hash', () => {
    const cache = new ScramKeyCache(8);
    const password = 'a-password-that-must-not-be-kept';
    cache.deriveSync(password, SALT, ITERATIONS);
    const names = entryNames(cache);
    expect(names).toHaveLength(1);
    expect(names[0]).toMatch(/^[A-Za-z0-9+/]{43}=$/); // a SHA-256 HMAC, base64
    expect(names[0]).not.toContain(password);
    // Keyed: another cache names the same entry differently (nothing to precompute across processes).
    const other = new ScramKeyCache(8);
    other.deriveSync(password, SALT, ITERATIONS);
    expect(entryNames(other)[0]).not.toBe(names[0]);
  });

  it('remember: false derives without caching (a guess not yet known right), set() caches afterwards', () => {
    const cache = new ScramKeyCache(8);
    const keys = cache.deriveSync('guess', SALT, ITERATIONS, false);
    expect(cache.size).toBe(0);
    cache.set('guess', SALT, ITERATIONS, keys);
    expect(cache.get('guess', SALT, ITERATIONS)).toBe(keys);
  });

  it('derives in the threadpool, once for concurrent callers, and caches the result', async () => {
    const cache = new ScramKeyCache(8);
    const a = cache.derive('pencil', SALT, 4096);
    const b = cache.derive('pencil', SALT, 4096);
    expect(b).toBe(a); // one derivation shared
    expect(cache.get('pencil', SALT, 4096)).toBeUndefined(); // not there until it is done
    const keys = await a;
    expect(keys).toEqual(deriveScramKeys('pencil', SALT, 4096));
    expect(cache.stats).toEqual({ hits: 0, derivedSync: 0, derivedAsync: 1 });
    expect(await cache.derive('pencil', SALT, 4096)).toBe(keys);
    expect(cache.stats.hits).toBe(1);
  });

  it('a derivation started before clear() does not fill the cache after it', async () => {
    const cache = new ScramKeyCache(8);
    const running = cache.derive('pencil', SALT, ITERATIONS);
    cache.clear();
    await running;
    expect(cache.size).toBe(0);
  });

  it('a failed derivation is reported and not cached', async () => {
    const cache = new ScramKeyCache(8);
    await expect(cache.derive('pencil', SALT, 0)).rejects.toThrow();
    expect(cache.size).toBe(0);
  });
});

describe('pooled randomness', () => {
  it('every nonce is fresh, also across refills of the pool', () => {
    const nonces = new Set<string>();
    for (let i = 0; i < 1000; i++) nonces.add(randomNonce());
    expect(nonces.size).toBe(1000);
    for (const n of nonces) expect(n).toMatch(/^[A-Za-z0-9+/]{24}$/);
  });

  it('publicRandomBytes hands out copies that a refill of the pool leaves alone', () => {
    const a = publicRandomBytes(16);
    const copy = Buffer.from(a);
    for (let i = 0; i < 600; i++) randomNonce(); // more than the pool holds: it is refilled
    expect(a.equals(copy)).toBe(true);
    expect(publicRandomBytes(16).equals(a)).toBe(false);
    expect(() => publicRandomBytes(65)).toThrow(RangeError);
  });
});
