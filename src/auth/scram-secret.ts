import { randomBytes } from 'node:crypto';

import { deriveScramKeys, MAX_SCRAM_ITERATIONS, SCRAM_KEY_LENGTH } from './scram-crypto.js';
import { isBase64, parseIterationCount } from './scram-message.js';

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';

const DEFAULT_ITERATIONS = 4096;
const DEFAULT_SALT_BYTES = 16;

/** What server-first-message tells a client: enough to start an exchange while the keys are derived. */
export interface ScramSalt {
  readonly iterations: number;
  readonly salt: Buffer;
}

/** What a SCRAM server needs to verify a client; never the password itself. */
export interface ScramSecret extends ScramSalt {
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

const VERIFIER = /^SCRAM-SHA-256\$([^:$]+):([^:$]+)\$([^:$]+):([^:$]+)$/;
function decode(value: string): Buffer | null {
  return isBase64(value) ? Buffer.from(value, 'base64') : null;
}

/**
 * Parses PostgreSQL's stored form
 * `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64 fields).
 * Returns null for anything else, so callers can fall back to other password kinds.
 */
export function parseScramVerifier(s: string): ScramSecret | null {
  const match = VERIFIER.exec(s);
  if (match === null) return null;
  const iterations = parseIterationCount(match[1]);
  const salt = decode(match[2]);
  const storedKey = decode(match[3]);
  const serverKey = decode(match[4]);
  if (iterations === null || salt === null || salt.length === 0) return null;
  if (storedKey?.length !== SCRAM_KEY_LENGTH || serverKey?.length !== SCRAM_KEY_LENGTH) return null;
  return { iterations, salt, storedKey, serverKey };
}

export function formatScramVerifier(secret: ScramSecret): string {
  const b64 = (b: Buffer): string => b.toString('base64');
  const keys = `${b64(secret.storedKey)}:${b64(secret.serverKey)}`;
  return `${SCRAM_SHA_256}$${secret.iterations}:${b64(secret.salt)}$${keys}`;
}

/**
 * Derives a secret from a plaintext password (SASLprep applied, see saslprep.ts).
 * Costs one synchronous PBKDF2 run; logins use a ScramKeyCache (scram-key-cache.ts) instead.
 */
export function makeScramSecret(
  password: string,
  opts: { iterations?: number; salt?: Buffer } = {},
): ScramSecret {
  const iterations = opts.iterations ?? DEFAULT_ITERATIONS;
  const salt = opts.salt ?? randomBytes(DEFAULT_SALT_BYTES);
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_SCRAM_ITERATIONS) {
    throw new RangeError(`SCRAM iteration count must be an integer in 1..${MAX_SCRAM_ITERATIONS}`);
  }
  if (salt.length === 0) throw new RangeError('SCRAM salt must not be empty');
  const { storedKey, serverKey } = deriveScramKeys(password, salt, iterations);
  return { iterations, salt, storedKey, serverKey };
}
