/**
 * Mutations of one frontend message, aimed at the parts of its format: a string's terminating zero, the body cut
 * short (with the declared length kept or made to match), the declared length off by a little or absurd, a count
 * or format code out of range, a value length that lies, bytes appended, another type byte, a byte changed.
 * A mutation is data (what fast-check generates and prints); `applyMutation` makes the frame.
 */
import { FRONTEND_TYPES, bodyOf, pgLimit, type Field, type Frame } from './frames.js';

export type Mutation =
  | { m: 'dropNul'; pick: number }
  | { m: 'cut'; at: number; keepLength: boolean }
  | { m: 'lengthDelta'; delta: number }
  | { m: 'lengthAbsurd'; pick: number }
  | { m: 'count'; pick: number; value: number }
  | { m: 'format'; pick: number; value: number }
  | { m: 'valueLength'; pick: number; value: number }
  | { m: 'append'; bytes: number[] }
  | { m: 'type'; code: number }
  | { m: 'flip'; at: number; byte: number };

export type MutationKind = Mutation['m'];

/** Declared lengths PostgreSQL refuses for every type (below 4, or above its largest limit). */
const ABSURD_ANY = [-1, -2147483648, -5, 0, 1, 2, 3, 0x3fffffff, 0x40000000, 0x40000001, 0x7fffffff];
/** Above PostgreSQL's 10000-byte limit for the small types (Sync, Flush, Describe, Close, Execute, CopyDone, CopyFail, Terminate). */
const ABSURD_SMALL = [10001, 65536, 1 << 20];

/** Values for counts (Int16): negative, zero, one off, far too many. */
export const ABSURD_COUNTS = [-1, -32768, 32767, 1000, 0, 1, 2, 3];
/** Format codes: 0 and 1 are the only valid ones. */
export const ABSURD_FORMATS = [2, -1, 32767, 256, 0, 1];
/** Value lengths (Int32): -1 is NULL, anything below it is invalid; too long; one off. */
export const ABSURD_VALUE_LENGTHS = [-2, -1000, -2147483648, 0x7fffffff, 100, 0, 1];

function pickField(fields: readonly Field[], pick: number, ok: (f: Field) => boolean): number {
  const eligible: number[] = [];
  fields.forEach((f, i) => {
    if (ok(f)) eligible.push(i);
  });
  return eligible.length === 0 ? -1 : eligible[Math.abs(pick) % eligible.length];
}

function withField(frame: Frame, index: number, field: Field, label: string): Frame {
  const fields = frame.fields.slice();
  fields[index] = field;
  return { ...frame, fields, mutation: label };
}

/** The frame with `mut` applied; a mutation that finds nothing to aim at leaves the frame as it was (labelled). */
export function applyMutation(frame: Frame, mut: Mutation): Frame {
  const body = bodyOf(frame);
  switch (mut.m) {
    case 'dropNul': {
      const i = pickField(frame.fields, mut.pick, (f) => f.k === 'str' && f.nul);
      const f = frame.fields[i];
      if (f?.k !== 'str') return { ...frame, mutation: 'dropNul(none)' };
      return withField(frame, i, { ...f, nul: false }, `dropNul#${i}`);
    }
    case 'cut': {
      if (body.length === 0) return { ...frame, mutation: 'cut(empty)' };
      const at = Math.abs(mut.at) % body.length;
      return { ...frame, cut: at, length: mut.keepLength ? body.length + 4 : undefined, mutation: `cut@${at}${mut.keepLength ? '/keepLength' : ''}` };
    }
    case 'lengthDelta':
      return { ...frame, length: body.length + 4 + mut.delta, mutation: `length${mut.delta >= 0 ? '+' : ''}${mut.delta}` };
    case 'lengthAbsurd': {
      const choices = pgLimit(frame.code) === 10000 ? [...ABSURD_ANY, ...ABSURD_SMALL] : ABSURD_ANY;
      const value = choices[Math.abs(mut.pick) % choices.length];
      return { ...frame, length: value, mutation: `length=${value}` };
    }
    case 'count': {
      const i = pickField(frame.fields, mut.pick, (f) => f.k === 'i16' && f.role === 'count');
      const f = frame.fields[i];
      if (f?.k !== 'i16') return { ...frame, mutation: 'count(none)' };
      return withField(frame, i, { ...f, v: mut.value }, `count#${i}=${mut.value}`);
    }
    case 'format': {
      const i = pickField(frame.fields, mut.pick, (f) => f.k === 'i16' && f.role === 'format');
      const f = frame.fields[i];
      if (f?.k !== 'i16') return { ...frame, mutation: 'format(none)' };
      return withField(frame, i, { ...f, v: mut.value }, `format#${i}=${mut.value}`);
    }
    case 'valueLength': {
      const i = pickField(frame.fields, mut.pick, (f) => f.k === 'i32' && f.role === 'len');
      const f = frame.fields[i];
      if (f?.k !== 'i32') return { ...frame, mutation: 'valueLength(none)' };
      return withField(frame, i, { ...f, v: mut.value }, `valueLength#${i}=${mut.value}`);
    }
    case 'append':
      return { ...frame, fields: [...frame.fields, { k: 'bytes', v: Buffer.from(mut.bytes) }], mutation: `append${mut.bytes.length}` };
    case 'type':
      return { ...frame, code: mut.code & 0xff, mutation: `type=${(mut.code & 0xff).toString(16)}` };
    case 'flip': {
      if (body.length === 0) return { ...frame, mutation: 'flip(empty)' };
      const at = Math.abs(mut.at) % body.length;
      const bytes = Buffer.from(body);
      bytes[at] = mut.byte & 0xff;
      return { ...frame, fields: [{ k: 'bytes', v: bytes }], cut: undefined, mutation: `flip@${at}=${(mut.byte & 0xff).toString(16)}` };
    }
  }
}

/** Type bytes PostgreSQL does not take after login (the unknown message types). */
export function isUnknownType(code: number): boolean {
  return !FRONTEND_TYPES.includes(code);
}
