import { MAX_SCRAM_ITERATIONS } from './scram-crypto.js';
import { ScramProtocolError } from './scram-error.js';

/**
 * Parsing helpers shared by the SCRAM client and server. Messages are handled as bytes
 * decoded with latin1, so one character is one byte: offsets into the text are offsets
 * into the bytes, and the AuthMessage can be rebuilt from the exact bytes the peer signed
 * (a username need not be valid UTF-8).
 */

/** Same cap as PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH; real messages are ~100 bytes. */
export const MAX_SCRAM_MESSAGE_LENGTH = 65535;

export interface ScramAttribute {
  readonly name: string;
  readonly value: string;
}

/** A message as bytes plus its one-byte-per-character text. */
export interface ScramMessage {
  readonly bytes: Buffer;
  readonly text: string;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const PRINTABLE = /^[\x21-\x2b\x2d-\x7e]+$/; // RFC 5802 "printable": %x21-7E except ','

export function readMessage(payload: string | Buffer, what: string): ScramMessage {
  let bytes: Buffer;
  if (typeof payload === 'string') bytes = Buffer.from(payload, 'utf8');
  else if (Buffer.isBuffer(payload)) bytes = payload;
  else throw new ScramProtocolError(`${what}: expected a string or Buffer`);
  if (bytes.length > MAX_SCRAM_MESSAGE_LENGTH) {
    throw new ScramProtocolError(`${what}: message of ${bytes.length} bytes is too long`);
  }
  if (bytes.length === 0) throw new ScramProtocolError(`${what}: message is empty`);
  return { bytes, text: bytes.toString('latin1') };
}

/** Splits `a=1,b=2` into attributes, each one ASCII letter, '=', and a value. */
export function parseAttributes(text: string, what: string): ScramAttribute[] {
  const attributes: ScramAttribute[] = [];
  let start = 0;
  for (;;) {
    const comma = text.indexOf(',', start);
    const end = comma < 0 ? text.length : comma;
    const letter = text.charCodeAt(start) | 0x20; // lower case, if it is a letter
    // Not repeated: what a confused client sends here may be its password.
    if (end - start < 2 || letter < 0x61 || letter > 0x7a || text.charCodeAt(start + 1) !== 0x3d /* = */) {
      throw new ScramProtocolError(`${what}: attribute ${attributes.length + 1} is malformed`);
    }
    attributes.push({ name: text[start], value: text.slice(start + 2, end) });
    if (comma < 0) return attributes;
    start = comma + 1;
  }
}

/** Reads attributes in the order the grammar requires them. */
export class AttributeCursor {
  private index = 0;

  constructor(
    private readonly attributes: readonly ScramAttribute[],
    private readonly what: string,
  ) {}

  peekName(): string | undefined {
    return this.attributes[this.index]?.name;
  }

  take(name: string): string {
    const attribute = this.attributes[this.index];
    if (attribute === undefined) throw new ScramProtocolError(`${this.what}: missing attribute "${name}"`);
    if (attribute.name !== name) {
      throw new ScramProtocolError(
        `${this.what}: expected attribute "${name}", found "${attribute.name}"`,
      );
    }
    this.index++;
    return attribute.value;
  }

  /** Attributes not yet taken: extensions, which PostgreSQL ignores. */
  rest(): readonly ScramAttribute[] {
    return this.attributes.slice(this.index);
  }
}

export function isBase64(value: string): boolean {
  return BASE64.test(value);
}

export function decodeBase64(value: string, what: string): Buffer {
  if (!isBase64(value)) throw new ScramProtocolError(`${what} is not valid base64`);
  return Buffer.from(value, 'base64');
}

/**
 * `mayBeEmpty`: a client's nonce, which PostgreSQL (is_scram_printable) lets be empty: the server's half of the
 * nonce alone makes the exchange fresh. (Refusing one refused a login PostgreSQL accepts.)
 */
export function checkNonce(nonce: string, what: string, mayBeEmpty = false): string {
  if (mayBeEmpty && nonce === '') return nonce;
  if (!PRINTABLE.test(nonce)) throw new ScramProtocolError(`${what} is empty or not printable ASCII`);
  return nonce;
}

/** A positive decimal int32 (how PostgreSQL stores and sends the count), else null. */
export function parseIterationCount(value: string): number | null {
  if (!/^[0-9]{1,10}$/.test(value)) return null;
  const n = Number(value);
  return n >= 1 && n <= MAX_SCRAM_ITERATIONS ? n : null;
}

/** Keeps peer-controlled text short and printable in error messages. */
export function clip(text: string): string {
  const shown = text.slice(0, 40).replace(/[^\x20-\x7e]/g, '?');
  return text.length > 40 ? `${shown}...` : shown;
}
