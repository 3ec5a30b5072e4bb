/**
 * Reading and writing the few frontend messages pgmux must look inside or produce: statement
 * names in Parse/Bind/Describe/Close, and the messages it injects towards servers. `start` is
 * the position of the message's type byte in `buf`; `end` is one past its last byte.
 */
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

/** Decodes a Parse message; `tail` is a copy (it outlives the received chunk). */
export function readParse(buf: Buffer, start: number, end: number): ParseInfo {
  const [name, afterName] = cstring(buf, start + 5, end);
  const [query, afterQuery] = cstring(buf, afterName, end);
  // Int16 parameter count, then that many Int32 type OIDs: the tail is re-sent as is, so it must be whole.
  if (afterQuery + 2 > end || afterQuery + 2 + 4 * buf.readInt16BE(afterQuery) !== end) throw new MalformedMessage('invalid parameter type list in Parse message');
  return { name, query, tail: Buffer.from(buf.subarray(afterName, end)) };
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
  const values = afterStatement + 2 + 2 * buf.readInt16BE(afterStatement);
  if (values + 2 > end) throw new MalformedMessage('invalid parameter count in Bind message');
  return buf.readInt16BE(values);
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
