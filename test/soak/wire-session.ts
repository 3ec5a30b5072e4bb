/**
 * A raw protocol client for the faults no driver lets a test time exactly: a COPY FROM STDIN cut after part of
 * its data, a large result left unread and then abandoned. Logs in with test/harness/wire.ts (SCRAM), then reads
 * the stream itself: DataRows are counted, not kept, so a result of any size costs nothing here.
 */
import type { Socket } from 'node:net';
import { message, parseErrorFields, queryMessage, RawConnection, scramLogin, splitMessages, startupPacket } from '../harness/wire.js';

export interface WireResponse {
  tags: string[];
  rows: number;
  /** ReadyForQuery status: I, T or E. */
  status: string;
}

/** An ErrorResponse from the other side; `code` is its SQLSTATE. */
export class WireServerError extends Error {
  readonly code: string;
  constructor(readonly fields: Record<string, string>) {
    super(`${fields.S ?? 'ERROR'} ${fields.C ?? '?????'}: ${fields.M ?? ''}`);
    this.code = fields.C ?? '';
  }
}

/** The connection closed before the answer was complete. */
export class WireClosedError extends Error {
  readonly code = 'CLOSED';
}

interface Msg {
  code: string;
  body: Buffer;
}

export class WireSession {
  private pending: Buffer | null = null;
  private inbox: Msg[] = [];
  private wake: (() => void) | null = null;
  closed = false;
  /** The first ErrorResponse received, whenever it came (a FATAL to an idle connection included). */
  firstError: Record<string, string> | undefined;
  /** DataRows and bytes received since the last resetCounters(). */
  rows = 0;
  bytes = 0;

  private constructor(readonly socket: Socket) {}

  static async open(port: number, user: string, password: string, database: string, applicationName: string): Promise<WireSession> {
    const conn = await RawConnection.connect(port);
    try {
      await conn.write(startupPacket({ user, database, application_name: applicationName }));
      await scramLogin(conn, password, 10_000);
    } catch (err) {
      conn.destroy();
      throw err;
    }
    const { messages } = splitMessages(conn.data);
    const error = messages.find((m) => m.code === 'E');
    if (error !== undefined) {
      conn.destroy();
      throw new WireServerError(parseErrorFields(error.body));
    }
    // Take the socket over from RawConnection (which keeps every chunk): nothing follows the ReadyForQuery yet.
    const session = new WireSession(conn.socket);
    conn.socket.removeAllListeners('data');
    conn.socket.on('data', (chunk: Buffer) => session.onData(chunk));
    conn.socket.on('close', () => {
      session.closed = true;
      session.notify();
    });
    if (conn.closed) session.closed = true;
    return session;
  }

  get localPort(): number | undefined {
    return this.socket.localPort;
  }

  private onData(chunk: Buffer): void {
    this.bytes += chunk.length;
    const buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = null;
    let pos = 0;
    let woke = false;
    while (pos + 5 <= buf.length) {
      const len = buf.readInt32BE(pos + 1);
      if (pos + 1 + len > buf.length) break;
      const code = String.fromCharCode(buf[pos]);
      if (code === 'D') {
        this.rows++;
      } else if (code !== 'N' && code !== 'S') {
        const body = Buffer.from(buf.subarray(pos + 5, pos + 1 + len));
        if (code === 'E') this.firstError ??= parseErrorFields(body);
        this.inbox.push({ code, body });
        woke = true;
      }
      pos += 1 + len;
    }
    if (pos < buf.length) this.pending = Buffer.from(buf.subarray(pos));
    if (woke) this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private async next(): Promise<Msg> {
    for (;;) {
      const m = this.inbox.shift();
      if (m !== undefined) return m;
      if (this.closed) throw this.closedError();
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private closedError(): Error {
    return this.firstError === undefined ? new WireClosedError('connection closed') : new WireServerError(this.firstError);
  }

  private write(buf: Buffer): void {
    if (this.closed || this.socket.destroyed) throw this.closedError();
    this.socket.write(buf);
  }

  /** Collects the answer up to ReadyForQuery; an ErrorResponse in it is thrown (after the ReadyForQuery). */
  private async collect(): Promise<WireResponse> {
    const tags: string[] = [];
    let error: Record<string, string> | undefined;
    const rowsBefore = this.rows;
    for (;;) {
      const m = await this.next();
      if (m.code === 'C') tags.push(m.body.toString('utf8', 0, m.body.length - 1));
      else if (m.code === 'E') error ??= parseErrorFields(m.body);
      else if (m.code === 'Z') {
        if (error !== undefined) throw new WireServerError(error);
        return { tags, rows: this.rows - rowsBefore, status: m.body.toString('latin1') };
      }
    }
  }

  /** A simple Query; resolves with its answer at ReadyForQuery. */
  async query(sql: string): Promise<WireResponse> {
    this.write(queryMessage(sql));
    return this.collect();
  }

  /** Sends a Query without waiting for anything (the large SELECT whose result is then left unread). */
  send(sql: string): void {
    this.write(queryMessage(sql));
  }

  /** Sends `COPY ... FROM STDIN` and waits for CopyInResponse. */
  async copyStart(sql: string): Promise<void> {
    this.write(queryMessage(sql));
    for (;;) {
      const m = await this.next();
      if (m.code === 'G') return;
      if (m.code === 'E' || m.code === 'Z') {
        this.inbox.unshift(m);
        await this.collect();
        throw new Error(`COPY did not start: ${m.code}`);
      }
    }
  }

  copyData(data: Buffer | string): void {
    this.write(message('d', data));
  }

  /** CopyDone, then the COPY's answer. */
  async copyDone(): Promise<WireResponse> {
    this.write(message('c'));
    return this.collect();
  }

  /** Resolves once at least `bytes` bytes arrived since the session opened (or it closed). */
  async untilBytes(bytes: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.bytes < bytes && !this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    return this.bytes >= bytes;
  }

  /** Terminate, then close (a polite goodbye). */
  terminate(): void {
    if (!this.closed && !this.socket.destroyed) this.socket.end(message('X'));
    setTimeout(() => this.socket.destroy(), 1_000).unref();
  }

  /** Abrupt close with a RST (SO_LINGER 0). */
  reset(): void {
    if (!this.socket.destroyed) this.socket.resetAndDestroy();
  }

  /** Abrupt close with a FIN and no Terminate: end our side, then forget the socket. */
  fin(): void {
    if (!this.socket.destroyed) this.socket.end();
    setTimeout(() => this.socket.destroy(), 1_000).unref();
  }

  destroy(): void {
    this.socket.destroy();
  }
}
