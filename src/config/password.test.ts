import { describe, expect, it } from 'vitest';
import { parsePassword, passwordKind } from './password.js';
import { InvalidValue } from './values.js';

const key32 = Buffer.alloc(32, 7).toString('base64');
const salt = Buffer.alloc(16, 3).toString('base64');
const SCRAM = `SCRAM-SHA-256$4096:${salt}$${key32}:${key32}`;
const MD5 = `md5${'0123456789abcdef'.repeat(2)}`;

function reasonOf(raw: unknown): string {
  try {
    parsePassword(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidValue);
    return (err as Error).message;
  }
  throw new Error('expected InvalidValue');
}

describe('passwordKind', () => {
  it('tells the three forms apart', () => {
    expect(passwordKind('secret')).toBe('plain');
    expect(passwordKind('md5')).toBe('plain');
    expect(passwordKind('md5 is weak')).toBe('plain');
    expect(passwordKind(MD5)).toBe('md5');
    expect(passwordKind(SCRAM)).toBe('scram-sha-256');
  });
});

describe('parsePassword', () => {
  it('accepts plaintext, md5 hashes (lower-cased) and SCRAM verifiers', () => {
    expect(parsePassword(' spaces kept ')).toBe(' spaces kept ');
    expect(parsePassword(MD5)).toBe(MD5);
    expect(parsePassword(MD5.toUpperCase().replace('MD5', 'md5'))).toBe(MD5);
    expect(parsePassword(SCRAM)).toBe(SCRAM);
  });

  it('rejects a truncated md5 hash without repeating it', () => {
    const reason = reasonOf(MD5.slice(0, 20));
    expect(reason).toBe('must be an md5 hash of the form "md5" followed by 32 hex digits (got 17 digits)');
  });

  it.each([
    ['no iterations', `SCRAM-SHA-256$:${salt}$${key32}:${key32}`],
    ['zero iterations', `SCRAM-SHA-256$0:${salt}$${key32}:${key32}`],
    ['short key', `SCRAM-SHA-256$4096:${salt}$${Buffer.alloc(16).toString('base64')}:${key32}`],
    ['bad base64', `SCRAM-SHA-256$4096:${salt}$${key32.slice(1)}:${key32}`],
    ['missing server key', `SCRAM-SHA-256$4096:${salt}$${key32}`],
    ['trailing junk', `${SCRAM}x`],
  ])('rejects a SCRAM verifier with %s, without repeating it', (_what, value) => {
    const reason = reasonOf(value);
    expect(reason).toMatch(/^must be a SCRAM verifier of the form SCRAM-SHA-256\$<iterations>/);
    expect(reason).not.toContain(key32);
  });

  it('rejects empty and non-string passwords', () => {
    expect(reasonOf('')).toBe('must not be empty');
    expect(reasonOf(1234)).toMatch(/^must be a string/);
    expect(reasonOf(1234)).not.toContain('1234');
  });
});
