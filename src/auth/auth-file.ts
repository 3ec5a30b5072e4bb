/**
 * PgBouncer's `auth_file` (userlist.txt): one `"username" "password"` pair per line, where the
 * password is plaintext, an md5 secret or a SCRAM verifier (classifyStoredPassword() tells
 * which). Inside a field a double quote is written as two. Read like PgBouncer does:
 *
 * - leading whitespace is skipped; blank lines and lines starting with `;` are ignored, and so,
 *   unlike PgBouncer (which stops reading at them), are lines starting with `#`;
 * - anything after the password's closing quote and some whitespace is ignored (the extra
 *   columns of the old pg_auth file this format comes from);
 * - a user listed twice gets the last password, as in PgBouncer;
 * - the length limits are PgBouncer's (127 bytes of username, 2047 of password).
 *
 * Stricter than PgBouncer, which logs "broken auth file" and silently keeps the users read so
 * far: a malformed line is an error naming the file and line. The fields must be separated by
 * whitespace only and close on their line, and a password must not run straight into more text
 * (`"pa"ss"`: an unescaped quote). A password that starts like a SCRAM verifier but does not
 * parse as one is refused rather than taken as plaintext: it is a truncated copy, not a password.
 * Error messages never contain the password text.
 */
import { readFileSync } from 'node:fs';

import { parseScramVerifier, SCRAM_SHA_256 } from './scram-secret.js';

/** PgBouncer's MAX_USERNAME - 1 and MAX_PASSWORD - 1 (UTF-8 bytes). */
export const MAX_AUTH_FILE_USERNAME_BYTES = 127;
export const MAX_AUTH_FILE_PASSWORD_BYTES = 2047;

/** A malformed auth_file: the message is `<source>:<line>: <reason>`, without any secret. */
export class AuthFileError extends Error {
  override readonly name = 'AuthFileError';
  readonly code = 'AUTH_FILE_INVALID';

  constructor(
    readonly source: string,
    readonly line: number,
    readonly reason: string,
  ) {
    super(`${source}:${line}: ${reason}`);
  }
}

const WHITESPACE = new Set([' ', '\t', '\r', '\v', '\f']);
const BOM = '\ufeff';

/**
 * Parses auth_file text into username -> stored password. `source` (usually the path) only
 * names the file in errors. Throws AuthFileError on the first malformed line.
 */
export function parseAuthFile(text: string, source: string): Map<string, string> {
  const users = new Map<string, string>();
  const lines = (text.startsWith(BOM) ? text.slice(1) : text).split('\n');
  for (let index = 0; index < lines.length; index++) {
    const entry = parseLine(lines[index], (reason) => new AuthFileError(source, index + 1, reason));
    if (entry !== null) users.set(entry[0], entry[1]);
  }
  return users;
}

/** Reads and parses an auth_file synchronously. File system errors are thrown as they are. */
export function readAuthFile(path: string): Map<string, string> {
  const bytes = readFileSync(path);
  return parseAuthFile(decodeUtf8(bytes, path), path);
}

type Fail = (reason: string) => AuthFileError;

/** One line: a [username, password] pair, or null for a blank or comment line. */
function parseLine(line: string, fail: Fail): [string, string] | null {
  let pos = skipWhitespace(line, 0);
  if (pos === line.length || line[pos] === ';' || line[pos] === '#') return null;
  if (line[pos] !== '"') throw fail(`expected a double-quoted username at column ${pos + 1}`);

  const user = readQuoted(line, pos, 'username', fail);
  if (user.value === '') throw fail('username is empty');
  if (Buffer.byteLength(user.value, 'utf8') > MAX_AUTH_FILE_USERNAME_BYTES) {
    throw fail(`username is longer than ${MAX_AUTH_FILE_USERNAME_BYTES} bytes`);
  }

  pos = skipWhitespace(line, user.end);
  if (pos === line.length) throw fail('missing password after the username');
  if (pos === user.end) throw fail(`expected whitespace after the username at column ${pos + 1}`);
  if (line[pos] !== '"') throw fail(`expected a double-quoted password at column ${pos + 1}`);

  const password = readQuoted(line, pos, 'password', fail);
  if (password.end < line.length && !WHITESPACE.has(line[password.end])) {
    throw fail(
      `unexpected text right after the password's closing quote at column ${password.end + 1} ` +
        '(write a double quote inside a field as two double quotes)',
    );
  }
  if (Buffer.byteLength(password.value, 'utf8') > MAX_AUTH_FILE_PASSWORD_BYTES) {
    throw fail(`password is longer than ${MAX_AUTH_FILE_PASSWORD_BYTES} bytes`);
  }
  if (password.value.startsWith(`${SCRAM_SHA_256}$`) && parseScramVerifier(password.value) === null) {
    throw fail(`password starts like a ${SCRAM_SHA_256} verifier but is not a valid one`);
  }
  return [user.value, password.value];
}

/** Reads the quoted field whose opening quote is at `start`; `end` is just past the closing quote. */
function readQuoted(line: string, start: number, what: string, fail: Fail): { value: string; end: number } {
  let value = '';
  let chunk = start + 1;
  for (let pos = start + 1; pos < line.length; pos++) {
    const char = line[pos];
    if (char === '\0') throw fail(`${what} contains a NUL character`);
    if (char !== '"') continue;
    value += line.slice(chunk, pos);
    if (line[pos + 1] !== '"') return { value, end: pos + 1 };
    value += '"';
    pos++;
    chunk = pos + 1;
  }
  throw fail(`${what} has no closing double quote on this line`);
}

function skipWhitespace(line: string, pos: number): number {
  while (pos < line.length && WHITESPACE.has(line[pos])) pos++;
  return pos;
}

/** Strict UTF-8 decoding; the error names the first line holding an invalid sequence. */
function decodeUtf8(bytes: Buffer, source: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    let lineStart = 0;
    for (let line = 1; ; line++) {
      const newline = bytes.indexOf(0x0a, lineStart);
      const lineEnd = newline < 0 ? bytes.length : newline;
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(lineStart, lineEnd));
      } catch {
        throw new AuthFileError(source, line, 'not valid UTF-8');
      }
      if (newline < 0) throw new AuthFileError(source, line, 'not valid UTF-8');
      lineStart = newline + 1;
    }
  }
}
