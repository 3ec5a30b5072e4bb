/**
 * Result sets of the admin console: RowDescription, DataRows and CommandComplete, in text format,
 * with the type OIDs PgBouncer declares (its `pktbuf_write_RowDescription` type letters):
 * 's' text, 'i' int4, 'q' int8, 'N' numeric (the SHOW STATS counters), 'T' a timestamp sent as
 * text. Built into one buffer, written with one `write()`.
 */
import { BackendCode } from '../protocol/codes.js';
import { commandComplete } from '../protocol/backend-messages.js';

export const enum TypeOid {
  Text = 25,
  Int4 = 23,
  Int8 = 20,
  Numeric = 1700,
}

export interface Column {
  readonly name: string;
  readonly type: TypeOid;
}

export type Cell = string | number | bigint | null | undefined;

/** Column helpers named after PgBouncer's type letters. */
export const text = (name: string): Column => ({ name, type: TypeOid.Text });
export const int4 = (name: string): Column => ({ name, type: TypeOid.Int4 });
export const int8 = (name: string): Column => ({ name, type: TypeOid.Int8 });
export const numeric = (name: string): Column => ({ name, type: TypeOid.Numeric });
/** PgBouncer's 'T': a point in time, declared as text ("2024-05-01 12:00:00 UTC"). */
export const timestamp = (name: string): Column => ({ name, type: TypeOid.Text });

function typeLength(type: TypeOid): number {
  switch (type) {
    case TypeOid.Int4:
      return 4;
    case TypeOid.Int8:
      return 8;
    default:
      return -1;
  }
}

export function rowDescription(columns: readonly Column[]): Buffer {
  let length = 4 + 2;
  for (const c of columns) length += Buffer.byteLength(c.name) + 1 + 18;
  const buf = Buffer.allocUnsafe(1 + length);
  buf[0] = BackendCode.RowDescription;
  buf.writeInt32BE(length, 1);
  buf.writeInt16BE(columns.length, 5);
  let pos = 7;
  for (const c of columns) {
    pos += buf.write(c.name, pos);
    buf[pos++] = 0;
    buf.writeInt32BE(0, pos); // table oid
    buf.writeInt16BE(0, pos + 4); // column number
    buf.writeInt32BE(c.type, pos + 6);
    buf.writeInt16BE(typeLength(c.type), pos + 10);
    buf.writeInt32BE(-1, pos + 12); // type modifier
    buf.writeInt16BE(0, pos + 16); // text format
    pos += 18;
  }
  return buf;
}

export function dataRow(values: readonly Cell[]): Buffer {
  const texts = values.map((v) => (v === null || v === undefined ? null : typeof v === 'number' ? String(Math.trunc(v)) : String(v)));
  let length = 4 + 2;
  for (const t of texts) length += 4 + (t === null ? 0 : Buffer.byteLength(t));
  const buf = Buffer.allocUnsafe(1 + length);
  buf[0] = BackendCode.DataRow;
  buf.writeInt32BE(length, 1);
  buf.writeInt16BE(texts.length, 5);
  let pos = 7;
  for (const t of texts) {
    if (t === null) {
      buf.writeInt32BE(-1, pos);
      pos += 4;
      continue;
    }
    const n = buf.write(t, pos + 4);
    buf.writeInt32BE(n, pos);
    pos += 4 + n;
  }
  return buf;
}

/** A result set being built: columns first, then rows, then the command tag. */
export class ResultSet {
  private readonly parts: Buffer[];

  constructor(readonly columns: readonly Column[]) {
    this.parts = [rowDescription(columns)];
  }

  row(values: readonly Cell[]): this {
    if (values.length !== this.columns.length) throw new Error(`internal: ${values.length} values for ${this.columns.length} columns`);
    this.parts.push(dataRow(values));
    return this;
  }

  /** RowDescription, DataRows and CommandComplete as one buffer. */
  finish(tag = 'SHOW'): Buffer {
    this.parts.push(commandComplete(tag));
    return Buffer.concat(this.parts);
  }
}

/** PgBouncer's time format for 'T' columns (format_time_s), in UTC. */
export function formatTime(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}
