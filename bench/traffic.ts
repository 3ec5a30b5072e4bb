/**
 * Recorded server→client traffic for the FrameReader micro-benchmark (framer.ts).
 *
 * Recording logs in to a throwaway Postgres with a raw socket and runs a pgbench-like workload — select-only over
 * the simple, extended and prepared protocols, tpcb-like transactions — and two large SELECTs, one request at a
 * time (as a pooled server connection sees them). Every byte the server sends is kept, together with the sizes the
 * socket delivered them in. The file is gzip of: `PGMUXTRF`, u32 version, u32 chunk count, u32 chunk lengths, bytes.
 */
import fs from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { startPostgres } from '../test/harness/postgres.js';
import { APP_DATABASE, APP_ROLE } from '../test/harness/roles.js';
import { BenchConnection, deriveLoginKeys } from './pg-client.js';
import { initPgbench } from './pgbench.js';

const MAGIC = 'PGMUXTRF';
const VERSION = 1;

export interface Traffic {
  /** All bytes, in order. */
  bytes: Buffer;
  /** How the socket delivered them when recorded. */
  chunkLengths: number[];
}

export function encodeTraffic(t: Traffic): Buffer {
  const head = Buffer.alloc(16 + 4 * t.chunkLengths.length);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32BE(VERSION, 8);
  head.writeUInt32BE(t.chunkLengths.length, 12);
  t.chunkLengths.forEach((n, i) => head.writeUInt32BE(n, 16 + 4 * i));
  return gzipSync(Buffer.concat([head, t.bytes]), { level: 9 });
}

export function decodeTraffic(file: Buffer): Traffic {
  const raw = gunzipSync(file);
  if (raw.toString('latin1', 0, 8) !== MAGIC || raw.readUInt32BE(8) !== VERSION) throw new Error('not a pgmux traffic recording (version 1)');
  const count = raw.readUInt32BE(12);
  const chunkLengths = Array.from({ length: count }, (_, i) => raw.readUInt32BE(16 + 4 * i));
  const bytes = raw.subarray(16 + 4 * count);
  if (chunkLengths.reduce((a, b) => a + b, 0) !== bytes.length) throw new Error('traffic recording is truncated');
  return { bytes, chunkLengths };
}

// Frontend messages for the extended protocol -------------------------------------------------------------------

function msg(code: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(5);
  head.write(code, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}
const z = (s: string): Buffer => Buffer.from(`${s}\0`, 'utf8');
const i16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const i32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n, 0);
  return b;
};

const parse = (name: string, sql: string): Buffer => msg('P', z(name), z(sql), i16(0));
function bind(statement: string, params: string[]): Buffer {
  const values = params.flatMap((p) => [i32(Buffer.byteLength(p)), Buffer.from(p)]);
  return msg('B', z(''), z(statement), i16(0), i16(params.length), ...values, i16(0));
}
const describePortal = msg('D', Buffer.from('P'), z(''));
const execute = msg('E', z(''), i32(0));
const sync = msg('S');

/** Starts a throwaway Postgres, runs the workload above through a raw socket and returns what the server sent. */
export async function recordTraffic(log: (line: string) => void, perKind = 2000): Promise<Traffic> {
  const pg = await startPostgres({ name: 'framer' });
  try {
    log('pgbench -i -s 1');
    await initPgbench({ binDir: pg.binDir, port: pg.port, user: APP_ROLE.name, password: APP_ROLE.password ?? '', database: APP_DATABASE }, 1);
    const [{ rolpassword }] = await pg.query<{ rolpassword: string }>('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [APP_ROLE.name]);
    const chunks: Buffer[] = [];
    const conn = await BenchConnection.open({
      host: '127.0.0.1',
      port: pg.port,
      user: APP_ROLE.name,
      database: APP_DATABASE,
      keys: deriveLoginKeys(APP_ROLE.password ?? '', rolpassword),
      timeoutMs: 10_000,
      tap: (chunk) => chunks.push(Buffer.from(chunk)),
    });
    let seed = 42;
    const aid = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return 1 + (seed % 100_000);
    };
    const select = 'SELECT abalance FROM pgbench_accounts WHERE aid = $1';
    log(`recording: ${perKind} select-only transactions per protocol, ${perKind / 4} tpcb-like, 2 large SELECTs`);
    for (let i = 0; i < perKind; i++) await conn.query(`SELECT abalance FROM pgbench_accounts WHERE aid = ${aid()};`);
    for (let i = 0; i < perKind; i++) await conn.send(Buffer.concat([parse('', select), bind('', [String(aid())]), describePortal, execute, sync]));
    await conn.send(Buffer.concat([parse('P0_1', select), sync]));
    for (let i = 0; i < perKind; i++) await conn.send(Buffer.concat([bind('P0_1', [String(aid())]), describePortal, execute, sync]));
    for (let i = 0; i < perKind / 4; i++) {
      const a = aid();
      const delta = (a % 10_000) - 5000;
      await conn.query('BEGIN;');
      await conn.query(`UPDATE pgbench_accounts SET abalance = abalance + ${delta} WHERE aid = ${a};`);
      await conn.query(`SELECT abalance FROM pgbench_accounts WHERE aid = ${a};`);
      await conn.query(`UPDATE pgbench_tellers SET tbalance = tbalance + ${delta} WHERE tid = ${1 + (a % 10)};`);
      await conn.query(`UPDATE pgbench_branches SET bbalance = bbalance + ${delta} WHERE bid = 1;`);
      await conn.query(`INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (${1 + (a % 10)}, 1, ${a}, ${delta}, CURRENT_TIMESTAMP);`);
      await conn.query('END;');
    }
    await conn.query('SELECT aid, bid, abalance, filler FROM pgbench_accounts WHERE aid <= 20000');
    await conn.query("SELECT g, md5(g::text) AS hash, repeat('x', g % 300) AS pad, now() AS at FROM generate_series(1, 10000) AS g");
    await conn.close();
    return { bytes: Buffer.concat(chunks), chunkLengths: chunks.map((c) => c.length) };
  } finally {
    await pg.stop();
  }
}

export function saveTraffic(file: string, t: Traffic): number {
  const encoded = encodeTraffic(t);
  fs.writeFileSync(file, encoded);
  return encoded.length;
}
