/**
 * One raw client connection for the protocol fuzzer: plain TCP, or TLS after an SSLRequest answered 'S'. It
 * records every byte received and whether (and when) the peer closed, and writes a case's bytes in the pieces a
 * split plan says, pausing between them so that the other side reads them as separate chunks.
 *
 * Built on test/harness/wire.ts (message splitting, error fields); independent of src/.
 */
import net, { type Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { splitMessages, type BackendMessage } from '../harness/wire.js';

export class FuzzConnection {
  private chunks: Buffer[] = [];
  private length = 0;
  private joined: Buffer = Buffer.alloc(0);
  private waiters = new Set<() => void>();
  /** Bytes consumed by take(); messages() starts after them. */
  private consumed = 0;
  closed = false;
  /** A write failed (the peer had closed): what was not sent does not count. */
  writeFailed = false;
  socket: Socket;

  private constructor(socket: Socket) {
    this.socket = socket;
    this.bind(socket);
  }

  static connect(port: number, host = '127.0.0.1', timeoutMs = 10_000): Promise<FuzzConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${host}:${port} timed out`));
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new FuzzConnection(socket));
      });
    });
  }

  private bind(socket: Socket): void {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.length += chunk.length;
      this.wake();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  /**
   * Continues over TLS on the same TCP connection (after the peer answered an SSLRequest with 'S' and nothing
   * else was received). Resolves with the server's certificate (DER), rejects if the handshake fails.
   */
  startTls(timeoutMs = 10_000): Promise<Buffer> {
    const raw = this.socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    return new Promise((resolve, reject) => {
      const secure: TLSSocket = tls.connect({ socket: raw, rejectUnauthorized: false, servername: 'localhost', ALPNProtocols: ['postgresql'] });
      const timer = setTimeout(() => {
        secure.destroy();
        reject(new Error('TLS handshake timed out'));
      }, timeoutMs);
      secure.once('error', (err) => {
        clearTimeout(timer);
        this.closed = true;
        reject(err);
      });
      secure.once('secureConnect', () => {
        clearTimeout(timer);
        secure.removeAllListeners('error');
        this.socket = secure;
        this.bind(secure);
        resolve(secure.getPeerCertificate().raw);
      });
    });
  }

  /** Everything received and not taken. */
  get data(): Buffer {
    if (this.chunks.length > 0) {
      this.joined = Buffer.concat([this.joined, ...this.chunks]);
      this.chunks = [];
    }
    return this.joined.subarray(this.consumed);
  }

  get received(): number {
    return this.length;
  }

  /** Typed messages received and not taken (a trailing partial message is left out). */
  messages(): BackendMessage[] {
    return splitMessages(this.data).messages;
  }

  /** Drops the first `n` bytes not yet taken. */
  take(n: number): void {
    this.consumed += n;
    if (this.consumed > 1 << 20) {
      this.joined = this.data;
      this.consumed = 0;
    }
  }

  /** Takes the whole messages received so far; returns them. */
  takeMessages(): BackendMessage[] {
    const { messages } = splitMessages(this.data);
    let n = 0;
    for (const m of messages) n += 5 + m.body.length;
    const copy = messages.map((m) => ({ code: m.code, body: Buffer.from(m.body) }));
    this.take(n);
    return copy;
  }

  write(buf: Buffer): Promise<void> {
    if (this.closed || this.socket.destroyed) {
      this.writeFailed = true;
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      this.socket.write(buf, (err) => {
        if (err) this.writeFailed = true;
        resolve();
      }),
    );
  }

  /**
   * Writes `buf` in pieces cut at `cuts` (offsets into buf, ascending), pausing `pauseMs` after each piece so the
   * peer reads it on its own.
   */
  async writeSplit(buf: Buffer, cuts: readonly number[], pauseMs = 1): Promise<void> {
    let from = 0;
    for (const cut of cuts) {
      if (cut <= from || cut >= buf.length) continue;
      await this.write(buf.subarray(from, cut));
      await new Promise((r) => setTimeout(r, pauseMs));
      from = cut;
    }
    await this.write(buf.subarray(from));
  }

  /** Resolves true when `done()` holds or the peer closed (the caller looks at which), false after `timeoutMs`. */
  async until(done: (c: FuzzConnection) => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!done(this)) {
      if (this.closed) return true;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(wake, left);
        function wake(): void {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.add(wake);
      });
    }
    return true;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const w of waiters) w();
  }
}
