/**
 * `npm run bench:framer`: micro-benchmark of pgmux's FrameReader on recorded Postgres traffic.
 *
 * The recording (bench/fixtures/server-traffic.bin.gz, see traffic.ts) is made once against a throwaway Postgres:
 * `--record` makes it again. It is fed through a FrameReader with a no-op handler that streams DataRow/CopyData as
 * ServerConnection does, in three chunkings: the sizes the socket delivered when recorded, 64 KiB slices, and ragged
 * slices (seeded random sizes from 1 byte to 16 KiB, so headers and bodies split at awkward places). Each
 * chunking is timed over several runs; the median MB/s and messages/s are reported.
 *
 *   npm run bench:framer [-- --runs N] [-- --record]
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FrameReader, type FrameHandler } from '../src/protocol/frame-reader.js';
import { median } from './stats.js';
import { decodeTraffic, recordTraffic, saveTraffic, type Traffic } from './traffic.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FIXTURE = path.join(ROOT, 'bench', 'fixtures', 'server-traffic.bin.gz');
/** Each timed run feeds the stream repeatedly for at least this long. */
const RUN_MS = 400;

const DATA_ROW = 0x44;
const COPY_DATA = 0x64;

class CountingHandler implements FrameHandler {
  messages = 0;
  bytes = 0;
  onFrame(_code: number, _buf: Buffer, start: number, end: number): void {
    this.messages++;
    this.bytes += end - start;
  }
  canStream(code: number): boolean {
    return code === DATA_ROW || code === COPY_DATA;
  }
  onPiece(_code: number, _buf: Buffer, start: number, end: number, _first: boolean, last: boolean): void {
    this.bytes += end - start;
    if (last) this.messages++;
  }
  onProtocolError(reason: string): void {
    throw new Error(`protocol error in the recording: ${reason}`);
  }
}

/** Cuts `bytes` into separate buffers (copies, like socket reads) of the given sizes. */
function cut(bytes: Buffer, sizes: Iterable<number>): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  for (const size of sizes) {
    if (pos >= bytes.length) break;
    out.push(Buffer.from(bytes.subarray(pos, pos + size)));
    pos += size;
  }
  if (pos < bytes.length) out.push(Buffer.from(bytes.subarray(pos)));
  return out;
}

function* fixed(size: number): Generator<number> {
  for (;;) yield size;
}

function* ragged(seed: number, max: number): Generator<number> {
  let s = seed;
  for (;;) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    yield 1 + (s % max);
  }
}

interface Measurement {
  chunking: string;
  messages: number;
  chunks: number;
  meanChunkBytes: number;
  mbPerSecond: number;
  messagesPerSecond: number;
  runsMbPerSecond: number[];
}

function measure(chunking: string, chunks: Buffer[], runs: number): Measurement {
  const total = chunks.reduce((n, c) => n + c.length, 0);
  // One pass to count messages and check the stream frames cleanly.
  const check = new CountingHandler();
  const checker = new FrameReader(check);
  for (const c of chunks) checker.push(c);
  if (check.bytes !== total || checker.midMessage) throw new Error(`${chunking}: framed ${check.bytes} of ${total} bytes`);
  const messagesPerPass = check.messages;

  const once = (): number => {
    const handler = new CountingHandler();
    const reader = new FrameReader(handler);
    for (let i = 0; i < chunks.length; i++) reader.push(chunks[i]);
    return handler.messages;
  };
  for (let i = 0; i < 5; i++) once(); // warm up the JIT
  const mbs: number[] = [];
  const mps: number[] = [];
  for (let r = 0; r < runs; r++) {
    let passes = 0;
    const t0 = process.hrtime.bigint();
    let elapsedNs = 0n;
    do {
      once();
      passes++;
      elapsedNs = process.hrtime.bigint() - t0;
    } while (elapsedNs < BigInt(RUN_MS) * 1_000_000n);
    const seconds = Number(elapsedNs) / 1e9;
    mbs.push((total * passes) / seconds / 1e6);
    mps.push((messagesPerPass * passes) / seconds);
  }
  return { chunking, messages: messagesPerPass, chunks: chunks.length, meanChunkBytes: total / chunks.length, mbPerSecond: median(mbs), messagesPerSecond: median(mps), runsMbPerSecond: mbs };
}

async function loadTraffic(record: boolean): Promise<Traffic> {
  if (record || !fs.existsSync(FIXTURE)) {
    const log = (line: string): void => void process.stderr.write(`[framer] ${line}\n`);
    log(record ? 'recording traffic (--record)' : `no ${path.relative(ROOT, FIXTURE)}: recording it once`);
    const traffic = await recordTraffic(log);
    fs.mkdirSync(path.dirname(FIXTURE), { recursive: true });
    const size = saveTraffic(FIXTURE, traffic);
    log(`saved ${traffic.bytes.length} bytes in ${traffic.chunkLengths.length} socket reads to ${path.relative(ROOT, FIXTURE)} (${size} bytes gzipped)`);
    return traffic;
  }
  return decodeTraffic(fs.readFileSync(FIXTURE));
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const runsAt = args.indexOf('--runs');
  const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : 7;
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs needs a positive integer');
  const traffic = await loadTraffic(args.includes('--record'));
  const { bytes } = traffic;
  const results = [
    measure('as recorded (socket reads)', cut(bytes, traffic.chunkLengths), runs),
    measure('64 KiB', cut(bytes, fixed(64 * 1024)), runs),
    measure('ragged 1 B–16 KiB', cut(bytes, ragged(7, 16 * 1024)), runs),
  ];
  const messages = results[0].messages;
  const lines = [
    `FrameReader on ${(bytes.length / 1e6).toFixed(2)} MB of recorded server traffic (${messages.toLocaleString('en-US')} messages), ` +
      `median of ${runs} runs of ≥ ${RUN_MS} ms, Node ${process.version}:`,
    '',
    '| Chunking | Chunks | Mean chunk | MB/s | Messages/s |',
    '|---|--:|--:|--:|--:|',
    ...results.map(
      (r) =>
        `| ${r.chunking} | ${r.chunks.toLocaleString('en-US')} | ${Math.round(r.meanChunkBytes).toLocaleString('en-US')} B | ` +
        `${Math.round(r.mbPerSecond).toLocaleString('en-US')} | ${(r.messagesPerSecond / 1e6).toFixed(2)} M |`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  const out = path.join(ROOT, 'bench', 'results', 'framer.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const doc = { date: new Date().toISOString(), node: process.version, bytes: bytes.length, messages, runs, results };
  fs.writeFileSync(out, `${JSON.stringify(doc, null, 2)}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:framer: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
