/**
 * Raw PostgreSQL wire helpers for tests that must send bytes no driver would: build startup
 * packets by hand, read back what the other side wrote, split it into messages and decode
 * ErrorResponse fields. Independent of src/ on purpose (a test must not share a bug with the code).
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import net, { type Socket } from 'node:net';
import tls from 'node:tls';

export const PROTOCOL_V3 = 196608;
export const SSL_REQUEST_CODE = 80877103;

/** A startup packet: Int32 length, Int32 version, name\0value\0 ... \0. */
export function startupPacket(params: Record<string, string>, version = PROTOCOL_V3): Buffer {
  const body = Buffer.from(Object.entries(params).map(([k, v]) => `${k}\0${v}\0`).join('') + '\0');
  const buf = Buffer.alloc(8 + body.length);
  buf.writeInt32BE(buf.length, 0);
  buf.writeInt32BE(version, 4);
  body.copy(buf, 8);
  return buf;
}

export function sslRequest(): Buffer {
  const buf = Buffer.alloc(8);
  buf.writeInt32BE(8, 0);
  buf.writeInt32BE(SSL_REQUEST_CODE, 4);
  return buf;
}

/** A typed frontend message: code, Int32 length (self-inclusive), body. */
export function message(code: string, body: Buffer | string = Buffer.alloc(0)): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const buf = Buffer.alloc(5 + b.length);
  buf.write(code, 0, 'latin1');
  buf.writeInt32BE(4 + b.length, 1);
  b.copy(buf, 5);
  return buf;
}

export function queryMessage(sql: string): Buffer {
  return message('Q', `${sql}\0`);
}

export interface BackendMessage {
  code: string;
  body: Buffer;
}

/**
 * Splits `data` into typed messages. `rest` holds trailing bytes that do not form a whole message.
 * Throws on a length below 4 (what came back is not the protocol at all).
 */
export function splitMessages(data: Buffer): { messages: BackendMessage[]; rest: Buffer } {
  const messages: BackendMessage[] = [];
  let pos = 0;
  while (pos + 5 <= data.length) {
    const length = data.readInt32BE(pos + 1);
    if (length < 4) throw new Error(`bad message length ${length} at offset ${pos}: ${data.subarray(pos, pos + 16).toString('hex')}`);
    if (pos + 1 + length > data.length) break;
    messages.push({ code: String.fromCharCode(data[pos]), body: data.subarray(pos + 5, pos + 1 + length) });
    pos += 1 + length;
  }
  return { messages, rest: data.subarray(pos) };
}

/** Fields of an ErrorResponse / NoticeResponse body, by field letter (S, V, C, M, D, H ...). */
export function parseErrorFields(body: Buffer): Record<string, string> {
  const fields: Record<string, string> = {};
  let pos = 0;
  while (pos < body.length && body[pos] !== 0) {
    const type = String.fromCharCode(body[pos]);
    const end = body.indexOf(0, pos + 1);
    if (end < 0) throw new Error(`unterminated error field ${type}`);
    fields[type] = body.toString('utf8', pos + 1, end);
    pos = end + 1;
  }
  return fields;
}

/** The first ErrorResponse in `data`, or undefined. */
export function findError(data: Buffer): Record<string, string> | undefined {
  const error = splitMessages(data).messages.find((m) => m.code === 'E');
  return error === undefined ? undefined : parseErrorFields(error.body);
}

/** Authentication request subtype of an 'R' message. */
export function authKind(m: BackendMessage): number {
  return m.body.readInt32BE(0);
}

/** A raw TCP connection that records everything it receives and whether (and when) it was closed. */
export class RawConnection {
  private chunks: Buffer[] = [];
  private waiters = new Set<() => void>();
  closedAt: number | null = null;
  readonly openedAt = Date.now();
  /** Bytes consumed by `take()`; `data` is what follows. */
  private consumed = 0;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.wake();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closedAt = Date.now();
      this.wake();
    });
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host, noDelay: true });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawConnection(socket));
      });
    });
  }

  /**
   * Connects, sends SSLRequest and, once the server says 'S', continues over TLS (`options`: ca, servername,
   * rejectUnauthorized ...). Throws if the server declines TLS.
   */
  static async connectTls(port: number, options: tls.ConnectionOptions = {}, host = '127.0.0.1'): Promise<RawConnection> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = net.connect({ port, host, noDelay: true });
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(s);
      });
    });
    socket.write(sslRequest());
    const answer = await new Promise<Buffer>((resolve, reject) => {
      socket.once('data', resolve);
      socket.once('error', reject);
    });
    if (answer.length !== 1 || answer[0] !== 0x53 /* S */) {
      socket.destroy();
      throw new Error(`server declined TLS: ${answer.toString('latin1')}`);
    }
    const secure = tls.connect({ socket, rejectUnauthorized: false, ...options });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => {
        secure.off('error', reject);
        resolve();
      });
      secure.once('error', reject);
    });
    return new RawConnection(secure);
  }

  get closed(): boolean {
    return this.closedAt !== null;
  }

  /** Everything received and not taken yet. */
  get data(): Buffer {
    return Buffer.concat(this.chunks).subarray(this.consumed);
  }

  get messages(): BackendMessage[] {
    return splitMessages(this.data).messages;
  }

  write(buf: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(buf, (err) => (err ? reject(err) : resolve())));
  }

  /** Drops the first `n` received bytes (after reading the single-byte SSL answer, say). */
  take(n: number): Buffer {
    const taken = this.data.subarray(0, n);
    this.consumed += n;
    return taken;
  }

  /** Resolves when `done()` holds; rejects after `timeoutMs` with what was received so far. */
  async until(done: (c: RawConnection) => boolean, timeoutMs: number, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done(this)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; closed=${this.closed}; received ${this.data.length} bytes: ${this.data.subarray(0, 200).toString('hex')}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(wake, left);
        function wake(): void {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.add(wake);
      });
    }
  }

  /** Waits until the peer closed the connection. */
  untilClosed(timeoutMs: number): Promise<void> {
    return this.until((c) => c.closed, timeoutMs, 'the connection to close');
  }

  /** Waits for a message with this code (e.g. 'Z' ReadyForQuery, 'R' authentication). */
  async untilMessage(code: string, timeoutMs: number, count = 1): Promise<BackendMessage> {
    await this.until((c) => c.messages.filter((m) => m.code === code).length >= count || c.closed, timeoutMs, `message '${code}'`);
    const found = this.messages.filter((m) => m.code === code);
    if (found.length < count) {
      throw new Error(`connection closed before message '${code}'; got ${this.messages.map((m) => m.code).join('') || 'nothing'}: ${JSON.stringify(findError(this.data) ?? {})}`);
    }
    return found[count - 1];
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

/**
 * Completes a SCRAM-SHA-256 login on a connection that has sent its startup packet, and waits for
 * the first ReadyForQuery. Minimal client: no channel binding.
 */
export async function scramLogin(conn: RawConnection, password: string, timeoutMs = 5000): Promise<void> {
  const sasl = await conn.untilMessage('R', timeoutMs);
  if (authKind(sasl) !== 10) throw new Error(`expected AuthenticationSASL, got auth request ${authKind(sasl)}`);
  const mechanisms = sasl.body.toString('utf8', 4).split('\0').filter((s) => s !== '');
  if (!mechanisms.includes('SCRAM-SHA-256')) throw new Error(`no SCRAM-SHA-256 in ${mechanisms.join(',')}`);

  const clientNonce = randomBytes(18).toString('base64');
  const clientFirstBare = `n=,r=${clientNonce}`;
  const first = Buffer.from(`n,,${clientFirstBare}`);
  const mech = Buffer.from('SCRAM-SHA-256\0');
  const len = Buffer.alloc(4);
  len.writeInt32BE(first.length);
  await conn.write(message('p', Buffer.concat([mech, len, first])));

  const cont = await conn.untilMessage('R', timeoutMs, 2);
  if (authKind(cont) !== 11) throw new Error(`expected AuthenticationSASLContinue, got ${authKind(cont)}`);
  const serverFirst = cont.body.toString('utf8', 4);
  const attrs = new Map(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)] as const));
  const nonce = attrs.get('r') ?? '';
  if (!nonce.startsWith(clientNonce)) throw new Error('server nonce does not extend the client nonce');
  const salt = Buffer.from(attrs.get('s') ?? '', 'base64');
  const iterations = Number(attrs.get('i'));

  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const finalWithoutProof = `c=biws,r=${nonce}`;
  const authMessage = `${clientFirstBare},${serverFirst},${finalWithoutProof}`;
  const signature = createHmac('sha256', storedKey).update(authMessage).digest();
  const proof = Buffer.alloc(32);
  for (let i = 0; i < 32; i++) proof[i] = clientKey[i] ^ signature[i];
  await conn.write(message('p', `${finalWithoutProof},p=${proof.toString('base64')}`));
  await conn.untilMessage('Z', timeoutMs);
}
