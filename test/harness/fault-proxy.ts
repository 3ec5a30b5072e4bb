/**
 * A fault-injecting TCP proxy for tests, between pgmux and a real PostgreSQL: every server connection
 * pgmux opens goes through it, and a test turns faults on and off while traffic flows.
 *
 * - `delay(ms)`: hold each chunk for `ms` before passing it on (order kept), either or both directions.
 * - `blackhole()`: stop forwarding without closing anything (both sockets stop being read, as in a network
 *   partition behind a load balancer); new connections are accepted and go nowhere. `heal()` lets the held
 *   bytes through and forwards again.
 * - `drop('rst' | 'fin')`: end every open connection, with a TCP reset or an orderly FIN.
 * - `refuse('rst' | 'close')`: new connections are reset as soon as they are accepted (and counted in
 *   `accepted`), or the listener is closed so the kernel refuses them (nothing counted). `refuse(false)` undoes it.
 * - `truncateNext` / `corruptNext`: the next server message (of a given type) on any connection is cut short or
 *   damaged. The proxy follows the message framing of what the server sends (the single-byte answer to an
 *   SSLRequest included; a connection that switches to TLS is passed through untouched).
 *
 * Everything is synchronous per chunk and per message boundary; nothing is copied except a header split
 * between chunks (at most 4 bytes held).
 */
import net, { type Socket } from 'node:net';

export type DropKind = 'rst' | 'fin';
export type Direction = 'both' | 'to-server' | 'to-client';

/** What happens once a truncated message has been cut: close with RST or FIN, or forward nothing more (hang). */
export type AfterCut = DropKind | 'hang';

export interface TruncateOptions {
  /** Server message type to cut ('T', 'D', 'Z'...); any message when omitted. */
  type?: string;
  /** Bytes of the message (its 5-byte header included) that still get through. */
  keep: number;
  then: AfterCut;
}

export interface CorruptOptions {
  /** Server message type to damage; any message when omitted. */
  type?: string;
  /**
   * `type`: the type byte becomes '~' (no such message); `length`: the declared length becomes 0x7fffffff
   * (beyond PostgreSQL's 1 GB); `garbage`: every byte of the message is replaced with pseudo-random bytes.
   */
  how: 'type' | 'length' | 'garbage';
  /** Seed of the garbage bytes (deterministic per seed). */
  seed?: number;
}

type Tamper = { kind: 'truncate'; match: number; opts: TruncateOptions } | { kind: 'corrupt'; match: number; opts: CorruptOptions };

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const ANY = -1;

interface Delayed {
  due: number;
  chunk: Buffer;
}

/** Forwards one direction of a link, with an optional delay; holds chunks while blackholed. */
class Pipe {
  private readonly queue: Delayed[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly proxy: FaultProxy,
    private readonly dst: Socket,
    private readonly toServer: boolean,
    /** This link's own delay (see FaultProxy.delayNewConnections), on top of the proxy-wide one. */
    private readonly ownDelayMs: number,
  ) {}

  send(chunk: Buffer): void {
    const ms = Math.max(this.proxy.delayFor(this.toServer), this.ownDelayMs);
    if (ms <= 0 && this.queue.length === 0 && !this.proxy.blackholed) {
      this.write(chunk);
      return;
    }
    this.queue.push({ due: Date.now() + ms, chunk });
    this.pump();
  }

  /** Writes what is due; called again by its timer and when the blackhole lifts. */
  pump(): void {
    if (this.timer !== null) return;
    if (this.proxy.blackholed) return;
    const now = Date.now();
    while (this.queue.length > 0 && this.queue[0].due <= now) this.write((this.queue.shift() as Delayed).chunk);
    if (this.queue.length > 0) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.pump();
      }, this.queue[0].due - now);
    }
  }

  get empty(): boolean {
    return this.queue.length === 0;
  }

  private write(chunk: Buffer): void {
    if (!this.dst.destroyed) this.dst.write(chunk);
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.queue.length = 0;
  }
}

/** One client (pgmux) ⇄ server (PostgreSQL) connection through the proxy. */
class Link {
  readonly toServer: Pipe;
  readonly toClient: Pipe;
  /** Bytes of a server message header split between chunks. */
  private readonly header = Buffer.alloc(5);
  private headerHeld = 0;
  /** Body bytes of the current server message still to come. */
  private remaining = 0;
  /** The next server byte is the one-byte answer to an SSLRequest/GSSENCRequest. */
  private singleByte = false;
  /** TLS (or the first client bytes not seen yet as a startup): pass through without framing. */
  private opaque = false;
  private firstClientChunk = true;
  /** Truncation in progress: bytes of the current message that still get through. */
  private cutLeft = -1;
  private cutThen: AfterCut = 'fin';
  /** Garbage in progress: bytes of the current message still to replace, and the generator state. */
  private garbageLeft = 0;
  private rng = 1;
  /** After a cut with `hang`: nothing more from the server is forwarded. */
  private hung = false;
  closed = false;

  constructor(
    private readonly proxy: FaultProxy,
    readonly client: Socket,
    readonly server: Socket,
    toServerDelayMs: number,
  ) {
    this.toServer = new Pipe(proxy, server, true, toServerDelayMs);
    this.toClient = new Pipe(proxy, client, false, 0);
    client.on('data', (chunk: Buffer) => this.fromClient(chunk));
    server.on('data', (chunk: Buffer) => this.fromServer(chunk));
    // An orderly end on one side is passed on, once what was held has gone, as a half-close: the other side still
    // answers (PostgreSQL closes a cancel request's connection only after it has signalled the backend, and pgmux
    // waits for that close; a proxy that closed both sides at once would hide the wait).
    client.on('end', () => this.endWhenFlushed(this.toServer, server));
    server.on('end', () => this.endWhenFlushed(this.toClient, client));
    for (const s of [client, server]) {
      s.on('error', () => this.destroy('rst'));
      s.on('close', () => this.destroy('fin'));
    }
    if (proxy.blackholed) this.pause();
  }

  pause(): void {
    this.client.pause();
    this.server.pause();
  }

  resume(): void {
    if (this.closed) return;
    this.client.resume();
    if (!this.hung) this.server.resume();
    this.toServer.pump();
    this.toClient.pump();
  }

  /** Close both sides: RST, or FIN after what is already written. */
  destroy(how: DropKind): void {
    if (this.closed) return;
    this.closed = true;
    this.toServer.stop();
    this.toClient.stop();
    for (const s of [this.client, this.server]) {
      if (s.destroyed) continue;
      if (how === 'fin') s.end(() => s.destroy());
      else {
        try {
          s.resetAndDestroy();
        } catch {
          s.destroy();
        }
      }
    }
    this.proxy.linkClosed(this);
  }

  /** One side ended: the other is ended too, once what is held for it has gone; both ended, the link is done. */
  private endWhenFlushed(pipe: Pipe, other: Socket): void {
    if (this.closed) return;
    if (!pipe.empty) {
      setTimeout(() => this.endWhenFlushed(pipe, other), 5);
      return;
    }
    if (other.writableEnded || other.destroyed) this.destroy('fin');
    else other.end();
    if (this.client.readableEnded && this.server.readableEnded) this.destroy('fin');
  }

  private fromClient(chunk: Buffer): void {
    if (this.firstClientChunk) {
      this.firstClientChunk = false;
      if (chunk.length >= 8 && chunk.readInt32BE(0) === 8) {
        const code = chunk.readInt32BE(4);
        if (code === SSL_REQUEST || code === GSSENC_REQUEST) this.singleByte = true;
      }
    }
    this.toServer.send(chunk);
  }

  private fromServer(chunk: Buffer): void {
    if (this.hung || this.closed) return;
    if (this.opaque) {
      this.toClient.send(chunk);
      return;
    }
    const out: Buffer[] = [];
    let pos = 0;
    const length = chunk.length;
    while (pos < length) {
      if (this.singleByte) {
        this.singleByte = false;
        if (chunk[pos] === 0x53 || chunk[pos] === 0x47) this.opaque = true; // 'S' / 'G': encrypted from here on
        out.push(chunk.subarray(pos, pos + 1));
        pos++;
        if (this.opaque) {
          if (pos < length) out.push(chunk.subarray(pos));
          break;
        }
        continue;
      }
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, length - pos);
        if (!this.emit(out, chunk.subarray(pos, pos + n))) return this.flushCut(out);
        this.remaining -= n;
        pos += n;
        continue;
      }
      // A header: held whole before anything of it is decided.
      const need = 5 - this.headerHeld;
      const n = Math.min(need, length - pos);
      chunk.copy(this.header, this.headerHeld, pos, pos + n);
      this.headerHeld += n;
      pos += n;
      if (this.headerHeld < 5) break;
      this.headerHeld = 0;
      const header = Buffer.from(this.header);
      const declared = header.readInt32BE(1);
      this.remaining = Math.max(0, declared - 4);
      this.startMessage(header);
      if (!this.emit(out, header)) return this.flushCut(out);
    }
    this.flush(out);
  }

  /** A server message begins: apply an armed tamper that matches it. */
  private startMessage(header: Buffer): void {
    const tamper = this.proxy.takeTamper(header[0]);
    if (tamper === null) return;
    if (tamper.kind === 'truncate') {
      // Never beyond this message: a `keep` of its whole length ends the connection right after it.
      this.cutLeft = Math.max(0, Math.min(tamper.opts.keep, 5 + this.remaining));
      this.cutThen = tamper.opts.then;
      return;
    }
    switch (tamper.opts.how) {
      case 'type':
        header[0] = 0x7e; // '~'
        return;
      case 'length':
        header.writeInt32BE(0x7fffffff, 1);
        return;
      case 'garbage':
        this.rng = (tamper.opts.seed ?? 1) >>> 0 || 1;
        this.garbageLeft = 5 + this.remaining;
        return;
    }
  }

  /** Adds bytes to the output, damaged or cut as armed; false once a cut is complete. */
  private emit(out: Buffer[], bytes: Buffer): boolean {
    let piece = bytes;
    if (this.garbageLeft > 0) {
      const n = Math.min(this.garbageLeft, piece.length);
      const copy = Buffer.from(piece);
      for (let i = 0; i < n; i++) copy[i] = this.nextRandom();
      this.garbageLeft -= n;
      piece = copy;
    }
    if (this.cutLeft < 0) {
      out.push(piece);
      return true;
    }
    const n = Math.min(this.cutLeft, piece.length);
    if (n > 0) out.push(piece.subarray(0, n));
    this.cutLeft -= n;
    return this.cutLeft > 0;
  }

  private nextRandom(): number {
    // xorshift32
    let x = this.rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rng = x >>> 0;
    return this.rng & 0xff;
  }

  private flush(out: Buffer[]): void {
    if (out.length === 1) this.toClient.send(out[0]);
    else if (out.length > 1) this.toClient.send(Buffer.concat(out));
  }

  /** The cut is complete: what got through goes out, then the connection ends as armed. */
  private flushCut(out: Buffer[]): void {
    this.flush(out);
    this.cutLeft = -1;
    if (this.cutThen === 'hang') {
      this.hung = true;
      this.server.pause();
      return;
    }
    const how = this.cutThen;
    const finish = (): void => {
      if (!this.toClient.empty && !this.closed) {
        setTimeout(finish, 5);
        return;
      }
      this.destroy(how);
    };
    finish();
  }
}

export class FaultProxy {
  /** Connections accepted since start (each connection attempt of pgmux, also those reset by `refuse('rst')`). */
  accepted = 0;
  /** Date.now() of each accepted connection, in order. */
  readonly acceptedAt: number[] = [];
  blackholed = false;
  private readonly links = new Set<Link>();
  private delayToServer = 0;
  private delayToClient = 0;
  private delayNewToServer = 0;
  private refusing: DropKind | 'close' | false = false;
  private readonly tampers: Tamper[] = [];
  private listening = true;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    readonly target: { host: string; port: number },
  ) {}

  /** A proxy on a loopback port (`port`, default a free one) forwarding to `target`. */
  static async start(target: { host: string; port: number }, port = 0): Promise<FaultProxy> {
    const server = net.createServer({ noDelay: true, allowHalfOpen: true });
    await listen(server, port);
    const address = server.address() as net.AddressInfo;
    const proxy = new FaultProxy(server, address.port, target);
    server.on('connection', (socket) => proxy.accept(socket));
    return proxy;
  }

  readonly host = '127.0.0.1';

  /** Connections open right now. */
  get open(): number {
    return this.links.size;
  }

  /** Hold each chunk for `ms` before forwarding it (0 turns it off). */
  delay(ms: number, direction: Direction = 'both'): void {
    if (direction !== 'to-client') this.delayToServer = ms;
    if (direction !== 'to-server') this.delayToClient = ms;
  }

  /**
   * Connections accepted from now on hold each chunk towards the server for `ms` (0 turns it off); connections
   * already open are not slowed. A cancel request pgmux sends on a new connection then arrives late while the
   * server connections it pools run at full speed.
   */
  delayNewConnections(ms: number): void {
    this.delayNewToServer = ms;
  }

  /** Stop forwarding in both directions without closing anything; new connections are accepted and go nowhere. */
  blackhole(): void {
    this.blackholed = true;
    for (const link of this.links) link.pause();
  }

  /** Clears every fault: no delay, no blackhole (held bytes go through), connections accepted, nothing armed. */
  heal(): void {
    this.delayToServer = 0;
    this.delayToClient = 0;
    this.delayNewToServer = 0;
    this.tampers.length = 0;
    this.blackholed = false;
    for (const link of this.links) link.resume();
    this.refuse(false);
  }

  /** New connections: reset at once (`rst`), refused by the kernel (`close`: nothing listens), or accepted (false). */
  refuse(how: 'rst' | 'close' | false): void {
    this.refusing = how;
    if (how === 'close' && this.listening) {
      this.listening = false;
      this.server.close();
    } else if (how !== 'close' && !this.listening) {
      this.listening = true;
      this.server.listen(this.port, '127.0.0.1');
    }
  }

  /** Ends every open connection with RST or FIN; returns how many there were. */
  drop(how: DropKind): number {
    const links = [...this.links];
    for (const link of links) link.destroy(how);
    return links.length;
  }

  /** The next server message of `type` (any when omitted), on whichever connection it comes, is cut short. */
  truncateNext(opts: TruncateOptions): void {
    this.tampers.push({ kind: 'truncate', match: typeCode(opts.type), opts });
  }

  /** The next server message of `type` (any when omitted) is damaged. */
  corruptNext(opts: CorruptOptions): void {
    this.tampers.push({ kind: 'corrupt', match: typeCode(opts.type), opts });
  }

  /** Whether an armed tamper is still waiting for its message. */
  get armed(): boolean {
    return this.tampers.length > 0;
  }

  async close(): Promise<void> {
    this.drop('rst');
    if (!this.listening) return;
    this.listening = false;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- for Link and Pipe ----

  delayFor(toServer: boolean): number {
    return toServer ? this.delayToServer : this.delayToClient;
  }

  takeTamper(code: number): Tamper | null {
    const i = this.tampers.findIndex((t) => t.match === ANY || t.match === code);
    if (i < 0) return null;
    return this.tampers.splice(i, 1)[0];
  }

  linkClosed(link: Link): void {
    this.links.delete(link);
  }

  private accept(client: Socket): void {
    this.accepted++;
    this.acceptedAt.push(Date.now());
    client.setNoDelay(true);
    if (this.refusing === 'rst') {
      client.on('error', () => undefined);
      client.resetAndDestroy();
      return;
    }
    const server = net.connect({ host: this.target.host, port: this.target.port, noDelay: true, allowHalfOpen: true });
    const link = new Link(this, client, server, this.delayNewToServer);
    this.links.add(link);
  }
}

function typeCode(type: string | undefined): number {
  if (type === undefined) return ANY;
  if (type.length !== 1) throw new Error(`a message type is one character, not "${type}"`);
  return type.charCodeAt(0);
}

function listen(server: net.Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}
