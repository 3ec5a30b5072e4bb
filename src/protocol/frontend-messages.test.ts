import { describe, expect, it } from 'vitest';
import { MalformedMessage } from './malformed.js';
import { readBindParameterCount, stringsAreUtf8 } from './frontend-messages.js';

/** One frontend message: type byte, length, body. */
function msg(code: string, ...parts: Array<string | number[] | Buffer>): Buffer {
  const body = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
  const head = Buffer.alloc(5);
  head[0] = code.charCodeAt(0);
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

const Z = [0];
const BAD = [0x61, 0xff, 0x62]; // 'a', never in UTF-8, 'b'
const TRUNCATED = [0x61, 0xe2, 0x82]; // the first two bytes of '€'
const check = (m: Buffer): boolean => stringsAreUtf8(m, 0, m.length);

describe('stringsAreUtf8', () => {
  it('accepts ASCII and multi-byte UTF-8 names and text', () => {
    expect(check(msg('P', 's1', Z, 'select 1', Z, [0, 0]))).toBe(true);
    expect(check(msg('P', 'é€', Z, "select '✓'", Z, [0, 1, 0, 0, 0, 0x17]))).toBe(true);
    expect(check(msg('Q', "select 'ok ✓'", Z))).toBe(true);
    expect(check(msg('D', 'S', 'naïve', Z))).toBe(true);
  });

  it('finds a bad byte in either string of a Parse, not in its binary parameter types', () => {
    expect(check(msg('P', BAD, Z, 'select 1', Z, [0, 0]))).toBe(false);
    expect(check(msg('P', 's', Z, TRUNCATED, Z, [0, 0]))).toBe(false);
    // An OID with bytes >= 0x80 is binary, not text.
    expect(check(msg('P', 's', Z, 'select $1', Z, [0, 1, 0xff, 0xff, 0xff, 0xfe]))).toBe(true);
  });

  it('checks the portal and statement names of a Bind, not its parameter values', () => {
    expect(check(msg('B', BAD, Z, 's', Z, [0, 0, 0, 0]))).toBe(false);
    expect(check(msg('B', '', Z, BAD, Z, [0, 0, 0, 0]))).toBe(false);
    expect(check(msg('B', '', Z, 's', Z, [0, 0, 0, 1, 0, 0, 0, 1, 0xff]))).toBe(true);
  });

  it('checks the name of a Describe or Close after its kind byte, and the text of a Query', () => {
    expect(check(msg('D', 'S', BAD, Z))).toBe(false);
    expect(check(msg('C', 'P', TRUNCATED, Z))).toBe(false);
    expect(check(msg('Q', 'select ', BAD, Z))).toBe(false);
  });

  it('leaves malformed messages to the decoders (counted as valid) and ignores other types', () => {
    expect(check(msg('P', BAD))).toBe(true); // no terminating zero: 08P01 from readParse, not 22021
    expect(check(msg('Q', 'select ', BAD))).toBe(true);
    expect(check(msg('D', 'S', BAD))).toBe(true);
    expect(check(msg('S'))).toBe(true);
    expect(check(msg('E', BAD, Z, [0, 0, 0, 0]))).toBe(true); // Execute: portal names are the server's to check
  });
});

describe('readBindParameterCount', () => {
  it('reads the counts unsigned, as PostgreSQL does: a format count of 0x8000 is past the end, not before the start (protocol fuzzer seed 1331)', () => {
    const bind = msg('B', 'p1', Z, Z, [0x80, 0x00], [0, 1], [0, 1], [0xff, 0xff, 0xff, 0xff], [0, 1, 0, 1]);
    expect(() => readBindParameterCount(bind, 0, bind.length)).toThrow(MalformedMessage);
    const ok = msg('B', '', Z, 's', Z, [0, 1], [0, 1], [0, 2], [0xff, 0xff, 0xff, 0xff], [0xff, 0xff, 0xff, 0xff], [0, 0]);
    expect(readBindParameterCount(ok, 0, ok.length)).toBe(2);
  });
});
