import type { Socket } from 'node:net';

/**
 * Collects the byte ranges bound for one socket while a chunk is processed and writes them in
 * one go. Ranges that are adjacent in the same buffer are merged into a single view, so the
 * common case (a whole chunk of forwarded messages) is one `write()` of one `subarray`.
 */
export class WriteBatch {
  private buf: Buffer | null = null;
  private start = 0;
  private end = 0;
  private readonly parts: Buffer[] = [];

  get empty(): boolean {
    return this.buf === null && this.parts.length === 0;
  }

  add(buf: Buffer, start: number, end: number): void {
    if (this.buf === buf && this.end === start) {
      this.end = end;
      return;
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
