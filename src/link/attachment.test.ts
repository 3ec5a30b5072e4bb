/**
 * Attachment driven by hand: the client's messages (pg-protocol's serializer) go in through
 * fromClient, the server's (built here) through fromServer, and what the link writes is read back
 * from its toServer / toClient WriteBatches and decoded into short tokens ('P(s1)', 'B(portal,stmt)',
 * 'C(SELECT 1)', 'E(42601)', 'Z(I)' ...). No sockets, no PostgreSQL. With a StatementRouter,
 * SegmentReplay and PreparedCache where transaction mode needs them.
 *
 * `it.fails` marks a test that states PostgreSQL's behaviour where pgmux does not (yet) follow it:
 * the comment above each says what goes wrong; it turns into a failure once the bug is fixed.
 */
import type { Socket } from 'node:net';

import fc from 'fast-check';
import { serialize } from 'pg-protocol';
import { describe, expect, it } from 'vitest';

import { SegmentReplay } from '../client/segment-replay.js';
import { DEALLOCATE_ALL, StatementRouter } from '../client/statement-router.js';
import { errorResponse as pgmuxError } from '../protocol/backend-messages.js';
import { TxStatus } from '../protocol/codes.js';
import { MalformedMessage } from '../protocol/malformed.js';
import { readErrorFields } from '../protocol/fields.js';
import type { WriteBatch } from '../protocol/write-batch.js';
import { PreparedCache } from '../server/prepared-cache.js';
import { Attachment, LinkEvent } from './attachment.js';
import { Owed, type OwnStatements } from './request-ledger.js';
import type { Insertion } from '../protocol/error-rewrite.js';

// ---------------------------------------------------------------------------------------------
// Backend messages, built by hand

function msg(code: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const buf = Buffer.alloc(5 + body.length);
  buf[0] = code.charCodeAt(0);
  buf.writeInt32BE(4 + body.length, 1);
  body.copy(buf, 5);
  return buf;
}

function int16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

function cstr(s: string): Buffer {
  return Buffer.from(`${s}\0`);
}

const parseComplete = (): Buffer => msg('1');
const bindComplete = (): Buffer => msg('2');
const closeComplete = (): Buffer => msg('3');
const noData = (): Buffer => msg('n');
const emptyQuery = (): Buffer => msg('I');
const portalSuspended = (): Buffer => msg('s');
const copyDoneB = (): Buffer => msg('c');
const parameterDescription = (...oids: number[]): Buffer => msg('t', int16(oids.length), ...oids.map(int32));
const rowDescription = (...names: string[]): Buffer =>
  msg('T', int16(names.length), ...names.flatMap((n) => [cstr(n), int32(0), int16(0), int32(25), int16(-1), int32(-1), int16(0)]));
const dataRow = (...values: Array<string | null>): Buffer =>
  msg('D', int16(values.length), ...values.flatMap((v) => (v === null ? [int32(-1)] : [int32(Buffer.byteLength(v)), Buffer.from(v)])));
const commandComplete = (tag: string): Buffer => msg('C', cstr(tag));
const copyInResponse = (columns = 1): Buffer => msg('G', Buffer.from([0]), int16(columns), ...Array.from({ length: columns }, () => int16(0)));
const copyOutResponse = (columns = 1): Buffer => msg('H', Buffer.from([0]), int16(columns), ...Array.from({ length: columns }, () => int16(0)));
const copyDataB = (text: string): Buffer => msg('d', Buffer.from(text));
const functionCallResponse = (value: string): Buffer => msg('V', int32(Buffer.byteLength(value)), Buffer.from(value));
const parameterStatus = (name: string, value: string): Buffer => msg('S', cstr(name), cstr(value));
const notification = (channel: string): Buffer => msg('A', int32(42), cstr(channel), cstr(''));

function fields(code: string, f: Record<string, string>): Buffer {
  return msg(code, ...Object.entries(f).map(([k, v]) => Buffer.concat([Buffer.from(k), cstr(v)])), Buffer.from([0]));
}

/** ErrorResponse as PostgreSQL writes it: severity, SQLSTATE, message and (optionally) the routine. */
function error(sqlstate: string, message: string, routine?: string, severity = 'ERROR'): Buffer {
  const f: Record<string, string> = { S: severity, V: severity, C: sqlstate, M: message };
  if (routine !== undefined) f.R = routine;
  return fields('E', f);
}

/** Statements pgmux added to a Query: their results, no text positions to map. */
const own = (results: number[], insertions: Insertion[] = []): OwnStatements => ({ results, insertions });

const notice = (message: string): Buffer => fields('N', { S: 'NOTICE', V: 'NOTICE', C: '00000', M: message });
const rfq = (status: 'I' | 'T' | 'E'): Buffer => msg('Z', Buffer.from(status));

const STALE = (): Buffer => error('0A000', 'cached plan must not change result type', 'RevalidateCachedQuery');

// ---------------------------------------------------------------------------------------------
// Frontend messages (pg-protocol's serializer)

const parse = (name: string, text: string, types: number[] = []): Buffer => serialize.parse({ name, text, types });
const bind = (statement = '', portal = ''): Buffer => serialize.bind({ portal, statement, values: [] });
const bindWith = (statement: string, values: string[]): Buffer => serialize.bind({ portal: '', statement, values });
const describeStatement = (name: string): Buffer => serialize.describe({ type: 'S', name });
const describePortal = (name = ''): Buffer => serialize.describe({ type: 'P', name });
const execute = (rows = 0, portal = ''): Buffer => serialize.execute({ portal, rows });
const closeStatement = (name: string): Buffer => serialize.close({ type: 'S', name });
const closePortal = (name: string): Buffer => serialize.close({ type: 'P', name });
const sync = (): Buffer => serialize.sync();
const flush = (): Buffer => serialize.flush();
const query = (text: string): Buffer => serialize.query(text);
const copyData = (text: string): Buffer => serialize.copyData(Buffer.from(text));
const copyDone = (): Buffer => serialize.copyDone();
const copyFail = (why: string): Buffer => serialize.copyFail(why);
/** FunctionCall: oid, no argument formats, no arguments, text result. */
const functionCall = (oid: number): Buffer => msg('F', int32(oid), int16(0), int16(0), int16(0));

// ---------------------------------------------------------------------------------------------
// Decoding what the link wrote, into short readable tokens

function frames(buf: Buffer): Array<{ code: string; buf: Buffer; body: Buffer }> {
  const out: Array<{ code: string; buf: Buffer; body: Buffer }> = [];
  let pos = 0;
  while (pos < buf.length) {
    const end = pos + 1 + buf.readInt32BE(pos + 1);
    if (end > buf.length) throw new Error(`truncated message '${String.fromCharCode(buf[pos])}' in output`);
    out.push({ code: String.fromCharCode(buf[pos]), buf: buf.subarray(pos, end), body: buf.subarray(pos + 5, end) });
    pos = end;
  }
  return out;
}

function cstrings(body: Buffer): string[] {
  return body.toString('utf8').split('\0');
}

/** A backend message as the client sees it: 'C(SELECT 1)', 'D(1,x)', 'E(42601)', 'Z(I)', or just its type. */
function backendToken(m: { code: string; buf: Buffer; body: Buffer }): string {
  switch (m.code) {
    case 'C':
      return `C(${cstrings(m.body)[0]})`;
    case 'D': {
      const values: string[] = [];
      let pos = 2;
      for (let i = 0; i < m.body.readInt16BE(0); i++) {
        const n = m.body.readInt32BE(pos);
        pos += 4;
        values.push(n < 0 ? 'null' : m.body.toString('utf8', pos, pos + n));
        if (n > 0) pos += n;
      }
      return `D(${values.join(',')})`;
    }
    case 'E':
    case 'N':
      return `${m.code}(${readErrorFields(m.buf, 0, m.buf.length).get('C')})`;
    case 'S': {
      const [name, value] = cstrings(m.body);
      return `S(${name}=${value})`;
    }
    case 'T':
      return `T(${rowNames(m.body).join(',')})`;
    case 'Z':
      return `Z(${String.fromCharCode(m.body[0])})`;
    case 'd':
      return `d(${m.body.toString('utf8')})`;
    default:
      return m.code;
  }
}

function rowNames(body: Buffer): string[] {
  const names: string[] = [];
  let pos = 2;
  for (let i = 0; i < body.readInt16BE(0); i++) {
    const nul = body.indexOf(0, pos);
    names.push(body.toString('utf8', pos, nul));
    pos = nul + 1 + 18;
  }
  return names;
}

/** A frontend message as the server sees it: 'P(s1)', 'B(portal,stmt)', 'D(S:s1)', 'E', 'E(2)', 'C(S:s1)', 'Q(text)', 'S', 'H', 'd(x)', 'c'. */
function frontendToken(m: { code: string; buf: Buffer; body: Buffer }): string {
  switch (m.code) {
    case 'P':
      return `P(${cstrings(m.body)[0]})`;
    case 'B': {
      const [portal, statement] = cstrings(m.body);
      return `B(${portal},${statement})`;
    }
    case 'D':
    case 'C':
      return `${m.code}(${String.fromCharCode(m.body[0])}:${cstrings(m.body.subarray(1))[0]})`;
    case 'E': {
      const [portal] = cstrings(m.body);
      const rows = m.body.readInt32BE(Buffer.byteLength(portal) + 1);
      return rows === 0 && portal === '' ? 'E' : `E(${portal}${rows === 0 ? '' : `${portal === '' ? '' : ','}${rows}`})`;
    }
    case 'Q':
      return `Q(${cstrings(m.body)[0]})`;
    case 'd':
      return `d(${m.body.toString('utf8')})`;
    default:
      return m.code;
  }
}

/** Flush a WriteBatch into a recorder; returns the bytes written. */
function drain(batch: WriteBatch): Buffer {
  const written: Buffer[] = [];
  const sink = {
    write(buf: Buffer): boolean {
      written.push(Buffer.from(buf));
      return true;
    },
    cork(): void {},
    uncork(): void {},
  };
  batch.flush(sink as unknown as Socket);
  return Buffer.concat(written);
}

// ---------------------------------------------------------------------------------------------
// The harness: one Attachment, the client's and the server's sides driven by hand

interface State {
  settled: boolean;
  busy: boolean;
  tx: string;
}

/** Nothing owed, server idle: the server may go back to the pool. */
const IDLE: State = { settled: true, busy: false, tx: 'I' };
/** Answers owed (outside a transaction block). */
const BUSY: State = { settled: false, busy: true, tx: 'I' };
const BUSY_IN_TX: State = { settled: false, busy: true, tx: 'T' };
/** Between requests, inside a transaction block: not released. */
const IN_TX: State = { settled: false, busy: false, tx: 'T' };
const FAILED_TX: State = { settled: false, busy: false, tx: 'E' };

const { None, Ready, Desync } = { None: LinkEvent.None, Ready: LinkEvent.Ready, Desync: LinkEvent.Desync };

interface Options {
  cache?: PreparedCache;
  router?: StatementRouter | null;
  replay?: SegmentReplay | null;
  txStatus?: number;
}

class Harness {
  readonly cache: PreparedCache;
  readonly router: StatementRouter | null;
  readonly replay: SegmentReplay | null;
  readonly counters = { preparedHits: 0, preparedMisses: 0 };
  readonly link: Attachment;

  constructor(options: Options = {}) {
    this.cache = options.cache ?? new PreparedCache(100);
    this.router = options.router ?? null;
    this.replay = options.replay ?? null;
    this.link = new Attachment(this.cache, this.counters, this.router, this.replay, options.txStatus ?? TxStatus.Idle);
  }

  /** The client sends these messages in one chunk (the router, if any, registers its statements as they are sent). */
  client(...messages: Buffer[]): this {
    const chunk = Buffer.concat(messages);
    let pos = 0;
    for (const m of messages) {
      this.link.fromClient(chunk[pos], chunk, pos, pos + m.length);
      pos += m.length;
    }
    return this;
  }

  /** The server sends these messages in one chunk; returns what each meant for the link. */
  server(...messages: Buffer[]): LinkEvent[] {
    const chunk = Buffer.concat(messages);
    const events: LinkEvent[] = [];
    let pos = 0;
    for (const m of messages) {
      events.push(this.link.fromServer(chunk[pos], chunk, pos, pos + m.length));
      pos += m.length;
    }
    return events;
  }

  /** What went to the server since last asked. */
  sent(): string[] {
    return frames(drain(this.link.toServer)).map(frontendToken);
  }

  /** What went to the client since last asked. */
  received(): string[] {
    return frames(drain(this.link.toClient)).map(backendToken);
  }

  /** The raw bytes the client got since last asked. */
  receivedBytes(): Buffer {
    return drain(this.link.toClient);
  }

  get state(): State {
    return { settled: this.link.settled, busy: this.link.busy, tx: String.fromCharCode(this.link.txStatus) };
  }
}

function nones(n: number): LinkEvent[] {
  return Array.from({ length: n }, () => None);
}

/** Another client (its own router) prepares these statements on the server whose cache is `cache`. */
function preparedByAnotherClient(cache: PreparedCache, ...parses: Buffer[]): void {
  const other = new Harness({ cache, router: new StatementRouter() });
  other.client(...parses, sync());
  expect(other.sent()).toEqual([...parses.map((p) => `P(${cstrings(p.subarray(5))[0]})`), 'S']);
  expect(other.server(...parses.map(() => parseComplete()), rfq('I'))).toEqual([...nones(parses.length), Ready]);
  expect(other.state).toEqual(IDLE);
}

/** Decoded fields of the single ErrorResponse in `bytes`. */
function errorFieldsIn(bytes: Buffer): Map<string, string> {
  const errors = frames(bytes).filter((m) => m.code === 'E');
  expect(errors).toHaveLength(1);
  return readErrorFields(errors[0].buf, 0, errors[0].buf.length);
}

// =============================================================================================

describe('Attachment: simple Query', () => {
  it('forwards several results, then ReadyForQuery settles the link', () => {
    const h = new Harness();
    expect(h.state).toEqual(IDLE);
    h.client(query('select 1 as a; select 2 as b'));
    expect(h.sent()).toEqual(['Q(select 1 as a; select 2 as b)']);
    expect(h.state).toEqual(BUSY);
    expect(h.link.ledger.length).toBe(1);

    expect(h.server(rowDescription('a'), dataRow('1'), commandComplete('SELECT 1'))).toEqual(nones(3));
    expect(h.received()).toEqual(['T(a)', 'D(1)', 'C(SELECT 1)']);
    expect(h.state).toEqual(BUSY);

    expect(h.server(rowDescription('b'), dataRow('2'), dataRow(null), commandComplete('SELECT 2'))).toEqual(nones(4));
    expect(h.received()).toEqual(['T(b)', 'D(2)', 'D(null)', 'C(SELECT 2)']);
    expect(h.state).toEqual(BUSY);

    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['Z(I)']);
    expect(h.state).toEqual(IDLE);
    expect(h.link.ledger.empty).toBe(true);
    expect(h.sent()).toEqual([]);
  });

  it('forwards the bytes of a chunk as they came (one view, no copy)', () => {
    const h = new Harness();
    h.client(query('select 1'));
    h.sent();
    const chunk = Buffer.concat([rowDescription('a'), dataRow('1'), commandComplete('SELECT 1'), rfq('I')]);
    let pos = 0;
    while (pos < chunk.length) {
      const end = pos + 1 + chunk.readInt32BE(pos + 1);
      h.link.fromServer(chunk[pos], chunk, pos, end);
      pos = end;
    }
    const written: Buffer[] = [];
    h.link.toClient.flush({ write: (b: Buffer) => written.push(b) > 0 } as unknown as Socket);
    expect(written).toHaveLength(1);
    expect(written[0]).toBe(chunk);
  });

  it('forwards an empty query', () => {
    const h = new Harness();
    h.client(query(''));
    expect(h.sent()).toEqual(['Q()']);
    expect(h.server(emptyQuery())).toEqual([None]);
    expect(h.state).toEqual(BUSY);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['I', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('forwards an error; the ReadyForQuery that follows is still owed', () => {
    const h = new Harness();
    h.client(query('select nope'));
    h.sent();
    expect(h.server(notice('hello'), error('42703', 'column "nope" does not exist'))).toEqual([None, None]);
    expect(h.received()).toEqual(['N(00000)', 'E(42703)']);
    expect(h.state).toEqual(BUSY);
    expect(h.link.ledger.length).toBe(1);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('forwards an error after some results of a multi-statement Query', () => {
    const h = new Harness();
    h.client(query('select 1; select 1/0; select 3'));
    h.sent();
    expect(h.server(rowDescription('a'), dataRow('1'), commandComplete('SELECT 1'), rowDescription('b'), error('22012', 'division by zero'), rfq('I'))).toEqual([...nones(5), Ready]);
    expect(h.received()).toEqual(['T(a)', 'D(1)', 'C(SELECT 1)', 'T(b)', 'E(22012)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('pipelines several Queries: settled only after the last ReadyForQuery', () => {
    const h = new Harness();
    h.client(query('select 1'), query('select 1/0'), query('select 3'));
    expect(h.sent()).toEqual(['Q(select 1)', 'Q(select 1/0)', 'Q(select 3)']);
    expect(h.link.ledger.length).toBe(3);

    expect(h.server(rowDescription('a'), dataRow('1'), commandComplete('SELECT 1'), rfq('I'))).toEqual([None, None, None, Ready]);
    expect(h.received()).toEqual(['T(a)', 'D(1)', 'C(SELECT 1)', 'Z(I)']);
    expect(h.state).toEqual(BUSY);
    expect(h.link.ledger.length).toBe(2);

    expect(h.server(error('22012', 'division by zero'), rfq('I'))).toEqual([None, Ready]);
    expect(h.received()).toEqual(['E(22012)', 'Z(I)']);
    expect(h.state).toEqual(BUSY);

    expect(h.server(rowDescription('c'), dataRow('3'), commandComplete('SELECT 1'), rfq('I'))).toEqual([None, None, None, Ready]);
    expect(h.received()).toEqual(['T(c)', 'D(3)', 'C(SELECT 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('passes notices, notifications and ParameterStatus in the middle of results', () => {
    const h = new Harness();
    h.client(query("set timezone = 'UTC'; notify x"));
    h.sent();
    expect(h.server(commandComplete('SET'), parameterStatus('TimeZone', 'UTC'), notice('n'), commandComplete('NOTIFY'), notification('x'), rfq('I'))).toEqual([...nones(5), Ready]);
    expect(h.received()).toEqual(['C(SET)', 'S(TimeZone=UTC)', 'N(00000)', 'C(NOTIFY)', 'A', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('forwards a FunctionCall answer, then its ReadyForQuery', () => {
    const h = new Harness();
    h.client(functionCall(1598));
    expect(h.sent()).toEqual(['F']);
    expect(h.state).toEqual(BUSY);
    expect(h.server(functionCallResponse('42'))).toEqual([None]);
    expect(h.state).toEqual(BUSY);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['V', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });
});

describe('Attachment: transaction status', () => {
  it('is settled only with nothing owed and the last ReadyForQuery idle', () => {
    const h = new Harness();
    h.client(query('begin'));
    expect(h.server(commandComplete('BEGIN'), rfq('T'))).toEqual([None, Ready]);
    expect(h.state).toEqual(IN_TX);

    h.client(query('select 1'));
    expect(h.state).toEqual(BUSY_IN_TX);
    expect(h.server(rowDescription('a'), dataRow('1'), commandComplete('SELECT 1'), rfq('T'))).toEqual([None, None, None, Ready]);
    expect(h.state).toEqual(IN_TX);

    h.client(query('select 1/0'));
    expect(h.server(error('22012', 'division by zero'), rfq('E'))).toEqual([None, Ready]);
    expect(h.state).toEqual(FAILED_TX);

    h.client(query('rollback'));
    expect(h.state).toEqual({ settled: false, busy: true, tx: 'E' });
    expect(h.server(commandComplete('ROLLBACK'), rfq('I'))).toEqual([None, Ready]);
    expect(h.state).toEqual(IDLE);
    expect(h.received()).toEqual(['C(BEGIN)', 'Z(T)', 'T(a)', 'D(1)', 'C(SELECT 1)', 'Z(T)', 'E(22012)', 'Z(E)', 'C(ROLLBACK)', 'Z(I)']);
  });

  it('starts from the status the server had when it was lent', () => {
    const h = new Harness({ txStatus: TxStatus.InTransaction });
    expect(h.state).toEqual(IN_TX);
    h.client(query('commit'));
    h.server(commandComplete('COMMIT'), rfq('I'));
    expect(h.state).toEqual(IDLE);
  });

  it('an extended batch inside a transaction block ends in T: not settled until COMMIT', () => {
    const h = new Harness();
    h.client(query('begin'), parse('', 'insert into t values (1)'), bind(), execute(), sync(), query('commit'));
    expect(h.sent()).toEqual(['Q(begin)', 'P()', 'B(,)', 'E', 'S', 'Q(commit)']);
    expect(h.server(commandComplete('BEGIN'), rfq('T'))).toEqual([None, Ready]);
    expect(h.state).toEqual(BUSY_IN_TX);
    expect(h.server(parseComplete(), bindComplete(), commandComplete('INSERT 0 1'), rfq('T'))).toEqual([None, None, None, Ready]);
    expect(h.state).toEqual(BUSY_IN_TX);
    expect(h.server(commandComplete('COMMIT'), rfq('I'))).toEqual([None, Ready]);
    expect(h.state).toEqual(IDLE);
  });
});

describe('Attachment: extended protocol', () => {
  it('Parse / Bind / Describe portal / Execute / Sync, each answer completing its entry', () => {
    const h = new Harness();
    h.client(parse('', 'select $1::int as n', [23]), bind(), describePortal(), execute(), sync());
    expect(h.sent()).toEqual(['P()', 'B(,)', 'D(P:)', 'E', 'S']);
    expect(h.link.ledger.length).toBe(5);
    expect(h.state).toEqual(BUSY);

    const steps: Array<[Buffer, number]> = [
      [parseComplete(), 4],
      [bindComplete(), 3],
      [rowDescription('n'), 2],
      [dataRow('7'), 2],
      [commandComplete('SELECT 1'), 1],
    ];
    for (const [answer, owed] of steps) {
      expect(h.server(answer)).toEqual([None]);
      expect(h.link.ledger.length).toBe(owed);
      expect(h.state).toEqual(BUSY);
    }
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['1', '2', 'T(n)', 'D(7)', 'C(SELECT 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('Describe statement: ParameterDescription then RowDescription, or NoData', () => {
    const h = new Harness();
    h.client(parse('s1', 'select $1::int as n', [23]), describeStatement('s1'), parse('s2', 'insert into t values ($1)'), describeStatement('s2'), sync());
    expect(h.sent()).toEqual(['P(s1)', 'D(S:s1)', 'P(s2)', 'D(S:s2)', 'S']);
    expect(h.server(parseComplete(), parameterDescription(23))).toEqual([None, None]);
    // ParameterDescription alone does not complete the Describe.
    expect(h.link.ledger.length).toBe(4);
    expect(h.server(rowDescription('n'))).toEqual([None]);
    expect(h.link.ledger.length).toBe(3);
    expect(h.server(parseComplete(), parameterDescription(23), noData())).toEqual(nones(3));
    expect(h.link.ledger.length).toBe(1);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['1', 't', 'T(n)', '1', 't', 'n', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('Describe portal answered with NoData (a statement without rows)', () => {
    const h = new Harness();
    h.client(parse('', 'insert into t values (1)'), bind(), describePortal(), execute(), sync());
    h.sent();
    expect(h.server(parseComplete(), bindComplete(), noData(), commandComplete('INSERT 0 1'), rfq('I'))).toEqual([...nones(4), Ready]);
    expect(h.received()).toEqual(['1', '2', 'n', 'C(INSERT 0 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('Execute of an empty statement ends with EmptyQueryResponse', () => {
    const h = new Harness();
    h.client(parse('', ''), bind(), execute(), sync());
    h.sent();
    expect(h.server(parseComplete(), bindComplete(), emptyQuery())).toEqual(nones(3));
    expect(h.link.ledger.length).toBe(1);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['1', '2', 'I', 'Z(I)']);
  });

  it('several Syncs pipelined: one ReadyForQuery each, settled after the last', () => {
    const h = new Harness();
    h.client(parse('', 'select 1'), bind(), execute(), sync(), bind(), execute(), sync(), sync());
    expect(h.sent()).toEqual(['P()', 'B(,)', 'E', 'S', 'B(,)', 'E', 'S', 'S']);
    expect(h.link.ledger.length).toBe(8);

    expect(h.server(parseComplete(), bindComplete(), dataRow('1'), commandComplete('SELECT 1'), rfq('I'))).toEqual([...nones(4), Ready]);
    expect(h.state).toEqual(BUSY);
    expect(h.link.ledger.length).toBe(4);
    expect(h.server(bindComplete(), dataRow('1'), commandComplete('SELECT 1'), rfq('I'))).toEqual([...nones(3), Ready]);
    expect(h.state).toEqual(BUSY);
    expect(h.link.ledger.length).toBe(1);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.state).toEqual(IDLE);
    expect(h.received()).toEqual(['1', '2', 'D(1)', 'C(SELECT 1)', 'Z(I)', '2', 'D(1)', 'C(SELECT 1)', 'Z(I)', 'Z(I)']);
  });

  it('Execute with a row limit: PortalSuspended completes it; Execute again continues the portal', () => {
    const h = new Harness();
    h.client(query('begin'), parse('', 'select generate_series(1, 3)'), bind(), execute(2), sync());
    expect(h.sent()).toEqual(['Q(begin)', 'P()', 'B(,)', 'E(2)', 'S']);
    h.server(commandComplete('BEGIN'), rfq('T'));
    expect(h.server(parseComplete(), bindComplete(), dataRow('1'), dataRow('2'), portalSuspended())).toEqual(nones(5));
    expect(h.link.ledger.length).toBe(1);
    expect(h.server(rfq('T'))).toEqual([Ready]);
    expect(h.state).toEqual(IN_TX);

    // Two Executes in one batch: the first suspends, the second finishes.
    h.client(execute(1), execute(5), sync());
    expect(h.sent()).toEqual(['E(1)', 'E(5)', 'S']);
    expect(h.server(dataRow('3'), portalSuspended())).toEqual([None, None]);
    expect(h.link.ledger.length).toBe(2);
    expect(h.server(commandComplete('SELECT 0'), rfq('T'))).toEqual([None, Ready]);
    expect(h.state).toEqual(IN_TX);

    h.client(query('commit'));
    h.server(commandComplete('COMMIT'), rfq('I'));
    expect(h.state).toEqual(IDLE);
    expect(h.received()).toEqual(['C(BEGIN)', 'Z(T)', '1', '2', 'D(1)', 'D(2)', 's', 'Z(T)', 'D(3)', 's', 'C(SELECT 0)', 'Z(T)', 'C(COMMIT)', 'Z(I)']);
  });

  it('Close of a portal or statement is answered by CloseComplete (no router: forwarded as sent)', () => {
    const h = new Harness();
    h.client(closePortal('p1'), closeStatement('s1'), sync());
    expect(h.sent()).toEqual(['C(P:p1)', 'C(S:s1)', 'S']);
    expect(h.server(closeComplete(), closeComplete(), rfq('I'))).toEqual([None, None, Ready]);
    expect(h.received()).toEqual(['3', '3', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('Flush earns nothing of its own', () => {
    const h = new Harness();
    h.client(parse('', 'select 1'), flush());
    expect(h.sent()).toEqual(['P()', 'H']);
    expect(h.link.ledger.length).toBe(1);
    h.server(parseComplete());
    expect(h.link.ledger.empty).toBe(true);
    h.client(bind(), execute(), sync());
    h.server(bindComplete(), dataRow('1'), commandComplete('SELECT 1'), rfq('I'));
    expect(h.received()).toEqual(['1', '2', 'D(1)', 'C(SELECT 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });
});

describe('Attachment: Flush without Sync, then a simple Query (asyncpg)', () => {
  // asyncpg introspects with Parse / Describe / Flush, then runs a simple Query. The Query's
  // ReadyForQuery ends the server's implicit transaction: the link must end settled (a server
  // that waited for a Sync here stayed pinned to its client forever).
  it('Parse / Describe / Flush, then a Query: settled after the Query’s ReadyForQuery(I)', () => {
    const h = new Harness();
    h.client(parse('__asyncpg_stmt_1__', 'select * from items'), describeStatement('__asyncpg_stmt_1__'), flush());
    expect(h.sent()).toEqual(['P(__asyncpg_stmt_1__)', 'D(S:__asyncpg_stmt_1__)', 'H']);
    expect(h.state).toEqual(BUSY);
    expect(h.server(parseComplete(), parameterDescription(), rowDescription('id', 'label'))).toEqual(nones(3));
    expect(h.received()).toEqual(['1', 't', 'T(id,label)']);
    expect(h.link.ledger.empty).toBe(true);

    h.client(query('select 1'));
    expect(h.sent()).toEqual(['Q(select 1)']);
    expect(h.state).toEqual(BUSY);
    expect(h.server(rowDescription('a'), dataRow('1'), commandComplete('SELECT 1'), rfq('I'))).toEqual([None, None, None, Ready]);
    expect(h.received()).toEqual(['T(a)', 'D(1)', 'C(SELECT 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  for (const router of [false, true]) {
    it(`Parse / Describe / Flush, then COPY FROM STDIN as a simple Query${router ? ' (transaction mode: with a router)' : ''}`, () => {
      const h = new Harness({ router: router ? new StatementRouter() : null });
      h.client(parse('__asyncpg_stmt_2__', 'select id, label from items limit 0'), describeStatement('__asyncpg_stmt_2__'), flush());
      expect(h.sent()).toEqual(['P(__asyncpg_stmt_2__)', 'D(S:__asyncpg_stmt_2__)', 'H']);
      expect(h.server(parseComplete(), parameterDescription(), rowDescription('id', 'label'))).toEqual(nones(3));
      expect(h.received()).toEqual(['1', 't', 'T(id,label)']);

      h.client(query('COPY items (id, label) FROM STDIN (FORMAT binary)'));
      expect(h.sent()).toEqual(['Q(COPY items (id, label) FROM STDIN (FORMAT binary))']);
      expect(h.server(copyInResponse(2))).toEqual([None]);
      expect(h.received()).toEqual(['G']);
      expect(h.link.copyIn).toBe(true);
      expect(h.state).toEqual(BUSY);

      h.client(copyData('row1'), copyData('row2'), copyDone());
      expect(h.sent()).toEqual(['d(row1)', 'd(row2)', 'c']);
      expect(h.link.copyIn).toBe(false);
      expect(h.state).toEqual(BUSY);

      expect(h.server(commandComplete('COPY 2'))).toEqual([None]);
      expect(h.state).toEqual(BUSY);
      expect(h.server(rfq('I'))).toEqual([Ready]);
      expect(h.received()).toEqual(['C(COPY 2)', 'Z(I)']);
      expect(h.state).toEqual(IDLE);
      expect(h.link.ledger.empty).toBe(true);
      if (router) expect(h.cache.has('__asyncpg_stmt_2__')).toBe(true);
    });
  }

  it('all of it pipelined in one chunk', () => {
    const h = new Harness();
    h.client(parse('', 'select 1 as a'), describeStatement(''), flush(), query('select 2 as b'));
    expect(h.sent()).toEqual(['P()', 'D(S:)', 'H', 'Q(select 2 as b)']);
    expect(h.link.ledger.length).toBe(3);
    expect(h.server(parseComplete(), parameterDescription(), rowDescription('a'), rowDescription('b'), dataRow('2'), commandComplete('SELECT 1'), rfq('I'))).toEqual([
      ...nones(6),
      Ready,
    ]);
    expect(h.received()).toEqual(['1', 't', 'T(a)', 'T(b)', 'D(2)', 'C(SELECT 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  // BUG (attachment.ts, `busy` / `settled`): once every answer of an unsynced batch has arrived
  // the ledger is empty, so the link reports neither busy nor (with an idle last ReadyForQuery)
  // unsettled, although the server is still inside the batch's implicit transaction: per the
  // protocol, Parse/Bind/Execute ... Sync is one unit, and only Sync (or the next simple Query)
  // commits it; a Flush does not. ServerConnection.clientGone relies on `busy`: a client that
  // sends Parse/Bind/Execute(INSERT)/Flush and disconnects gets its server returned to the pool
  // with the INSERT uncommitted but not rolled back (txStatus still says 'I', so no ROLLBACK is
  // sent), and the next client's first Query or Sync commits it. A direct connection would roll
  // it back. Expected: busy (and not settled) from the first extended message until the Sync's
  // or a Query's ReadyForQuery.
  it('an unsynced batch whose answers all arrived is still busy, not settled (the server is inside its implicit transaction)', () => {
    const h = new Harness();
    h.client(parse('', 'insert into t values (1)'), bind(), execute(), flush());
    expect(h.server(parseComplete(), bindComplete(), commandComplete('INSERT 0 1'))).toEqual(nones(3));
    expect(h.received()).toEqual(['1', '2', 'C(INSERT 0 1)']);
    expect(h.link.ledger.empty).toBe(true);
    expect(h.state).toEqual(BUSY);
  });
});

describe('Attachment: errors skip the rest of an extended batch up to Sync', () => {
  it('an error at Parse: the answers owed before the Sync are dropped, the ReadyForQuery is still owed', () => {
    const h = new Harness();
    h.client(parse('', 'selec 1'), bind(), describePortal(), execute(), sync());
    h.sent();
    expect(h.server(error('42601', 'syntax error at or near "selec"'))).toEqual([None]);
    expect(h.received()).toEqual(['E(42601)']);
    expect(h.link.ledger.length).toBe(1);
    expect(h.link.ledger.next).toBe(Owed.Sync);
    expect(h.state).toEqual(BUSY);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('an error at Bind, with a second batch pipelined after the Sync', () => {
    const h = new Harness();
    h.client(parse('', 'select $1::int'), bind(), execute(), sync(), parse('', 'select 2'), bind(), execute(), sync());
    h.sent();
    expect(h.server(parseComplete(), error('22P02', 'invalid input syntax for type integer'))).toEqual([None, None]);
    expect(h.link.ledger.length).toBe(5); // the first Sync, then the second batch
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.state).toEqual(BUSY);
    expect(h.server(parseComplete(), bindComplete(), dataRow('2'), commandComplete('SELECT 1'), rfq('I'))).toEqual([...nones(4), Ready]);
    expect(h.received()).toEqual(['1', 'E(22P02)', 'Z(I)', '1', '2', 'D(2)', 'C(SELECT 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('an error at Execute after some rows, with later Executes of the batch dropped', () => {
    const h = new Harness();
    h.client(parse('', 'select 1/(2-x) from t'), bind(), execute(), bind(), execute(), closePortal(''), sync());
    h.sent();
    expect(h.link.ledger.length).toBe(7);
    expect(h.server(parseComplete(), bindComplete(), dataRow('1'), error('22012', 'division by zero'))).toEqual(nones(4));
    expect(h.link.ledger.length).toBe(1);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['1', '2', 'D(1)', 'E(22012)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('a Query inside a failed batch earns nothing: PostgreSQL ignores it until Sync', () => {
    const h = new Harness();
    h.client(parse('', 'selec'), bind(), execute(), query('select 1'), functionCall(1598), sync());
    expect(h.sent()).toEqual(['P()', 'B(,)', 'E', 'Q(select 1)', 'F', 'S']);
    expect(h.link.ledger.length).toBe(6);
    expect(h.server(error('42601', 'syntax error'))).toEqual([None]);
    expect(h.link.ledger.length).toBe(1);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['E(42601)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('an error before any Sync was sent: what the client sends next is not forwarded, up to and including its Sync', () => {
    const h = new Harness();
    h.client(parse('', 'selec'), bind(), describePortal(), execute(), flush());
    expect(h.sent()).toEqual(['P()', 'B(,)', 'D(P:)', 'E', 'H']);
    expect(h.server(error('42601', 'syntax error'))).toEqual([None]);
    expect(h.received()).toEqual(['E(42601)']);
    expect(h.link.ledger.empty).toBe(true);
    expect(h.link.ledger.skippingToSync).toBe(true);
    expect(h.state).toEqual(BUSY);

    // The server discards these: so does pgmux (they earn nothing, they are not even sent).
    h.client(bind(), execute(), flush(), query('select 1'), functionCall(1598), closeStatement('x'), copyData('x'), copyDone());
    expect(h.sent()).toEqual([]);
    expect(h.link.ledger.empty).toBe(true);
    expect(h.state).toEqual(BUSY);

    h.client(sync(), query('select 2'));
    expect(h.sent()).toEqual(['S', 'Q(select 2)']);
    expect(h.link.ledger.skippingToSync).toBe(false);
    expect(h.link.ledger.length).toBe(2);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.state).toEqual(BUSY);
    expect(h.server(rowDescription('a'), dataRow('2'), commandComplete('SELECT 1'), rfq('I'))).toEqual([None, None, None, Ready]);
    expect(h.received()).toEqual(['Z(I)', 'T(a)', 'D(2)', 'C(SELECT 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('an error at Sync itself (a deferred constraint failing at commit) keeps its ReadyForQuery owed', () => {
    const h = new Harness();
    h.client(parse('', 'insert into t values (1)'), bind(), execute(), sync());
    h.sent();
    expect(h.server(parseComplete(), bindComplete(), commandComplete('INSERT 0 1'))).toEqual(nones(3));
    expect(h.link.ledger.next).toBe(Owed.Sync);
    expect(h.server(error('23505', 'duplicate key value violates unique constraint'))).toEqual([None]);
    expect(h.link.ledger.length).toBe(1);
    expect(h.state).toEqual(BUSY);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['1', '2', 'C(INSERT 0 1)', 'E(23505)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('an error inside a transaction block: ReadyForQuery(E), then ROLLBACK', () => {
    const h = new Harness({ txStatus: TxStatus.InTransaction });
    h.client(parse('', 'select 1/0'), bind(), execute(), sync());
    h.sent();
    expect(h.server(parseComplete(), bindComplete(), error('22012', 'division by zero'), rfq('E'))).toEqual([...nones(3), Ready]);
    expect(h.state).toEqual(FAILED_TX);
    h.client(query('rollback'));
    h.server(commandComplete('ROLLBACK'), rfq('I'));
    expect(h.state).toEqual(IDLE);
  });

  it('a FATAL with nothing owed reaches the client', () => {
    const h = new Harness();
    expect(h.server(error('57P01', 'terminating connection due to administrator command', undefined, 'FATAL'))).toEqual([None]);
    expect(h.received()).toEqual(['E(57P01)']);
  });
});

describe('Attachment: COPY', () => {
  it('COPY FROM STDIN as a simple Query: CopyData and Syncs during the copy earn nothing, CopyDone ends it', () => {
    const h = new Harness();
    h.client(query('copy t from stdin'));
    h.sent();
    expect(h.server(copyInResponse())).toEqual([None]);
    expect(h.received()).toEqual(['G']);
    expect(h.link.copyIn).toBe(true);
    expect(h.state).toEqual(BUSY);

    h.client(copyData('1\n'), sync(), flush(), copyData('2\n'), sync());
    expect(h.sent()).toEqual(['d(1\n)', 'S', 'H', 'd(2\n)', 'S']);
    // The Query, and the two Syncs: ignored by the server if the COPY still runs when it reads them (dropped once
    // the COPY succeeds), answered if it failed on the data before them.
    expect(h.link.ledger.length).toBe(3);
    expect(h.state).toEqual(BUSY);

    h.client(copyDone());
    expect(h.sent()).toEqual(['c']);
    expect(h.link.copyIn).toBe(false);
    expect(h.state).toEqual(BUSY);
    expect(h.server(commandComplete('COPY 2'), rfq('I'))).toEqual([None, Ready]);
    expect(h.received()).toEqual(['C(COPY 2)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('COPY FROM STDIN as a simple Query that fails on its data: a Sync sent after the bad data is answered (seed 442)', () => {
    const h = new Harness();
    h.client(query('copy t from stdin'));
    h.sent();
    h.server(copyInResponse());
    h.client(copyData('1\n'), copyData('x\n'), sync(), parse('s1', 'select 1'), sync());
    expect(h.sent()).toEqual(['d(1\n)', 'd(x\n)', 'S', 'P(s1)', 'S']);
    // The server fails the COPY on "x", answers the Query, then reads the Sync outside the COPY: a ReadyForQuery.
    expect(h.server(error('22P02', 'invalid input syntax for type integer: "x"'), rfq('I'))).toEqual([None, Ready]);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.server(parseComplete(), rfq('I'))).toEqual([None, Ready]);
    expect(h.received()).toEqual(['G', 'E(22P02)', 'Z(I)', 'Z(I)', '1', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('... and one with a body earns an error, then its ReadyForQuery, before the next request’s answers (protocol fuzzer seed 1372)', () => {
    const h = new Harness();
    h.client(query('copy t from stdin'));
    h.sent();
    h.server(copyInResponse());
    const syncWithBody = Buffer.from([0x53, 0, 0, 0, 5, 0]);
    h.client(copyData('x\n'), syncWithBody, copyFail('why'), sync(), query('rollback'), query('select 1'));
    h.sent();
    h.server(error('22P02', 'invalid input syntax for type integer: "x"'), rfq('I'));
    expect(h.server(error('08P01', 'invalid message format'), rfq('I'))).toEqual([None, Ready]);
    h.server(rfq('I'));
    h.server(notice('there is no transaction in progress'), commandComplete('ROLLBACK'), rfq('I'));
    expect(h.state).toEqual(BUSY);
    h.server(dataRow('1'), commandComplete('SELECT 1'), rfq('I'));
    expect(h.received()).toEqual(['G', 'E(22P02)', 'Z(I)', 'E(08P01)', 'Z(I)', 'Z(I)', 'N(00000)', 'C(ROLLBACK)', 'Z(I)', 'D(1)', 'C(SELECT 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('... and one the server read inside the COPY, the bad line split around it: the ReadyForQuery taken for it was the next Sync\'s (protocol fuzzer seed 342262391)', () => {
    const h = new Harness();
    h.client(query('copy t from stdin'));
    h.sent();
    h.server(copyInResponse());
    // "1" then "x\n": one line, "1x", read whole only after the Sync, which the server ignores inside the COPY.
    h.client(copyData('1'), sync(), copyData('x\n'), copyFail('why'), sync(), query('rollback'), query('select 1'));
    h.sent();
    expect(h.server(error('22P02', 'invalid input syntax for type integer: "1x"'), rfq('I'))).toEqual([None, Ready]);
    // The CopyFail is dropped (no COPY any more); the Sync after it answers. Which Sync that was shows next.
    h.server(rfq('I'));
    h.server(notice('there is no transaction in progress'), commandComplete('ROLLBACK'), rfq('I'));
    expect(h.link.desyncReason).toBe('');
    expect(h.state).toEqual(BUSY);
    h.server(dataRow('1'), commandComplete('SELECT 1'), rfq('I'));
    expect(h.received()).toEqual(['G', 'E(22P02)', 'Z(I)', 'Z(I)', 'N(00000)', 'C(ROLLBACK)', 'Z(I)', 'D(1)', 'C(SELECT 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('... while a notification between the two ReadyForQuery says nothing about which Sync was answered', () => {
    const h = new Harness();
    h.client(query('copy t from stdin'));
    h.sent();
    h.server(copyInResponse());
    h.client(copyData('x\n'), sync(), copyFail('why'), sync(), query('select 1'));
    h.sent();
    // The COPY fails on "x" before the Sync: both Syncs are answered.
    h.server(error('22P02', 'invalid input syntax for type integer: "x"'), rfq('I'));
    h.server(rfq('I'));
    h.server(notification('ch'));
    h.server(rfq('I'));
    h.server(dataRow('1'), commandComplete('SELECT 1'), rfq('I'));
    expect(h.link.desyncReason).toBe('');
    expect(h.state).toEqual(IDLE);
  });

  it('... and one the server read inside the COPY before it failed is dropped at the next answer', () => {
    const h = new Harness();
    h.client(query('copy t from stdin'));
    h.sent();
    h.server(copyInResponse());
    h.client(copyData('1\n'), sync(), copyData('x\n'), copyDone(), parse('s1', 'select 1'), sync());
    h.sent();
    expect(h.server(error('22P02', 'invalid input syntax for type integer: "x"'), rfq('I'))).toEqual([None, Ready]);
    expect(h.server(parseComplete(), rfq('I'))).toEqual([None, Ready]);
    expect(h.received()).toEqual(['G', 'E(22P02)', 'Z(I)', '1', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('a Sync sent right after the COPY Query (before CopyInResponse) is dropped from the ledger', () => {
    const h = new Harness();
    h.client(query('copy t from stdin'), sync());
    expect(h.link.ledger.length).toBe(2);
    h.server(copyInResponse());
    expect(h.link.ledger.definite).toBe(1);
    h.client(copyData('1\n'), copyDone());
    expect(h.server(commandComplete('COPY 1'), rfq('I'))).toEqual([None, Ready]);
    expect(h.state).toEqual(IDLE);
  });

  it('COPY FROM STDIN from Execute: the Syncs sent right after the Execute are ignored by the server, the one after CopyDone answers', () => {
    const h = new Harness();
    h.client(parse('', 'copy t from stdin'), bind(), describePortal(), execute(), sync(), sync());
    expect(h.sent()).toEqual(['P()', 'B(,)', 'D(P:)', 'E', 'S', 'S']);
    expect(h.link.ledger.length).toBe(6);
    expect(h.server(parseComplete(), bindComplete(), noData(), copyInResponse())).toEqual(nones(4));
    expect(h.link.copyIn).toBe(true);
    expect(h.link.ledger.definite).toBe(1); // the Execute; both Syncs only answered if the COPY fails before them
    expect(h.link.ledger.next).toBe(Owed.Execute);
    expect(h.state).toEqual(BUSY);

    h.client(copyData('1\n'), sync(), copyData('2\n'), copyDone(), sync());
    expect(h.sent()).toEqual(['d(1\n)', 'S', 'd(2\n)', 'c', 'S']);
    expect(h.link.ledger.length).toBe(5); // Execute, the three Syncs sent during the COPY, and the Sync after CopyDone
    expect(h.server(commandComplete('COPY 2'))).toEqual([None]);
    expect(h.link.ledger.length).toBe(1); // the COPY succeeded: the server read the first Sync inside it
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['1', '2', 'n', 'G', 'C(COPY 2)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('CopyFail ends COPY IN; the server’s error and ReadyForQuery follow', () => {
    const h = new Harness();
    h.client(query('copy t from stdin'));
    h.server(copyInResponse());
    h.client(copyData('1\n'), copyFail('client gave up'));
    expect(h.sent()).toEqual(['Q(copy t from stdin)', 'd(1\n)', 'f']);
    expect(h.link.copyIn).toBe(false);
    expect(h.state).toEqual(BUSY);
    expect(h.server(error('57014', 'COPY from stdin failed: client gave up'), rfq('I'))).toEqual([None, Ready]);
    expect(h.received()).toEqual(['G', 'E(57014)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('an error during COPY IN (simple Query) ends it; data still in flight is forwarded and earns nothing', () => {
    const h = new Harness();
    h.client(query('copy t from stdin'));
    h.server(copyInResponse());
    h.client(copyData('oops\n'));
    expect(h.server(error('22P02', 'invalid input syntax for type integer'))).toEqual([None]);
    expect(h.link.copyIn).toBe(false);
    expect(h.state).toEqual(BUSY);
    // The client had not seen the error yet.
    h.client(copyData('2\n'), copyDone());
    expect(h.link.ledger.length).toBe(1);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.sent()).toEqual(['Q(copy t from stdin)', 'd(oops\n)', 'd(2\n)', 'c']);
    expect(h.received()).toEqual(['G', 'E(22P02)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('an error during COPY IN from Execute: the server skips to the next Sync (the one after the Execute was eaten by the COPY)', () => {
    const h = new Harness();
    h.client(parse('', 'copy t from stdin'), bind(), execute(), sync());
    h.server(parseComplete(), bindComplete(), copyInResponse());
    expect(h.link.ledger.definite).toBe(1);
    h.client(copyData('oops\n'));
    expect(h.server(error('22P02', 'invalid input syntax for type integer'))).toEqual([None]);
    expect(h.link.copyIn).toBe(false);
    expect(h.link.ledger.empty).toBe(true);
    expect(h.link.ledger.skippingToSync).toBe(true);
    expect(h.state).toEqual(BUSY);
    h.sent();
    h.client(copyData('2\n'), copyDone(), sync());
    expect(h.sent()).toEqual(['S']);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['1', '2', 'G', 'E(22P02)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('... and a Sync sent after COPY data is the one the server skips to when the data fails (protocol fuzzer seed 1337)', () => {
    const h = new Harness();
    // All sent before the CopyInResponse: the Sync comes after the bad line, so the server, having failed the
    // COPY there, reads it as the Sync it skips to; the Bind after it runs (and fails on its own).
    h.client(parse('', 'copy t from stdin'), bind(), execute(), copyData('2\n'), copyData('1\t2\n'), sync(), bindWith('', ['1']), sync(), query('select 1'));
    h.sent();
    h.server(parseComplete(), bindComplete(), copyInResponse(), error('22P04', 'extra data after last expected column'), rfq('I'));
    h.server(error('08P01', 'bind message supplies 1 parameters, but prepared statement "" requires 0'), rfq('I'));
    expect(h.state).toEqual(BUSY);
    h.server(dataRow('1'), commandComplete('SELECT 1'), rfq('I'));
    expect(h.received()).toEqual(['1', '2', 'G', 'E(22P04)', 'Z(I)', 'E(08P01)', 'Z(I)', 'D(1)', 'C(SELECT 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('COPY TO STDOUT as a simple Query and from Execute: everything is forwarded', () => {
    const h = new Harness();
    h.client(query('copy t to stdout'));
    h.sent();
    expect(h.server(copyOutResponse(), copyDataB('1\n'), copyDataB('2\n'), copyDoneB(), commandComplete('COPY 2'))).toEqual(nones(5));
    expect(h.link.copyIn).toBe(false);
    expect(h.state).toEqual(BUSY);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['H', 'd(1\n)', 'd(2\n)', 'c', 'C(COPY 2)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);

    h.client(parse('', 'copy t to stdout'), bind(), execute(), sync());
    expect(h.server(parseComplete(), bindComplete(), copyOutResponse(), copyDataB('1\n'), copyDoneB(), commandComplete('COPY 1'))).toEqual(nones(6));
    expect(h.link.ledger.length).toBe(1);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['1', '2', 'H', 'd(1\n)', 'c', 'C(COPY 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('COPY in the middle of a pipeline: answers before it, the copy, then a Query sent after CopyDone', () => {
    const h = new Harness();
    // An extended batch, a COPY Query, its data and CopyDone, and a COPY OUT Query, all sent at once.
    h.client(parse('', 'select 1'), bind(), execute(), sync(), query('copy t from stdin'), copyData('1\n'), copyDone(), query('copy t to stdout'));
    expect(h.link.ledger.length).toBe(6);
    expect(h.server(parseComplete(), bindComplete(), dataRow('1'), commandComplete('SELECT 1'), rfq('I'))).toEqual([...nones(4), Ready]);
    expect(h.state).toEqual(BUSY);
    expect(h.server(copyInResponse())).toEqual([None]);
    expect(h.link.copyIn).toBe(false); // the client ended it already
    expect(h.link.ledger.length).toBe(2);
    expect(h.server(commandComplete('COPY 1'), rfq('I'))).toEqual([None, Ready]);
    expect(h.state).toEqual(BUSY);
    expect(h.server(copyOutResponse(), copyDataB('1\n'), copyDoneB(), commandComplete('COPY 1'), rfq('I'))).toEqual([...nones(4), Ready]);
    expect(h.received()).toEqual(['1', '2', 'D(1)', 'C(SELECT 1)', 'Z(I)', 'G', 'C(COPY 1)', 'Z(I)', 'H', 'd(1\n)', 'c', 'C(COPY 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('a request sent after a Query that turns out to start COPY IN (before CopyDone) breaks the COPY', () => {
    // PostgreSQL reads the second Query as part of the COPY: "unexpected message type 0x51", then it closes. In
    // transaction mode pgmux says so itself (the router may not have sent the request as it came)...
    const h = new Harness({ router: new StatementRouter() });
    h.client(query('copy t from stdin'), sync(), query('select 1'), copyData('1\n'), copyDone());
    expect(h.server(copyInResponse())).toEqual([LinkEvent.CopyBroken]);
    expect(h.link.copyBrokenBy).toBe(0x51);
    expect(h.received()).toEqual(['G']);
    // ... in session mode the server answers it (the Query stays owed: a COPY that fails on its data first reads it
    // as a Query after all).
    const s = new Harness();
    s.client(query('copy t from stdin'), sync(), copyData('x\n'), query('select 1'));
    expect(s.server(copyInResponse())).toEqual([None]);
    expect(s.link.copyIn).toBe(false);
    expect(s.server(error('22P02', 'invalid input syntax for type integer'), rfq('I'))).toEqual([None, Ready]);
    expect(s.server(commandComplete('SELECT 1'), rfq('I'))).toEqual([None, Ready]);
    expect(s.state).toEqual(IDLE);
  });

  it('a Flush with a body after an Execute: dropped when COPY IN begins, refused by the server (skip to Sync) otherwise', () => {
    const copy = new Harness();
    copy.client(parse('', 'copy t from stdin'), bind(), execute(), msg('H', Buffer.from('xy')), sync(), copyData('1\n'), copyDone(), sync());
    expect(copy.link.copyMayBeOpen).toBe(false);
    expect(copy.server(parseComplete(), bindComplete(), copyInResponse(), commandComplete('COPY 1'), rfq('I'))).toEqual([...nones(4), Ready]);
    expect(copy.state).toEqual(IDLE);

    const select = new Harness();
    select.client(parse('', 'select 1'), bind(), execute(), msg('H', Buffer.from('xy')));
    expect(select.link.copyMayBeOpen).toBe(true);
    select.client(parse('', 'select 2'), sync());
    expect(select.server(parseComplete(), bindComplete(), dataRow('1'), commandComplete('SELECT 1'), error('08P01', 'invalid message format'), rfq('I'))).toEqual([...nones(5), Ready]);
    expect(select.received()).toEqual(['1', '2', 'D(1)', 'C(SELECT 1)', 'E(08P01)', 'Z(I)']);
    expect(select.state).toEqual(IDLE);
  });

  it('Syncs after an Execute stay owed when it does not start COPY; Queries sent later do not change what a COPY would swallow', () => {
    // (seed 6: the Queries after CopyDone reset the count of Syncs the COPY ignores, and the link lost step.)
    const h = new Harness();
    h.client(parse('', 'copy t from stdin'), bind(), execute(), copyData('1\n'), sync(), sync(), copyDone(), query('rollback'), query('select 1'));
    expect(h.server(parseComplete(), bindComplete(), copyInResponse())).toEqual(nones(3));
    expect(h.link.copyIn).toBe(false);
    expect(h.link.ledger.definite).toBe(3); // the Execute and the two Queries: both Syncs are the COPY's to ignore
    expect(h.server(commandComplete('COPY 1'), commandComplete('ROLLBACK'), rfq('I'))).toEqual([None, None, Ready]);
    expect(h.server(commandComplete('SELECT 1'), rfq('I'))).toEqual([None, Ready]);
    expect(h.state).toEqual(IDLE);
  });

  it('COPY from Execute in the second of two pipelined batches', () => {
    const h = new Harness();
    h.client(parse('', 'select 1'), bind(), execute(), sync(), parse('', 'copy t from stdin'), bind(), execute(), sync());
    expect(h.server(parseComplete(), bindComplete(), dataRow('1'), commandComplete('SELECT 1'), rfq('I'))).toEqual([...nones(4), Ready]);
    expect(h.server(parseComplete(), bindComplete(), copyInResponse())).toEqual(nones(3));
    expect(h.link.ledger.definite).toBe(1);
    h.client(copyData('1\n'), copyDone(), sync());
    expect(h.server(commandComplete('COPY 1'), rfq('I'))).toEqual([None, Ready]);
    expect(h.received()).toEqual(['1', '2', 'D(1)', 'C(SELECT 1)', 'Z(I)', '1', '2', 'G', 'C(COPY 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('a COPY FROM STDIN inside a multi-statement Query, followed by more results', () => {
    const h = new Harness();
    h.client(query('copy t from stdin; select 1'));
    h.server(copyInResponse());
    h.client(copyData('1\n'), copyDone());
    expect(h.server(commandComplete('COPY 1'), rowDescription('a'), dataRow('1'), commandComplete('SELECT 1'), rfq('I'))).toEqual([...nones(4), Ready]);
    expect(h.received()).toEqual(['G', 'C(COPY 1)', 'T(a)', 'D(1)', 'C(SELECT 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });
});

describe('Attachment: an answer nobody asked for is a desynchronisation', () => {
  const cases: Array<[string, () => Harness, Buffer]> = [
    ['ParseComplete with nothing owed', () => new Harness(), parseComplete()],
    ['BindComplete with nothing owed', () => new Harness(), bindComplete()],
    ['CloseComplete with nothing owed', () => new Harness(), closeComplete()],
    ['ReadyForQuery with nothing owed', () => new Harness(), rfq('I')],
    ['ParameterDescription with nothing owed', () => new Harness(), parameterDescription(23)],
    ['NoData with nothing owed', () => new Harness(), noData()],
    ['CopyInResponse with nothing owed', () => new Harness(), copyInResponse()],
    ['BindComplete while a ParseComplete is owed', () => new Harness().client(parse('', 'select 1'), bind(), sync()), bindComplete()],
    ['ParseComplete while a BindComplete is owed', () => new Harness().client(bind(), execute(), sync()), parseComplete()],
    ['ReadyForQuery while extended answers are owed before the Sync', () => new Harness().client(parse('', 'select 1'), sync()), rfq('I')],
    ['ParameterDescription when describing a portal', () => new Harness().client(describePortal(), sync()), parameterDescription(23)],
    ['ParameterDescription for a simple Query', () => new Harness().client(query('select 1')), parameterDescription(23)],
    ['NoData while an Execute is owed', () => new Harness().client(execute(), sync()), noData()],
    ['CopyInResponse while a Bind is owed', () => new Harness().client(bind(), execute(), sync()), copyInResponse()],
    ['CloseComplete while a Sync is owed', () => new Harness().client(sync()), closeComplete()],
    ['ParameterDescription while the Parse before the Describe is owed', () => new Harness().client(parse('', 'select 1'), describeStatement(''), sync()), parameterDescription(23)],
  ];
  for (const [name, setup, answer] of cases) {
    it(name, () => {
      const h = setup();
      expect(h.server(answer)).toEqual([Desync]);
      expect(h.link.desyncReason).toMatch(/^got '.' while owing /);
      expect(h.received()).toEqual([]);
    });
  }

  it('says what was owed', () => {
    const h = new Harness();
    h.server(rfq('I'));
    expect(h.link.desyncReason).toBe("got 'Z' while owing nothing");
    h.client(sync());
    h.server(parseComplete());
    expect(h.link.desyncReason).toBe(`got '1' while owing message kind ${Owed.Sync}`);
  });

  it('notices, notifications and ParameterStatus may come at any time', () => {
    const h = new Harness();
    expect(h.server(notice('n'), notification('ch'), parameterStatus('application_name', 'x'))).toEqual(nones(3));
    expect(h.received()).toEqual(['N(00000)', 'A', 'S(application_name=x)']);
    expect(h.state).toEqual(IDLE);
  });

  // BUG (attachment.ts, fromServer): only ParseComplete/BindComplete/CloseComplete/
  // ParameterDescription/NoData/CopyInResponse/ReadyForQuery are checked against the ledger.
  // Result messages that PostgreSQL only ever sends in answer to a Query or Execute
  // (RowDescription, DataRow, CommandComplete, EmptyQueryResponse, PortalSuspended,
  // CopyOutResponse, CopyData, CopyDone, FunctionCallResponse) are forwarded to the client with
  // LinkEvent.None when nothing at all is owed, or when what is owed next is a ParseComplete or
  // BindComplete, so a desynchronised server is not detected there and the client gets stray
  // messages. (RowDescription is also a Describe's answer: it is checked when a Describe is next.)
  // Expected: Desync, nothing forwarded.
  const unasked: Array<[string, Buffer]> = [
    ['RowDescription', rowDescription('a')],
    ['DataRow', dataRow('1')],
    ['CommandComplete', commandComplete('SELECT 1')],
    ['EmptyQueryResponse', emptyQuery()],
    ['PortalSuspended', portalSuspended()],
    ['CopyOutResponse', copyOutResponse()],
    ['CopyData', copyDataB('x')],
    ['CopyDone', copyDoneB()],
    ['FunctionCallResponse', functionCallResponse('1')],
  ];
  for (const [name, answer] of unasked) {
    it.fails(`${name} with nothing owed`, () => {
      const h = new Harness();
      expect(h.server(answer)).toEqual([Desync]);
      expect(h.received()).toEqual([]);
    });
  }
  for (const [name, answer] of unasked.slice(0, 3)) {
    it.fails(`${name} while a ParseComplete is owed`, () => {
      const h = new Harness().client(parse('', 'select 1'), bind(), describePortal(), execute(), sync());
      expect(h.server(answer)).toEqual([Desync]);
      expect(h.received()).toEqual([]);
    });
  }
});

describe('Attachment with a StatementRouter (transaction mode): synthesized and swallowed replies', () => {
  it('a Parse of a statement the server has already is answered by pgmux, in its turn (after the answers owed before it)', () => {
    const cache = new PreparedCache(100);
    preparedByAnotherClient(cache, parse('s1', 'select 1'));
    const h = new Harness({ cache, router: new StatementRouter() });
    h.client(parse('', 'select 2'), bind(), execute(), parse('s1', 'select 1'), bind('s1'), execute(), sync());
    // The client's Parse of s1 is not sent: the server has it.
    expect(h.sent()).toEqual(['P()', 'B(,)', 'E', 'B(,s1)', 'E', 'S']);
    expect(h.received()).toEqual([]); // pgmux's ParseComplete waits its turn
    expect(h.counters).toEqual({ preparedHits: 2, preparedMisses: 0 });
    expect(h.link.ledger.length).toBe(7);

    expect(h.server(parseComplete())).toEqual([None]);
    expect(h.received()).toEqual(['1']);
    expect(h.server(bindComplete())).toEqual([None]);
    expect(h.received()).toEqual(['2']);
    expect(h.server(dataRow('2'), commandComplete('SELECT 1'))).toEqual([None, None]);
    // The Execute's CommandComplete, then pgmux's ParseComplete for s1 right after it.
    expect(h.received()).toEqual(['D(2)', 'C(SELECT 1)', '1']);
    expect(h.link.ledger.length).toBe(3);
    expect(h.server(bindComplete(), dataRow('1'), commandComplete('SELECT 1'), rfq('I'))).toEqual([...nones(3), Ready]);
    expect(h.received()).toEqual(['2', 'D(1)', 'C(SELECT 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('an error naming a statement pgmux prepared under an alias names it as the client did (seed 919197)', () => {
    const cache = new PreparedCache(100);
    preparedByAnotherClient(cache, parse('s1', 'select 1'));
    const h = new Harness({ cache, router: new StatementRouter() });
    h.client(parse('s1', 'select $1::int'), bind('s1'), sync());
    const sent = h.sent();
    const alias = /^B\(,(pgmux_[0-9a-f]+)\)$/.exec(sent[1])?.[1];
    expect(alias, sent.join(' ')).toBeDefined();
    h.server(parseComplete(), error('08P01', `bind message supplies 0 parameters, but prepared statement "${alias}" requires 1`), rfq('I'));
    expect(errorFieldsIn(h.receivedBytes()).get('M')).toBe('bind message supplies 0 parameters, but prepared statement "s1" requires 1');
  });

  it('a synthesized ParseComplete right behind an owed BindComplete goes out with it', () => {
    const cache = new PreparedCache(100);
    preparedByAnotherClient(cache, parse('s1', 'select 1'));
    const h = new Harness({ cache, router: new StatementRouter() });
    h.client(parse('', 'select 2'), bind('', 'p'), parse('s1', 'select 1'), closeStatement('s1'), describePortal('p'), sync());
    expect(h.sent()).toEqual(['P()', 'B(p,)', 'D(P:p)', 'S']);
    expect(h.received()).toEqual([]);
    expect(h.link.ledger.length).toBe(6);
    expect(h.server(parseComplete(), bindComplete())).toEqual([None, None]);
    // BindComplete, then pgmux's ParseComplete and CloseComplete: both their turns have come.
    expect(h.received()).toEqual(['1', '2', '1', '3']);
    expect(h.link.ledger.length).toBe(2);
    expect(h.server(noData(), rfq('I'))).toEqual([None, Ready]);
    expect(h.received()).toEqual(['n', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('a synthesized ParseComplete pipelined behind a Sync goes out after its ReadyForQuery', () => {
    const cache = new PreparedCache(100);
    preparedByAnotherClient(cache, parse('s1', 'select 1'));
    const h = new Harness({ cache, router: new StatementRouter() });
    // (Nothing before it ran: after an Execute or a Query in an earlier segment pgmux checks the Parse on the
    // server first, as the transaction may have failed: see the test for seed 101028.)
    h.client(parse('', 'select 0'), bind(), sync(), parse('s1', 'select 1'), bind('s1'), execute(), sync());
    expect(h.sent()).toEqual(['P()', 'B(,)', 'S', 'B(,s1)', 'E', 'S']);
    expect(h.server(parseComplete(), bindComplete())).toEqual([None, None]);
    expect(h.received()).toEqual(['1', '2']);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['Z(I)', '1']);
    expect(h.state).toEqual(BUSY);
    expect(h.server(bindComplete(), commandComplete('SELECT 1'), rfq('I'))).toEqual([None, None, Ready]);
    expect(h.received()).toEqual(['2', 'C(SELECT 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('a synthesized ParseComplete with nothing owed before it goes out at once', () => {
    const cache = new PreparedCache(100);
    preparedByAnotherClient(cache, parse('s1', 'select 1'));
    const h = new Harness({ cache, router: new StatementRouter() });
    h.client(parse('s1', 'select 1'));
    expect(h.sent()).toEqual([]);
    expect(h.received()).toEqual(['1']);
    expect(h.link.ledger.empty).toBe(true);
    h.client(describeStatement('s1'), sync());
    expect(h.sent()).toEqual(['D(S:s1)', 'S']);
    expect(h.server(parameterDescription(), rowDescription('a'), rfq('I'))).toEqual([None, None, Ready]);
    expect(h.received()).toEqual(['t', 'T(a)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('a synthesized ParseComplete behind a failing message is dropped with it (PostgreSQL would skip the Parse)', () => {
    const cache = new PreparedCache(100);
    preparedByAnotherClient(cache, parse('s1', 'select 1'));
    const h = new Harness({ cache, router: new StatementRouter() });
    h.client(parse('', 'select 1/0'), bind(), execute(), parse('s1', 'select 1'), bind('s1'), execute(), sync());
    h.sent();
    expect(h.server(parseComplete(), bindComplete(), error('22012', 'division by zero'))).toEqual(nones(3));
    expect(h.link.ledger.length).toBe(1);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['1', '2', 'E(22012)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
    // The server still has s1 (pgmux's Parse stood for nothing sent) ...
    expect(h.cache.has('s1')).toBe(true);
    // ... but the client does not: in its own session that Parse never ran.
    expect(h.router?.has('s1')).toBe(false);
    h.client(parse('s1', 'select 1'), sync());
    expect(h.sent()).toEqual(['S']); // prepared anew (answered by pgmux again), not refused as a duplicate
    h.server(rfq('I'));
    expect(h.received()).toEqual(['1', 'Z(I)']);
  });

  it('a Close of a named statement is answered by pgmux in its turn; the server keeps the statement', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('s1', 'select 1'), sync());
    expect(h.sent()).toEqual(['P(s1)', 'S']);
    h.server(parseComplete(), rfq('I'));
    h.received();

    h.client(bind('s1'), execute(), closeStatement('s1'), sync());
    expect(h.sent()).toEqual(['B(,s1)', 'E', 'S']);
    expect(h.router?.has('s1')).toBe(false);
    expect(h.received()).toEqual([]);
    expect(h.server(bindComplete(), dataRow('1'))).toEqual([None, None]);
    expect(h.received()).toEqual(['2', 'D(1)']);
    expect(h.server(commandComplete('SELECT 1'))).toEqual([None]);
    expect(h.received()).toEqual(['C(SELECT 1)', '3']);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['Z(I)']);
    expect(h.state).toEqual(IDLE);
    expect(h.cache.has('s1')).toBe(true);
  });

  it('Close of a portal, or of the unnamed statement this client has on this server, is forwarded', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('', 'select 1'), closePortal('p'), closeStatement(''), sync());
    expect(h.sent()).toEqual(['P()', 'C(P:p)', 'C(S:)', 'S']);
    expect(h.server(parseComplete(), closeComplete(), closeComplete(), rfq('I'))).toEqual([None, None, None, Ready]);
    expect(h.received()).toEqual(['1', '3', '3', 'Z(I)']);
  });

  it('Close of an unnamed statement the client does not have here is answered by pgmux (the server’s is another client’s)', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(closeStatement(''), sync());
    expect(h.sent()).toEqual(['S']);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['3', 'Z(I)']);
  });

  it('a Bind of the unnamed statement by a client that has none fails as in its own session, whatever the server has', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(bind(''), execute(), sync());
    expect(h.sent()).toEqual(['B(,pgmux_unprepared_unnamed)', 'E', 'S']);
    expect(h.server(error('26000', 'prepared statement "pgmux_unprepared_unnamed" does not exist'), rfq('I'))).toEqual([None, Ready]);
    expect(errorFieldsIn(h.receivedBytes()).get('M')).toBe('unnamed prepared statement does not exist');
  });

  it('a statement this server lacks is prepared by an injected Parse whose ParseComplete is swallowed', () => {
    const router = new StatementRouter();
    // The client prepared s1 on another server.
    const first = new Harness({ router });
    first.client(parse('s1', 'select $1::int', [23]), sync());
    first.server(parseComplete(), rfq('I'));

    const h = new Harness({ router });
    h.client(bind('s1'), describePortal(), execute(), sync());
    expect(h.sent()).toEqual(['P(s1)', 'B(,s1)', 'D(P:)', 'E', 'S']);
    expect(h.counters).toEqual({ preparedHits: 0, preparedMisses: 1 });
    expect(h.link.ledger.length).toBe(5);
    expect(h.server(parseComplete())).toEqual([None]);
    expect(h.received()).toEqual([]);
    expect(h.server(bindComplete(), rowDescription('int4'), dataRow('5'), commandComplete('SELECT 1'), rfq('I'))).toEqual([...nones(4), Ready]);
    expect(h.received()).toEqual(['2', 'T(int4)', 'D(5)', 'C(SELECT 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
    expect(h.cache.has('s1')).toBe(true);

    // Now the server has it: the next Bind goes alone.
    h.client(bind('s1'), execute(), sync());
    expect(h.sent()).toEqual(['B(,s1)', 'E', 'S']);
    expect(h.counters).toEqual({ preparedHits: 1, preparedMisses: 1 });
  });

  it('a Describe of a statement this server lacks injects its Parse too', () => {
    const router = new StatementRouter();
    new Harness({ router }).client(parse('s1', 'select 1'));
    const h = new Harness({ router });
    h.client(describeStatement('s1'), sync());
    expect(h.sent()).toEqual(['P(s1)', 'D(S:s1)', 'S']);
    expect(h.server(parseComplete(), parameterDescription(), rowDescription('a'), rfq('I'))).toEqual([...nones(3), Ready]);
    expect(h.received()).toEqual(['t', 'T(a)', 'Z(I)']);
  });

  it('an injected Parse that never runs (an earlier message failed) is forgotten by the server’s cache', () => {
    const router = new StatementRouter();
    new Harness({ router }).client(parse('s1', 'select 1'));
    const h = new Harness({ router });
    h.client(parse('', 'selec'), bind(), execute(), bind('s1'), execute(), sync());
    expect(h.sent()).toEqual(['P()', 'B(,)', 'E', 'P(s1)', 'B(,s1)', 'E', 'S']);
    expect(h.cache.has('s1')).toBe(true);
    h.server(error('42601', 'syntax error'), rfq('I'));
    expect(h.cache.has('s1')).toBe(false);
    expect(h.received()).toEqual(['E(42601)', 'Z(I)']);
    // So the next use prepares it again.
    h.client(bind('s1'), execute(), sync());
    expect(h.sent()).toEqual(['P(s1)', 'B(,s1)', 'E', 'S']);
  });

  it('the client’s own Parse that fails is forgotten by the server’s cache and by the router', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('s1', 'selec'), sync());
    expect(h.sent()).toEqual(['P(s1)', 'S']);
    expect(h.cache.has('s1')).toBe(true);
    expect(h.router?.has('s1')).toBe(true);
    h.server(error('42601', 'syntax error'), rfq('I'));
    expect(h.cache.has('s1')).toBe(false);
    expect(h.router?.has('s1')).toBe(false);
    expect(h.received()).toEqual(['E(42601)', 'Z(I)']);
    // The client may prepare the name again.
    h.client(parse('s1', 'select 1'), sync());
    expect(h.sent()).toEqual(['P(s1)', 'S']);
  });

  it('a client Parse skipped after an earlier error leaves no statement, on the server or in the client’s session', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('', 'select 1/0'), bind(), execute(), parse('s2', 'select 2'), sync());
    expect(h.sent()).toEqual(['P()', 'B(,)', 'E', 'P(s2)', 'S']);
    h.server(parseComplete(), bindComplete(), error('22012', 'division by zero'), rfq('I'));
    expect(h.received()).toEqual(['1', '2', 'E(22012)', 'Z(I)']);
    expect(h.cache.has('s2')).toBe(false);
    expect(h.router?.has('s2')).toBe(false);
    // Bind of it: nobody has it, forwarded as named, the server's own 26000 passes.
    h.client(bind('s2'), execute(), sync());
    expect(h.sent()).toEqual(['B(,s2)', 'E', 'S']);
  });

  it('a duplicate Parse in an aborted transaction gets what PostgreSQL checks first (25P02), not 42P05', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('s1', 'select 1'), sync());
    h.server(parseComplete(), rfq('I'));
    h.sent();
    h.received();
    h.client(parse('s1', 'select 1'), sync());
    expect(h.sent()).toEqual(['P(pgmux check)', 'C(S:pgmux check)', 'P(pgmux always fails)', 'S']);
    h.server(error('25P02', 'current transaction is aborted, commands ignored until end of transaction block'), rfq('E'));
    expect(h.received()).toEqual(['E(25P02)', 'Z(E)']);
    expect(h.router?.has('s1')).toBe(true);
  });

  it('a Parse of a name the client’s session has already fails in the server’s stream, with 42P05 (the batch skipped to Sync)', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('s1', 'select 1'), sync());
    h.server(parseComplete(), rfq('I'));
    h.sent();
    h.received();

    h.client(query('select 0'), parse('s1', 'select 2'), bind('s1'), execute(), sync());
    const sent = h.sent();
    // In its place the same SQL Parsed under pgmux's name (PostgreSQL's checks before the name is refused) and
    // closed, then a Parse made to fail (pgmux's), so the server skips the rest as PostgreSQL would. All named:
    // the server's unnamed statement is left alone, as the client's refused Parse leaves it.
    expect(sent).toEqual(['Q(select 0)', 'P(pgmux check)', 'C(S:pgmux check)', 'P(pgmux always fails)', 'B(,s1)', 'E', 'S']);
    expect(h.server(commandComplete('SELECT 1'), rfq('I'))).toEqual([None, Ready]);
    expect(h.server(parseComplete(), closeComplete(), error('42601', 'cannot insert multiple commands into a prepared statement'))).toEqual([None, None, None]);
    expect(h.link.ledger.length).toBe(1);
    const got = h.receivedBytes();
    expect(frames(got).map(backendToken)).toEqual(['C(SELECT 1)', 'Z(I)', 'E(42P05)']);
    expect(errorFieldsIn(got).get('M')).toBe('prepared statement "s1" already exists');
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.state).toEqual(IDLE);
    // The first s1 is still the client's and the server's.
    expect(h.router?.has('s1')).toBe(true);
    expect(h.cache.has('s1')).toBe(true);
    h.client(bind('s1'), execute(), sync());
    expect(h.sent()).toEqual(['B(,s1)', 'E', 'S']);
  });

  // The duplicate check runs when a Parse is routed, against statements registered by Parses whose fate may not be
  // known yet: a later segment's Parse of a name an earlier, unanswered segment Parsed waits for that answer (the
  // earlier Parse may fail or be skipped). P(s1, bad) S P(s1, good) S sent together: PostgreSQL says E(42601) Z 1 Z.
  it('a pipelined Parse of a name whose earlier in-flight Parse then failed is not refused', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('s1', 'selec 1'), sync(), parse('s1', 'select 1'), sync());
    expect(h.sent()).toEqual(['P(s1)', 'S']);
    h.server(error('42601', 'syntax error'), rfq('I'));
    // Now known: the name is free.
    expect(h.sent()).toEqual(['P(s1)', 'S']);
    h.server(parseComplete(), rfq('I'));
    expect(h.received()).toEqual(['E(42601)', 'Z(I)', '1', 'Z(I)']);
    expect(h.router?.has('s1')).toBe(true);
    expect(h.cache.has('s1')).toBe(true);
  });

  it('a Bind of a statement Parsed in an earlier segment still in flight does not wait', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('s1', 'select 1'), sync(), bind('s1'), execute(), sync());
    expect(h.sent()).toEqual(['P(s1)', 'S', 'B(,s1)', 'E', 'S']);
  });

  it('a statement Closed in a segment that fails before the Close is still there for the next segment', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('s1', 'select 1'), sync());
    h.server(parseComplete(), rfq('I'));
    h.sent();
    h.received();
    h.client(bind('nope'), closeStatement('s1'), sync(), bind('s1'), execute(), sync());
    expect(h.sent()).toEqual(['B(,nope)', 'S']);
    h.server(error('26000', 'prepared statement "nope" does not exist'), rfq('I'));
    expect(h.sent()).toEqual(['B(,s1)', 'E', 'S']);
    h.server(bindComplete(), dataRow('1'), commandComplete('SELECT 1'), rfq('I'));
    expect(h.received()).toEqual(['E(26000)', 'Z(I)', '2', 'D(1)', 'C(SELECT 1)', 'Z(I)']);
  });

  it('a Parse of a name prepared earlier in the same batch is refused too', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('s1', 'select 1'), parse('s1', 'select 1'), sync());
    expect(h.sent()).toEqual(['P(s1)', 'P(pgmux check)', 'C(S:pgmux check)', 'P(pgmux always fails)', 'S']);
    expect(h.server(parseComplete(), parseComplete(), closeComplete(), error('42601', 'cannot insert multiple commands into a prepared statement'), rfq('I'))).toEqual([None, None, None, None, Ready]);
    expect(h.received()).toEqual(['1', 'E(42P05)', 'Z(I)']);
    expect(h.router?.has('s1')).toBe(true);
  });

  it('with tracking off (max_prepared_statements 0) named statements pass through as sent', () => {
    const h = new Harness({ router: new StatementRouter(false) });
    h.client(parse('s1', 'select 1'), parse('s1', 'select 1'), sync());
    expect(h.sent()).toEqual(['P(s1)', 'P(s1)', 'S']);
    expect(h.router?.has('s1')).toBe(false);
  });

  it('an LRU eviction is a Close pgmux sends before the Parse; its CloseComplete is swallowed', () => {
    const cache = new PreparedCache(1);
    preparedByAnotherClient(cache, parse('other', 'select 0'));
    const router = new StatementRouter();
    new Harness({ router }).client(parse('s1', 'select 1'));
    const h = new Harness({ cache, router });
    h.client(bind('s1'), execute(), sync());
    expect(h.sent()).toEqual(['C(S:other)', 'P(s1)', 'B(,s1)', 'E', 'S']);
    expect(cache.has('other')).toBe(false);
    expect(cache.has('s1')).toBe(true);
    expect(h.server(closeComplete(), parseComplete())).toEqual([None, None]);
    expect(h.received()).toEqual([]);
    expect(h.server(bindComplete(), dataRow('1'), commandComplete('SELECT 1'), rfq('I'))).toEqual([...nones(3), Ready]);
    expect(h.received()).toEqual(['2', 'D(1)', 'C(SELECT 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('the client’s own Parse evicting another statement: Close swallowed, ParseComplete forwarded', () => {
    const cache = new PreparedCache(1);
    preparedByAnotherClient(cache, parse('other', 'select 0'));
    const h = new Harness({ cache, router: new StatementRouter() });
    h.client(parse('s1', 'select 1'), sync());
    expect(h.sent()).toEqual(['C(S:other)', 'P(s1)', 'S']);
    expect(h.server(closeComplete(), parseComplete(), rfq('I'))).toEqual([None, None, Ready]);
    expect(h.received()).toEqual(['1', 'Z(I)']);
  });

  it('a statement the client never prepared but the server has (another client’s): a stand-in name, the client’s own error', () => {
    const cache = new PreparedCache(100);
    preparedByAnotherClient(cache, parse('x', 'select 1'));
    const h = new Harness({ cache, router: new StatementRouter() });
    h.client(bind('x'), execute(), sync());
    expect(h.sent()).toEqual(['B(,pgmux_unprepared_x)', 'E', 'S']);
    expect(h.server(error('26000', 'prepared statement "pgmux_unprepared_x" does not exist'))).toEqual([None]);
    expect(h.link.ledger.length).toBe(1);
    const got = h.receivedBytes();
    expect(frames(got).map(backendToken)).toEqual(['E(26000)']);
    const f = errorFieldsIn(got);
    expect(f.get('M')).toBe('prepared statement "x" does not exist');
    expect(f.get('S')).toBe('ERROR');
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['Z(I)']);
    expect(h.state).toEqual(IDLE);

    // Describe of it likewise.
    h.client(describeStatement('x'), flush());
    expect(h.sent()).toEqual(['D(S:pgmux_unprepared_x)', 'H']);
    h.server(error('26000', 'prepared statement "pgmux_unprepared_x" does not exist'));
    expect(errorFieldsIn(h.receivedBytes()).get('M')).toBe('prepared statement "x" does not exist');
    expect(h.link.ledger.skippingToSync).toBe(true);
    h.client(sync());
    h.server(rfq('I'));
    expect(h.state).toEqual(IDLE);
  });

  it('a statement nobody prepared is forwarded as named; the server’s own error passes', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(bind('nope'), execute(), sync());
    expect(h.sent()).toEqual(['B(,nope)', 'E', 'S']);
    h.server(error('26000', 'prepared statement "nope" does not exist'), rfq('I'));
    expect(errorFieldsIn(h.receivedBytes()).get('M')).toBe('prepared statement "nope" does not exist');
  });

  it('a name another client uses for a different statement: the client’s statement lives under pgmux_<hash>', () => {
    const cache = new PreparedCache(100);
    preparedByAnotherClient(cache, parse('s1', 'select 1'));
    const h = new Harness({ cache, router: new StatementRouter() });
    h.client(parse('s1', 'select 2'), bind('s1', 'p'), describeStatement('s1'), execute(0, 'p'), sync());
    const sent = h.sent();
    expect(sent).toHaveLength(5);
    const alias = /^P\((pgmux_[0-9a-f]{20})\)$/.exec(sent[0])?.[1] as string;
    expect(alias).toBeDefined();
    expect(sent.slice(1)).toEqual([`B(p,${alias})`, `D(S:${alias})`, 'E(p)', 'S']);
    expect(h.server(parseComplete(), bindComplete(), parameterDescription(), rowDescription('two'), dataRow('2'), commandComplete('SELECT 1'), rfq('I'))).toEqual([
      ...nones(6),
      Ready,
    ]);
    expect(h.received()).toEqual(['1', '2', 't', 'T(two)', 'D(2)', 'C(SELECT 1)', 'Z(I)']);
    expect(cache.has('s1')).toBe(true);
    expect(cache.has(alias)).toBe(true);
  });

  // BUG (statement-router.ts / request-ledger.ts dropToSync): an LRU eviction Close is injected
  // where a statement must be prepared, and the cache forgets the evicted statement at once.
  // When an earlier message of the same batch fails, PostgreSQL skips that Close (it skips
  // everything up to Sync), so the server still has the statement, but dropToSync only reports
  // skipped *Parses* (notCreated), never skipped Closes. The cache now lacks a statement the
  // server has: the next time it is needed pgmux sends Parse under that name again and the
  // server answers 42P05 "prepared statement "s0" already exists" (the batch fails for no
  // reason the client can see). Expected: the cache still knows s0 after the failed batch, so
  // its next use is a plain Bind.
  it('an eviction Close skipped by the server (an earlier message failed) leaves the evicted statement known to be there', () => {
    const cache = new PreparedCache(1);
    const router = new StatementRouter();
    const h = new Harness({ cache, router });
    h.client(parse('s0', 'select 0'), sync());
    h.server(parseComplete(), rfq('I'));
    new Harness({ router }).client(parse('s1', 'select 1')); // s1 prepared on another server
    h.sent();
    h.received();

    h.client(parse('', 'select 1/0'), bind(), execute(), bind('s1'), execute(), sync());
    expect(h.sent()).toEqual(['P()', 'B(,)', 'E', 'C(S:s0)', 'P(s1)', 'B(,s1)', 'E', 'S']);
    h.server(parseComplete(), bindComplete(), error('22012', 'division by zero'), rfq('I'));
    expect(h.received()).toEqual(['1', '2', 'E(22012)', 'Z(I)']);
    // The server skipped the Close and the Parse: it has s0, not s1.
    h.client(bind('s0'), execute(), sync());
    expect(h.sent()).toEqual(['B(,s0)', 'E', 'S']);
  });

  // BUG (statement-router.ts, Close): the router forgets the client's statement when its Close
  // is *sent*, not when it takes effect. If an earlier message of the batch fails, PostgreSQL
  // skips the Close (correctly, no CloseComplete reaches the client), so in the client's own
  // session the statement still exists — but the router has dropped it: the client's next Bind
  // of it goes out under the stand-in name and fails with 26000 "prepared statement "s1" does
  // not exist". Expected: the statement survives a Close that PostgreSQL skipped.
  it('a Close of a named statement skipped by the server (an earlier message failed) does not forget the statement', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('s1', 'select 1'), sync());
    h.server(parseComplete(), rfq('I'));
    h.sent();
    h.received();

    h.client(parse('', 'select 1/0'), bind(), execute(), closeStatement('s1'), sync());
    expect(h.sent()).toEqual(['P()', 'B(,)', 'E', 'S']);
    h.server(parseComplete(), bindComplete(), error('22012', 'division by zero'), rfq('I'));
    expect(h.received()).toEqual(['1', '2', 'E(22012)', 'Z(I)']); // no CloseComplete: the Close was skipped

    h.client(bind('s1'), execute(), sync());
    expect(h.sent()).toEqual(['B(,s1)', 'E', 'S']);
  });
});

describe('Attachment: injectFailure (a message made to fail, the client gets pgmux’s error)', () => {
  const refusal = (): Buffer => pgmuxError({ severity: 'ERROR', code: '0A000', message: 'refused by pgmux' });

  it('a refused Query: the server’s error is replaced, its ReadyForQuery passes', () => {
    const h = new Harness();
    h.link.injectFailure(Owed.Query, query('pgmux: refused'), refusal());
    expect(h.sent()).toEqual(['Q(pgmux: refused)']);
    expect(h.state).toEqual(BUSY);
    expect(h.server(error('42703', 'column "pgmux_refused" does not exist'))).toEqual([None]);
    const got = h.receivedBytes();
    expect(frames(got).map(backendToken)).toEqual(['E(0A000)']);
    expect(errorFieldsIn(got).get('M')).toBe('refused by pgmux');
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('a refused Parse in an extended batch: replaced error, the batch skipped to its Sync', () => {
    const h = new Harness();
    h.client(query('select 1'));
    h.link.injectFailure(Owed.Parse, parse('', 'pgmux: refused'), refusal());
    h.client(bind(), describePortal(), execute(), sync());
    expect(h.sent()).toEqual(['Q(select 1)', 'P()', 'B(,)', 'D(P:)', 'E', 'S']);
    expect(h.server(rowDescription('a'), dataRow('1'), commandComplete('SELECT 1'), rfq('I'))).toEqual([None, None, None, Ready]);
    expect(h.server(error('42703', 'column "pgmux_refused" does not exist'))).toEqual([None]);
    expect(h.link.ledger.length).toBe(1);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['T(a)', 'D(1)', 'C(SELECT 1)', 'Z(I)', 'E(0A000)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('a refused Parse before any Sync: skipping until the client’s Sync', () => {
    const h = new Harness();
    h.link.injectFailure(Owed.Parse, parse('', 'pgmux: refused'), refusal());
    h.client(describeStatement(''), flush());
    h.server(error('42703', 'column "pgmux_refused" does not exist'));
    expect(h.received()).toEqual(['E(0A000)']);
    expect(h.link.ledger.skippingToSync).toBe(true);
    h.sent();
    h.client(bind(), execute(), sync());
    expect(h.sent()).toEqual(['S']);
    h.server(rfq('I'));
    expect(h.state).toEqual(IDLE);
  });

  it('is itself skipped while the server skips to Sync', () => {
    const h = new Harness();
    h.client(parse('', 'selec'), flush());
    h.server(error('42601', 'syntax error'));
    h.sent();
    h.link.injectFailure(Owed.Query, query('pgmux: refused'), refusal());
    expect(h.sent()).toEqual([]);
    expect(h.link.ledger.empty).toBe(true);
  });
});

describe('Attachment: sendExtendedQuery (a Query with statements of pgmux’s own)', () => {
  const SQL = "RESET TimeZone\n;SELECT pg_catalog.set_config('TimeZone', 'Europe/Paris', false)";

  it('swallows the listed results; the client’s result and ParameterStatus pass', () => {
    const h = new Harness();
    h.link.sendExtendedQuery(query(SQL), own([1]));
    expect(h.sent()).toEqual([`Q(${SQL})`]);
    expect(h.state).toEqual(BUSY);
    expect(
      h.server(commandComplete('RESET'), rowDescription('set_config'), parameterStatus('TimeZone', 'Europe/Paris'), dataRow('Europe/Paris'), commandComplete('SELECT 1'), rfq('I')),
    ).toEqual([...nones(5), Ready]);
    expect(h.received()).toEqual(['C(RESET)', 'S(TimeZone=Europe/Paris)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('own results first and in the middle; notices pass', () => {
    const h = new Harness();
    h.link.sendExtendedQuery(query('own0; client1; own2; client3'), own([0, 2]));
    expect(
      h.server(
        rowDescription('o0'),
        dataRow('o0'),
        commandComplete('SELECT 1'),
        commandComplete('SET'),
        notice('n'),
        rowDescription('o2'),
        dataRow('o2'),
        commandComplete('SELECT 1'),
        rowDescription('c3'),
        dataRow('c3'),
        commandComplete('SELECT 1'),
        rfq('I'),
      ),
    ).toEqual([...nones(11), Ready]);
    expect(h.received()).toEqual(['C(SET)', 'N(00000)', 'T(c3)', 'D(c3)', 'C(SELECT 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('an error stops it; a Query pipelined after it is counted from its own first result', () => {
    const h = new Harness();
    h.link.sendExtendedQuery(query(SQL), own([1]));
    h.client(query('select 1 as a; select 2 as b'));
    expect(h.link.ledger.length).toBe(2);
    expect(h.server(error('42704', 'unrecognized configuration parameter'), rfq('I'))).toEqual([None, Ready]);
    expect(h.state).toEqual(BUSY);
    expect(h.server(rowDescription('a'), dataRow('1'), commandComplete('SELECT 1'), rowDescription('b'), dataRow('2'), commandComplete('SELECT 1'), rfq('I'))).toEqual([
      ...nones(6),
      Ready,
    ]);
    expect(h.received()).toEqual(['E(42704)', 'Z(I)', 'T(a)', 'D(1)', 'C(SELECT 1)', 'T(b)', 'D(2)', 'C(SELECT 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('a plain Query before it is not affected, and it counts its results from 0', () => {
    const h = new Harness();
    h.client(query('select 1 as a; select 2 as b'));
    h.link.sendExtendedQuery(query(SQL), own([1]));
    h.server(rowDescription('a'), dataRow('1'), commandComplete('SELECT 1'), rowDescription('b'), dataRow('2'), commandComplete('SELECT 1'), rfq('I'));
    h.server(commandComplete('RESET'), rowDescription('set_config'), dataRow('Europe/Paris'), commandComplete('SELECT 1'), rfq('I'));
    expect(h.received()).toEqual(['T(a)', 'D(1)', 'C(SELECT 1)', 'T(b)', 'D(2)', 'C(SELECT 1)', 'Z(I)', 'C(RESET)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('streamed pieces of its own rows are swallowed too', () => {
    const h = new Harness();
    h.link.sendExtendedQuery(query(SQL), own([1]));
    h.server(commandComplete('RESET'), rowDescription('set_config'));
    const row = dataRow('Europe/Paris');
    h.link.streamPiece(row, 0, 7);
    h.link.streamPiece(row, 7, row.length);
    h.server(commandComplete('SELECT 1'), rfq('I'));
    expect(h.received()).toEqual(['C(RESET)', 'Z(I)']);
  });

  it('is skipped while the server skips to Sync', () => {
    const h = new Harness();
    h.client(parse('', 'selec'), flush());
    h.server(error('42601', 'syntax error'));
    h.sent();
    h.link.sendExtendedQuery(query(SQL), own([1]));
    expect(h.sent()).toEqual([]);
    expect(h.link.ledger.empty).toBe(true);
  });

  it('counts an error position after pgmux’s text in the client’s text (seed 818181)', () => {
    // The client sent "RESET ALL; select * from c0.nope": its error is at 26; the server counts pgmux's text too.
    const follow = "\n;SELECT pg_catalog.set_config('TimeZone', 'America/Los_Angeles', false)";
    const sent = `RESET ALL${follow}; select * from c0.nope`;
    const h = new Harness();
    h.link.sendExtendedQuery(query(sent), own([1], [{ at: 10, length: follow.length }]));
    h.sent();
    const failure = fields('E', { S: 'ERROR', V: 'ERROR', C: '42P01', M: 'relation "c0.nope" does not exist', P: String(26 + follow.length), F: 'parse_relation.c' });
    h.server(commandComplete('RESET'), rowDescription('set_config'), dataRow('America/Los_Angeles'), commandComplete('SELECT 1'), failure, rfq('I'));
    const got = errorFieldsIn(h.receivedBytes());
    expect(got.get('P')).toBe('26');
    expect([...got.keys()]).toEqual(['S', 'V', 'C', 'M', 'P', 'F']);
  });
});

describe('Attachment: stale-plan retry (0A000 "cached plan must not change result type")', () => {
  /**
   * Transaction mode, s1 ('select * from t') prepared on this server earlier: by this client
   * ('client'), or by another client ('another': this client's own Parse of it is then answered
   * by pgmux, the server having it).
   */
  function staleSetup(owner: 'client' | 'another' = 'client'): Harness {
    const h = new Harness({ router: new StatementRouter(), replay: new SegmentReplay() });
    if (owner === 'another') {
      preparedByAnotherClient(h.cache, parse('s1', 'select * from t'));
      return h;
    }
    h.client(parse('s1', 'select * from t'), sync());
    h.server(parseComplete(), rfq('I'));
    expect(h.sent()).toEqual(['P(s1)', 'S']);
    expect(h.received()).toEqual(['1', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
    return h;
  }

  for (const withParse of [true, false]) {
    it(`an implicit transaction${withParse ? ' (segment Parse/Bind/Describe/Execute/Sync; another client prepared s1 here)' : ' (segment Bind/Describe/Execute/Sync)'}: resent with a fresh Parse, the client sees only the second round`, () => {
      const h = staleSetup(withParse ? 'another' : 'client');
      const segment = [bind('s1'), describePortal(), execute(), sync()];
      if (withParse) segment.unshift(parse('s1', 'select * from t'));
      h.client(...segment);
      expect(h.sent()).toEqual(['B(,s1)', 'D(P:)', 'E', 'S']);
      // The Parse of a statement the server has is pgmux's to answer, at once.
      expect(h.received()).toEqual(withParse ? ['1'] : []);

      expect(h.server(STALE())).toEqual([None]);
      expect(h.received()).toEqual([]);
      expect(h.state).toEqual(BUSY);
      // Not Ready: neither the error nor this ReadyForQuery reach the client.
      expect(h.server(rfq('I'))).toEqual([None]);
      expect(h.received()).toEqual([]);
      expect(h.state).toEqual(BUSY);
      expect(h.sent()).toEqual(['C(S:s1)', 'P(s1)', 'B(,s1)', 'D(P:)', 'E', 'S']);
      expect(h.link.ledger.length).toBe(6);

      expect(h.server(closeComplete(), parseComplete())).toEqual([None, None]);
      expect(h.received()).toEqual([]);
      expect(h.server(bindComplete(), rowDescription('a', 'b'), dataRow('1', 'x'), commandComplete('SELECT 1'), rfq('I'))).toEqual([...nones(4), Ready]);
      expect(h.received()).toEqual(['2', 'T(a,b)', 'D(1,x)', 'C(SELECT 1)', 'Z(I)']);
      expect(h.state).toEqual(IDLE);
      expect(h.cache.has('s1')).toBe(true);
    });
  }

  for (const status of ['T', 'E'] as const) {
    it(`inside a transaction block (ReadyForQuery ${status}): the error and ReadyForQuery go to the client unchanged`, () => {
      const h = staleSetup();
      h.client(query('begin'));
      h.server(commandComplete('BEGIN'), rfq('T'));
      h.received();
      h.sent();
      h.client(bind('s1'), describePortal(), execute(), sync());
      h.sent();
      expect(h.server(STALE())).toEqual([None]);
      expect(h.received()).toEqual([]); // held until its ReadyForQuery tells
      expect(h.server(rfq(status))).toEqual([Ready]);
      expect(h.received()).toEqual(['E(0A000)', `Z(${status})`]);
      expect(h.sent()).toEqual([]);
      expect(h.state).toEqual({ settled: false, busy: false, tx: status });
    });
  }

  it('a second failure is not retried; a later segment may be retried again', () => {
    const h = staleSetup();
    h.client(bind('s1'), describePortal(), execute(), sync());
    h.sent();
    h.server(STALE(), rfq('I'));
    expect(h.sent()).toEqual(['C(S:s1)', 'P(s1)', 'B(,s1)', 'D(P:)', 'E', 'S']);
    expect(h.server(closeComplete(), parseComplete(), STALE())).toEqual(nones(3));
    expect(h.received()).toEqual(['E(0A000)']);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['Z(I)']);
    expect(h.sent()).toEqual([]);
    expect(h.state).toEqual(IDLE);

    h.client(bind('s1'), describePortal(), execute(), sync());
    h.sent();
    expect(h.server(STALE(), rfq('I'))).toEqual([None, None]);
    expect(h.sent()).toEqual(['C(S:s1)', 'P(s1)', 'B(,s1)', 'D(P:)', 'E', 'S']);
    expect(h.received()).toEqual([]);
  });

  it('recognised by the English message without the routine, or by the routine with a translated message', () => {
    for (const stale of [error('0A000', 'cached plan must not change result type'), error('0A000', 'le plan en cache ne doit pas modifier le type de résultat', 'RevalidateCachedQuery')]) {
      const h = staleSetup();
      h.client(bind('s1'), describePortal(), execute(), sync());
      h.sent();
      expect(h.server(stale, rfq('I'))).toEqual([None, None]);
      expect(h.sent()).toEqual(['C(S:s1)', 'P(s1)', 'B(,s1)', 'D(P:)', 'E', 'S']);
    }
  });

  it('another 0A000 is not a stale plan: forwarded', () => {
    const h = staleSetup();
    h.client(bind('s1'), describePortal(), execute(), sync());
    h.sent();
    expect(h.server(error('0A000', 'cannot do that', 'other_routine'), rfq('I'))).toEqual([None, Ready]);
    expect(h.received()).toEqual(['E(0A000)', 'Z(I)']);
    expect(h.sent()).toEqual([]);
  });

  it('not retried when the segment has no Describe (the client would get rows of a shape it was not told)', () => {
    const h = staleSetup();
    h.client(bind('s1'), execute(), sync());
    h.sent();
    expect(h.server(STALE(), rfq('I'))).toEqual([None, Ready]);
    expect(h.received()).toEqual(['E(0A000)', 'Z(I)']);
    expect(h.sent()).toEqual([]);
    expect(h.state).toEqual(IDLE);
  });

  it('not retried when part of the segment was answered already', () => {
    const h = staleSetup();
    h.client(parse('', 'select 1'), bind(), execute(), bind('s1'), describePortal(), execute(), sync());
    h.sent();
    expect(h.server(parseComplete(), bindComplete(), dataRow('1'), commandComplete('SELECT 1'), STALE(), rfq('I'))).toEqual([...nones(5), Ready]);
    expect(h.received()).toEqual(['1', '2', 'D(1)', 'C(SELECT 1)', 'E(0A000)', 'Z(I)']);
    expect(h.sent()).toEqual([]);
  });

  it('not retried for a segment of two Syncs, or after a simple Query', () => {
    const h = staleSetup();
    h.client(bind('s1'), describePortal(), execute(), sync(), sync());
    h.sent();
    expect(h.server(STALE(), rfq('I'))).toEqual([None, Ready]);
    expect(h.received()).toEqual(['E(0A000)', 'Z(I)']);
    expect(h.server(rfq('I'))).toEqual([Ready]);
    expect(h.received()).toEqual(['Z(I)']);
    expect(h.state).toEqual(IDLE);

    h.client(query('select 1'), bind('s1'), describePortal(), execute(), sync());
    h.sent();
    h.server(commandComplete('SELECT 1'), rfq('I'));
    expect(h.server(STALE(), rfq('I'))).toEqual([None, Ready]);
    expect(h.received()).toEqual(['C(SELECT 1)', 'Z(I)', 'E(0A000)', 'Z(I)']);
    expect(h.sent()).toEqual([]);
  });

  it('not retried in session mode (no router, no replay)', () => {
    const h = new Harness();
    h.client(bind('s1'), describePortal(), execute(), sync());
    h.sent();
    expect(h.server(STALE(), rfq('I'))).toEqual([None, Ready]);
    expect(h.received()).toEqual(['E(0A000)', 'Z(I)']);
  });

  // BUG (statement-router.ts Close + attachment.ts retryStalePlan): a segment that closes the
  // statement it binds (one-shot use: Parse/Bind/Describe/Execute/Close/Sync) cannot be retried
  // correctly. Routing the Close in the first round already removed s1 from the router, so on
  // the retry router.invalidate('s1') finds nothing to invalidate (no Close of the stale
  // statement is sent, the cache keeps it), the named Parse is skipped as "answered already",
  // and the Bind of s1 — a statement the router no longer knows but the server has — goes out
  // under the stand-in name pgmux_unprepared_s1: the client gets 26000 "prepared statement "s1"
  // does not exist" instead of either its result or the original 0A000. Expected: the retry
  // re-prepares s1 and the client gets the second round's answers (then the CloseComplete).
  it('a segment that Closes the statement it binds is retried with a fresh Parse', () => {
    const h = staleSetup('another');
    h.client(parse('s1', 'select * from t'), bind('s1'), describePortal(), execute(), closeStatement('s1'), sync());
    expect(h.sent()).toEqual(['B(,s1)', 'D(P:)', 'E', 'S']);
    expect(h.received()).toEqual(['1']);
    h.server(STALE(), rfq('I'));
    expect(h.received()).toEqual([]);
    expect(h.sent()).toEqual(['C(S:s1)', 'P(s1)', 'B(,s1)', 'D(P:)', 'E', 'S']);
    h.server(closeComplete(), parseComplete(), bindComplete(), rowDescription('a', 'b'), dataRow('1', 'x'), commandComplete('SELECT 1'), rfq('I'));
    expect(h.received()).toEqual(['2', 'T(a,b)', 'D(1,x)', 'C(SELECT 1)', '3', 'Z(I)']);
  });
  // BUG (attachment.ts retryStalePlan): the retry skips every named Parse of the segment as
  // "answered already", but only a named Parse *before* the failing Bind was. One after it (a
  // second statement of a multi-statement command, as Npgsql sends them: Bind/Describe/Execute
  // of the stale statement, then Parse/Bind/Describe/Execute of a new one, one Sync) was dropped
  // with the rest of the batch, so the client never got its ParseComplete; since e1152fd the
  // router also forgets the statement (its Parse never ran). The retry then sends Bind(s2) for
  // a statement neither the server nor the router has: the server answers 26000 "prepared
  // statement "s2" does not exist". (Before e1152fd the router re-prepared s2 with a swallowed
  // Parse, so the client silently missed the ParseComplete.) Expected: the dropped Parse is sent
  // again and the client gets every answer of its segment once: 2 T D C 1 2 T D C Z.
  it('a named Parse after the failing Bind is resent by the retry (it was never answered)', () => {
    const h = staleSetup();
    h.client(bind('s1'), describePortal(), execute(), parse('s2', 'select 2'), bind('s2'), describePortal(), execute(), sync());
    expect(h.sent()).toEqual(['B(,s1)', 'D(P:)', 'E', 'P(s2)', 'B(,s2)', 'D(P:)', 'E', 'S']);
    h.server(STALE(), rfq('I'));
    expect(h.received()).toEqual([]);
    expect(h.sent()).toEqual(['C(S:s1)', 'P(s1)', 'B(,s1)', 'D(P:)', 'E', 'P(s2)', 'B(,s2)', 'D(P:)', 'E', 'S']);
    h.server(
      closeComplete(),
      parseComplete(),
      bindComplete(),
      rowDescription('a', 'b'),
      dataRow('1', 'x'),
      commandComplete('SELECT 1'),
      parseComplete(),
      bindComplete(),
      rowDescription('two'),
      dataRow('2'),
      commandComplete('SELECT 1'),
      rfq('I'),
    );
    expect(h.received()).toEqual(['2', 'T(a,b)', 'D(1,x)', 'C(SELECT 1)', '1', '2', 'T(two)', 'D(2)', 'C(SELECT 1)', 'Z(I)']);
    expect(h.router?.has('s2')).toBe(true);
  });

  // BUG (attachment.ts injectFailure/admit + retryStalePlan): a message pgmux makes fail on
  // purpose (a session_state_* = reject refusal, the router's 42P05 for a duplicate Parse) goes
  // through admit(), so the segment replay records pgmux's replacement Parse, not a message
  // marked as a failure. When an earlier Bind of the same segment fails with a stale plan and
  // the segment is retried, that replacement is routed like any client Parse (Reply.Forward):
  // the client gets the server's raw "syntax error at or near "pgmux"" (42601) in place of
  // pgmux's own error. Expected: the retry fails it again with the same replacement error.
  it.fails('a retried segment containing a refused message still gets pgmux’s error for it', () => {
    const refusal = pgmuxError({ severity: 'ERROR', code: '0A000', message: 'refused by pgmux' });
    const h = staleSetup();
    h.client(bind('s1'), describePortal(), execute());
    h.link.injectFailure(Owed.Parse, parse('', 'pgmux: refused'), refusal);
    h.client(bind(), execute(), sync());
    expect(h.sent()).toEqual(['B(,s1)', 'D(P:)', 'E', 'P()', 'B(,)', 'E', 'S']);
    h.server(STALE(), rfq('I'));
    expect(h.sent()).toEqual(['C(S:s1)', 'P(s1)', 'B(,s1)', 'D(P:)', 'E', 'P()', 'B(,)', 'E', 'S']);
    h.server(closeComplete(), parseComplete(), bindComplete(), rowDescription('a'), dataRow('1'), commandComplete('SELECT 1'), error('42703', 'column "pgmux_refused" does not exist'), rfq('I'));
    expect(h.received()).toEqual(['2', 'T(a)', 'D(1)', 'C(SELECT 1)', 'E(0A000)', 'Z(I)']);
  });

  // BUG (attachment.ts onReady, minor): the segment replay is reset when a ReadyForQuery leaves
  // the ledger empty, but the check runs before emitSynthesized(). When pgmux's own reply queued
  // behind that Sync (here a ParseComplete for a statement the server has) is what empties the
  // ledger, the replay keeps the old segment (Bind/Describe/Execute/Sync/Parse) and the next
  // segment is appended to it: two Syncs, so a stale plan in the next segment is not retried
  // although nothing was outstanding when it began. Expected: the next segment is retried.
  it.fails('a segment sent after a synthesized reply emptied the ledger is still retried', () => {
    const h = staleSetup();
    preparedByAnotherClient(h.cache, parse('s2', 'select 2'));
    // A segment, and behind its Sync a lone Parse of a statement the server has (another client's).
    h.client(bind('s1'), describePortal(), execute(), sync(), parse('s2', 'select 2'));
    expect(h.sent()).toEqual(['B(,s1)', 'D(P:)', 'E', 'S']);
    h.server(bindComplete(), noData(), commandComplete('SELECT 1'), rfq('I'));
    expect(h.received()).toEqual(['2', 'n', 'C(SELECT 1)', 'Z(I)', '1']);
    expect(h.state).toEqual(IDLE);

    h.client(bind('s1'), describePortal(), execute(), sync());
    h.sent();
    expect(h.server(STALE(), rfq('I'))).toEqual([None, None]);
    expect(h.sent()).toEqual(['C(S:s1)', 'P(s1)', 'B(,s1)', 'D(P:)', 'E', 'S']);
  });
});

describe('Attachment: streamed pieces and other entry points', () => {
  it('pieces of a large DataRow are forwarded as they come, in order with whole messages', () => {
    const h = new Harness();
    h.client(query('select big'));
    const big = 'x'.repeat(10_000);
    const row = dataRow(big);
    expect(h.server(rowDescription('big'))).toEqual([None]);
    h.link.streamPiece(row, 0, 5); // the header alone
    h.link.streamPiece(row, 5, 4000);
    h.link.streamPiece(row, 4000, row.length);
    expect(h.server(commandComplete('SELECT 1'), rfq('I'))).toEqual([None, Ready]);
    const got = h.receivedBytes();
    expect(frames(got).map(backendToken)).toEqual(['T(big)', `D(${big})`, 'C(SELECT 1)', 'Z(I)']);
    expect(h.state).toEqual(IDLE);
  });

  it('pieces of COPY OUT data are forwarded', () => {
    const h = new Harness();
    h.client(query('copy t to stdout'));
    h.server(copyOutResponse());
    const data = copyDataB('y'.repeat(5000));
    h.link.streamPiece(data, 0, 100);
    h.link.streamPiece(data, 100, data.length);
    h.server(copyDoneB(), commandComplete('COPY 1'), rfq('I'));
    expect(h.received()).toEqual(['H', `d(${'y'.repeat(5000)})`, 'c', 'C(COPY 1)', 'Z(I)']);
  });

  it('withholdReady takes the last ReadyForQuery without passing it on (statement mode)', () => {
    const h = new Harness();
    h.client(query('begin'));
    h.server(commandComplete('BEGIN'));
    h.link.withholdReady(TxStatus.InTransaction);
    expect(h.link.ledger.empty).toBe(true);
    expect(h.received()).toEqual(['C(BEGIN)']);
    expect(h.state).toEqual(IN_TX);
  });

  it('clear forgets everything owed and everything unsent', () => {
    const h = new Harness();
    h.client(parse('', 'copy t from stdin'), bind(), execute(), sync());
    h.server(parseComplete(), bindComplete(), copyInResponse());
    expect(h.link.copyIn).toBe(true);
    h.link.clear();
    expect(h.link.ledger.empty).toBe(true);
    expect(h.link.copyIn).toBe(false);
    expect(h.link.toServer.empty).toBe(true);
    expect(h.link.toClient.empty).toBe(true);
    expect(h.state).toEqual(IDLE);

    const s = new Harness();
    s.client(parse('', 'selec'), flush());
    s.server(error('42601', 'syntax error'));
    expect(s.link.ledger.skippingToSync).toBe(true);
    s.link.clear();
    expect(s.state).toEqual(IDLE);
  });

  it('requestSince marks when the oldest request now owed was sent', () => {
    const h = new Harness();
    const before = performance.now();
    h.client(query('select 1'));
    const since = h.link.requestSince;
    expect(since).toBeGreaterThanOrEqual(before);
    h.client(query('select 2')); // something is owed already: unchanged
    expect(h.link.requestSince).toBe(since);
  });
});

// ---------------------------------------------------------------------------------------------
// Property: random interleavings of well-formed request/answer sequences always end settled

/** Whether a message that needs an answer first (COPY data, asyncpg's Query) may go, decided by the server. */
interface Outcome {
  decided: boolean;
  /** Messages the server had emitted once it was decided: the client knows when it got that many. */
  at: number;
  ok: boolean;
}

type Stmt = { rows: number } | 'error';

/** How the model server answers one client message. */
type Plan =
  | { k: 'Q'; stmts: Stmt[] }
  | { k: 'Qbegin' }
  | { k: 'Qcommit' }
  | { k: 'Qcopyin'; failAt: number | null; outcome: Outcome }
  | { k: 'Qcopyout'; rows: number }
  | { k: 'P'; fail: boolean; outcome?: Outcome }
  | { k: 'B'; fail: boolean }
  | { k: 'DS'; noData: boolean; outcome?: Outcome }
  | { k: 'DP'; noData: boolean }
  | { k: 'E'; rows: number; end: 'C' | 's' | 'I'; fail: boolean }
  | { k: 'Ecopyin'; failAt: number | null; outcome: Outcome }
  | { k: 'Ecopyout'; rows: number }
  | { k: 'C' }
  | { k: 'S'; commitFails: boolean }
  | { k: 'H' }
  | { k: 'd' }
  | { k: 'c' }
  | { k: 'f' }
  | { k: 'F'; fail: boolean };

interface Item {
  msg: Buffer;
  plan: Plan;
}

/** A message to send, or a point where the client waits for an answer before it decides what to send. */
type Step = Item | { wait: () => boolean; then: () => Step[] };

/**
 * One PostgreSQL backend, as far as the protocol goes: answers in order, skips to Sync after an
 * extended-protocol error, transaction status, COPY IN (ignoring Sync/Flush during it, and
 * CopyData/CopyDone after it failed).
 */
class ModelServer {
  readonly pending: Buffer[] = [];
  emitted = 0;
  delivered = 0;
  tx: 'I' | 'T' | 'E' = 'I';
  ignoreTillSync = false;
  copy: { extended: boolean; failAt: number | null; seen: number } | null = null;

  private emit(...messages: Buffer[]): void {
    this.pending.push(...messages);
    this.emitted += messages.length;
  }

  private ready(): void {
    this.emit(rfq(this.tx));
  }

  private error(code: string): void {
    this.emit(error(code, 'model error'));
    if (this.tx === 'T') this.tx = 'E';
  }

  private extendedError(code = '42000'): void {
    this.error(code);
    this.ignoreTillSync = true;
  }

  private decide(outcome: Outcome | undefined, ok: boolean): void {
    if (outcome === undefined || outcome.decided) return;
    outcome.decided = true;
    outcome.ok = ok;
    outcome.at = this.emitted;
  }

  process(p: Plan): void {
    if (this.copy !== null) {
      const copy = this.copy;
      switch (p.k) {
        case 'd':
          copy.seen++;
          if (copy.failAt === copy.seen) this.failCopy('22P02');
          return;
        case 'c':
          this.copy = null;
          this.emit(commandComplete(`COPY ${copy.seen}`));
          if (!copy.extended) this.ready();
          return;
        case 'f':
          this.failCopy('57014');
          return;
        case 'S':
        case 'H':
          return; // ignored during COPY IN
        default:
          throw new Error(`model: '${p.k}' during COPY IN (the generator never sends that)`);
      }
    }
    switch (p.k) {
      case 'd':
      case 'c':
      case 'f':
        return; // after a failed COPY: accepted and ignored
      case 'H':
        return;
      default:
        break;
    }
    if (this.ignoreTillSync) {
      if (p.k === 'S') {
        this.ignoreTillSync = false;
        this.ready();
      }
      if ('outcome' in p) this.decide(p.outcome, false);
      return;
    }
    const aborted = this.tx === 'E';
    switch (p.k) {
      case 'Q':
        if (aborted) {
          this.error('25P02');
        } else if (p.stmts.length === 0) {
          this.emit(emptyQuery());
        } else {
          for (const s of p.stmts) {
            if (s === 'error') {
              this.error('22012');
              break;
            }
            this.emit(rowDescription('a'), ...Array.from({ length: s.rows }, (_, i) => dataRow(String(i))), commandComplete(`SELECT ${s.rows}`));
          }
        }
        this.ready();
        return;
      case 'Qbegin':
        if (aborted) this.error('25P02');
        else {
          if (this.tx === 'T') this.emit(notice('there is already a transaction in progress'));
          this.tx = 'T';
          this.emit(commandComplete('BEGIN'));
        }
        this.ready();
        return;
      case 'Qcommit':
        if (this.tx === 'I') this.emit(notice('there is no transaction in progress'));
        this.emit(commandComplete(aborted ? 'ROLLBACK' : 'COMMIT'));
        this.tx = 'I';
        this.ready();
        return;
      case 'Qcopyin':
        if (aborted) {
          this.error('25P02');
          this.decide(p.outcome, false);
          this.ready();
          return;
        }
        this.emit(copyInResponse());
        this.copy = { extended: false, failAt: p.failAt, seen: 0 };
        this.decide(p.outcome, true);
        return;
      case 'Qcopyout':
        if (aborted) this.error('25P02');
        else this.emit(copyOutResponse(), ...Array.from({ length: p.rows }, (_, i) => copyDataB(`${i}\n`)), copyDoneB(), commandComplete(`COPY ${p.rows}`));
        this.ready();
        return;
      case 'P':
        if (aborted || p.fail) {
          this.extendedError(aborted ? '25P02' : '42601');
          this.decide(p.outcome, false);
        } else this.emit(parseComplete());
        return;
      case 'B':
        if (aborted || p.fail) this.extendedError(aborted ? '25P02' : '22P02');
        else this.emit(bindComplete());
        return;
      case 'DS':
        if (aborted) {
          this.extendedError('25P02');
          this.decide(p.outcome, false);
          return;
        }
        this.emit(parameterDescription(), p.noData ? noData() : rowDescription('a'));
        this.decide(p.outcome, true);
        return;
      case 'DP':
        if (aborted) this.extendedError('25P02');
        else this.emit(p.noData ? noData() : rowDescription('a'));
        return;
      case 'E':
        if (aborted) {
          this.extendedError('25P02');
          return;
        }
        this.emit(...Array.from({ length: p.rows }, (_, i) => dataRow(String(i))));
        if (p.fail) this.extendedError('22012');
        else this.emit(p.end === 'C' ? commandComplete(`SELECT ${p.rows}`) : p.end === 's' ? portalSuspended() : emptyQuery());
        return;
      case 'Ecopyin':
        if (aborted) {
          this.extendedError('25P02');
          this.decide(p.outcome, false);
          return;
        }
        this.emit(copyInResponse());
        this.copy = { extended: true, failAt: p.failAt, seen: 0 };
        this.decide(p.outcome, true);
        return;
      case 'Ecopyout':
        if (aborted) this.extendedError('25P02');
        else this.emit(copyOutResponse(), ...Array.from({ length: p.rows }, (_, i) => copyDataB(`${i}\n`)), copyDoneB(), commandComplete(`COPY ${p.rows}`));
        return;
      case 'C':
        this.emit(closeComplete()); // allowed in an aborted transaction too
        return;
      case 'S':
        if (p.commitFails && this.tx === 'I') this.emit(error('23505', 'model commit failure'));
        this.ready();
        return;
      case 'F':
        if (aborted || p.fail) this.error(aborted ? '25P02' : '22012');
        else this.emit(functionCallResponse('1'));
        this.ready();
        return;
    }
  }

  private failCopy(code: string): void {
    const copy = this.copy as { extended: boolean };
    this.copy = null;
    this.error(code);
    if (copy.extended) this.ignoreTillSync = true;
    else this.ready();
  }
}

const rarely = fc.nat(5).map((n) => n === 0);

const stepArb: fc.Arbitrary<Plan> = fc.oneof(
  rarely.map((fail): Plan => ({ k: 'P', fail })),
  rarely.map((fail): Plan => ({ k: 'B', fail })),
  fc.boolean().map((noData): Plan => ({ k: 'DS', noData })),
  fc.boolean().map((noData): Plan => ({ k: 'DP', noData })),
  fc.record({ rows: fc.nat(3), end: fc.constantFrom<'C' | 's' | 'I'>('C', 'C', 's', 'I'), fail: rarely }).map((e): Plan => ({ k: 'E', ...e, rows: e.end === 'I' ? 0 : e.rows })),
  fc.constant<Plan>({ k: 'C' }),
);

const unitArb = fc.oneof(
  fc.record({ u: fc.constant('simple' as const), stmts: fc.array(fc.oneof(fc.nat(2).map((rows): Stmt => ({ rows })), fc.constant<Stmt>('error')), { maxLength: 3 }) }),
  fc.constant({ u: 'begin' as const }),
  fc.constant({ u: 'commit' as const }),
  fc.record({ u: fc.constant('batch' as const), steps: fc.array(stepArb, { minLength: 1, maxLength: 6 }), end: fc.constantFrom('sync', 'flush+sync', 'sync-fails') }),
  fc.record({ u: fc.constant('flushQuery' as const), parseFails: rarely, noData: fc.boolean(), then: fc.constantFrom('rows', 'copy') }),
  fc.record({
    u: fc.constant('copyIn' as const),
    via: fc.constantFrom('query', 'execute'),
    rows: fc.nat(3),
    failAt: fc.option(fc.integer({ min: 1, max: 3 }), { nil: null }),
    end: fc.constantFrom('done', 'done', 'fail'),
  }),
  fc.record({ u: fc.constant('copyOut' as const), via: fc.constantFrom('query', 'execute'), rows: fc.nat(3) }),
  fc.record({ u: fc.constant('fcall' as const), fail: rarely }),
);

type Unit = typeof unitArb extends fc.Arbitrary<infer U> ? U : never;

function frontendFor(p: Plan, id: number): Buffer {
  switch (p.k) {
    case 'Q':
      return query(p.stmts.length === 0 ? '' : p.stmts.map((s, i) => (s === 'error' ? 'select 1/0' : `select ${id}.${i}`)).join(';'));
    case 'Qbegin':
      return query('begin');
    case 'Qcommit':
      return query('commit');
    case 'Qcopyin':
      return query(`copy t${id} from stdin`);
    case 'Qcopyout':
      return query(`copy t${id} to stdout`);
    case 'P':
      return parse('', `select ${id}`);
    case 'B':
      return bind('', `p${id}`);
    case 'DS':
      return describeStatement('');
    case 'DP':
      return describePortal(`p${id}`);
    case 'E':
    case 'Ecopyin':
    case 'Ecopyout':
      return execute(p.k === 'E' && p.end === 's' ? 1 : 0, `p${id}`);
    case 'C':
      return closePortal(`p${id}`);
    case 'S':
      return sync();
    case 'H':
      return flush();
    case 'd':
      return copyData(`${id}\n`);
    case 'c':
      return copyDone();
    case 'f':
      return copyFail('client gave up');
    case 'F':
      return functionCall(1598);
  }
}

function outcome(): Outcome {
  return { decided: false, at: 0, ok: false };
}

/** The client's messages for one unit; `model` tells when an awaited answer reached the client. */
function stepsOf(unit: Unit, id: number, model: ModelServer): Step[] {
  const item = (plan: Plan): Item => ({ msg: frontendFor(plan, id), plan });
  const arrived = (o: Outcome) => (): boolean => o.decided && model.delivered >= o.at;
  const copyTail = (rows: number, end: string, extended: boolean): Item[] => [
    ...Array.from({ length: rows }, (): Item => item({ k: 'd' })),
    item(end === 'fail' ? { k: 'f' } : { k: 'c' }),
    ...(extended ? [item({ k: 'S', commitFails: false })] : []),
  ];
  switch (unit.u) {
    case 'simple':
      return [item({ k: 'Q', stmts: unit.stmts })];
    case 'begin':
      return [item({ k: 'Qbegin' })];
    case 'commit':
      return [item({ k: 'Qcommit' })];
    case 'batch': {
      const steps: Step[] = unit.steps.map((p) => item({ ...p }));
      if (unit.end === 'flush+sync') steps.push(item({ k: 'H' }));
      steps.push(item({ k: 'S', commitFails: unit.end === 'sync-fails' }));
      return steps;
    }
    case 'flushQuery': {
      // asyncpg: Parse/Describe/Flush; once answered, a simple Query (or a Sync after an error):
      // a SELECT, or COPY FROM STDIN whose data goes once CopyInResponse arrived.
      const o = outcome();
      const copy = outcome();
      return [
        item({ k: 'P', fail: unit.parseFails, outcome: o }),
        item({ k: 'DS', noData: unit.noData, outcome: o }),
        item({ k: 'H' }),
        {
          wait: arrived(o),
          then: (): Step[] => {
            if (!o.ok) return [item({ k: 'S', commitFails: false })];
            if (unit.then === 'rows') return [item({ k: 'Q', stmts: [{ rows: 1 }] })];
            return [item({ k: 'Qcopyin', failAt: null, outcome: copy }), { wait: arrived(copy), then: () => (copy.ok ? copyTail(2, 'done', false) : []) }];
          },
        },
      ];
    }
    case 'copyIn': {
      const o = outcome();
      const extended = unit.via === 'execute';
      const start: Item[] = extended
        ? [item({ k: 'P', fail: false }), item({ k: 'B', fail: false }), item({ k: 'Ecopyin', failAt: unit.failAt, outcome: o }), item({ k: 'S', commitFails: false })]
        : [item({ k: 'Qcopyin', failAt: unit.failAt, outcome: o })];
      return [...start, { wait: arrived(o), then: () => (o.ok ? copyTail(unit.rows, unit.end, extended) : []) }];
    }
    case 'copyOut':
      return unit.via === 'query'
        ? [item({ k: 'Qcopyout', rows: unit.rows })]
        : [item({ k: 'P', fail: false }), item({ k: 'B', fail: false }), item({ k: 'Ecopyout', rows: unit.rows }), item({ k: 'S', commitFails: false })];
    case 'fcall':
      return [item({ k: 'F', fail: unit.fail })];
  }
}

function runInterleaving(units: Unit[], choices: number[]): void {
  const h = new Harness();
  const model = new ModelServer();
  const script: Step[] = [...units, { u: 'commit' as const }].flatMap((u, i) => stepsOf(u, i, model));
  let ci = 0;
  const choose = (): number => (choices.length === 0 ? 0 : choices[ci++ % choices.length]);
  let readies = 0;
  let readyMessages = 0;
  for (let round = 0; ; round++) {
    if (round > 20_000) throw new Error('no progress');
    while (script.length > 0 && 'wait' in script[0] && script[0].wait()) {
      const w = script.shift() as { then: () => Step[] };
      script.unshift(...w.then());
    }
    const canClient = script.length > 0 && !('wait' in script[0]);
    const canServer = model.pending.length > 0;
    if (!canClient && !canServer) break;
    const c = choose();
    const n = 1 + ((c >> 1) % 3);
    if (canClient && (!canServer || c % 2 === 0)) {
      for (let i = 0; i < n && script.length > 0 && !('wait' in script[0]); i++) {
        const it = script.shift() as Item;
        h.link.fromClient(it.msg[0], it.msg, 0, it.msg.length);
        const bytes = drain(h.link.toServer);
        if (bytes.length > 0) {
          expect(bytes).toEqual(it.msg); // forwarded unchanged
          model.process(it.plan);
        } else {
          // Not forwarded: only while the server skips to Sync, and never the Sync itself.
          expect(model.ignoreTillSync).toBe(true);
          expect(it.plan.k).not.toBe('S');
          if ('outcome' in it.plan && it.plan.outcome !== undefined && !it.plan.outcome.decided) Object.assign(it.plan.outcome, { decided: true, ok: false, at: model.emitted });
        }
      }
    } else {
      const chunk = model.pending.splice(0, n);
      model.delivered += chunk.length;
      const events = h.server(...chunk);
      expect(events).not.toContain(Desync);
      readies += events.filter((e) => e === Ready).length;
      readyMessages += chunk.filter((m) => m[0] === 0x5a).length;
      // No router: the client gets exactly what the server said.
      expect(h.receivedBytes()).toEqual(Buffer.concat(chunk));
    }
    // Never settled (or between requests) while the server still has something to say.
    if (!h.link.busy) {
      expect(model.pending).toEqual([]);
      expect(model.copy).toBeNull();
      expect(model.ignoreTillSync).toBe(false);
    }
    if (h.link.settled) expect(model.tx).toBe('I');
  }
  expect(script).toEqual([]); // not stuck waiting for an answer that never came
  expect(readies).toBe(readyMessages);
  expect(model.tx).toBe('I');
  expect(h.link.ledger.empty).toBe(true);
  expect(h.link.ledger.skippingToSync).toBe(false);
  expect(h.link.copyIn).toBe(false);
  expect(h.state).toEqual(IDLE);
}

describe('Attachment: random interleavings of well-formed request/answer sequences (model check)', () => {
  it('always end settled with an empty ledger, never desynchronised, the client getting exactly what the server said', () => {
    fc.assert(
      fc.property(fc.array(unitArb, { minLength: 1, maxLength: 12 }), fc.array(fc.nat(1000), { maxLength: 200 }), (units, choices) => {
        runInterleaving(units, choices);
      }),
      { numRuns: 400 },
    );
  });

  it('a fixed long run: every kind of unit, client and server strictly alternating', () => {
    const units: Unit[] = [
      { u: 'simple', stmts: [{ rows: 2 }, { rows: 0 }] },
      { u: 'simple', stmts: [] },
      { u: 'batch', steps: [{ k: 'P', fail: false }, { k: 'B', fail: false }, { k: 'DP', noData: false }, { k: 'E', rows: 2, end: 'C', fail: false }], end: 'sync' },
      { u: 'batch', steps: [{ k: 'P', fail: false }, { k: 'B', fail: true }, { k: 'E', rows: 1, end: 'C', fail: false }], end: 'flush+sync' },
      { u: 'flushQuery', parseFails: false, noData: false, then: 'copy' },
      { u: 'flushQuery', parseFails: true, noData: true, then: 'rows' },
      { u: 'begin' },
      { u: 'copyIn', via: 'execute', rows: 3, failAt: 2, end: 'done' },
      { u: 'simple', stmts: [{ rows: 1 }] },
      { u: 'commit' },
      { u: 'copyIn', via: 'query', rows: 2, failAt: null, end: 'fail' },
      { u: 'copyOut', via: 'execute', rows: 2 },
      { u: 'batch', steps: [{ k: 'C' }], end: 'sync-fails' },
      { u: 'fcall', fail: false },
    ];
    for (const choices of [[0, 1], [0, 0, 1], [1, 1, 0], [4, 5, 2, 3]]) {
      runInterleaving(units, choices);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Differential property (transaction mode): what the client gets through pgmux equals what its
// own direct session would have sent, with named statements moving between one client, the
// server's LRU and another client's statements on the same server.

/**
 * A PostgreSQL session's extended protocol, as far as named statements go: statements and
 * portals by name, 42P05 / 26000 / 34000, skip to Sync after an error. The statement text says
 * how it runs: 'fail' fails at Execute, a text starting with 'selec ' or 'pgmux:' fails at Parse
 * (pgmux's own failing Parse is a syntax error); a row shows the text it came from.
 */
class PgSession {
  readonly statements = new Map<string, string>();
  private readonly portals = new Map<string, string>();
  private ignoreTillSync = false;
  readonly out: Buffer[] = [];

  process(m: { code: string; body: Buffer }): void {
    if (m.code === 'H') return;
    if (this.ignoreTillSync && m.code !== 'S') return;
    const strs = cstrings(m.body);
    switch (m.code) {
      case 'P': {
        const [name, text] = strs;
        if (name !== '' && this.statements.has(name)) return this.fail('42P05', `prepared statement "${name}" already exists`);
        if (text.startsWith('selec ')) return this.fail('42601', 'syntax error');
        if (text.startsWith('SELECT pgmux_refused')) return this.fail('42703', 'column does not exist');
        this.statements.set(name, text);
        this.out.push(parseComplete());
        return;
      }
      case 'B': {
        const [portal, name] = strs;
        const text = this.statements.get(name);
        if (text === undefined) return this.fail('26000', name === '' ? 'unnamed prepared statement does not exist' : `prepared statement "${name}" does not exist`);
        this.portals.set(portal, text);
        this.out.push(bindComplete());
        return;
      }
      case 'D': {
        const kind = String.fromCharCode(m.body[0]);
        const name = cstrings(m.body.subarray(1))[0];
        const text = kind === 'S' ? this.statements.get(name) : this.portals.get(name);
        if (text === undefined) return this.fail(kind === 'S' ? '26000' : '34000', `${kind === 'S' ? 'prepared statement' : 'portal'} "${name}" does not exist`);
        if (kind === 'S') this.out.push(parameterDescription());
        this.out.push(rowDescription(text));
        return;
      }
      case 'E': {
        const text = this.portals.get(strs[0]);
        if (text === undefined) return this.fail('34000', `portal "${strs[0]}" does not exist`);
        if (text === 'fail') return this.fail('22012', 'division by zero');
        this.out.push(dataRow(text), commandComplete('SELECT 1'));
        return;
      }
      case 'C': {
        const kind = String.fromCharCode(m.body[0]);
        const name = cstrings(m.body.subarray(1))[0];
        (kind === 'S' ? this.statements : this.portals).delete(name);
        this.out.push(closeComplete());
        return;
      }
      case 'S':
        this.ignoreTillSync = false;
        this.portals.clear();
        this.out.push(rfq('I'));
        return;
      default:
        throw new Error(`PgSession: unexpected '${m.code}'`);
    }
  }

  private fail(code: string, message: string): void {
    this.out.push(error(code, message));
    this.ignoreTillSync = true;
  }
}

/** A backend message with an error's SQLSTATE and text: what is compared between the two sessions. */
function richToken(m: { code: string; buf: Buffer; body: Buffer }): string {
  if (m.code !== 'E') return backendToken(m);
  const f = readErrorFields(m.buf, 0, m.buf.length);
  return `E(${f.get('C')}: ${f.get('M')})`;
}

const NAMES = ['a', 'b', 'c'];
const TEXTS = (name: string): string[] => [`select ${name}`, `select ${name} v2`, 'fail'];

interface Scenario {
  capacity: number;
  /** Statements another client left on the server: [name, text index]. */
  others: Array<[number, number]>;
  /** A tape of choices the client's script is built from. */
  tape: number[];
}

/**
 * The client's batches (each ending in Sync), chosen so that each message is valid in its own
 * session at the time it is sent.
 */
function clientScript(tape: number[], direct: PgSession): Buffer[][] {
  let t = 0;
  const next = (n: number): number => (t < tape.length ? tape[t++] % n : 0);
  const script: Buffer[][] = [];
  const batches = 1 + next(8);
  for (let b = 0; b < batches; b++) {
    const batch: Buffer[] = [];
    const send = (m: Buffer): void => {
      batch.push(m);
      direct.process(frames(m)[0]);
    };
    const ops = 1 + next(5);
    for (let o = 0; o < ops; o++) {
      const have = NAMES.filter((n) => direct.statements.has(n));
      const lack = NAMES.filter((n) => !direct.statements.has(n));
      switch (next(6)) {
        case 0:
        case 1:
          if (lack.length > 0) {
            const name = lack[next(lack.length)];
            send(parse(name, TEXTS(name)[next(3)]));
          }
          break;
        case 2:
          if (have.length > 0) {
            const name = have[next(have.length)];
            send(bind(name, 'p'));
            if (next(2) === 0) send(describePortal('p'));
            send(execute(0, 'p'));
          }
          break;
        case 3:
          if (have.length > 0) send(describeStatement(have[next(have.length)]));
          break;
        case 4:
          if (have.length > 0) send(closeStatement(have[next(have.length)]));
          break;
        default:
          send(parse('', ['select u', 'fail', 'selec bad'][next(3)]));
          send(bind('', ''));
          send(execute());
          break;
      }
    }
    send(sync());
    script.push(batch);
  }
  return script;
}

/** A Close of a statement after a message that may fail, in the same batch. */
function closesAfterPossibleFailure(script: Buffer[][]): boolean {
  return script.some((batch) => {
    let mayFail = false;
    for (const m of batch) {
      const code = String.fromCharCode(m[0]);
      if (code === 'C' && m[5] === 0x53 && mayFail) return true;
      if (code !== 'C' && code !== 'S') mayFail = true;
    }
    return false;
  });
}

/**
 * Runs the client's script through pgmux against a server session (which already has another
 * client's statements), interleaving sends and answers as `choices` say. `careful`: a batch with
 * a named Parse is sent only once everything before it is answered.
 */
function runDifferential(scenario: Scenario, choices: number[], careful: boolean): void {
  /** pgmux sent an LRU eviction Close after a message of the same batch that may fail (the eviction bug). */
  let skippableEviction = false;
  let serverBatchMayFail = false;
  const direct = new PgSession();
  const batches = clientScript(scenario.tape, direct);
  const expected = direct.out.flatMap((m) => frames(m)).map(richToken);

  const server = new PgSession();
  const cache = new PreparedCache(scenario.capacity);
  // Another client prepared statements on this server before (through pgmux: its LRU applies).
  const other = new Harness({ cache, router: new StatementRouter() });
  const names = new Set<number>();
  for (const [n, ti] of scenario.others) if (!names.has(n) && names.add(n)) other.client(parse(NAMES[n], TEXTS(NAMES[n])[ti]));
  other.client(sync());
  for (const m of frames(drain(other.link.toServer))) server.process(m);
  expect(other.server(...server.out.splice(0)).at(-1)).toBe(Ready);
  expect(other.state).toEqual(IDLE);
  const h = new Harness({ cache, router: new StatementRouter() });
  const script: Array<{ msg: Buffer; waitForAnswers: boolean }> = batches.flatMap((batch) => {
    const named = batch.some((m) => m[0] === 0x50 && m[5] !== 0);
    return batch.map((msg, i) => ({ msg, waitForAnswers: careful && named && i === 0 }));
  });
  const received: string[] = [];
  let syncsSent = 0;
  let readies = 0;
  let ci = 0;
  const choose = (): number => (choices.length === 0 ? 0 : choices[ci++ % choices.length]);
  let pending: Buffer[] = [];
  for (let round = 0; ; round++) {
    if (round > 10_000) throw new Error('no progress');
    pending.push(...server.out.splice(0));
    const canClient = script.length > 0 && !(script[0].waitForAnswers && readies < syncsSent);
    if (!canClient && pending.length === 0) break;
    const c = choose();
    if (canClient && (pending.length === 0 || c % 2 === 0)) {
      for (let i = 0; i <= (c >> 1) % 4 && script.length > 0 && !(i > 0 && script[0].waitForAnswers); i++) {
        const { msg } = script.shift() as { msg: Buffer };
        if (msg[0] === 0x53) syncsSent++;
        h.client(msg);
      }
      for (const m of frames(drain(h.link.toServer))) {
        if (m.code === 'S') serverBatchMayFail = false;
        else if (m.code === 'C' && m.body[0] === 0x53) skippableEviction ||= serverBatchMayFail;
        else if (m.code !== 'C' && m.code !== 'H') serverBatchMayFail = true;
        server.process(m);
      }
    } else {
      const n = 1 + ((c >> 1) % 3);
      const chunk = pending.slice(0, n);
      pending = pending.slice(n);
      const events = h.server(...chunk);
      expect(events).not.toContain(Desync);
      readies += events.filter((e) => e === Ready).length;
      expect(h.link.toServer.empty).toBe(true); // (no stale-plan retry in these scenarios)
    }
    received.push(...frames(drain(h.link.toClient)).map(richToken));
  }
  expect(script).toEqual([]);
  if (careful) fc.pre(!skippableEviction);
  expect(received).toEqual(expected);
  expect(h.state).toEqual(IDLE);
  // The router knows exactly the client's statements.
  for (const name of NAMES) expect(h.router?.has(name), name).toBe(direct.statements.has(name));
}

describe('Attachment with a StatementRouter: the client gets what its own session would have said (differential model check)', () => {
  const scenario = (capacity: fc.Arbitrary<number>): fc.Arbitrary<Scenario> =>
    fc.record({
      capacity,
      others: fc.array(fc.tuple(fc.nat(2), fc.nat(2)), { maxLength: 3 }),
      tape: fc.array(fc.nat(1000), { minLength: 10, maxLength: 120 }),
    });

  it('clear of the known bugs (no Close, by the client or an LRU eviction, after a possible failure in its batch; named Parses sent once earlier batches are answered): equal', () => {
    fc.assert(
      fc.property(scenario(fc.constantFrom(1, 2, 100)), fc.array(fc.nat(1000), { maxLength: 50 }), (s, choices) => {
        // Clear of the bugs shown by the targeted tests above (skipped Closes; in-flight Parse).
        fc.pre(!closesAfterPossibleFailure(clientScript(s.tape, new PgSession())));
        runDifferential(s, choices, true);
      }),
      { numRuns: 300 },
    );
  });

  // BUGS (see the targeted tests above): a skipped eviction Close makes pgmux prepare a
  // statement the server still has (42P05 from the server); a skipped client Close makes the
  // router forget a statement the client still has; a pipelined Parse of a name whose in-flight
  // Parse then does not run is refused (42P05 from pgmux). Fixed seed, so this finds them
  // deterministically; it starts passing once they are fixed.
  it.fails('with evictions, Closes anywhere and batches pipelined freely: equal', () => {
    fc.assert(
      fc.property(scenario(fc.constantFrom(1, 2, 100)), fc.array(fc.nat(1000), { maxLength: 50 }), (s, choices) => runDifferential(s, choices, false)),
      { numRuns: 1000, seed: 42 },
    );
  });
});

describe('Attachment with a StatementRouter: what the server skips is undone (the undo journal; differential-fuzzer findings)', () => {
  it('a Parse and a Close of the statement, both skipped after an error: the client has no statement (seed 424243)', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('s2', 'select $1::int + 1'), bind('s2'), describePortal(''), closeStatement('s2'), sync());
    h.sent();
    h.server(error('25P02', 'current transaction is aborted, commands ignored until end of transaction block'), rfq('E'));
    expect(h.received()).toEqual(['E(25P02)', 'Z(E)']);
    expect(h.router?.has('s2')).toBe(false);
  });

  it('a Close skipped after an error: the client still has the statement', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('s1', 'select 1'), sync());
    h.server(parseComplete(), rfq('I'));
    h.client(bind('s1'), execute(), closeStatement('s1'), sync());
    h.server(error('22012', 'division by zero'), rfq('I'));
    expect(h.router?.has('s1')).toBe(true);
  });

  it('an unnamed Parse skipped after an error leaves the earlier unnamed statement (seed 424246)', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('', 'fetch 1 from hc'), bind('', 'hc'), execute(0, 'hc'), parse('', 'select 2'), bind(), execute(), sync());
    h.sent();
    h.server(parseComplete(), bindComplete(), error('34000', 'cursor "hc" does not exist'), rfq('I'));
    h.received();
    // The client's unnamed statement is still `fetch 1 from hc`: prepared again (whose the server's is, is not
    // known after a skip) and bound, where a client with none would get the 26000 stand-in.
    h.client(bind(), execute(), sync());
    expect(h.sent()).toEqual(['P()', 'B(,)', 'E', 'S']);
  });

  it('a failed unnamed Parse drops the unnamed statement (PostgreSQL drops it before parsing)', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('', 'select 1'), sync());
    h.server(parseComplete(), rfq('I'));
    h.client(parse('', 'selec 1'), sync());
    h.server(error('42601', 'syntax error at or near "selec"'), rfq('I'));
    h.sent();
    h.received();
    h.client(bind(), execute(), sync());
    h.sent();
    h.server(error('26000', 'unnamed prepared statement does not exist'), rfq('I'));
    expect(h.received()).toEqual(['E(26000)', 'Z(I)']);
  });

  it('a simple Query the server skips does not drop the unnamed statement (seed 424244)', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('', 'set timezone to utc'), bind(), execute(), execute(), flush(), query('select 1'));
    h.sent();
    h.server(parseComplete(), bindComplete(), commandComplete('SET'), error('55000', 'portal cannot be run'));
    h.client(sync());
    h.server(rfq('I'));
    h.sent();
    h.received();
    h.client(bind(), execute(), sync());
    expect(h.sent()).toEqual(['P()', 'B(,)', 'E', 'S']);
  });

  it('a DEALLOCATE ALL the server skips leaves the statements (seed 424242)', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('s1', 'select 1'), sync());
    h.server(parseComplete(), rfq('I'));
    h.router?.queryIntercepted(DEALLOCATE_ALL);
    h.client(bind('s1'), execute(), flush(), query('DEALLOCATE ALL'));
    h.server(error('22012', 'division by zero'));
    h.client(sync());
    h.server(rfq('I'));
    expect(h.router?.has('s1')).toBe(true);
  });

  it('a DEALLOCATE ALL in a Query that fails (an aborted transaction) leaves the statements (seed 919201)', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('s1', 'select 1'), sync());
    h.server(parseComplete(), rfq('I'));
    h.router?.queryIntercepted(DEALLOCATE_ALL);
    h.client(query('DEALLOCATE ALL; create temp table tt (x int)'));
    expect(h.router?.has('s1')).toBe(false); // taken as done when routed, for what the client pipelines behind it
    h.server(error('25P02', 'current transaction is aborted, commands ignored until end of transaction block'), rfq('E'));
    expect(h.router?.has('s1')).toBe(true);
  });

  it('a DEALLOCATE ALL that completed stands when a later statement of its Query fails', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('s1', 'select 1'), sync());
    h.server(parseComplete(), rfq('I'));
    h.router?.queryIntercepted(DEALLOCATE_ALL);
    h.client(query('DEALLOCATE ALL; select 1/0'));
    h.server(commandComplete('DEALLOCATE ALL'), error('22012', 'division by zero'), rfq('I'));
    expect(h.router?.has('s1')).toBe(false);
  });

  it('the unnamed statement put back for a Bind, when the client’s own Parse of it failed: 26000, as directly (seed 919199)', () => {
    const h = new Harness({ router: new StatementRouter() });
    // The unnamed Parse fails; a refused Parse's stand-in (an unnamed Parse made to fail) took the server's
    // unnamed statement; pipelined behind the Sync, the Bind needs the client's unnamed statement put back.
    h.client(parse('', 'select x from tt'));
    h.link.injectFailure(Owed.Parse, parse('', 'pgmux refuses this'), error('0A000', 'refused by pgmux'));
    h.client(sync(), bind(), execute(), sync());
    // The Bind waits for the first segment's answer: whether the server ran the client's Parse decides which
    // unnamed statement it would find (seed 70814).
    expect(h.sent()).toEqual(['P()', 'P()', 'S']);
    h.server(error('42P01', 'relation "tt" does not exist'), rfq('I'));
    expect(h.sent()).toEqual(['B(,pgmux_unprepared_unnamed)', 'E', 'S']);
    h.server(error('26000', 'prepared statement "pgmux_unprepared_unnamed" does not exist'), rfq('I'));
    expect(h.received()).toEqual(['E(42P01)', 'Z(I)', 'E(26000)', 'Z(I)']);
  });
  it('a Bind with the wrong parameter count, its statement missing on this server, in an aborted transaction: 08P01 as directly (seed 818188)', () => {
    const router = new StatementRouter();
    const a = new Harness({ router });
    a.client(parse('s1', 'select $1::int'), sync());
    a.server(parseComplete(), rfq('I'));
    // On another server, in a transaction that has failed: pgmux's Parse of s1 is refused (25P02), but
    // PostgreSQL's Bind checks the parameter count before the aborted transaction.
    const b = new Harness({ router });
    b.client(bindWith('s1', ['1', '2']), execute(), sync());
    expect(b.sent()).toEqual(['P(s1)', 'B(,s1)', 'E', 'S']);
    b.server(error('25P02', 'current transaction is aborted, commands ignored until end of transaction block'), rfq('E'));
    expect(errorFieldsIn(b.receivedBytes()).get('M')).toBe('bind message supplies 2 parameters, but prepared statement "s1" requires 1');
    // With the right count, 25P02 is PostgreSQL's answer too.
    b.client(bindWith('s1', ['1']), execute(), sync());
    b.sent();
    b.server(error('25P02', 'current transaction is aborted, commands ignored until end of transaction block'), rfq('E'));
    expect(errorFieldsIn(b.receivedBytes()).get('C')).toBe('25P02');
  });

  it('a statement prepared again behind its Parse in flight, both skipped: the first Parse’s statement stays known (seed 1010103)', () => {
    const router = new StatementRouter();
    const a = new Harness({ router });
    a.client(parse('s2', 'select $1::int + 1'), sync());
    a.server(parseComplete(), rfq('I'));
    const cache = new PreparedCache(100);
    const b = new Harness({ cache, router });
    // pgmux prepares s2 for the Bind; behind the Sync, the client's duplicate Parse is refused (42P05) and the
    // Bind after it needs s2, whose Parse is still in flight: Close and Parse again, both skipped.
    b.client(bind('s2', 'hc'), sync(), parse('s2', 'select $1::int + 1'), bind('s2'), execute(), sync());
    expect(b.sent()).toEqual(['P(s2)', 'B(hc,s2)', 'S', 'P(pgmux check)', 'C(S:pgmux check)', 'P(pgmux always fails)', 'C(S:s2)', 'P(s2)', 'B(,s2)', 'E', 'S']);
    b.server(parseComplete(), bindComplete(), rfq('I'), parseComplete(), closeComplete(), error('42601', 'cannot insert multiple commands into a prepared statement'), rfq('I'));
    expect(b.received()).toEqual(['2', 'Z(I)', 'E(42P05)', 'Z(I)']);
    b.client(bind('s2', 'hc'), sync());
    expect(b.sent()).toEqual(['B(hc,s2)', 'S']);
  });

  it('the unnamed statement put back after the client’s Parse of it failed, in an aborted transaction: 26000 still (seed 7070714)', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('', 'select x from tt'));
    h.link.injectFailure(Owed.Parse, parse('', 'pgmux refuses this'), error('0A000', 'refused by pgmux'));
    h.client(sync(), bind(), execute(), sync());
    expect(h.sent()).toEqual(['P()', 'P()', 'S']);
    h.server(error('42P01', 'relation "tt" does not exist'), rfq('E'));
    // PostgreSQL's Bind looks the statement up before it checks for an aborted transaction.
    expect(h.sent()).toEqual(['B(,pgmux_unprepared_unnamed)', 'E', 'S']);
    h.server(error('26000', 'prepared statement "pgmux_unprepared_unnamed" does not exist'), rfq('E'));
    expect(h.received()).toEqual(['E(42P01)', 'Z(E)', 'E(26000)', 'Z(E)']);
  });
  it('the unnamed statement put back for a Bind with the wrong parameter count, in an aborted transaction: 08P01 (seeds 9090910, 1212122)', () => {
    const h = new Harness({ router: new StatementRouter() });
    // The client's unnamed `begin` (no parameters) runs; a refused Parse's stand-in takes the server's unnamed
    // statement and aborts the transaction; the Bind of the client's unnamed statement supplies one parameter.
    h.client(parse('', 'begin'), bind(), execute());
    h.link.injectFailure(Owed.Parse, parse('', 'pgmux refuses this'), error('0A000', 'refused by pgmux'));
    h.client(sync(), bindWith('', ['41']), execute(), sync());
    expect(h.sent()).toEqual(['P()', 'B(,)', 'E', 'P()', 'S']);
    h.server(parseComplete(), bindComplete(), commandComplete('BEGIN'), error('42601', 'syntax error'), rfq('E'));
    expect(h.sent()).toEqual(['P()', 'B(,)', 'E', 'S']);
    h.server(error('25P02', 'current transaction is aborted, commands ignored until end of transaction block'), rfq('E'));
    expect(h.received()).toEqual(['1', '2', 'C(BEGIN)', 'E(0A000)', 'Z(E)', 'E(08P01)', 'Z(E)']);
  });
  it('a skipped Close of the unnamed statement does not outlive later changes of it (seed 1414145)', () => {
    const router = new StatementRouter();
    const a = new Harness({ router });
    a.client(parse('', 'select current_user'), sync());
    a.server(parseComplete(), rfq('I'));
    a.sent();
    // On another server: the unnamed statement put back, then Closed, all skipped after an error.
    const b = new Harness({ router });
    b.client(execute(0, 'nope'), closeStatement(''), sync());
    expect(b.sent()).toEqual(['E(nope)', 'P()', 'C(S:)', 'S']);
    b.server(error('34000', 'portal "nope" does not exist'), rfq('I'));
    // A simple Query destroys it.
    b.client(query('select 1'));
    b.server(commandComplete('SELECT 1'), rfq('I'));
    // Back on the first server, which still has the old statement: the client has none.
    a.client(describeStatement(''), sync());
    expect(a.sent()).toEqual(['D(S:pgmux_unprepared_unnamed)', 'S']);
  });

  it('the unnamed statement put back, refused in an aborted transaction, then Closed in the same pipeline: 25P02 (seed 70815)', () => {
    const router = new StatementRouter();
    const a = new Harness({ router });
    a.client(parse('', 'select $1::int + 1 as v'), sync());
    a.server(parseComplete(), rfq('I'));
    a.sent();
    // On another server, in a transaction that has failed: the statement is put back for the Bind, and the Close
    // after it is routed before the server answers. Directly, the Bind finds the statement and gets 25P02.
    const b = new Harness({ router });
    b.client(bindWith('', ['41']), execute(), closeStatement(''), sync());
    expect(b.sent()).toEqual(['P()', 'B(,)', 'E', 'C(S:)', 'S']);
    b.server(error('25P02', 'current transaction is aborted, commands ignored until end of transaction block'), rfq('E'));
    expect(b.received()).toEqual(['E(25P02)', 'Z(E)']);
  });

  it('a Parse of a statement this server has, in a failed transaction: 25P02 as directly, not pgmux’s ParseComplete (seed 70848)', () => {
    const cache = new PreparedCache(100);
    const a = new Harness({ cache, router: new StatementRouter() });
    a.client(parse('s2', 'select 2'), sync());
    a.server(parseComplete(), rfq('I'));
    // Another client's, in a transaction that has failed, on the same server (which has `select 2` already).
    const b = new Harness({ cache, router: new StatementRouter(), txStatus: TxStatus.Failed });
    b.client(parse('s2', 'select 2'), bind('s2'), execute(), sync());
    expect(b.sent()).toEqual(['P(pgmux check)', 'C(S:pgmux check)', 'B(,s2)', 'E', 'S']);
    b.server(error('25P02', 'current transaction is aborted, commands ignored until end of transaction block'), rfq('E'));
    expect(b.received()).toEqual(['E(25P02)', 'Z(E)']);
    // In a transaction that is fine, the check passes and the server's statement stands for the client's.
    const c = new Harness({ cache, router: new StatementRouter(), txStatus: TxStatus.InTransaction });
    c.client(parse('s2', 'select 2'), sync());
    expect(c.sent()).toEqual(['P(pgmux check)', 'C(S:pgmux check)', 'S']);
    c.server(parseComplete(), closeComplete(), rfq('T'));
    expect(c.received()).toEqual(['1', 'Z(T)']);
  });

  it('a Parse of a statement this server has, checked in a failed transaction, then a Describe of it after the Sync: 26000 as directly (seed 20261369)', () => {
    const cache = new PreparedCache(100);
    preparedByAnotherClient(cache, parse('s2', 'select 2'));
    const h = new Harness({ cache, router: new StatementRouter(), txStatus: TxStatus.Failed });
    h.client(parse('s2', 'select 2'), sync(), describeStatement('s2'), sync());
    // The Describe waits: whether the client has s2 depends on the check, and the server has it either way.
    expect(h.sent()).toEqual(['P(pgmux check)', 'C(S:pgmux check)', 'S']);
    h.server(error('25P02', 'current transaction is aborted, commands ignored until end of transaction block'), rfq('E'));
    expect(h.sent()).toEqual(['D(S:pgmux_unprepared_s2)', 'S']);
    h.server(error('26000', 'prepared statement "pgmux_unprepared_s2" does not exist'), rfq('E'));
    expect(h.received()).toEqual(['E(25P02)', 'Z(E)', 'E(26000)', 'Z(E)']);
  });

  it('a Parse of a statement this server has, behind a BEGIN run unsynced and a segment that fails: checked first (seed 101028)', () => {
    const cache = new PreparedCache(100);
    preparedByAnotherClient(cache, parse('s2', 'begin'));
    const h = new Harness({ cache, router: new StatementRouter() });
    // BEGIN runs, with no Sync after it: the last ReadyForQuery still says idle.
    h.client(parse('', 'begin'), bind(), execute(), flush());
    h.server(parseComplete(), bindComplete(), commandComplete('BEGIN'));
    h.received();
    // A segment that fails (the transaction is aborted), then the Parse: PostgreSQL says 25P02.
    h.client(bind('nope'), sync(), parse('s2', 'begin'), bind('s2'), sync());
    expect(h.sent()).toEqual(['P()', 'B(,)', 'E', 'H', 'B(,nope)', 'S', 'P(pgmux check)', 'C(S:pgmux check)', 'B(,s2)', 'S']);
    h.server(error('26000', 'prepared statement "nope" does not exist'), rfq('E'));
    h.server(error('25P02', 'current transaction is aborted, commands ignored until end of transaction block'), rfq('E'));
    expect(h.received()).toEqual(['E(26000)', 'Z(E)', 'E(25P02)', 'Z(E)']);
  });

  it('a Bind of the unnamed statement waits for the earlier segment whose unnamed Parse the server may skip (seed 70814)', () => {
    const router = new StatementRouter();
    const a = new Harness({ router });
    a.client(parse('', 'select 1 as one'), sync());
    a.server(parseComplete(), rfq('I'));
    a.sent();
    // On another server: the client's new unnamed Parse comes after a Bind that fails, so the server skips it and
    // the client keeps `select 1`, which this server does not have.
    const b = new Harness({ router });
    b.client(bind('nope'), parse('', 'select 2 as two'), sync(), bind(), execute(), sync());
    expect(b.sent()).toEqual(['B(,nope)', 'P()', 'S']);
    expect(b.link.settled).toBe(false);
    b.server(error('26000', 'prepared statement "nope" does not exist'), rfq('I'));
    // Now known: the client's unnamed statement is `select 1`, put back before the Bind.
    expect(b.sent()).toEqual(['P()', 'B(,)', 'E', 'S']);
    b.server(parseComplete(), bindComplete(), dataRow('1'), commandComplete('SELECT 1'), rfq('I'));
    expect(b.received()).toEqual(['E(26000)', 'Z(I)', '2', 'D(1)', 'C(SELECT 1)', 'Z(I)']);
    expect(b.link.settled).toBe(true);
  });

  it('a Bind of the unnamed statement held for an earlier segment that succeeds goes as it is', () => {
    const h = new Harness({ router: new StatementRouter() });
    // The client has no unnamed statement: its Bind fails, the Parse after it is skipped, and so the Bind
    // after the Sync finds none either.
    h.client(bind('', 'p1'), parse('', 'select 2 as two'), sync(), bind(), execute(), sync());
    expect(h.sent()).toEqual(['B(p1,pgmux_unprepared_unnamed)', 'P()', 'S']);
    h.server(error('26000', 'prepared statement "pgmux_unprepared_unnamed" does not exist'), rfq('I'));
    expect(h.sent()).toEqual(['B(,pgmux_unprepared_unnamed)', 'E', 'S']);
    const c = new Harness({ router: new StatementRouter() });
    c.client(parse('', 'select 3'), bind('', 'p1'), sync(), parse('', 'select 4'), bind('', 'p2'), sync(), bind(), execute(), sync());
    expect(c.sent()).toEqual(['P()', 'B(p1,)', 'S', 'P()', 'B(p2,)', 'S']);
    c.server(parseComplete(), bindComplete(), rfq('I'));
    // The first segment ran, but the second (with the latest unnamed Parse) is not answered yet: still held.
    expect(c.sent()).toEqual([]);
    c.server(parseComplete(), bindComplete(), rfq('I'));
    expect(c.sent()).toEqual(['B(,)', 'E', 'S']);
  });

  it('messages held for an unnamed Parse that ran (its segment failed after it) find the statement (seed 80817)', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('', 'select $1::int + 1 as v'), describePortal('p1'), execute(2, 'p1'), closePortal('p1'), sync());
    h.client(describeStatement(''), bindWith('', ['41']), describePortal(''), execute(1), flush(), query('RESET ALL'));
    expect(h.sent()).toEqual(['P()', 'D(P:p1)', 'E(p1,2)', 'C(P:p1)', 'S']);
    h.server(parseComplete(), error('34000', 'portal "p1" does not exist'), rfq('I'));
    expect(h.sent()).toEqual(['D(S:)', 'B(,)', 'D(P:)', 'E(1)', 'H', 'Q(RESET ALL)']);
  });

  it('a Query pgmux extends, and a refusal, wait behind held messages (seed 80817)', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('', 'select 1'), describePortal('p1'), sync(), describeStatement(''));
    // RESET ALL with the client's startup values put back: a simple Query, which would destroy the unnamed statement
    // the held Describe needs if it went first.
    h.link.sendExtendedQuery(query('RESET ALL;SET timezone = x'), own([0]));
    h.link.injectFailure(Owed.Query, query('select pgmux_refused'), error('0A000', 'refused by pgmux'));
    expect(h.sent()).toEqual(['P()', 'D(P:p1)', 'S']);
    h.server(parseComplete(), error('34000', 'portal "p1" does not exist'), rfq('I'));
    expect(h.sent()).toEqual(['D(S:)', 'Q(RESET ALL;SET timezone = x)', 'Q(select pgmux_refused)']);
  });

  it('a malformed message that would be held is refused at once, as the client’s (protocol fuzzer seed 1204)', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('', 'select 1'), sync());
    // A Describe of the unnamed statement with bytes after its name: held, it would be decoded later, inside the
    // server's handler (an internal error); refused now, the client is closed with 08P01.
    const describe = Buffer.concat([describeStatement(''), Buffer.from([0x78])]);
    describe.writeInt32BE(describe.length - 1, 1);
    expect(() => h.client(describe)).toThrow(MalformedMessage);
  });

  it('held client input is bounded: past 1 MiB it is routed at once', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(bind('nope'), parse('', 'select 2'), sync(), describeStatement(''));
    expect(h.sent()).toEqual(['B(,nope)', 'P()', 'S']);
    h.client(query(`select '${'x'.repeat(1 << 20)}'`));
    expect(h.sent().map((m) => m.slice(0, 5))).toEqual(['D(S:)', "Q(sel"]);
  });

  it('an unnamed Close the server skips, then a simple Query: the Query drops the statement the rollback puts back (seed 121328)', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('', 'select $1::int + 1 as v'), describePortal(''), closeStatement(''), sync(), query('select 1'));
    expect(h.sent()).toEqual(['P()', 'D(P:)', 'C(S:)', 'S', 'Q(select 1)']);
    // The Describe fails, the server skips the Close: the Parse stood until the Query destroyed it.
    h.server(parseComplete(), error('34000', 'portal "" does not exist'), rfq('I'));
    h.server(rowDescription('?column?'), dataRow('1'), commandComplete('SELECT 1'), rfq('I'));
    h.received();
    h.client(bindWith('', ['41']), execute(), sync());
    expect(h.sent()).toEqual(['B(,pgmux_unprepared_unnamed)', 'E', 'S']);
    h.server(error('26000', 'prepared statement "pgmux_unprepared_unnamed" does not exist'), rfq('I'));
    expect(h.received()).toEqual(['E(26000)', 'Z(I)']);
  });

  it('a second unnamed Close in a later segment waits for the first one’s answer: if skipped, the second closes it', () => {
    const h = new Harness({ router: new StatementRouter() });
    h.client(parse('', 'select 1'), describePortal('nope'), closeStatement(''), sync(), closeStatement(''), sync(), bind(), execute(), sync());
    expect(h.sent()).toEqual(['P()', 'D(P:nope)', 'C(S:)', 'S']);
    h.server(parseComplete(), error('34000', 'portal "nope" does not exist'), rfq('I'));
    // The Bind after it waits in turn for the second Close's answer.
    expect(h.sent()).toEqual(['C(S:)', 'S']);
    h.server(closeComplete(), rfq('I'));
    expect(h.sent()).toEqual(['B(,pgmux_unprepared_unnamed)', 'E', 'S']);
    h.server(error('26000', 'prepared statement "pgmux_unprepared_unnamed" does not exist'), rfq('I'));
    expect(h.received()).toEqual(['1', 'E(34000)', 'Z(I)', '3', 'Z(I)', 'E(26000)', 'Z(I)']);
  });

  it('a RESET through the extended protocol (JDBC): the startup values are put back right after its Execute, answers swallowed', () => {
    const restored: Array<readonly string[] | 'all'> = [];
    const router = new StatementRouter(true, () => {}, (names) => (restored.push(names), ["SET \"TimeZone\" TO E'Asia/Tokyo'"]));
    const h = new Harness({ router });
    h.client(parse('', 'reset all'), bind(), execute(), parse('s1', 'select 1'), bind('s1'), execute(), sync());
    expect(restored).toEqual(['all']);
    expect(h.sent()).toEqual(['P()', 'B(,)', 'E', 'P()', 'B(,)', 'E', 'P(s1)', 'B(,s1)', 'E', 'S']);
    h.server(parseComplete(), bindComplete(), commandComplete('RESET'), parseComplete(), bindComplete(), commandComplete('SET'));
    h.server(parseComplete(), bindComplete(), dataRow('1'), commandComplete('SELECT 1'), rfq('I'));
    expect(h.received()).toEqual(['1', '2', 'C(RESET)', '1', '2', 'D(1)', 'C(SELECT 1)', 'Z(I)']);
    // pgmux's statement took the server's unnamed one: the client's (the RESET) is prepared again for its next Bind.
    h.client(bind(), execute(), sync());
    expect(h.sent()).toEqual(['P()', 'B(,)', 'E', 'P()', 'B(,)', 'E', 'S']);
    expect(restored).toEqual(['all', 'all']);
    h.server(parseComplete(), bindComplete(), commandComplete('RESET'), parseComplete(), bindComplete(), commandComplete('SET'), rfq('I'));
    expect(h.received()).toEqual(['2', 'C(RESET)', 'Z(I)']);
    // A named RESET statement, bound and executed twice: put back after the first Execute of each Bind only.
    h.client(parse('r', 'RESET timezone'), bind('r'), execute(), execute(), bind('r'), execute(), sync());
    expect(restored).toEqual(['all', 'all', ['TimeZone'], ['TimeZone']]);
    expect(h.sent()).toEqual(['P(r)', 'B(,r)', 'E', 'P()', 'B(,)', 'E', 'E', 'B(,r)', 'E', 'P()', 'B(,)', 'E', 'S']);
  });

  it('a SET that is not a RESET, or a RESET with nothing to put back, sends nothing of pgmux’s', () => {
    const router = new StatementRouter(true, () => {}, () => []);
    const h = new Harness({ router });
    h.client(parse('', 'set timezone = utc'), bind(), execute(), parse('', 'reset all'), bind(), execute(), sync());
    expect(h.sent()).toEqual(['P()', 'B(,)', 'E', 'P()', 'B(,)', 'E', 'S']);
  });

  it('a statement pgmux prepared in a segment still in flight is prepared again in a later one (seed 424247)', () => {
    const cache = new PreparedCache(100);
    const router = new StatementRouter();
    new Harness({ router }).client(parse('s1', 'select $1::int'));
    const h = new Harness({ cache, router });
    h.client(bind('x'), describeStatement('s1'), sync(), bind('s1'), execute(), sync());
    // The first segment's Bind may fail, and the server then skips the Parse injected for the Describe.
    expect(h.sent()).toEqual(['B(,x)', 'P(s1)', 'D(S:s1)', 'S', 'C(S:s1)', 'P(s1)', 'B(,s1)', 'E', 'S']);
  });
});
