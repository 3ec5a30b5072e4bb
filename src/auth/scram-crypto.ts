import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';

import { saslprep } from './saslprep.js';

/** Length in bytes of SHA-256 output, and so of every SCRAM-SHA-256 key and proof. */
export const SCRAM_KEY_LENGTH = 32;

/** PostgreSQL stores the iteration count in an int; pbkdf2 refuses anything larger too. */
export const MAX_SCRAM_ITERATIONS = 2 ** 31 - 1;

/** Raw nonce length, as libpq and the PostgreSQL server use. */
const NONCE_BYTES = 18;

export interface ScramKeys {
  readonly clientKey: Buffer;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

export function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

export function hmacSha256(key: Buffer, data: Buffer | string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

export function xorBuffers(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}

/** A fresh printable nonce: base64 of 18 random bytes (base64 never contains ','). */
export function randomNonce(): string {
  return randomBytes(NONCE_BYTES).toString('base64');
}

/**
 * SaltedPassword = Hi(SASLprep(password), salt, i), then the three keys (RFC 5802 §3).
 * Synchronous PBKDF2: 4096 iterations cost a few milliseconds of event-loop time.
 */
export function deriveScramKeys(password: string, salt: Buffer, iterations: number): ScramKeys {
  const salted = pbkdf2Sync(saslprep(password), salt, iterations, SCRAM_KEY_LENGTH, 'sha256');
  const clientKey = hmacSha256(salted, 'Client Key');
  return { clientKey, storedKey: sha256(clientKey), serverKey: hmacSha256(salted, 'Server Key') };
}
