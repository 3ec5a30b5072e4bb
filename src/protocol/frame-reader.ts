import { MAX_MESSAGE_LENGTH } from './codes.js';

/** Receives the messages a {@link FrameReader} finds. Implementations decide per message type. */
export interface FrameHandler {
  /** A whole message: `buf[start, end)` is its 5-byte header followed by its body. */
  onFrame(code: number, buf: Buffer, start: number, end: number): void;
  /**
   * Whether a message of this type may be passed on piecewise before all of it has arrived.
   * Saying yes for rows and COPY data is what keeps a 500 MB result from being buffered in memory.
   */
  canStream(code: number): boolean;
  /** A piece of a streamed message; the `first` piece starts with the header, `last` marks the final one. */
  onPiece(code: number, buf: Buffer, start: number, end: number, first: boolean, last: boolean): void;
  /** The byte stream is not the PostgreSQL protocol (nonsense length). Nothing more is delivered. */
  onProtocolError(reason: string): void;
}

/** Per-type length limits that depend on the owner's state (a client's limits change as it logs in). */
export interface MessageLimits {
  /** The largest declared length accepted for a message of this type; 0 refuses the type at its first byte. */
  maxMessageLength(code: number): number;
}

const HEADER_LENGTH = 5;

/**
 * Finds message boundaries in a stream of typed v3 messages and hands out views (`subarray`s)
 * of the chunks it was given. It copies only a non-streamable message that spans chunks.
 */
export class FrameReader {
  /**
   * Bytes of a message header split across chunks: made the first time one is (most connections never split a
   * header), outside Buffer's shared pool, whose 8 KiB slab a long-lived 5-byte view would keep alive.
   */
  private header: Buffer | null = null;
  private headerHeld = 0;
  /** A non-streamable message being assembled across chunks. */
  private body: Buffer | null = null;
  private bodyHeld = 0;
  /** Type and remaining byte count of a message being streamed through in pieces. */
  private streamCode = 0;
  private streamRemaining = 0;
  private failed = false;
  /** hold() was called: nothing is delivered until resume(); `held` is what came meanwhile, from where it stopped. */
  private holding = false;
  private held: Buffer | null = null;
  /**
   * The largest declared length accepted: one for every type, or per type (0 refuses the type at its header,
   * before any of its body is awaited: a client's limits are PostgreSQL's, which differ by type and phase).
   */
  private readonly maxLength: number | MessageLimits;

  /** `maxLength`: a function or a MessageLimits (a ClientSession is its own: no closure per connection). */
  constructor(
    private readonly handler: FrameHandler,
    maxLength: number | MessageLimits | ((code: number) => number) = MAX_MESSAGE_LENGTH,
  ) {
    this.maxLength = typeof maxLength === 'function' ? { maxMessageLength: maxLength } : maxLength;
  }

  /** True while part of a message is held or being streamed (the stream is between messages otherwise). */
  get midMessage(): boolean {
    return this.headerHeld > 0 || this.body !== null || this.streamRemaining > 0;
  }

  /** True while a message is being streamed through: part of it was handed on already, the rest has not come. */
  get streaming(): boolean {
    return this.streamRemaining > 0;
  }

  push(chunk: Buffer): void {
    if (this.failed || chunk.length === 0) return;
    if (this.holding) return this.keep(chunk, 0);
    const length = chunk.length;
    let pos = 0;

    if (this.streamRemaining > 0) {
      const n = Math.min(this.streamRemaining, length);
      this.streamRemaining -= n;
      this.handler.onPiece(this.streamCode, chunk, 0, n, false, this.streamRemaining === 0);
      pos = n;
    } else if (this.body !== null) {
      pos = this.continueBody(chunk);
    } else if (this.headerHeld > 0) {
      pos = this.continueHeader(chunk);
    }
    if (this.failed) return;
    if (this.holding) return this.keep(chunk, pos);

    while (pos + HEADER_LENGTH <= length) {
      const code = chunk[pos];
      const declared = chunk.readInt32BE(pos + 1);
      if (!this.validLength(code, declared)) return;
      const end = pos + declared + 1;
      if (end <= length) {
        this.handler.onFrame(code, chunk, pos, end);
        if (this.failed) return;
        if (this.holding) return this.keep(chunk, end);
        pos = end;
        continue;
      }
      if (this.handler.canStream(code)) {
        this.streamCode = code;
        this.streamRemaining = end - length;
        this.handler.onPiece(code, chunk, pos, length, true, false);
      } else {
        this.body = Buffer.allocUnsafe(declared + 1);
        this.bodyHeld = chunk.copy(this.body, 0, pos, length);
      }
      return;
    }
    if (pos < length) {
      // The type byte alone may refuse the message (PostgreSQL reads it before the length): do not wait for more.
      if (typeof this.maxLength !== 'number' && this.maxLength.maxMessageLength(chunk[pos]) === 0) {
        this.failed = true;
        this.handler.onProtocolError(`invalid message type ${chunk[pos]}`);
        return;
      }
      this.header ??= Buffer.allocUnsafeSlow(HEADER_LENGTH);
      this.headerHeld = chunk.copy(this.header, 0, pos, length);
    }
  }

  /** Stop delivering messages (the owner is closing). */
  stop(): void {
    this.failed = true;
  }

  /**
   * Deliver nothing more until resume(), not even the rest of the chunk being read: the owner cannot judge the next
   * message yet (PostgreSQL checks a password before it reads on, and what follows is judged in the state the check
   * leads to). Meant between messages, from onFrame; what arrives meanwhile is kept.
   */
  hold(): void {
    this.holding = true;
  }

  /** Bytes kept since hold(). */
  get heldBytes(): number {
    return this.held === null ? 0 : this.held.length;
  }

  /** Delivers what was kept since hold(), then reads on as before. */
  resume(): void {
    if (!this.holding) return;
    this.holding = false;
    const held = this.held;
    this.held = null;
    if (held !== null) this.push(held);
  }

  private keep(chunk: Buffer, from: number): void {
    if (from >= chunk.length) return;
    const rest = chunk.subarray(from);
    this.held = this.held === null ? rest : Buffer.concat([this.held, rest]);
  }

  private continueHeader(chunk: Buffer): number {
    const header = this.header as Buffer;
    const n = chunk.copy(header, this.headerHeld, 0, HEADER_LENGTH - this.headerHeld);
    this.headerHeld += n;
    if (this.headerHeld < HEADER_LENGTH) return n;
    this.headerHeld = 0;
    const code = header[0];
    const declared = header.readInt32BE(1);
    if (!this.validLength(code, declared)) return chunk.length;
    const total = declared + 1;
    if (total === HEADER_LENGTH) {
      this.handler.onFrame(code, Buffer.from(header), 0, HEADER_LENGTH);
      return n;
    }
    if (this.handler.canStream(code)) {
      // The header is the only copied part; a fresh buffer because it is handed to a socket.
      this.handler.onPiece(code, Buffer.from(header), 0, HEADER_LENGTH, true, false);
      if (this.failed) return chunk.length;
      this.streamCode = code;
      this.streamRemaining = total - HEADER_LENGTH;
      const m = Math.min(this.streamRemaining, chunk.length - n);
      if (m > 0) {
        this.streamRemaining -= m;
        this.handler.onPiece(code, chunk, n, n + m, false, this.streamRemaining === 0);
      }
      return n + m;
    }
    this.body = Buffer.allocUnsafe(total);
    header.copy(this.body, 0);
    this.bodyHeld = HEADER_LENGTH;
    return n + this.continueBody(chunk.subarray(n));
  }

  private continueBody(chunk: Buffer): number {
    const body = this.body as Buffer;
    const n = chunk.copy(body, this.bodyHeld, 0, body.length - this.bodyHeld);
    this.bodyHeld += n;
    if (this.bodyHeld === body.length) {
      this.body = null;
      this.bodyHeld = 0;
      this.handler.onFrame(body[0], body, 0, body.length);
    }
    return n;
  }

  private validLength(code: number, declared: number): boolean {
    const max = typeof this.maxLength === 'number' ? this.maxLength : this.maxLength.maxMessageLength(code);
    if (declared >= 4 && declared <= max) return true;
    this.failed = true;
    this.handler.onProtocolError(max === 0 ? `invalid message type ${code}` : `invalid message length ${declared}`);
    return false;
  }
}
