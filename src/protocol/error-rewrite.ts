/**
 * Errors the server raised for text or names pgmux changed, put in the client's terms.
 *
 * Error positions in a query pgmux lengthened:
 * An ErrorResponse's `P` field is a 1-based character position in the query text the server received. When pgmux
 * inserts statements of its own into a client's Query (RESET followed by the client's startup values), a
 * position after an insertion counts pgmux's text too; the client must get the position in the text it sent.
 */
import { encodeErrorFields } from './backend-messages.js';
import { BackendCode } from './codes.js';
import { readErrorFields } from './fields.js';

/** Text pgmux inserted: it begins at character `at` (1-based) of the text sent and is `length` characters long. */
export interface Insertion {
  readonly at: number;
  readonly length: number;
}

/** Characters (code points, as PostgreSQL counts them in UTF-8) in `text`. */
export function characters(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // A high surrogate and its low surrogate are one character.
    if (c < 0xd800 || c > 0xdbff || i + 1 === text.length) n++;
  }
  return n;
}

/** The position in the client's text of position `sent` in the text sent (insertions in order). */
export function clientPosition(sent: number, insertions: readonly Insertion[]): number {
  let shift = 0;
  for (const ins of insertions) {
    if (sent < ins.at) break;
    // Inside pgmux's own text: the place it was inserted at.
    if (sent < ins.at + ins.length) return ins.at - shift - 1;
    shift += ins.length;
  }
  return sent - shift;
}

/**
 * The ErrorResponse at buf[start, end) with its `P` counted in the client's text, or null when it has no `P`
 * after an insertion (then it is forwarded as it is).
 */
export function errorInClientText(buf: Buffer, start: number, end: number, insertions: readonly Insertion[]): Buffer | null {
  if (insertions.length === 0) return null;
  const fields = readErrorFields(buf, start, end);
  const p = fields.get('P');
  if (p === undefined) return null;
  const sent = Number(p);
  const position = clientPosition(sent, insertions);
  if (!Number.isInteger(sent) || position === sent) return null;
  fields.set('P', String(position));
  return encodeErrorFields(BackendCode.ErrorResponse, fields);
}

/**
 * The ErrorResponse at buf[start, end) with the statement name pgmux used on the server (`"serverName"`, an
 * alias for a name another client's statement holds there) replaced by the client's name, or null when the
 * message does not name it.
 */
export function errorNamingClientStatement(buf: Buffer, start: number, end: number, serverName: string, clientName: string): Buffer | null {
  const fields = readErrorFields(buf, start, end);
  const quoted = `"${serverName}"`;
  let changed = false;
  for (const key of ['M', 'D', 'H']) {
    const value = fields.get(key);
    if (value === undefined || !value.includes(quoted)) continue;
    fields.set(key, value.split(quoted).join(`"${clientName}"`));
    changed = true;
  }
  return changed ? encodeErrorFields(BackendCode.ErrorResponse, fields) : null;
}
