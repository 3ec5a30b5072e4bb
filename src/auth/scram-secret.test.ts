import { describe, expect, it } from 'vitest';

import { formatScramVerifier, makeScramSecret, parseScramVerifier } from './scram-secret.js';

// Derived independently (Python hashlib) from RFC 7677's salt and "pencil".
const PENCIL =
  'SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=';

describe('SCRAM verifiers', () => {
  it('derives the known verifier from a password and salt', () => {
    const salt = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
    expect(formatScramVerifier(makeScramSecret('pencil', { salt }))).toBe(PENCIL);
  });

  it('parses and formats back to the same string', () => {
    const secret = parseScramVerifier(PENCIL);
    expect(secret?.iterations).toBe(4096);
    expect(secret?.salt.length).toBe(16);
    expect(secret && formatScramVerifier(secret)).toBe(PENCIL);
  });

  it('defaults to 4096 iterations and a fresh 16-byte salt', () => {
    const a = makeScramSecret('x');
    const b = makeScramSecret('x');
    expect(a.iterations).toBe(4096);
    expect(a.salt.length).toBe(16);
    expect(a.salt.equals(b.salt)).toBe(false);
  });

  it.each([
    ['other mechanism', PENCIL.replace('SCRAM-SHA-256', 'SCRAM-SHA-1')],
    ['zero iterations', PENCIL.replace('$4096:', '$0:')],
    ['signed iterations', PENCIL.replace('$4096:', '$+4096:')],
    ['bad salt base64', PENCIL.replace('W22ZaJ0SNY7soEsUEjb6gQ==', 'W22Z*J0S')],
    ['short stored key', PENCIL.replace('WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=', 'AAAA')],
    ['missing server key', PENCIL.slice(0, PENCIL.lastIndexOf(':'))],
    ['trailing junk', `${PENCIL}$x`],
    ['md5 secret', 'md54d45974e13472b5a0be3533de4666414'],
    ['empty', ''],
  ])('rejects %s', (_name, s) => {
    expect(parseScramVerifier(s)).toBeNull();
  });

  it('refuses unusable parameters', () => {
    expect(() => makeScramSecret('x', { iterations: 0 })).toThrow(RangeError);
    expect(() => makeScramSecret('x', { salt: Buffer.alloc(0) })).toThrow(RangeError);
  });
});
