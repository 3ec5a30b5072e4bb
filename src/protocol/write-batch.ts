import type { Socket } from 'node:net';

/**
 * Collects the byte ranges bound for one socket while a chunk is processed and writes them in
 * one go. Ranges that are adjacent in the same buffer are merged into a single view, so the
 * common case (a whole chunk of forwarded messages) is one `write()` of one `subarray`.
 */
export class WriteBatch {
  /** The open range: `buf[start, end)`, which is also `buf.buffer[base + start, base + end)`. */
  private buf: Buffer | null = null;
  private start = 0;
  private end = 0;
  private readonly parts: Buffer[] = [];

  get empty(): boolean {
    return this.buf === null && this.parts.length === 0;
  }

  add(buf: Buffer, start: number, end: number): void {
    const open = this.buf;
    if (open !== null) {
      if (open === buf && this.end === start) {
        this.end = end;
        return;
      }
      // A different view of the same memory that continues the open range (a message held as a
      // subarray while the client waited, followed by the rest of the chunk it came in): widen
      // the open range rather than start a second part, so it still goes out as one write.
      if (open.buffer === buf.buffer && open.byteOffset + this.end === buf.byteOffset + start) {
        if (open.byteOffset + this.start >= buf.byteOffset) {
          this.start = open.byteOffset + this.start - buf.byteOffset;
          this.end = end;
          this.buf = buf;
          return;
        }
        if (buf.byteOffset + end <= open.byteOffset + open.length) {
          this.end = buf.byteOffset + end - open.byteOffset;
          return;
        }
      }
    }
    this.seal();
    this.buf = buf;
    this.start = start;
    this.end = end;
  }

  addBuffer(buf: Buffer): void {
    this.add(buf, 0, buf.length);
  }

  /** Write everything collected; returns false when the socket asked us to wait for 'drain'. */
  flush(socket: Socket): boolean {
    this.seal();
    const parts = this.parts;
    if (parts.length === 0) return true;
    let ok: boolean;
    if (parts.length === 1) {
      ok = socket.write(parts[0]);
    } else {
      socket.cork();
      for (let i = 0; i < parts.length - 1; i++) socket.write(parts[i]);
      ok = socket.write(parts[parts.length - 1]);
      socket.uncork();
    }
    parts.length = 0;
    return ok;
  }

  /** Take the collected ranges out (to hold them while a client waits for a server). */
  drainTo(out: Buffer[]): void {
    this.seal();
    for (const p of this.parts) out.push(p);
    this.parts.length = 0;
  }

  clear(): void {
    this.buf = null;
    this.parts.length = 0;
  }

  private seal(): void {
    if (this.buf === null) return;
    this.parts.push(this.start === 0 && this.end === this.buf.length ? this.buf : this.buf.subarray(this.start, this.end));
    this.buf = null;
  }
}
