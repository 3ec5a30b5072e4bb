/**
 * A raw client connection of the differential fuzzer: startup packet, login (trust or SCRAM-SHA-256), then steps
 * of frontend messages sent in one write, each read until the server has answered all of it (see `simulate`).
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import net from 'node:net';
import { CLOSED, MessageSplitter, TIMEOUT, serializeFront, simulate, type BackendMessage, type Front } from './protocol.js';

function startupPacket(params: ReadonlyArray<readonly [string, string]>): Buffer {
  const body = Buffer.from(params.map(([k, v]) => `${k}\0${v}\0`).join('') + '\0');
  const buf = Buffer.alloc(8 + body.length);
  buf.writeInt32BE(buf.length, 0);
  buf.writeInt32BE(196608, 4);
  body.copy(buf, 8);
  return buf;
}

function typed(code: string, body: Buffer): Buffer {
  const buf = Buffer.alloc(5 + body.length);
  buf.write(code, 0, 'latin1');
  buf.writeInt32BE(4 + body.length, 1);
  body.copy(buf, 5);
  return buf;
}

export type Endpoint = { host: string; port: number } | { path: string };

export interface StepResult {
  messages: BackendMessage[];
  /** False when the step timed out or the connection closed before it was answered. */
  complete: boolean;
}

export class FuzzConnection {
  private readonly splitter = new MessageSplitter();
  private readonly inbox: BackendMessage[] = [];
  private wake: (() => void) | null = null;
  closed = false;
  /** The server is skipping messages up to the next Sync (an error in the extended protocol). */
  private skipping = false;
  /** Backend pid from BackendKeyData (direct connections: to wait for the backend to go away). */
  pid = 0;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      try {
        this.inbox.push(...this.splitter.push(chunk));
      } catch {
        socket.destroy();
      }
      this.notify();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.notify();
    });
  }

  /** TCP to host:port, or the unix socket at `path`. */
  static connect(to: Endpoint): Promise<FuzzConnection> {
    return new Promise((resolve, reject) => {
      const socket = 'path' in to ? net.connect({ path: to.path }) : net.connect({ host: to.host, port: to.port, noDelay: true });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new FuzzConnection(socket));
      });
    });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Waits until `ready()` holds, the connection closes, or the deadline passes. */
  private async until(ready: () => boolean, deadline: number): Promise<boolean> {
    while (!ready()) {
      if (this.closed) return ready();
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.wake = null;
          resolve();
        }, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return true;
  }

  private write(buf: Buffer): void {
    if (!this.closed) this.socket.write(buf);
  }

  /**
   * Sends the startup packet and logs in (SCRAM-SHA-256 when asked for a password); returns the messages from
   * AuthenticationOk (excluded) up to the first ReadyForQuery, or up to an error that ends the login.
   */
  async login(params: ReadonlyArray<readonly [string, string]>, password: string, timeoutMs: number): Promise<StepResult> {
    const deadline = Date.now() + timeoutMs;
    this.write(startupPacket(params));
    let nonce = '';
    let clientFirstBare = '';
    for (;;) {
      if (!(await this.until(() => this.inbox.length > 0, deadline))) {
        return { messages: [{ code: this.closed ? CLOSED : TIMEOUT, body: Buffer.from('login') }], complete: false };
      }
      const m = this.inbox.shift() as BackendMessage;
      if (m.code === 'E') return { messages: [m, ...(await this.drainUntilClosed(deadline))], complete: true };
      if (m.code !== 'R') throw new Error(`unexpected message '${m.code}' during authentication`);
      const kind = m.body.readInt32BE(0);
      if (kind === 0) break;
      if (kind === 10) {
        nonce = randomBytes(18).toString('base64');
        clientFirstBare = `n=,r=${nonce}`;
        const first = Buffer.from(`n,,${clientFirstBare}`);
        const len = Buffer.alloc(4);
        len.writeInt32BE(first.length);
        this.write(typed('p', Buffer.concat([Buffer.from('SCRAM-SHA-256\0'), len, first])));
      } else if (kind === 11) {
        const serverFirst = m.body.toString('utf8', 4);
        const attrs = new Map(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)] as const));
        const serverNonce = attrs.get('r') ?? '';
        const salted = pbkdf2Sync(password, Buffer.from(attrs.get('s') ?? '', 'base64'), Number(attrs.get('i')), 32, 'sha256');
        const clientKey = createHmac('sha256', salted).update('Client Key').digest();
        const storedKey = createHash('sha256').update(clientKey).digest();
        const finalWithoutProof = `c=biws,r=${serverNonce}`;
        const signature = createHmac('sha256', storedKey).update(`${clientFirstBare},${serverFirst},${finalWithoutProof}`).digest();
        const proof = Buffer.alloc(32);
        for (let i = 0; i < 32; i++) proof[i] = clientKey[i] ^ signature[i];
        this.write(typed('p', Buffer.from(`${finalWithoutProof},p=${proof.toString('base64')}`)));
      } else if (kind === 12) {
        // SASLFinal: AuthenticationOk follows.
      } else if (kind === 3) {
        this.write(typed('p', Buffer.from(`${password}\0`)));
      } else {
        throw new Error(`unsupported authentication request ${kind}`);
      }
    }
    const out: BackendMessage[] = [];
    const ok = await this.until(() => this.inbox.some((x) => x.code === 'Z' || x.code === 'E'), deadline);
    while (this.inbox.length > 0) {
      const m = this.inbox.shift() as BackendMessage;
      if (m.code === 'K') this.pid = m.body.readInt32BE(0);
      out.push(m);
      if (m.code === 'Z') return { messages: out, complete: true };
      if (m.code === 'E') return { messages: [...out, ...(await this.drainUntilClosed(deadline))], complete: true };
    }
    out.push({ code: this.closed ? CLOSED : TIMEOUT, body: Buffer.from('login') });
    return { messages: out, complete: ok };
  }

  /** Sends the step's messages in one write and returns the answers to them. */
  async step(sent: readonly Front[], timeoutMs: number): Promise<StepResult> {
    if (this.closed) return { messages: [{ code: CLOSED, body: Buffer.alloc(0) }], complete: false };
    const deadline = Date.now() + timeoutMs;
    this.write(Buffer.concat(sent.map(serializeFront)));
    const start = this.skipping;
    let sim = simulate(sent, this.inbox, start);
    const done = await this.until(() => (sim = simulate(sent, this.inbox, start)).done, deadline);
    const messages = this.inbox.splice(0, done ? sim.consumed : this.inbox.length);
    this.skipping = sim.skipping;
    if (!done) {
      messages.push(this.closed ? { code: CLOSED, body: Buffer.alloc(0) } : { code: TIMEOUT, body: Buffer.from(`after ${timeoutMs} ms`) });
      this.socket.destroy();
    }
    return { messages, complete: done };
  }

  /** Terminate, then everything that arrives until the other side closes. */
  async terminate(timeoutMs: number): Promise<BackendMessage[]> {
    this.write(typed('X', Buffer.alloc(0)));
    return this.drainUntilClosed(Date.now() + timeoutMs);
  }

  private async drainUntilClosed(deadline: number): Promise<BackendMessage[]> {
    const closed = await this.until(() => this.closed, deadline);
    const rest = this.inbox.splice(0, this.inbox.length);
    if (!closed) {
      rest.push({ code: TIMEOUT, body: Buffer.from('waiting for the connection to close after Terminate') });
      this.socket.destroy();
    }
    return rest;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
