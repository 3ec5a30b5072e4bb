/**
 * COPY through pgmux (transaction mode, pool of 2), driven with the raw protocol:
 * - ~100 MB COPY FROM STDIN and the same back with COPY TO STDOUT to a deliberately slow reader:
 *   every byte arrives, and pgmux streams instead of buffering (process RSS, socket buffers and the
 *   server socket's bytesRead while the reader is paused all stay bounded).
 * - A COPY FROM STDIN that fails mid-stream leaves the connection usable and the server released,
 *   even when the client keeps sending CopyData/CopyDone after the error (as a streaming client does
 *   until it notices).
 */
import { once } from 'node:events';
import net from 'node:net';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClientInfo } from '../src/client/client-info.js';
import type { Pool } from '../src/pool/pool.js';
import type { ServerConnection } from '../src/server/server-connection.js';
import { adminClient, createTestDatabase } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { APP_ROLE } from './harness/roles.js';
import { parseErrorFields } from './harness/wire.js';
import { sleep } from './harness/wait.js';

let px: TestPgmux;
let db: string;
let admin: pg.Client;

const MB = 1024 * 1024;

beforeAll(async () => {
  db = await createTestDatabase('copy');
  admin = await adminClient(db);
  await admin.query('CREATE UNLOGGED TABLE t (id int, payload text)');
  await admin.query('CREATE TABLE t2 (id int)');
  await admin.query('GRANT ALL ON t, t2 TO app');
  px = await startPgmux({
    settings: { default_pool_size: 2, auth_type: 'trust', log_connections: false, log_disconnections: false },
    databases: { app: { dbname: db } },
    users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
  });
});

afterAll(async () => {
  await px?.stop();
  await admin?.end();
});

function pool(): Pool {
  return [...px.pgmux.registry.pools.values()][0];
}

interface Message {
  code: string;
  body: Buffer;
}

/**
 * A raw client connection whose reader never assembles CopyData: it counts their bytes and rows
 * as they stream past, and keeps every other message.
 */
class RawClient {
  readonly messages: Message[] = [];
  copyBytes = 0;
  copyRows = 0;
  received = 0;
  private header = Buffer.alloc(0);
  private code = '';
  private need = 0;
  private inBody = false;
  private parts: Buffer[] = [];
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => undefined);
  }

  static async connect(): Promise<RawClient> {
    const socket = net.connect({ port: px.port, host: '127.0.0.1', noDelay: true });
    await once(socket, 'connect');
    const client = new RawClient(socket);
    socket.write(serialize.startup({ user: APP_ROLE.name, database: 'app' }));
    await client.until('Z', 1, 5000);
    client.messages.length = 0;
    return client;
  }

  count(code: string): number {
    return this.messages.filter((m) => m.code === code).length;
  }

  async until(code: string, n: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.count(code) < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} '${code}'; got ${this.messages.map((m) => m.code).join('')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 100));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Writes, waiting for 'drain' when the socket says so (a well-behaved sender). */
  async send(buf: Buffer): Promise<void> {
    if (!this.socket.write(buf)) await once(this.socket, 'drain');
  }

  error(): Record<string, string> | undefined {
    const e = this.messages.find((m) => m.code === 'E');
    return e === undefined ? undefined : parseErrorFields(e.body);
  }

  private onData(chunk: Buffer): void {
    this.received += chunk.length;
    let pos = 0;
    while (pos < chunk.length) {
      if (!this.inBody) {
        const take = Math.min(5 - this.header.length, chunk.length - pos);
        this.header = Buffer.concat([this.header, chunk.subarray(pos, pos + take)]);
        pos += take;
        if (this.header.length < 5) break;
        this.code = String.fromCharCode(this.header[0]);
        this.need = this.header.readInt32BE(1) - 4;
        this.header = Buffer.alloc(0);
        this.inBody = true;
        this.parts = [];
        if (this.need === 0) this.finish();
        continue;
      }
      const n = Math.min(this.need, chunk.length - pos);
      const piece = chunk.subarray(pos, pos + n);
      if (this.code === 'd') {
        this.copyBytes += n;
        for (let i = piece.indexOf(10); i >= 0; i = piece.indexOf(10, i + 1)) this.copyRows++;
      } else {
        this.parts.push(Buffer.from(piece));
      }
      pos += n;
      this.need -= n;
      if (this.need === 0) this.finish();
    }
  }

  private finish(): void {
    this.inBody = false;
    if (this.code !== 'd') this.messages.push({ code: this.code, body: Buffer.concat(this.parts) });
    this.parts = [];
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** Samples the process RSS (pgmux runs in this process) and anything else worth a maximum. */
function sampler(probes: Record<string, () => number>): { stop(): Record<string, number> } {
  const max: Record<string, number> = { rss: process.memoryUsage.rss() };
  for (const name of Object.keys(probes)) max[name] = 0;
  const timer = setInterval(() => {
    max.rss = Math.max(max.rss, process.memoryUsage.rss());
    for (const [name, probe] of Object.entries(probes)) max[name] = Math.max(max[name], probe());
  }, 10);
  return {
    stop() {
      clearInterval(timer);
      return max;
    },
  };
}

function commandTag(m: Message): string {
  return m.body.toString('utf8', 0, m.body.length - 1);
}

function activeServer(): ServerConnection | undefined {
  return pool().active.values().next().value;
}

function sessionFor(): ClientInfo | undefined {
  return [...px.pgmux.registry.clients][0];
}

describe('COPY, 100 MB each way', () => {
  // One CopyData message: 64 rows of ~1 KB, reused for every message (the sender makes no garbage).
  const ROWS_PER_MESSAGE = 64;
  const MESSAGES = 1600; // 102,400 rows, ~100 MB
  const rows = Array.from({ length: ROWS_PER_MESSAGE }, (_, i) => `${i}\t${'x'.repeat(1000)}\n`).join('');
  const copyData = serialize.copyData(Buffer.from(rows));
  const payloadBytes = Buffer.byteLength(rows) * MESSAGES;
  const rowCount = ROWS_PER_MESSAGE * MESSAGES;

  it('COPY FROM STDIN streams ~100 MB into the table without pgmux buffering it', async () => {
    const client = await RawClient.connect();
    const baseline = process.memoryUsage.rss();
    const probe = sampler({
      // What pgmux has queued towards the server and not yet handed to the kernel.
      serverWriteQueue: () => activeServer()?.socket.writableLength ?? 0,
    });
    client.socket.write(serialize.query('COPY t FROM STDIN'));
    await client.until('G', 1, 5000);
    for (let i = 0; i < MESSAGES; i++) await client.send(copyData);
    await client.send(serialize.copyDone());
    await client.until('Z', 1, 60_000);
    const max = probe.stop();
    const growth = max.rss - baseline;
    console.log(`COPY FROM STDIN ${(payloadBytes / MB).toFixed(1)} MB: RSS baseline ${(baseline / MB).toFixed(1)} MB, peak growth ${(growth / MB).toFixed(1)} MB, max server write queue ${(max.serverWriteQueue / MB).toFixed(2)} MB`);

    expect(client.error()).toBeUndefined();
    const complete = client.messages.find((m) => m.code === 'C');
    expect(complete && commandTag(complete)).toBe(`COPY ${rowCount}`);
    // pgmux never holds more than a few chunks towards the server (it pauses the client instead).
    expect(max.serverWriteQueue).toBeLessThan(8 * MB);
    // Holding the whole 100 MB stream once would already exceed this.
    expect(growth).toBeLessThan(90 * MB);
    expect((await admin.query<{ n: number }>('select count(*)::int as n from t')).rows[0].n).toBe(rowCount);
    client.socket.end(serialize.end());
  }, 60_000);

  it('COPY TO STDOUT to a slow reader: bounded reads from the server while paused, every byte delivered', async () => {
    const client = await RawClient.connect();
    const baseline = process.memoryUsage.rss();
    const idleReads = new Map<ServerConnection, number>(pool().idle.map((s) => [s, s.socket.bytesRead]));
    const probe = sampler({ clientWriteQueue: () => sessionFor()?.socket.writableLength ?? 0 });

    client.socket.pause();
    client.socket.write(serialize.query('COPY t TO STDOUT'));
    await sleep(1500);
    const server = activeServer();
    expect(server).toBeDefined();
    const readAtStart = idleReads.get(server!) ?? 0;
    // Paused from the start: only socket buffers' worth was read from the server.
    expect(server!.socket.bytesRead - readAtStart).toBeLessThan(32 * MB);

    // Read in bursts of ~10 MB with pauses. During each pause pgmux may keep reading only until the kernel buffers
    // between it and the client are full; then its reads from the server must stop. We wait for that plateau (a
    // 200 ms window with under 64 KB read) rather than assuming a fixed settle time: CI machines are slow and noisy.
    // Without backpressure pgmux would keep reading the whole 100 MB stream and never plateau.
    const pauseGrowth: number[] = [];
    const done = client.until('Z', 1, 60_000);
    let nextPauseAt = 10 * MB;
    client.socket.resume();
    while (client.count('Z') === 0) {
      if (client.received >= nextPauseAt) {
        client.socket.pause();
        const pausedAt = server!.socket.bytesRead;
        let plateaued = false;
        for (let tries = 0; tries < 25 && !plateaued; tries++) {
          const before = server!.socket.bytesRead;
          await sleep(200);
          plateaued = server!.socket.bytesRead - before < 64 * 1024;
        }
        expect(plateaued, 'pgmux kept reading from the server while the client was paused').toBe(true);
        pauseGrowth.push(server!.socket.bytesRead - pausedAt);
        nextPauseAt = client.received + 10 * MB;
        client.socket.resume();
      }
      await sleep(5);
    }
    await done;
    const max = probe.stop();
    const growth = max.rss - baseline;
    console.log(
      `COPY TO STDOUT ${(client.copyBytes / MB).toFixed(1)} MB: RSS baseline ${(baseline / MB).toFixed(1)} MB, peak growth ${(growth / MB).toFixed(1)} MB, ` +
        `max client write queue ${(max.clientWriteQueue / MB).toFixed(2)} MB, server bytes read during pauses ${pauseGrowth.join(',')}`,
    );

    expect(client.error()).toBeUndefined();
    expect(client.copyBytes).toBe(payloadBytes);
    expect(client.copyRows).toBe(rowCount);
    const complete = client.messages.find((m) => m.code === 'C');
    expect(complete && commandTag(complete)).toBe(`COPY ${rowCount}`);
    expect(pauseGrowth.length).toBeGreaterThanOrEqual(5);
    // What pgmux read from the server while the reader was paused is bounded by socket buffers, far below the stream.
    for (const g of pauseGrowth) expect(g).toBeLessThan(32 * MB);
    expect(max.clientWriteQueue).toBeLessThan(8 * MB);
    expect(growth).toBeLessThan(90 * MB);
    // The server went back to the pool.
    expect(pool().active.size).toBe(0);
    client.socket.end(serialize.end());
  }, 60_000);
});

describe('COPY FROM STDIN that fails mid-stream', () => {
  async function failingCopy(client: RawClient): Promise<void> {
    client.socket.write(serialize.query('COPY t2 FROM STDIN'));
    await client.until('G', 1, 5000);
    await client.send(serialize.copyData(Buffer.from('1\n2\nnot-a-number\n3\n')));
    await client.until('Z', 1, 5000);
    const err = client.error();
    expect(err?.C).toBe('22P02');
    expect(err?.M).toMatch(/invalid input syntax for type integer/);
  }

  async function expectUsable(client: RawClient): Promise<void> {
    client.messages.length = 0;
    client.socket.write(serialize.query('select count(*) from t2'));
    await client.until('Z', 1, 5000);
    // Exactly one answer, and the failed COPY inserted nothing.
    expect(client.messages.map((m) => m.code).join('')).toBe('TDCZ');
    const row = client.messages[1].body;
    expect(row.toString('utf8', 6)).toBe('0');
    expect(client.messages[3].body.toString()).toBe('I');
  }

  it('the error comes back, the server is released, the connection is usable', async () => {
    const client = await RawClient.connect();
    await failingCopy(client);
    await sleep(200);
    expect({ active: pool().active.size, resetting: pool().resetting.size }).toEqual({ active: 0, resetting: 0 });
    await expectUsable(client);
    client.socket.end(serialize.end());
  });

  it('CopyData and CopyDone the client sends after the error are dropped and do not take a server', async () => {
    const client = await RawClient.connect();
    await failingCopy(client);
    // The client had more in flight when the error arrived: PostgreSQL drops such messages.
    await client.send(serialize.copyData(Buffer.from('4\n5\n')));
    await client.send(serialize.copyData(Buffer.from('6\n')));
    await client.send(serialize.copyDone());
    await sleep(300);
    const session = sessionFor();
    expect({ active: pool().active.size, resetting: pool().resetting.size, clientHoldsServer: (session?.server ?? null) !== null }).toEqual({
      active: 0,
      resetting: 0,
      clientHoldsServer: false,
    });
    // Nothing stray came back for the dropped messages.
    expect(client.messages.map((m) => m.code).join('')).toBe('GEZ');
    await expectUsable(client);
    client.socket.end(serialize.end());
  });
});
