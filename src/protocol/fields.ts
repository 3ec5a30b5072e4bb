import { MalformedMessage } from './malformed.js';

/** Small decoders for the few message bodies pgmux must read. `start` is the message's first byte (its type). */

/** Reads the NUL-terminated string starting at `pos`; returns it and the position after the NUL. */
export function readCString(buf: Buffer, pos: number, end: number): [string, number] {
  const nul = buf.indexOf(0, pos);
  if (pos >= end || nul < 0 || nul >= end) throw new MalformedMessage('unterminated string in message');
  return [buf.toString('utf8', pos, nul), nul + 1];
}

/** Decodes ErrorResponse/NoticeResponse fields into a map keyed by the field letter ('C', 'M', 'S', ...). */
export function readErrorFields(buf: Buffer, start: number, end: number): Map<string, string> {
  const fields = new Map<string, string>();
  let pos = start + 5;
  while (pos < end && buf[pos] !== 0) {
    const type = String.fromCharCode(buf[pos]);
    const [value, next] = readCString(buf, pos + 1, end);
    fields.set(type, value);
    pos = next;
  }
  return fields;
}

/** DataRow values as text (null for SQL NULL). Only for pgmux's own small queries. */
export function readDataRow(buf: Buffer, start: number): Array<string | null> {
  const count = buf.readInt16BE(start + 5); // readInt*BE throw RangeError past the buffer: caught by the connection's boundary
  const values: Array<string | null> = [];
  let pos = start + 7;
  for (let i = 0; i < count; i++) {
    const length = buf.readInt32BE(pos);
    pos += 4;
    if (length < 0) {
      values.push(null);
      continue;
    }
    values.push(buf.toString('utf8', pos, pos + length));
    pos += length;
  }
  return values;
}

/** ParameterStatus body: name and value. */
export function readParameterStatus(buf: Buffer, start: number, end: number): [string, string] {
  const [name, next] = readCString(buf, start + 5, end);
  const [value] = readCString(buf, next, end);
  return [name, value];
}
