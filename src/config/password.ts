// The three forms a user's password may take in the config, told apart the way PostgreSQL and PgBouncer do.
import { InvalidValue } from './values.js';

export type PasswordKind = 'plain' | 'md5' | 'scram-sha-256';

const B64 = '[A-Za-z0-9+/]+={0,2}';
const SCRAM_VERIFIER = new RegExp(`^SCRAM-SHA-256\\$(\\d+):(${B64})\\$(${B64}):(${B64})$`);
const SCRAM_SHAPE =
  'SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> (base64, keys of 32 bytes, as in pg_authid)';

/** Which form a (validated) password is in. */
export function passwordKind(password: string): PasswordKind {
  if (password.startsWith('SCRAM-SHA-256$')) return 'scram-sha-256';
  // "md5" followed only by hex digits is taken as an attempt at a hash, so a truncated copy is caught rather
  // than silently used as a plaintext password.
  if (/^md5[0-9a-fA-F]+$/.test(password)) return 'md5';
  return 'plain';
}

function isBase64(text: string, bytes?: number): boolean {
  if (text.length % 4 !== 0) return false;
  return bytes === undefined || Buffer.from(text, 'base64').length === bytes;
}

/**
 * Validates the shape of a password and returns it (md5 hashes lower-cased, as PostgreSQL writes them).
 * Reasons never repeat the value.
 */
export function parsePassword(raw: unknown): string {
  if (typeof raw !== 'string') {
    throw new InvalidValue(`must be a string (a plaintext password, an md5 hash or a SCRAM verifier)`);
  }
  if (raw === '') throw new InvalidValue('must not be empty');
  switch (passwordKind(raw)) {
    case 'md5':
      if (raw.length !== 35) {
        throw new InvalidValue(`must be an md5 hash of the form "md5" followed by 32 hex digits (got ${raw.length - 3} digits)`);
      }
      return raw.toLowerCase();
    case 'scram-sha-256': {
      const m = SCRAM_VERIFIER.exec(raw);
      const valid =
        m !== null && Number(m[1]) >= 1 && isBase64(m[2]) && isBase64(m[3], 32) && isBase64(m[4], 32);
      if (!valid) throw new InvalidValue(`must be a SCRAM verifier of the form ${SCRAM_SHAPE} (got a malformed one)`);
      return raw;
    }
    case 'plain':
      return raw;
  }
}
