/**
 * Wire level of the differential fuzzer: frontend messages as data (so a step can be printed, serialised and
 * simulated), backend messages decoded into readable lines, and the normalisation of what must differ between
 * two connections to the same server.
 *
 * Independent of src/ on purpose: the fuzzer must not share a bug with the code under test.
 */
import { serialize } from 'pg-protocol';

/** A frontend message after login. */
export type Front =
  | { t: 'Q'; sql: string }
  | { t: 'P'; name: string; sql: string }
  | { t: 'B'; portal: string; stmt: string; params: Array<string | null>; binary: boolean }
  | { t: 'D'; kind: 'S' | 'P'; name: string }
  | { t: 'E'; portal: string; rows: number }
  | { t: 'C'; kind: 'S' | 'P'; name: string }
  | { t: 'H' }
  | { t: 'S' }
  | { t: 'd'; data: Buffer }
  | { t: 'c' }
  | { t: 'f'; reason: string };

export function serializeFront(m: Front): Buffer {
  switch (m.t) {
    case 'Q':
      return serialize.query(m.sql);
    case 'P':
      return serialize.parse({ name: m.name, text: m.sql, types: [] });
    case 'B':
      return serialize.bind({ portal: m.portal, statement: m.stmt, values: m.params, binary: m.binary });
    case 'D':
      return serialize.describe({ type: m.kind, name: m.name });
    case 'E':
      return serialize.execute({ portal: m.portal, rows: m.rows });
    case 'C':
      return serialize.close({ type: m.kind, name: m.name });
    case 'H':
      return serialize.flush();
    case 'S':
      return serialize.sync();
    case 'd':
      return serialize.copyData(m.data);
    case 'c':
      return serialize.copyDone();
    case 'f':
      return serialize.copyFail(m.reason);
  }
}

const q = (s: string): string => JSON.stringify(s);

/** One frontend message as one readable line. */
export function formatFront(m: Front): string {
  switch (m.t) {
    case 'Q':
      return `Query ${q(m.sql)}`;
    case 'P':
      return `Parse ${q(m.name)} ${q(m.sql)}`;
    case 'B':
      return `Bind portal=${q(m.portal)} stmt=${q(m.stmt)} params=${JSON.stringify(m.params)}${m.binary ? ' results=binary' : ''}`;
    case 'D':
      return `Describe ${m.kind === 'S' ? 'statement' : 'portal'} ${q(m.name)}`;
    case 'E':
      return `Execute ${q(m.portal)}${m.rows === 0 ? '' : ` max_rows=${m.rows}`}`;
    case 'C':
      return `Close ${m.kind === 'S' ? 'statement' : 'portal'} ${q(m.name)}`;
    case 'H':
      return 'Flush';
    case 'S':
      return 'Sync';
    case 'd':
      return `CopyData ${printable(m.data)}`;
    case 'c':
      return 'CopyDone';
    case 'f':
      return `CopyFail ${q(m.reason)}`;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Backend messages

export interface BackendMessage {
  code: string;
  body: Buffer;
}

/** A pseudo-message the runner records when a step did not complete: the connection closed or timed out. */
export const CLOSED = '!closed';
export const TIMEOUT = '!timeout';

/** Incremental splitter for a byte stream of backend messages. */
export class MessageSplitter {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): BackendMessage[] {
    const data = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: BackendMessage[] = [];
    let pos = 0;
    while (pos + 5 <= data.length) {
      const length = data.readInt32BE(pos + 1);
      if (length < 4) throw new Error(`bad backend message length ${length}`);
      if (pos + 1 + length > data.length) break;
      out.push({ code: String.fromCharCode(data[pos]), body: Buffer.from(data.subarray(pos + 5, pos + 1 + length)) });
      pos += 1 + length;
    }
    this.pending = Buffer.from(data.subarray(pos));
    return out;
  }
}

/** Error/notice fields by letter. */
export function errorFields(body: Buffer): Record<string, string> {
  const fields: Record<string, string> = {};
  let pos = 0;
  while (pos < body.length && body[pos] !== 0) {
    const type = String.fromCharCode(body[pos]);
    const end = body.indexOf(0, pos + 1);
    if (end < 0) break;
    fields[type] = body.toString('utf8', pos + 1, end);
    pos = end + 1;
  }
  return fields;
}

function cstrings(body: Buffer): string[] {
  return body.toString('utf8').split('\0').slice(0, -1);
}

/** Text if it is printable UTF-8, else `\x<hex>`. */
export function printable(b: Buffer): string {
  const s = b.toString('utf8');
  // eslint-disable-next-line no-control-regex
  if (Buffer.from(s, 'utf8').equals(b) && !/[\x00-\x08\x0e-\x1f\x7f]/.test(s)) return JSON.stringify(s);
  return `\\x${b.toString('hex')}`;
}

/**
 * Renders one backend message as a readable line, normalised: what is inherently per connection is replaced
 * (the notifying backend's pid; table OIDs in RowDescription, which differ between the two runs because the
 * tables are created afresh, are numbered by first appearance through `relOf`). Error and notice fields are
 * kept except file/line/routine (F, L, R), which locate the C source that raised it.
 */
export function formatBackend(m: BackendMessage, relOf: (oid: number) => string): string {
  const b = m.body;
  switch (m.code) {
    case '1':
      return 'ParseComplete';
    case '2':
      return 'BindComplete';
    case '3':
      return 'CloseComplete';
    case 'n':
      return 'NoData';
    case 'I':
      return 'EmptyQueryResponse';
    case 's':
      return 'PortalSuspended';
    case 'c':
      return 'CopyDone';
    case 'Z':
      return `ReadyForQuery ${b.toString('latin1')}`;
    case 'C':
      return `CommandComplete ${q(cstrings(b)[0] ?? '')}`;
    case 'S': {
      const [name, value] = cstrings(b);
      return `ParameterStatus ${name}=${q(value ?? '')}`;
    }
    case 'E':
    case 'N': {
      const f = errorFields(b);
      const extra = Object.entries(f)
        .filter(([k]) => !['S', 'V', 'C', 'M', 'F', 'L', 'R'].includes(k))
        .map(([k, v]) => `${k}=${q(v)}`)
        .join(' ');
      return `${m.code === 'E' ? 'ErrorResponse' : 'NoticeResponse'} ${f.V ?? f.S} ${f.C} ${q(f.M ?? '')}${f.S !== f.V && f.V !== undefined ? ` S=${q(f.S)}` : ''}${extra === '' ? '' : ` ${extra}`}`;
    }
    case 'A': {
      const [channel, payload] = cstrings(b.subarray(4));
      return `NotificationResponse channel=${q(channel)} payload=${q(payload ?? '')}`;
    }
    case 'T': {
      const n = b.readInt16BE(0);
      let pos = 2;
      const cols: string[] = [];
      for (let i = 0; i < n; i++) {
        const end = b.indexOf(0, pos);
        const name = b.toString('utf8', pos, end);
        pos = end + 1;
        const table = b.readUInt32BE(pos);
        const attnum = b.readInt16BE(pos + 4);
        const type = b.readUInt32BE(pos + 6);
        const typlen = b.readInt16BE(pos + 10);
        const typmod = b.readInt32BE(pos + 12);
        const format = b.readInt16BE(pos + 16);
        pos += 18;
        const origin = table === 0 ? '' : ` ${relOf(table)}.${attnum}`;
        cols.push(`${name}:${type}/${typlen}/${typmod}${format === 1 ? ' binary' : ''}${origin}`);
      }
      return `RowDescription [${cols.join(', ')}]`;
    }
    case 'D': {
      const n = b.readInt16BE(0);
      let pos = 2;
      const cols: string[] = [];
      for (let i = 0; i < n; i++) {
        const len = b.readInt32BE(pos);
        pos += 4;
        if (len < 0) cols.push('NULL');
        else {
          cols.push(printable(b.subarray(pos, pos + len)));
          pos += len;
        }
      }
      return `DataRow [${cols.join(', ')}]`;
    }
    case 't': {
      const n = b.readInt16BE(0);
      const types = Array.from({ length: n }, (_, i) => b.readUInt32BE(2 + 4 * i));
      return `ParameterDescription [${types.join(', ')}]`;
    }
    case 'G':
    case 'H':
    case 'W': {
      const name = m.code === 'G' ? 'CopyInResponse' : m.code === 'H' ? 'CopyOutResponse' : 'CopyBothResponse';
      const n = b.readInt16BE(1);
      const formats = Array.from({ length: n }, (_, i) => b.readInt16BE(3 + 2 * i));
      return `${name} format=${b[0]} columns=[${formats.join(',')}]`;
    }
    case 'd':
      return `CopyData ${printable(b)}`;
    case CLOSED:
      return '(connection closed)';
    case TIMEOUT:
      return `(no complete answer: ${b.toString('utf8')})`;
    default:
      return `${m.code} ${b.toString('hex')}`;
  }
}

/** Numbers relation OIDs in order of first appearance: rel#1, rel#2, ... (one numbering per transcript). */
export function relNumbering(): (oid: number) => string {
  const seen = new Map<number, string>();
  return (oid) => {
    let name = seen.get(oid);
    if (name === undefined) {
      name = `rel#${seen.size + 1}`;
      seen.set(oid, name);
    }
    return name;
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Simulating what the server owes: which backend messages complete a list of frontend messages

const ASYNC = new Set(['N', 'S', 'A']);

export interface Simulation {
  /** Every message sent has had its answer (or was skipped by the server). */
  done: boolean;
  /** How many of the received messages belong to this step. */
  consumed: number;
  /** After an error in the extended protocol the server skips everything up to the next Sync. */
  skipping: boolean;
}

/**
 * Walks the frontend messages of a step against the backend messages received so far, as the server processes
 * them: a Query is answered up to its ReadyForQuery; Parse/Bind/Close by their completion or an error; Describe
 * by (ParameterDescription and) RowDescription/NoData; Execute by rows and a completion, a COPY, or an error; a
 * Sync by ReadyForQuery. After an error in the extended protocol everything up to the next Sync is skipped (a
 * Query too). NoticeResponse, ParameterStatus and NotificationResponse may come anywhere. A message that does
 * not fit is taken as part of the step (so extra messages never make a step wait forever; they show in the diff).
 * Stops at the first answer still missing. `skipping` is the state the previous step left.
 */
export function simulate(sent: readonly Front[], got: readonly BackendMessage[], skippingAtStart: boolean): Simulation {
  let i = 0;
  let skipping = skippingAtStart;
  const incomplete = (): Simulation => ({ done: false, consumed: i, skipping });
  /** The next non-async message's code, consuming async ones; undefined if none has arrived yet. */
  const peek = (): string | undefined => {
    while (i < got.length && ASYNC.has(got[i].code)) i++;
    return i < got.length ? got[i].code : undefined;
  };
  /** Consumes messages until one with a code in `want` is consumed; false if it has not arrived yet. */
  const until = (want: string): string | undefined => {
    for (;;) {
      const c = peek();
      if (c === undefined) return undefined;
      i++;
      if (want.includes(c)) return c;
    }
  };
  for (let k = 0; k < sent.length; k++) {
    const f = sent[k];
    if (skipping) {
      if (f.t === 'S') {
        if (until('Z') === undefined) return incomplete();
        skipping = false;
      }
      continue;
    }
    switch (f.t) {
      case 'Q':
        if (until('Z') === undefined) return incomplete();
        break;
      case 'S':
        if (until('Z') === undefined) return incomplete();
        break;
      case 'P':
      case 'B':
      case 'C': {
        const c = until(`${f.t === 'P' ? '1' : f.t === 'B' ? '2' : '3'}E`);
        if (c === undefined) return incomplete();
        if (c === 'E') skipping = true;
        break;
      }
      case 'D': {
        const c = until(f.kind === 'S' ? 'tE' : 'TnE');
        if (c === undefined) return incomplete();
        if (c === 'E') skipping = true;
        else if (c === 't' && until('TnE') === undefined) return incomplete();
        if (got[i - 1].code === 'E') skipping = true;
        break;
      }
      case 'E': {
        const c = until('CsIEHG');
        if (c === undefined) return incomplete();
        if (c === 'E') skipping = true;
        else if (c === 'H' || c === 'G') {
          // COPY: rows, then CopyDone (out) or our CopyData/CopyDone (in), then CommandComplete or an error.
          const end = until('CE');
          if (end === undefined) return incomplete();
          if (end === 'E') skipping = true;
        }
        break;
      }
      case 'H':
      case 'd':
      case 'c':
      case 'f':
        break;
    }
  }
  return { done: true, consumed: i, skipping };
}
