import { describe, expect, it } from 'vitest';

import { saslprep } from './saslprep.js';

describe('saslprep', () => {
  it.each([
    ['ASCII unchanged, even controls', 'pass\x07word', 'pass\x07word'],
    ['soft hyphen mapped to nothing', 'I\u00adX', 'IX'],
    ['non-ASCII space mapped to space', 'a\u00a0b', 'a b'],
    ['NFKC compatibility form', '\u2168', 'IX'],
    ['NFKC composition', 'e\u0301t\u00e9', '\u00e9t\u00e9'],
    ['ordinal indicator', 'x\u00aa', 'xa'],
  ])('%s', (_name, input, output) => {
    expect(saslprep(input)).toBe(output);
  });

  it.each([
    ['private use', 'a\ue000\u00e9'],
    ['non-ASCII control', 'a\u0085\u00e9'],
    ['only mapped-to-nothing characters', '\u00ad'],
    ['lone surrogate', 'a\ud800\u00e9'],
    ['RandALCat mixed with LCat', '\u05d0a\u05d1'],
    ['RandALCat not at both ends', '\u05d01'],
    ['noncharacter', '\u{1fffe}\u00e9'],
  ])('leaves a password with %s as is', (_name, input) => {
    expect(saslprep(input)).toBe(input);
  });

  it('normalises a right-to-left password that satisfies the bidi rule', () => {
    expect(saslprep('\u05d01\u05d1')).toBe('\u05d01\u05d1');
    expect(saslprep('\ufb2a')).toBe('\ufb2a'.normalize('NFKC'));
  });
});
