import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { AuthFileError, parseAuthFile, readAuthFile } from './auth-file.js';
import { md5Secret } from './md5.js';
import { classifyStoredPassword } from './password.js';
import { formatScramVerifier, makeScramSecret } from './scram-secret.js';

const SCRAM = formatScramVerifier(makeScramSecret('pencil'));
const MD5 = md5Secret('bob', 'builder');

/** Parses and returns the error, failing the test if there is none. */
function parseError(text: string, source = 'userlist.txt'): AuthFileError {
  try {
    parseAuthFile(text, source);
  } catch (err) {
    expect(err).toBeInstanceOf(AuthFileError);
    return err as AuthFileError;
  }
  throw new Error('expected parseAuthFile to throw');
}

describe('parseAuthFile', () => {
  it('reads the three kinds of password', () => {
    const users = parseAuthFile(
      [`"alice" "plain secret"`, `"bob" "${MD5}"`, `"carol" "${SCRAM}"`].join('\n'),
      'userlist.txt',
    );
    expect([...users.keys()]).toEqual(['alice', 'bob', 'carol']);
    expect(classifyStoredPassword(users.get('alice') ?? '')).toEqual({ kind: 'plain', password: 'plain secret' });
    expect(classifyStoredPassword(users.get('bob') ?? '')).toEqual({ kind: 'md5', hash: MD5 });
    expect(classifyStoredPassword(users.get('carol') ?? '').kind).toBe('scram');
  });

  it('unescapes doubled double quotes in both fields', () => {
    const users = parseAuthFile('"we""ird" "say ""hi"" """\n"q" """"', 'f');
    expect(users.get('we"ird')).toBe('say "hi" "');
    expect(users.get('q')).toBe('"');
  });

  it('skips blank lines, ; and # comments, and leading whitespace', () => {
    const text = [
      '; PgBouncer-style comment',
      '',
      '   ',
      '# shell-style comment',
      '\t  ; indented comment "x" "y"',
      '  \t"alice"\t \t"a"',
    ].join('\n');
    expect([...parseAuthFile(text, 'f')]).toEqual([['alice', 'a']]);
  });

  it('handles CRLF line endings, a UTF-8 BOM and a missing final newline', () => {
    const users = parseAuthFile('\ufeff; c\r\n"alice" "a"\r\n\r\n"bob" "b"\r\n"carol" "c"', 'f');
    expect([...users]).toEqual([['alice', 'a'], ['bob', 'b'], ['carol', 'c']]);
  });

  it('ignores what follows the password, as PgBouncer does (old pg_auth columns)', () => {
    const users = parseAuthFile('"alice" "a" ""\n"bob" "b"   trailing ; text "with" quotes', 'f');
    expect([...users]).toEqual([['alice', 'a'], ['bob', 'b']]);
  });

  it('keeps non-ASCII text and empty passwords, and lets a later line win', () => {
    const users = parseAuthFile('"jürgen" "pässwörd"\n"empty" ""\n"dup" "first"\n"dup" "second"', 'f');
    expect(users.get('jürgen')).toBe('pässwörd');
    expect(users.get('empty')).toBe('');
    expect(users.get('dup')).toBe('second');
  });

  it('returns an empty map for an empty or comment-only file', () => {
    expect(parseAuthFile('', 'f').size).toBe(0);
    expect(parseAuthFile('; nothing\n\n', 'f').size).toBe(0);
  });

  const secret = 'hunter2-SECRET';
  const errors: Array<[string, string, number, RegExp]> = [
    ['unquoted username', `alice "${secret}"`, 1, /expected a double-quoted username at column 1/],
    ['unterminated username', `"alice ${secret}`, 1, /username has no closing double quote/],
    ['username only', '"alice"', 1, /missing password/],
    ['no whitespace between the fields', `"alice"x"${secret}"`, 1, /expected whitespace after the username/],
    ['unquoted password', `"alice" ${secret}`, 1, /expected a double-quoted password at column 9/],
    ['unterminated password', `"alice" "${secret}`, 1, /password has no closing double quote/],
    ['password spanning lines', `"alice" "${secret}\n${secret}"`, 1, /password has no closing double quote/],
    ['unescaped quote in the password', `"alice" "${secret}"${secret}"`, 1, /unexpected text right after the password/],
    ['empty username', `"" "${secret}"`, 1, /username is empty/],
    ['NUL in the password', `"alice" "${secret}\0"`, 1, /password contains a NUL/],
    ['truncated SCRAM verifier', `"alice" "${SCRAM.slice(0, -10)}"`, 1, /starts like a SCRAM-SHA-256 verifier/],
    ['too long username', `"${'u'.repeat(128)}" "x"`, 1, /username is longer than 127 bytes/],
    ['too long password', `"alice" "${'p'.repeat(2048)}"`, 1, /password is longer than 2047 bytes/],
  ];
  it.each(errors)('rejects %s with the line number and no secret', (_name, line, lineNo, reason) => {
    const text = `; header\r\n\r\n"ok" "fine"\r\n${line}\r\n"later" "x"\r\n`;
    const err = parseError(text, '/etc/pgmux/userlist.txt');
    expect(err.message).toMatch(new RegExp(`^/etc/pgmux/userlist\\.txt:${lineNo + 3}: `));
    expect(err.message).toMatch(reason);
    expect(err.line).toBe(lineNo + 3);
    expect(err.source).toBe('/etc/pgmux/userlist.txt');
    expect(err.code).toBe('AUTH_FILE_INVALID');
    expect(err.message).not.toContain(secret);
    expect(err.message).not.toContain('pppp');
    expect(err.message).not.toContain(SCRAM.slice(20, 40));
  });
});

describe('readAuthFile', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgmux-auth-file-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads a file from disk', () => {
    const file = path.join(dir, 'userlist.txt');
    fs.writeFileSync(file, `;; users\n"alice" "${SCRAM}"\n"bob" "${MD5}"\n`);
    expect(readAuthFile(file)).toEqual(new Map([['alice', SCRAM], ['bob', MD5]]));
  });

  it('names the file and line of a malformed entry', () => {
    const file = path.join(dir, 'broken.txt');
    fs.writeFileSync(file, '"alice" "a"\n"bob" b-secret\n');
    expect(() => readAuthFile(file)).toThrow(`${file}:2: expected a double-quoted password at column 7`);
  });

  it('refuses invalid UTF-8, naming the line', () => {
    const file = path.join(dir, 'latin1.txt');
    fs.writeFileSync(file, Buffer.concat([Buffer.from('"alice" "a"\n"bob" "p'), Buffer.from([0xe4]), Buffer.from('ss"\n')]));
    expect(() => readAuthFile(file)).toThrow(`${file}:2: not valid UTF-8`);
  });

  it('passes file system errors through', () => {
    expect(() => readAuthFile(path.join(dir, 'missing.txt'))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });
});
