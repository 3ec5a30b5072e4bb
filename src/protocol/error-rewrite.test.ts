import { describe, expect, it } from 'vitest';
import { encodeErrorFields } from './backend-messages.js';
import { characters, clientPosition, errorInClientText } from './error-rewrite.js';
import { readErrorFields } from './fields.js';

const E = 0x45;
const err = (code: string, position?: number): Buffer =>
  encodeErrorFields(E, new Map([['S', 'ERROR'], ['C', code], ['M', 'it failed'], ...(position === undefined ? [] : [['P', String(position)] as [string, string]])]));

describe('error positions in a query pgmux lengthened', () => {
  it('counts characters as PostgreSQL does (a surrogate pair is one)', () => {
    expect(characters('abc')).toBe(3);
    expect(characters('é€😀')).toBe(3);
    expect(characters('')).toBe(0);
  });

  it('maps positions before, inside and after insertions', () => {
    // client text "ab;cd;ef", pgmux inserted "XXX" after "ab" and "YY" after "cd": "abXXX;cdYY;ef"
    const insertions = [
      { at: 3, length: 3 },
      { at: 9, length: 2 },
    ];
    const sent = 'abXXX;cdYY;ef';
    const client = 'ab;cd;ef';
    for (const ch of ['a', 'b', ';', 'c', 'd', 'f']) {
      const p = sent.lastIndexOf(ch) + 1;
      expect(client[clientPosition(p, insertions) - 1], ch).toBe(ch);
    }
    expect(clientPosition(4, insertions)).toBe(2); // inside pgmux's text: where it was inserted
    expect(clientPosition(9, insertions)).toBe(5);
  });

  it('rewrites only an ErrorResponse whose P moves', () => {
    const insertions = [{ at: 10, length: 20 }];
    const after = err('42601', 41);
    const out = errorInClientText(after, 0, after.length, insertions);
    expect(out).not.toBeNull();
    expect(readErrorFields(out as Buffer, 0, (out as Buffer).length).get('P')).toBe('21');
    const before = err('42601', 5);
    expect(errorInClientText(before, 0, before.length, insertions)).toBeNull();
    const none = err('42P01');
    expect(errorInClientText(none, 0, none.length, insertions)).toBeNull();
  });
});
