import { serialize } from 'pg-protocol';
import { describe, expect, it } from 'vitest';

import { MAX_MESSAGE_LENGTH } from './codes.js';
import { FrameReader, type FrameHandler } from './frame-reader.js';

const D = 0x44; // 'D' DataRow

// ---------------------------------------------------------------------------------------------
// Building messages by hand

function msg(code: string, body: Buffer = Buffer.alloc(0)): Buffer {
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

function rowDescription(names: string[]): Buffer {
  const parts = [int16(names.length)];
  for (const name of names) {
    // name, table oid, column number, type oid (text), type size, type modifier, format
    parts.push(cstr(name), int32(16384), int16(1), int32(25), int16(-1), int32(-1), int16(0));
  }
  return msg('T', Buffer.concat(parts));
}

function dataRow(values: Array<Buffer | null>): Buffer {
  const parts = [int16(values.length)];
  for (const v of values) {
    if (v === null) parts.push(int32(-1));
    else parts.push(int32(v.length), v);
  }
  return msg('D', Buffer.concat(parts));
}

function bigValue(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

/** A backend reply to a simple query followed by an extended-protocol exchange from a client. */
const MESSAGES: Buffer[] = [
  rowDescription(['id', 'payload']),
  dataRow([Buffer.from('1'), Buffer.from('héllo wörld')]),
  dataRow([]), // a DataRow with no columns
  dataRow([Buffer.from('2'), null]),
  dataRow([Buffer.from('3'), bigValue(200 * 1024)]), // ~200 KB
  dataRow([Buffer.from('4'), Buffer.from('')]),
  msg('C', cstr('SELECT 5')),
  msg('Z', Buffer.from('I')),
  serialize.parse({ name: 's1', text: 'select $1::int', types: [23] }),
  serialize.bind({ statement: 's1', values: ['42'] }),
  serialize.describe({ type: 'P', name: '' }),
  serialize.execute({ portal: '', rows: 0 }),
  serialize.sync(), // 5 bytes, no body
  serialize.flush(), // 5 bytes, no body
  msg('n'), // NoData: a backend message with no body
  msg('1'),
  msg('2'),
  dataRow([Buffer.from('5')]),
  msg('Z', Buffer.from('T')),
];
const STREAM = Buffer.concat(MESSAGES);
const OFFSETS: number[] = [];
{
  let o = 0;
  for (const m of MESSAGES) {
    OFFSETS.push(o);
    o += m.length;
  }
}

/** The stream without the 200 KB row, for tests that are quadratic in the stream length. */
const SMALL_MESSAGES = MESSAGES.filter((m) => m.length < 1000);
const SMALL_STREAM = Buffer.concat(SMALL_MESSAGES);

// ---------------------------------------------------------------------------------------------
// A handler that records what it is given

interface FrameEvent {
  kind: 'frame';
  code: number;
  bytes: Buffer;
  buf: Buffer;
  start: number;
  end: number;
  chunk: number;
}
interface PieceEvent {
  kind: 'piece';
  code: number;
  bytes: Buffer;
  buf: Buffer;
  start: number;
  end: number;
  first: boolean;
  last: boolean;
  chunk: number;
}
type Event = FrameEvent | PieceEvent;

class Recorder implements FrameHandler {
  readonly events: Event[] = [];
  readonly errors: string[] = [];
  /** Index of the chunk being pushed, set by {@link feed}. */
  chunk = -1;

  constructor(private readonly streamable: (code: number) => boolean = () => false) {}

  onFrame(code: number, buf: Buffer, start: number, end: number): void {
    // Copy the bytes: they must be right at delivery time, whatever happens to buf later.
    this.events.push({ kind: 'frame', code, bytes: Buffer.from(buf.subarray(start, end)), buf, start, end, chunk: this.chunk });
  }

  canStream(code: number): boolean {
    return this.streamable(code);
  }

  onPiece(code: number, buf: Buffer, start: number, end: number, first: boolean, last: boolean): void {
    this.events.push({
      kind: 'piece',
      code,
      bytes: Buffer.from(buf.subarray(start, end)),
      buf,
      start,
      end,
      first,
      last,
      chunk: this.chunk,
    });
  }

  onProtocolError(reason: string): void {
    this.errors.push(reason);
  }

  frames(): FrameEvent[] {
    return this.events.filter((e): e is FrameEvent => e.kind === 'frame');
  }
}

function feed(reader: FrameReader, recorder: Recorder, chunks: Buffer[]): void {
  for (let i = 0; i < chunks.length; i++) {
    recorder.chunk = i;
    reader.push(chunks[i]);
  }
}

/** Splits `stream` at `cuts` (ascending offsets); each chunk is its own allocation, so views can be told apart. */
function splitCopies(stream: Buffer, cuts: number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let prev = 0;
  for (const cut of [...cuts, stream.length]) {
    const c = Buffer.alloc(cut - prev); // alloc, not allocUnsafe: no shared pool slab
    stream.copy(c, 0, prev, cut);
    chunks.push(c);
    prev = cut;
  }
  return chunks;
}

function oneByteChunks(stream: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let i = 0; i < stream.length; i++) chunks.push(stream.subarray(i, i + 1));
  return chunks;
}

/** mulberry32: a small seeded PRNG so failures reproduce. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random cut points: a mix of tiny, medium and large chunks. */
function randomCuts(length: number, seed: number): number[] {
  const rand = prng(seed);
  const cuts: number[] = [];
  let pos = 0;
  for (;;) {
    const r = rand();
    const size = r < 0.4 ? 1 + Math.floor(rand() * 8) : r < 0.8 ? 1 + Math.floor(rand() * 600) : 1 + Math.floor(rand() * 70_000);
    pos += size;
    if (pos >= length) return cuts;
    cuts.push(pos);
  }
}

// ---------------------------------------------------------------------------------------------
// Checks

/** Non-streaming: frames are exactly the original messages, in order, and nothing else arrives. */
function expectFrames(recorder: Recorder, messages: Buffer[]): void {
  expect(recorder.errors).toEqual([]);
  const frames = recorder.frames();
  expect(frames.length).toBe(recorder.events.length);
  expect(frames.length).toBe(messages.length);
  for (let i = 0; i < messages.length; i++) {
    const f = frames[i];
    if (f.code !== messages[i][0] || !f.bytes.equals(messages[i])) {
      throw new Error(`frame ${i}: got code ${f.code} (${f.bytes.length} bytes), expected message ${i} (${messages[i].length} bytes)`);
    }
  }
}

/**
 * Streaming: the frames and pieces concatenate to the stream; every streamed message has exactly one
 * first and one last piece, all of its code, without interleaving; only streamable codes are streamed.
 */
function expectStreamed(recorder: Recorder, messages: Buffer[], streamable: (code: number) => boolean): number {
  expect(recorder.errors).toEqual([]);
  const all = Buffer.concat(recorder.events.map((e) => e.bytes));
  expect(all.equals(Buffer.concat(messages))).toBe(true);

  // Plain checks in the loop: an expect() per event is too slow for a stream fed byte by byte.
  const problems: string[] = [];
  const rebuilt: Buffer[] = [];
  let open: Buffer[] | null = null;
  let openCode = -1;
  let streamedCount = 0;
  for (const [i, e] of recorder.events.entries()) {
    if (e.kind === 'frame') {
      if (open !== null) problems.push(`event ${i}: frame inside a streamed message`);
      rebuilt.push(e.bytes);
      continue;
    }
    if (!streamable(e.code)) problems.push(`event ${i}: streamed code ${e.code}`);
    if (e.first) {
      if (open !== null) problems.push(`event ${i}: second first piece`);
      // The first piece starts with the header.
      if (e.bytes.length === 0 || e.bytes[0] !== e.code) problems.push(`event ${i}: first piece without header`);
      open = [e.bytes];
      openCode = e.code;
      streamedCount++;
    } else if (open === null || e.code !== openCode) {
      problems.push(`event ${i}: piece outside a streamed message`);
      open = [e.bytes];
    } else {
      open.push(e.bytes);
    }
    if (e.last) {
      rebuilt.push(Buffer.concat(open));
      open = null;
    }
    if (problems.length > 5) break;
  }
  expect(problems).toEqual([]);
  expect(open).toBeNull();
  expect(rebuilt.length).toBe(messages.length);
  for (let i = 0; i < messages.length; i++) {
    if (!rebuilt[i].equals(messages[i])) throw new Error(`message ${i} rebuilt wrong`);
  }
  return streamedCount;
}

/**
 * No copies: a message that lies inside one chunk is delivered as a view of that very chunk (same
 * ArrayBuffer, right offsets), and every non-first piece of a streamed message is a view of the chunk too.
 */
function expectViews(recorder: Recorder, chunks: Buffer[], cuts: number[]): void {
  const bounds = [0, ...cuts, STREAM.length];
  const chunkOf = (offset: number): number => {
    let k = 0;
    while (bounds[k + 1] <= offset) k++;
    return k;
  };
  let m = 0;
  for (const e of recorder.events) {
    if (e.kind === 'frame') {
      const start = OFFSETS[m];
      const end = start + MESSAGES[m].length;
      const k = chunkOf(start);
      if (end <= bounds[k + 1]) {
        expect(e.buf).toBe(chunks[k]);
        expect(e.buf.buffer).toBe(chunks[k].buffer);
        expect(e.start).toBe(start - bounds[k]);
        expect(e.end).toBe(end - bounds[k]);
      }
      m++;
    } else {
      if (!e.first) expect(e.buf).toBe(chunks[e.chunk]);
      if (e.last) m++;
    }
  }
  expect(m).toBe(MESSAGES.length);
}

const streamRows = (code: number): boolean => code === D;

function runPlain(chunks: Buffer[]): Recorder {
  const recorder = new Recorder();
  const reader = new FrameReader(recorder);
  feed(reader, recorder, chunks);
  expect(reader.midMessage).toBe(false);
  return recorder;
}

function runStreaming(chunks: Buffer[]): Recorder {
  const recorder = new Recorder(streamRows);
  const reader = new FrameReader(recorder);
  feed(reader, recorder, chunks);
  expect(reader.midMessage).toBe(false);
  return recorder;
}

/**
 * The exhaustive split tests run the reader hundreds of thousands of times, so they check with a
 * lean handler: no copies, no expect() per event, each delivered range compared in place with the
 * stream. Returns the first problem found, or null.
 */
function splitProblem(
  messages: Buffer[],
  stream: Buffer,
  offsets: number[],
  chunks: Buffer[],
  streamable: (code: number) => boolean,
): string | null {
  let problem: string | null = null;
  let pos = 0; // stream offset of the next byte expected
  let m = 0; // index of the message being delivered
  let open = false;
  const fail = (what: string): void => {
    problem ??= `message ${m} at ${pos}: ${what}`;
  };
  const take = (code: number, buf: Buffer, start: number, end: number): void => {
    if (code !== messages[m]?.[0]) fail(`code ${code}`);
    if (end < start || stream.compare(buf, start, end, pos, pos + (end - start)) !== 0) fail('bytes differ');
    pos += end - start;
  };
  const reader = new FrameReader({
    onFrame(code, buf, start, end) {
      if (open) fail('frame inside a streamed message');
      if (end - start !== messages[m]?.length) fail(`frame of ${end - start} bytes`);
      take(code, buf, start, end);
      m++;
    },
    canStream: streamable,
    onPiece(code, buf, start, end, first, last) {
      if (!streamable(code)) fail('streamed a non-streamable message');
      if (first === open) fail(first ? 'second first piece' : 'piece before first');
      take(code, buf, start, end);
      open = true;
      if (last) {
        open = false;
        if (pos !== offsets[m] + messages[m].length) fail('last piece not at message end');
        m++;
      }
    },
    onProtocolError(reason) {
      fail(reason);
    },
  });
  for (const c of chunks) reader.push(c);
  if (open || reader.midMessage) fail('unfinished at end of stream');
  if (m !== messages.length || pos !== stream.length) fail(`ended after ${m} messages`);
  return problem;
}

function offsetsOf(messages: Buffer[]): number[] {
  const offsets: number[] = [];
  let o = 0;
  for (const m of messages) {
    offsets.push(o);
    o += m.length;
  }
  return offsets;
}

/** Splits the stream of `messages` in two at each of `cuts` (all offsets by default) and checks each run. */
function twoWaySplits(messages: Buffer[], streamable: (code: number) => boolean, cuts?: number[]): string[] {
  const stream = Buffer.concat(messages);
  const offsets = offsetsOf(messages);
  const problems: string[] = [];
  const check = (cut: number): void => {
    const problem = splitProblem(messages, stream, offsets, [stream.subarray(0, cut), stream.subarray(cut)], streamable);
    if (problem !== null) problems.push(`split at ${cut}: ${problem}`);
  };
  if (cuts === undefined) for (let cut = 1; cut < stream.length && problems.length < 5; cut++) check(cut);
  else for (const cut of cuts) if (problems.length < 5) check(cut);
  return problems;
}

/**
 * The same stream with a 16 KB row instead of the 200 KB one, small enough to split at every single
 * offset (a cut deep inside a row body takes the same path wherever it falls).
 */
const MEDIUM_MESSAGES = MESSAGES.map((m, i) => (i === 4 ? dataRow([Buffer.from('3'), bigValue(16 * 1024)]) : m));

/**
 * Cuts for the full stream: every offset except deep inside the 200 KB row's body, where every 97th
 * offset is taken and every offset within 300 bytes of either end of the row.
 */
function cutsAroundBigRow(): number[] {
  const cuts: number[] = [];
  const from = OFFSETS[4] + 300;
  const to = OFFSETS[4] + MESSAGES[4].length - 300;
  for (let cut = 1; cut < STREAM.length; cut++) {
    if (cut < from || cut >= to || (cut - from) % 97 === 0) cuts.push(cut);
  }
  return cuts;
}

// ---------------------------------------------------------------------------------------------

describe('FrameReader, whole messages (canStream false)', () => {
  it('delivers every message of a single chunk as a view of it', () => {
    const chunks = splitCopies(STREAM, []);
    const recorder = runPlain(chunks);
    expectFrames(recorder, MESSAGES);
    for (const f of recorder.frames()) expect(f.buf).toBe(chunks[0]);
    expectViews(recorder, chunks, []);
  });

  it('has a split checker that notices wrong bytes and missing messages', () => {
    const stream = Buffer.concat(SMALL_MESSAGES);
    const offsets = offsetsOf(SMALL_MESSAGES);
    const corrupt = Buffer.from(stream);
    corrupt[offsets[3] + 6] ^= 1;
    expect(splitProblem(SMALL_MESSAGES, stream, offsets, [corrupt], () => false)).toMatch(/bytes differ/);
    expect(splitProblem(SMALL_MESSAGES, stream, offsets, [corrupt.subarray(0, 20), corrupt.subarray(20)], streamRows)).toMatch(
      /bytes differ/,
    );
    expect(splitProblem(SMALL_MESSAGES, stream, offsets, [stream.subarray(0, offsets[5])], () => false)).toMatch(/ended after 5/);
    expect(splitProblem(SMALL_MESSAGES, stream, offsets, [stream.subarray(0, offsets[5] + 2)], () => false)).toMatch(/unfinished/);
    expect(splitProblem(SMALL_MESSAGES, stream, offsets, [stream], () => false)).toBeNull();
  });

  it('reassembles the stream split into two chunks at every offset', () => {
    expect(twoWaySplits(MEDIUM_MESSAGES, () => false)).toEqual([]);
  });

  it('reassembles the stream with the 200 KB row split around and throughout that row', () => {
    expect(twoWaySplits(MESSAGES, () => false, cutsAroundBigRow())).toEqual([]);
  });

  it('reassembles the stream split into three chunks at every pair of offsets (small messages)', () => {
    for (let a = 1; a < SMALL_STREAM.length; a++) {
      for (let b = a + 1; b < Math.min(SMALL_STREAM.length, a + 12); b++) {
        const recorder = runPlain([SMALL_STREAM.subarray(0, a), SMALL_STREAM.subarray(a, b), SMALL_STREAM.subarray(b)]);
        expectFrames(recorder, SMALL_MESSAGES);
      }
    }
  });

  it('reassembles the stream fed one byte at a time', () => {
    expectFrames(runPlain(oneByteChunks(STREAM)), MESSAGES);
  });

  it('reassembles random chunkings', () => {
    for (let seed = 1; seed <= 60; seed++) {
      const cuts = randomCuts(STREAM.length, seed);
      const chunks = splitCopies(STREAM, cuts);
      const recorder = runPlain(chunks);
      try {
        expectFrames(recorder, MESSAGES);
        expectViews(recorder, chunks, cuts);
      } catch (err) {
        throw new Error(`seed ${seed}: ${(err as Error).message}`);
      }
    }
  });

  it('gives a message that spans chunks a buffer of its own, not one reused for the next', () => {
    const recorder = runPlain(oneByteChunks(SMALL_STREAM));
    const frames = recorder.frames();
    const buffers = new Set(frames.map((f) => f.buf));
    expect(buffers.size).toBe(frames.length);
    // The delivered buffers still hold their message after everything else has been read.
    for (let i = 0; i < frames.length; i++) {
      expect(frames[i].buf.subarray(frames[i].start, frames[i].end).equals(SMALL_MESSAGES[i])).toBe(true);
    }
  });

  it('does not consult canStream for messages that arrive whole', () => {
    const asked: number[] = [];
    const recorder = new Recorder((code) => {
      asked.push(code);
      return false;
    });
    const reader = new FrameReader(recorder);
    feed(reader, recorder, [STREAM]);
    expect(asked).toEqual([]);
    expectFrames(recorder, MESSAGES);
  });
});

describe('FrameReader, streaming DataRow (canStream true for D)', () => {
  it('delivers a single chunk as whole frames (nothing needs streaming)', () => {
    const chunks = splitCopies(STREAM, []);
    const recorder = runStreaming(chunks);
    expect(recorder.events.every((e) => e.kind === 'frame')).toBe(true);
    expectFrames(recorder, MESSAGES);
    expectViews(recorder, chunks, []);
  });

  it('reproduces the stream byte for byte when split at every offset', () => {
    expect(twoWaySplits(MEDIUM_MESSAGES, streamRows)).toEqual([]);
  });

  it('reproduces the stream with the 200 KB row split around and throughout that row', () => {
    expect(twoWaySplits(MESSAGES, streamRows, cutsAroundBigRow())).toEqual([]);
  });

  it('reproduces the stream fed one byte at a time, one piece per byte after the header', () => {
    const recorder = runStreaming(oneByteChunks(STREAM));
    const rows = MESSAGES.filter((m) => m[0] === D).length;
    expect(expectStreamed(recorder, MESSAGES, streamRows)).toBe(rows);
    const big = MESSAGES[4];
    const pieces = recorder.events.filter((e) => e.kind === 'piece' && e.code === D);
    expect(pieces.length).toBeGreaterThan(big.length - 5);
  });

  it('reproduces random chunkings and hands out views of the chunks', () => {
    for (let seed = 1; seed <= 60; seed++) {
      const cuts = randomCuts(STREAM.length, seed);
      const chunks = splitCopies(STREAM, cuts);
      const recorder = runStreaming(chunks);
      try {
        expectStreamed(recorder, MESSAGES, streamRows);
        expectViews(recorder, chunks, cuts);
      } catch (err) {
        throw new Error(`seed ${seed}: ${(err as Error).message}`);
      }
    }
  });

  it('streams the 200 KB row through without assembling it', () => {
    const cuts = [OFFSETS[4] + 100, OFFSETS[4] + 100_000, OFFSETS[4] + 150_000];
    const chunks = splitCopies(STREAM, cuts);
    const recorder = runStreaming(chunks);
    expectStreamed(recorder, MESSAGES, streamRows);
    const pieces = recorder.events.filter((e): e is PieceEvent => e.kind === 'piece');
    expect(pieces.map((p) => [p.first, p.last, p.bytes.length])).toEqual([
      [true, false, 100],
      [false, false, 100_000 - 100],
      [false, false, 50_000],
      [false, true, MESSAGES[4].length - 150_000],
    ]);
    for (const p of pieces) expect(p.buf).toBe(chunks[p.chunk]);
  });

  it('streams a row whose header spans chunks, the header being its first piece', () => {
    const at = OFFSETS[1] + 2; // inside the header of the first row
    const recorder = runStreaming([STREAM.subarray(0, at), STREAM.subarray(at, at + 6), STREAM.subarray(at + 6)]);
    expectStreamed(recorder, MESSAGES, streamRows);
    const pieces = recorder.events.filter((e): e is PieceEvent => e.kind === 'piece');
    expect(pieces[0].first).toBe(true);
    expect(pieces[0].bytes.equals(MESSAGES[1].subarray(0, 5))).toBe(true);
  });

  it('does not stream other message types', () => {
    const recorder = runStreaming(oneByteChunks(SMALL_STREAM));
    expectStreamed(recorder, SMALL_MESSAGES, streamRows);
    for (const e of recorder.events) if (e.kind === 'frame') expect(e.code === D).toBe(false);
  });

  it('delivers a 5-byte streamable message as a frame even when its header spans chunks', () => {
    const copyDone = msg('d'); // an empty CopyData
    const stream = Buffer.concat([copyDone, copyDone, copyDone]);
    const recorder = new Recorder(() => true);
    const reader = new FrameReader(recorder);
    feed(reader, recorder, [stream.subarray(0, 7), stream.subarray(7, 12), stream.subarray(12)]);
    expect(recorder.events.map((e) => e.kind)).toEqual(['frame', 'frame', 'frame']);
    expectFrames(recorder, [copyDone, copyDone, copyDone]);
    expect(reader.midMessage).toBe(false);
  });

  it('passes empty chunks without losing bytes', () => {
    const at = OFFSETS[4] + 1000;
    const empty = Buffer.alloc(0);
    const recorder = runStreaming([empty, STREAM.subarray(0, at), empty, STREAM.subarray(at), empty]);
    expectStreamed(recorder, MESSAGES, streamRows);
  });
});

describe('FrameReader, invalid lengths', () => {
  const bad = (code: string, declared: number): Buffer => {
    const b = Buffer.alloc(5);
    b[0] = code.charCodeAt(0);
    b.writeInt32BE(declared, 1);
    return b;
  };

  for (const declared of [0, 3, -1, -2147483648, MAX_MESSAGE_LENGTH + 1]) {
    it(`reports length ${declared} once and delivers nothing after it`, () => {
      const tail = Buffer.concat([bad('D', declared), MESSAGES[1], MESSAGES[7]]);
      for (const canStream of [false, true]) {
        // The bad header whole in a chunk, and split across chunks at each offset.
        for (let cut = 0; cut <= 5; cut++) {
          const recorder = new Recorder(() => canStream);
          const reader = new FrameReader(recorder);
          const stream = Buffer.concat([MESSAGES[0], tail]);
          const at = MESSAGES[0].length + cut;
          feed(reader, recorder, [stream.subarray(0, at), stream.subarray(at)]);
          reader.push(Buffer.concat(MESSAGES));
          expect(recorder.errors.length).toBe(1);
          expect(recorder.errors[0]).toContain(String(declared));
          expect(recorder.events.length).toBe(1);
          expect(recorder.frames()[0].bytes.equals(MESSAGES[0])).toBe(true);
        }
      }
    });
  }

  it('enforces a custom maximum and accepts the maximum itself', () => {
    const recorder = new Recorder();
    const reader = new FrameReader(recorder, 100);
    reader.push(bad('Q', 100));
    expect(recorder.errors).toEqual([]);
    expect(reader.midMessage).toBe(true);
    reader.push(Buffer.alloc(96, 0x61));
    expect(recorder.frames().length).toBe(1);
    expect(recorder.frames()[0].bytes.length).toBe(101);
    expect(reader.midMessage).toBe(false);

    reader.push(bad('Q', 101));
    expect(recorder.errors.length).toBe(1);
    reader.push(MESSAGES[7]);
    expect(recorder.errors.length).toBe(1);
    expect(recorder.frames().length).toBe(1);
  });

  it('per-type limits: a refused type fails at its first byte, a length over its type limit at the header', () => {
    // Protocol fuzzer finding: a client's unknown type byte (or a Sync declaring 20000 bytes) made pgmux wait
    // for a body PostgreSQL never reads: the client hung where PostgreSQL closes the connection.
    const limit = (code: number): number => (code === 0x51 ? 1000 : code === 0x53 ? 10 : 0);
    const recorder = new Recorder();
    const reader = new FrameReader(recorder, limit);
    reader.push(Buffer.concat([bad('S', 10), Buffer.alloc(6), bad('Q', 1000)]));
    expect(recorder.errors).toEqual([]);
    reader.push(Buffer.alloc(996));
    expect(recorder.frames().map((f) => f.code)).toEqual([0x53, 0x51]);

    const unknown = new Recorder();
    new FrameReader(unknown, limit).push(Buffer.from([0x7a])); // 'z' alone: no length needed to refuse it
    expect(unknown.errors).toEqual(['invalid message type 122']);

    const long = new Recorder();
    new FrameReader(long, limit).push(bad('S', 11));
    expect(long.errors).toEqual(['invalid message length 11']);
  });

  it('takes per-type limits from a MessageLimits object too (a client session is its own), asked as they change', () => {
    let max = 10;
    const limits = { maxMessageLength: (code: number): number => (code === 0x53 ? max : 0) };
    const recorder = new Recorder();
    const reader = new FrameReader(recorder, limits);
    reader.push(bad('S', 10));
    reader.push(Buffer.alloc(6));
    expect(recorder.frames().map((f) => f.code)).toEqual([0x53]);
    max = 5;
    reader.push(bad('S', 10));
    expect(recorder.errors).toEqual(['invalid message length 10']);
  });

  it('accepts the smallest valid length (4)', () => {
    const recorder = new Recorder();
    const reader = new FrameReader(recorder);
    reader.push(bad('S', 4));
    expect(recorder.errors).toEqual([]);
    expect(recorder.frames().map((f) => f.code)).toEqual([0x53]);
  });

  it('rejects an oversized length without allocating for it', () => {
    // A non-streamable message claiming 1 GB + 1 must fail at the header, before any buffer is made.
    const recorder = new Recorder();
    const reader = new FrameReader(recorder);
    const before = process.memoryUsage().arrayBuffers;
    reader.push(bad('Q', MAX_MESSAGE_LENGTH + 1));
    expect(recorder.errors.length).toBe(1);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(1 << 20);
  });
});

describe('FrameReader.stop', () => {
  it('stops delivery between pushes', () => {
    const recorder = new Recorder();
    const reader = new FrameReader(recorder);
    reader.push(MESSAGES[0]);
    reader.stop();
    reader.push(MESSAGES[1]);
    reader.push(STREAM);
    expect(recorder.frames().length).toBe(1);
    expect(recorder.errors).toEqual([]);
  });

  it('stops delivery from inside onFrame, for the rest of the chunk too', () => {
    const recorder = new Recorder();
    const reader = new FrameReader(recorder);
    const original = recorder.onFrame.bind(recorder);
    recorder.onFrame = (code, buf, start, end) => {
      original(code, buf, start, end);
      if (recorder.events.length === 3) reader.stop();
    };
    reader.push(STREAM);
    reader.push(STREAM);
    expect(recorder.events.length).toBe(3);
  });

  it('stops delivery from inside onFrame for a message assembled across chunks', () => {
    for (const at of [2, 7]) {
      // at 2: header spans chunks; at 7: body spans chunks
      const recorder = new Recorder();
      const reader = new FrameReader(recorder);
      const original = recorder.onFrame.bind(recorder);
      recorder.onFrame = (code, buf, start, end) => {
        original(code, buf, start, end);
        reader.stop();
      };
      const stream = Buffer.concat([msg('n'), msg('1'), msg('2')]);
      reader.push(stream.subarray(0, at));
      reader.push(stream.subarray(at));
      expect(recorder.events.length).toBe(1);
    }
  });

  it('stops delivery from inside onPiece of a row streamed from a whole header', () => {
    const recorder = new Recorder(streamRows);
    const reader = new FrameReader(recorder);
    const original = recorder.onPiece.bind(recorder);
    recorder.onPiece = (...args) => {
      original(...args);
      reader.stop();
    };
    const at = OFFSETS[4] + 10;
    reader.push(STREAM.subarray(0, at));
    reader.push(STREAM.subarray(at));
    expect(recorder.events.filter((e) => e.kind === 'piece').length).toBe(1);
  });

  it('stops delivery from inside onPiece when the last piece ends mid-chunk', () => {
    const recorder = new Recorder(streamRows);
    const reader = new FrameReader(recorder);
    const original = recorder.onPiece.bind(recorder);
    recorder.onPiece = (...args) => {
      original(...args);
      if (args[5]) reader.stop(); // last
    };
    const at = OFFSETS[4] + 10;
    reader.push(STREAM.subarray(0, at));
    reader.push(STREAM.subarray(at));
    const events = recorder.events;
    expect(events[events.length - 1]).toMatchObject({ kind: 'piece', last: true });
  });

  // Regression: continueHeader once delivered the first body piece after a stop() from the header piece's onPiece.
  it('stops delivery from inside onPiece of a row whose header spans chunks', () => {
    const recorder = new Recorder(streamRows);
    const reader = new FrameReader(recorder);
    const original = recorder.onPiece.bind(recorder);
    recorder.onPiece = (...args) => {
      original(...args);
      reader.stop();
    };
    const at = OFFSETS[4] + 2; // inside the header of the 200 KB row
    reader.push(STREAM.subarray(0, at));
    reader.push(STREAM.subarray(at, at + 1000));
    expect(recorder.events.filter((e) => e.kind === 'piece').length).toBe(1);
  });
});

describe('FrameReader.midMessage', () => {
  it('is false between messages and true while one is partly read', () => {
    for (const streaming of [false, true]) {
      const recorder = new Recorder(streaming ? streamRows : () => false);
      const reader = new FrameReader(recorder);
      expect(reader.midMessage).toBe(false);
      const ends = new Set<number>();
      let end = 0;
      for (const m of SMALL_MESSAGES) ends.add((end += m.length));
      // Byte by byte over the small stream, then at a few places inside the big row.
      for (let i = 0; i < SMALL_STREAM.length; i++) {
        reader.push(SMALL_STREAM.subarray(i, i + 1));
        expect(reader.midMessage).toBe(!ends.has(i + 1));
      }
      const big = MESSAGES[4];
      for (const cut of [1, 4, 5, 6, 1000, big.length - 1]) {
        reader.push(big.subarray(0, cut));
        expect(reader.midMessage).toBe(true);
        reader.push(big.subarray(cut));
        expect(reader.midMessage).toBe(false);
      }
      expect(recorder.errors).toEqual([]);
    }
  });

  it('is false after a chunk that ends exactly at a message boundary', () => {
    const recorder = new Recorder(streamRows);
    const reader = new FrameReader(recorder);
    for (let i = 0; i < MESSAGES.length; i++) {
      reader.push(MESSAGES[i].subarray(0, 3));
      expect(reader.midMessage).toBe(true);
      reader.push(MESSAGES[i].subarray(3));
      expect(reader.midMessage).toBe(false);
    }
    expectStreamed(recorder, MESSAGES, streamRows);
  });
});

describe('FrameReader.hold / resume', () => {
  /** The stream delivered with a hold after the `holdAfter`-th message, resumed once all chunks are in. */
  function heldAt(chunks: Buffer[], holdAfter: number): { recorder: Recorder; beforeResume: number } {
    const recorder = new Recorder();
    const reader = new FrameReader(recorder);
    const original = recorder.onFrame.bind(recorder);
    let seen = 0;
    recorder.onFrame = (code, buf, start, end) => {
      original(code, buf, start, end);
      if (++seen === holdAfter) reader.hold();
    };
    for (const c of chunks) reader.push(c);
    const beforeResume = recorder.events.length;
    reader.resume();
    return { recorder, beforeResume };
  }

  it('delivers nothing after the held message until resume, then the rest in order, at every split of the stream', () => {
    const whole = new Recorder();
    new FrameReader(whole).push(SMALL_STREAM);
    const all = whole.frames().map((f) => f.bytes);
    for (const holdAfter of [1, 2, all.length - 1]) {
      for (let at = 0; at <= SMALL_STREAM.length; at++) {
        const { recorder, beforeResume } = heldAt([SMALL_STREAM.subarray(0, at), SMALL_STREAM.subarray(at)], holdAfter);
        expect(beforeResume, `hold after ${holdAfter}, split at ${at}`).toBe(holdAfter);
        expect(recorder.frames().map((f) => f.bytes), `hold after ${holdAfter}, split at ${at}`).toEqual(all);
      }
    }
  });

  it('judges what was kept by the limits in force at resume (a type refused while held is accepted after)', () => {
    const stream = Buffer.concat([msg('p', Buffer.from('secret\0')), msg('Q', Buffer.from('select 1\0'))]);
    let loggedIn = false;
    const limits = (code: number): number => (code === 0x70 || loggedIn ? 1000 : 0);
    const recorder = new Recorder();
    const reader = new FrameReader(recorder, limits);
    const original = recorder.onFrame.bind(recorder);
    recorder.onFrame = (code, buf, start, end) => {
      original(code, buf, start, end);
      if (code === 0x70) reader.hold();
    };
    reader.push(stream);
    expect(recorder.events.length).toBe(1);
    loggedIn = true;
    reader.resume();
    expect(recorder.errors).toEqual([]);
    expect(recorder.frames().map((f) => String.fromCharCode(f.code))).toEqual(['p', 'Q']);
  });

  it('keeps chunks pushed while held, and resume without a hold does nothing', () => {
    const { recorder, beforeResume } = heldAt([MESSAGES[0], MESSAGES[1], MESSAGES[2]], 1);
    expect(beforeResume).toBe(1);
    expect(recorder.frames().length).toBe(3);
    const untouched = new Recorder();
    const reader = new FrameReader(untouched);
    reader.resume();
    reader.push(MESSAGES[0]);
    expect(untouched.frames().length).toBe(1);
    expect(untouched.errors).toEqual([]);
  });
});
