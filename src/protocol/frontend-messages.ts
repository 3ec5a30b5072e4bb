/**
 * Reading and writing the few frontend messages pgmux must look inside or produce: statement
 * names in Parse/Bind/Describe/Close, and the messages it injects towards servers. `start` is
 * the position of the message's type byte in `buf`; `end` is one past its last byte.
 */
import { isUtf8 } from 'node:buffer';
import { FrontendCode } from './codes.js';
import { MalformedMessage } from './malformed.js';

/** A NUL-terminated string at `pos`: its text and the position after the NUL. */
function cstring(buf: Buffer, pos: number, end: number): [string, number] {
  const nul = buf.indexOf(0, pos);
  if (pos >= end || nul < 0 || nul >= end) throw new MalformedMessage(`unterminated string in '${String.fromCharCode(buf[0])}' message`);
  return [buf.toString('utf8', pos, nul), nul + 1];
}

export interface ParseInfo {
  name: string;
  /** Query text. */
  query: string;
  /** The bytes after the name (query, parameter count and types): enough to rebuild the Parse under another name. */
  tail: Buffer;
}

/**
 * Decodes a Parse message; `tail` is a copy (it outlives the received chunk), in memory of its own: a client keeps its
 * statements' tails as long as it stays connected, and a small copy from Buffer's shared pool would keep the whole
 * 8 KiB slab it was cut from alive with it (no slower to make: Buffer.from of a view is not a cheap path either).
 */
export function readParse(buf: Buffer, start: number, end: number): ParseInfo {
  const [name, afterName] = cstring(buf, start + 5, end);
  const [query, afterQuery] = cstring(buf, afterName, end);
  // Int16 parameter count, then that many Int32 type OIDs: the tail is re-sent as is, so it must be whole.
  if (afterQuery + 2 > end || afterQuery + 2 + 4 * buf.readInt16BE(afterQuery) !== end) throw new MalformedMessage('invalid parameter type list in Parse message');
  const tail = Buffer.allocUnsafeSlow(end - afterName);
  buf.copy(tail, 0, afterName, end);
  return { name, query, tail };
}

/** The portal name of a Bind or Execute message (its first field). */
export function readPortalName(buf: Buffer, start: number, end: number): string {
  return cstring(buf, start + 5, end)[0];
}

/** The statement name of a Bind message (after the portal name). */
export function readBindStatement(buf: Buffer, start: number, end: number): string {
  const [, afterPortal] = cstring(buf, start + 5, end);
  return cstring(buf, afterPortal, end)[0];
}

/** The number of parameter values a Bind message supplies (after the portal and statement names and the format codes). */
export function readBindParameterCount(buf: Buffer, start: number, end: number): number {
  const [, afterPortal] = cstring(buf, start + 5, end);
  const [, afterStatement] = cstring(buf, afterPortal, end);
  if (afterStatement + 2 > end) throw new MalformedMessage('invalid format code count in Bind message');
  // Counts are unsigned, as PostgreSQL reads them (pq_getmsgint): 0x8000 formats is 32768, not -32768.
  const values = afterStatement + 2 + 2 * buf.readUInt16BE(afterStatement);
  if (values + 2 > end) throw new MalformedMessage('invalid parameter count in Bind message');
  return buf.readUInt16BE(values);
}

/** Describe/Close: the kind byte ('S' statement or 'P' portal) and the name. */
export function readTarget(buf: Buffer, start: number, end: number): { kind: number; name: string } {
  if (start + 6 > end || (buf[start + 5] !== STATEMENT && buf[start + 5] !== PORTAL)) throw new MalformedMessage(`invalid target type in '${String.fromCharCode(buf[start])}' message`);
  const [name, after] = cstring(buf, start + 6, end);
  // Bytes after the name make the message invalid (PostgreSQL: "invalid message format"); pgmux may answer a Close
  // itself, so it must not take one PostgreSQL would refuse.
  if (after !== end) throw new MalformedMessage(`invalid '${String.fromCharCode(buf[start])}' message: bytes after the name`);
  return { kind: buf[start + 5], name };
}

/** Whether bytes from..to are valid UTF-8 (names are mostly ASCII: looked at byte by byte, no view made). */
function validUtf8(buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (buf[i] >= 0x80) return isUtf8(buf.subarray(from, to));
  return true;
}

/**
 * Whether the strings PostgreSQL reads from this Parse, Bind, Describe, Close or Query (names, query text) are
 * valid UTF-8. PostgreSQL checks them as it reads the message (pq_getmsgstring, for a UTF8 client encoding) and
 * refuses one that is not with 22021 before acting on it: an unnamed Parse or a Query then leaves the unnamed
 * statement as it was, a Parse prepares nothing. pgmux must then not act on the message either (decoded, such
 * names turn into U+FFFD and can match another name): it goes to the server as it is, for the server's answer.
 * A malformed message counts as valid here: the decoders refuse it with 08P01.
 */
export function stringsAreUtf8(buf: Buffer, start: number, end: number): boolean {
  let pos = start + 5;
  let strings: number;
  switch (buf[start]) {
    case FrontendCode.Query:
      return end <= pos || buf[end - 1] !== 0 || isUtf8(buf.subarray(pos, end - 1));
    case FrontendCode.Parse:
    case FrontendCode.Bind:
      strings = 2;
      break;
    case FrontendCode.Describe:
    case FrontendCode.Close:
      pos++;
      strings = 1;
      break;
    default:
      return true;
  }
  for (; strings > 0; strings--) {
    const nul = pos < end ? buf.indexOf(0, pos) : -1;
    if (nul < 0 || nul >= end) return true;
    if (!validUtf8(buf, pos, nul)) return false;
    pos = nul + 1;
  }
  return true;
}

/**
 * The statement a Parse, Bind, Describe or Close names ('' for the unnamed one), decoded as the router decodes it;
 * null for a portal, another message type, or a malformed message (the decoders refuse that one).
 */
export function statementNameOf(buf: Buffer, start: number, end: number): string | null {
  let pos = start + 5;
  switch (buf[start]) {
    case FrontendCode.Parse:
      break;
    case FrontendCode.Bind: {
      const portalEnd = buf.indexOf(0, pos);
      if (portalEnd < 0 || portalEnd >= end) return null;
      pos = portalEnd + 1;
      break;
    }
    case FrontendCode.Describe:
    case FrontendCode.Close:
      if (buf[pos] !== STATEMENT) return null;
      pos++;
      break;
    default:
      return null;
  }
  const nul = pos < end ? buf.indexOf(0, pos) : -1;
  if (nul < 0 || nul >= end) return null;
  return nul === pos ? '' : buf.toString('utf8', pos, nul);
}

/**
 * Throws MalformedMessage where routing the message would (the decoders the statement router uses), so that a
 * message held back to be routed later is refused now, as the client's (08P01), not later inside a server's handler.
 */
export function checkRoutable(buf: Buffer, start: number, end: number): void {
  switch (buf[start]) {
    case FrontendCode.Parse:
      readParse(buf, start, end);
      break;
    case FrontendCode.Bind:
      readBindStatement(buf, start, end);
      readBindParameterCount(buf, start, end);
      break;
    case FrontendCode.Describe:
    case FrontendCode.Close:
      readTarget(buf, start, end);
      break;
    case FrontendCode.Query:
      readQuery(buf, start, end);
      break;
    default:
      break;
  }
}

export const STATEMENT = 0x53; // 'S'
export const PORTAL = 0x50; // 'P'

function header(code: number, bodyLength: number): Buffer {
  const buf = Buffer.allocUnsafe(5 + bodyLength);
  buf[0] = code;
  buf.writeInt32BE(4 + bodyLength, 1);
  return buf;
}

/** Parse with `name` and the given tail (query, parameter types). */
export function buildParse(name: string, tail: Buffer): Buffer {
  const n = Buffer.byteLength(name);
  const buf = header(FrontendCode.Parse, n + 1 + tail.length);
  buf.write(name, 5);
  buf[5 + n] = 0;
  tail.copy(buf, 6 + n);
  return buf;
}

/** Describe or Close of a statement/portal. */
export function buildTarget(code: FrontendCode.Describe | FrontendCode.Close, kind: number, name: string): Buffer {
  const n = Buffer.byteLength(name);
  const buf = header(code, n + 2);
  buf[5] = kind;
  buf.write(name, 6);
  buf[6 + n] = 0;
  return buf;
}

/** The same Bind with another statement name (a copy; only when the server knows the statement under another name). */
export function renameBind(buf: Buffer, start: number, end: number, statement: string): Buffer {
  const portalEnd = buf.indexOf(0, start + 5) + 1;
  const oldEnd = buf.indexOf(0, portalEnd) + 1;
  const n = Buffer.byteLength(statement);
  const out = header(FrontendCode.Bind, portalEnd - (start + 5) + n + 1 + (end - oldEnd));
  let pos = buf.copy(out, 5, start + 5, portalEnd) + 5;
  pos += out.write(statement, pos);
  out[pos++] = 0;
  buf.copy(out, pos, oldEnd, end);
  return out;
}

/** A simple Query message. */
export function buildQuery(sql: string): Buffer {
  const n = Buffer.byteLength(sql);
  const buf = header(FrontendCode.Query, n + 1);
  buf.write(sql, 5);
  buf[5 + n] = 0;
  return buf;
}

/** Query text of a simple Query message. */
export function readQuery(buf: Buffer, start: number, end: number): string {
  if (end <= start + 5 || buf[end - 1] !== 0) throw new MalformedMessage('Query message text is not terminated by a zero byte');
  // The text ends at the NUL before `end`; decoding as latin1 would be faster but names may be UTF-8.
  return buf.toString('utf8', start + 5, end - 1);
}
