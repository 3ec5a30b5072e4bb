/**
 * Frontend messages as fields, so that a mutation can aim at a part of the format (a string's terminating zero, a
 * count, a format code, a value length, the declared length) instead of only at random bytes; and PostgreSQL's
 * view of a byte stream (where its messages end, where it stops reading), used to complete a stream that ends
 * inside a message so that every case ends at a message boundary both ways.
 *
 * Independent of src/ on purpose (a test must not share a bug with the code).
 */

/** One field of a message body. */
export type Field =
  /** A C string; `nul: false` leaves its terminating zero out. */
  | { k: 'str'; v: Buffer; nul: boolean }
  /** Int16; `role` says what it is, for the mutations that aim at counts and format codes. */
  | { k: 'i16'; v: number; role: 'count' | 'format' | 'other' }
  /** Int32; `len` is a value length (-1: NULL) in Bind and FunctionCall, `count` a parameter count, else `other`. */
  | { k: 'i32'; v: number; role: 'len' | 'other' }
  | { k: 'byte'; v: number }
  | { k: 'bytes'; v: Buffer };

export interface Frame {
  /** The type byte. */
  code: number;
  fields: Field[];
  /** Declared length (self-inclusive) when it is not the true one. */
  length?: number;
  /** The body is cut to this many bytes (after the fields were serialised). */
  cut?: number;
  /** What was done to it, for reports and statistics ('' when sent as built). */
  mutation: string;
}

// ---- building messages ----

const cs = (v: string | Buffer): Field => ({ k: 'str', v: typeof v === 'string' ? Buffer.from(v, 'utf8') : v, nul: true });
const i16 = (v: number, role: 'count' | 'format' | 'other' = 'other'): Field => ({ k: 'i16', v, role });
const i32 = (v: number, role: 'len' | 'other' = 'other'): Field => ({ k: 'i32', v, role });
const code = (c: string): number => c.charCodeAt(0);

export const frame = (c: string, fields: Field[] = []): Frame => ({ code: code(c), fields, mutation: '' });

export const Q = (sql: string): Frame => frame('Q', [cs(sql)]);
export const P = (name: string, sql: string, types: readonly number[] = []): Frame =>
  frame('P', [cs(name), cs(sql), i16(types.length, 'count'), ...types.map((t) => i32(t))]);

/** A parameter value: text (format 0) or bytes, or null for SQL NULL. */
export type Value = Buffer | null;

export const B = (portal: string, stmt: string, paramFormats: readonly number[], values: readonly Value[], resultFormats: readonly number[]): Frame =>
  frame('B', [
    cs(portal),
    cs(stmt),
    i16(paramFormats.length, 'count'),
    ...paramFormats.map((f) => i16(f, 'format')),
    i16(values.length, 'count'),
    ...values.flatMap((v): Field[] => (v === null ? [i32(-1, 'len')] : [i32(v.length, 'len'), { k: 'bytes', v }])),
    i16(resultFormats.length, 'count'),
    ...resultFormats.map((f) => i16(f, 'format')),
  ]);
export const E = (portal: string, maxRows = 0): Frame => frame('E', [cs(portal), i32(maxRows)]);
export const D = (kind: 'S' | 'P', name: string): Frame => frame('D', [{ k: 'byte', v: code(kind) }, cs(name)]);
export const C = (kind: 'S' | 'P', name: string): Frame => frame('C', [{ k: 'byte', v: code(kind) }, cs(name)]);
export const S = (): Frame => frame('S');
export const H = (): Frame => frame('H');
export const F = (oid: number, argFormats: readonly number[], args: readonly Value[], resultFormat: number): Frame =>
  frame('F', [
    i32(oid),
    i16(argFormats.length, 'count'),
    ...argFormats.map((f) => i16(f, 'format')),
    i16(args.length, 'count'),
    ...args.flatMap((v): Field[] => (v === null ? [i32(-1, 'len')] : [i32(v.length, 'len'), { k: 'bytes', v }])),
    i16(resultFormat, 'format'),
  ]);
export const CopyData = (data: Buffer | string): Frame => frame('d', [{ k: 'bytes', v: typeof data === 'string' ? Buffer.from(data) : data }]);
export const CopyDone = (): Frame => frame('c');
export const CopyFail = (why: string): Frame => frame('f', [cs(why)]);
export const X = (): Frame => frame('X');
export const PasswordMessage = (text: string | Buffer): Frame => frame('p', [cs(text)]);
/** SASLInitialResponse: mechanism, Int32 length of the data (-1: none), data. */
export const SaslInitial = (mechanism: string, data: Buffer | null, declared?: number): Frame =>
  frame('p', [cs(mechanism), i32(declared ?? (data === null ? -1 : data.length), 'len'), ...(data === null ? [] : [{ k: 'bytes' as const, v: data }])]);
/** SASLResponse: the data, nothing else. */
export const SaslResponse = (data: Buffer): Frame => frame('p', [{ k: 'bytes', v: data }]);

// ---- bytes ----

export function fieldBytes(f: Field): Buffer {
  switch (f.k) {
    case 'str':
      return f.nul ? Buffer.concat([f.v, Buffer.from([0])]) : f.v;
    case 'i16': {
      const b = Buffer.alloc(2);
      b.writeInt16BE(((f.v + 0x8000) & 0xffff) - 0x8000);
      return b;
    }
    case 'i32': {
      const b = Buffer.alloc(4);
      b.writeInt32BE(f.v | 0);
      return b;
    }
    case 'byte':
      return Buffer.from([f.v & 0xff]);
    case 'bytes':
      return f.v;
  }
}

export function bodyOf(f: Frame): Buffer {
  const body = Buffer.concat(f.fields.map(fieldBytes));
  return f.cut === undefined ? body : body.subarray(0, Math.min(f.cut, body.length));
}

export function encode(f: Frame): Buffer {
  const body = bodyOf(f);
  const head = Buffer.alloc(5);
  head[0] = f.code;
  head.writeInt32BE((f.length ?? body.length + 4) | 0, 1);
  return Buffer.concat([head, body]);
}

export function encodeAll(frames: readonly Frame[]): Buffer {
  return Buffer.concat(frames.map(encode));
}

// ---- PostgreSQL's view of a stream ----

/** Frontend message types PostgreSQL reads after login (postgres.c SocketBackend), with its length limits. */
const PQ_LARGE_MESSAGE_LIMIT = 0x3fffffff - 1; // MaxAllocSize - 1
const PQ_SMALL_MESSAGE_LIMIT = 10000;
const LIMITS = new Map<number, number>([
  [code('Q'), PQ_LARGE_MESSAGE_LIMIT],
  [code('F'), PQ_LARGE_MESSAGE_LIMIT],
  [code('B'), PQ_LARGE_MESSAGE_LIMIT],
  [code('P'), PQ_LARGE_MESSAGE_LIMIT],
  [code('d'), PQ_LARGE_MESSAGE_LIMIT],
  [code('X'), PQ_SMALL_MESSAGE_LIMIT],
  [code('C'), PQ_SMALL_MESSAGE_LIMIT],
  [code('D'), PQ_SMALL_MESSAGE_LIMIT],
  [code('E'), PQ_SMALL_MESSAGE_LIMIT],
  [code('H'), PQ_SMALL_MESSAGE_LIMIT],
  [code('S'), PQ_SMALL_MESSAGE_LIMIT],
  [code('c'), PQ_SMALL_MESSAGE_LIMIT],
  [code('f'), PQ_SMALL_MESSAGE_LIMIT],
]);
/** PG_MAX_AUTH_TOKEN_LENGTH: the most PostgreSQL reads of a password / SASL message. */
export const AUTH_MESSAGE_LIMIT = 65535;

export const FRONTEND_TYPES: readonly number[] = [...LIMITS.keys(), code('p')];

/** The largest declared length PostgreSQL takes for a message type after login (0: it refuses the type). */
export function pgLimit(type: number): number {
  return LIMITS.get(type) ?? 0;
}

export interface StreamView {
  /** Whole messages PostgreSQL reads (types), up to where it stops. */
  types: number[];
  /** PostgreSQL stops reading here: a type it refuses, or a length it refuses. */
  stopsAt: number | null;
  /** The stream ends this many bytes short of the end of its last message (0: at a boundary). */
  missing: number;
}

/**
 * Walks `bytes` as PostgreSQL reads messages after login: type byte, Int32 length, body. A type it does not know
 * or a length outside [4, limit] ends the connection there; after Terminate nothing more is read.
 */
export function pgView(bytes: Buffer, limit: (type: number) => number = pgLimit): StreamView {
  const types: number[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    const type = bytes[pos];
    const max = limit(type);
    if (max === 0) return { types, stopsAt: pos, missing: 0 };
    if (pos + 5 > bytes.length) return { types, stopsAt: null, missing: pos + 5 - bytes.length };
    const length = bytes.readInt32BE(pos + 1);
    if (length < 4 || length > max) return { types, stopsAt: pos, missing: 0 };
    const end = pos + 1 + length;
    if (end > bytes.length) return { types, stopsAt: null, missing: end - bytes.length };
    types.push(type);
    pos = end;
    if (type === code('X')) return { types, stopsAt: pos, missing: 0 };
  }
  return { types, stopsAt: null, missing: 0 };
}

/** The largest completion (zero bytes) the runner sends to finish a message the stream ends inside. */
export const MAX_PADDING = 256 * 1024;

/** Printable summary of a frame for reports: type, mutation, first bytes. */
export function describe(f: Frame): string {
  const bytes = encode(f);
  const hex = bytes.subarray(0, 48).toString('hex');
  return `${String.fromCharCode(f.code).replace(/[^\x21-\x7e]/, '?')}${f.mutation === '' ? '' : `!${f.mutation}`} ${hex}${bytes.length > 48 ? `… (${bytes.length} bytes)` : ''}`;
}
