/**
 * A minimal PostgreSQL client for the connection storm and idle-memory tests, and for recording server traffic.
 *
 * Why not node-postgres: holding 10,000 connections with `pg.Client` costs the client far more memory and CPU than
 * the pooler under test, and its SCRAM login runs PBKDF2 (4096 HMAC rounds) per connection. Here the SCRAM keys
 * are derived once from the password and the role's stored verifier (same salt and iteration count everywhere:
 * Postgres and both poolers serve the verifier from pg_authid), so a login costs the client a few HMACs.
 * Framing reuses pgmux's FrameReader; SCRAM reuses pgmux's client side of the exchange.
 */
import net from 'node:net';
import { ScramClientSession } from '../src/auth/scram-client.js';
import { deriveScramKeys } from '../src/auth/scram-crypto.js';
import { parseScramVerifier } from '../src/auth/scram-secret.js';
import { FrameReader, type FrameHandler } from '../src/protocol/frame-reader.js';

/** What it takes to log in: SCRAM keys instead of the password, see deriveLoginKeys. */
export interface LoginKeys {
  clientKey: Buffer;
  serverKey: Buffer;
  salt: Buffer;
  iterations: number;
}

export interface ConnectOptions {
  host: string;
  port: number;
  user: string;
  database: string;
  keys: LoginKeys;
  /** Give up on connecting and logging in after this long. */
  timeoutMs: number;
  /** Sees every byte the server sends, as the socket delivered it (for recording traffic). */
  tap?: (chunk: Buffer) => void;
}

/** Derives the SCRAM keys once: PBKDF2 with the salt and iteration count of the role's stored verifier. */
export function deriveLoginKeys(password: string, verifier: string): LoginKeys {
  const secret = parseScramVerifier(verifier);
  if (secret === null) throw new Error('not a SCRAM-SHA-256 verifier');
  const { clientKey, serverKey } = deriveScramKeys(password, secret.salt, secret.iterations);
  return { clientKey, serverKey, salt: secret.salt, iterations: secret.iterations };
}

/** An ErrorResponse from the server, with its SQLSTATE. */
export class ServerError extends Error {
  constructor(
    readonly sqlstate: string,
    message: string,
  ) {
    super(message);
  }
}

const AUTH = 0x52; // 'R'
const ERROR = 0x45; // 'E'
const READY = 0x5a; // 'Z'
const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4]);

function message(code: number, body: Buffer): Buffer {
  const head = Buffer.allocUnsafe(5);
  head[0] = code;
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

function cstr(s: string): Buffer {
  return Buffer.from(`${s}\0`, 'utf8');
}

function startupMessage(user: string, database: string): Buffer {
  const params = Buffer.concat([cstr('user'), cstr(user), cstr('database'), cstr(database), Buffer.from([0])]);
  const head = Buffer.allocUnsafe(8);
  head.writeInt32BE(params.length + 8, 0);
  head.writeInt32BE(196608, 4);
  return Buffer.concat([head, params]);
}

/** Reads the fields of an ErrorResponse into a ServerError. */
function serverError(buf: Buffer, start: number, end: number): ServerError {
  const fields = new Map<string, string>();
  let pos = start + 5;
  while (pos < end && buf[pos] !== 0) {
    const type = String.fromCharCode(buf[pos]);
    const nul = buf.indexOf(0, pos + 1);
    if (nul < 0 || nul >= end) break;
    fields.set(type, buf.toString('utf8', pos + 1, nul));
    pos = nul + 1;
  }
  return new ServerError(fields.get('C') ?? '?????', fields.get('M') ?? 'error without a message');
}

/** One connection: log in, run simple queries one at a time, terminate. */
export class BenchConnection implements FrameHandler {
  private readonly reader = new FrameReader(this);
  private scram: ScramClientSession | undefined;
  private pending: { resolve: () => void; reject: (err: Error) => void } | undefined;
  private queryError: ServerError | undefined;
  private closed = false;
  private loggedIn = false;

  private constructor(
    private readonly socket: net.Socket,
    private readonly opts: ConnectOptions,
  ) {}

  /** Connects and logs in; resolves at the first ReadyForQuery. */
  static open(opts: ConnectOptions): Promise<BenchConnection> {
    const socket = net.connect({ host: opts.host, port: opts.port });
    socket.setNoDelay(true);
    const conn = new BenchConnection(socket, opts);
    return new Promise<BenchConnection>((resolve, reject) => {
      const timer = setTimeout(() => conn.fail(new Error(`login timed out after ${opts.timeoutMs} ms`)), opts.timeoutMs);
      conn.pending = {
        resolve: () => {
          clearTimeout(timer);
          resolve(conn);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      socket.on('connect', () => socket.write(startupMessage(opts.user, opts.database)));
      socket.on('data', (chunk: Buffer) => {
        opts.tap?.(chunk);
        conn.reader.push(chunk);
      });
      socket.on('error', (err) => conn.fail(err));
      socket.on('close', () => conn.fail(new Error('connection closed by the server')));
    });
  }

  /** Runs one simple-protocol query; rejects with the server's error once ReadyForQuery arrives. */
  query(sql: string): Promise<void> {
    return this.send(message(0x51, cstr(sql)));
  }

  /** Sends prebuilt messages ending in Sync or a Query and waits for ReadyForQuery. */
  send(bytes: Buffer): Promise<void> {
    if (this.closed) return Promise.reject(new Error('connection is closed'));
    if (this.pending !== undefined) return Promise.reject(new Error('a request is already outstanding'));
    return new Promise<void>((resolve, reject) => {
      this.pending = { resolve, reject };
      this.socket.write(bytes);
    });
  }

  /** Terminate and close; resolves when the socket is gone. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise<void>((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.end(TERMINATE);
    });
  }

  /** Drops the connection without a goodbye. */
  destroy(): void {
    this.closed = true;
    this.socket.destroy();
  }

  // FrameHandler -------------------------------------------------------------------------------------------------

  onFrame(code: number, buf: Buffer, start: number, end: number): void {
    if (code === AUTH) this.onAuth(buf, start, end);
    else if (code === ERROR) {
      const err = serverError(buf, start, end);
      this.queryError ??= err;
      // An error during login ends the connection: there is no ReadyForQuery to wait for.
      if (!this.loggedIn) this.fail(err);
    } else if (code === READY) {
      this.loggedIn = true;
      const pending = this.pending;
      const err = this.queryError;
      this.pending = undefined;
      this.queryError = undefined;
      if (err !== undefined) pending?.reject(err);
      else pending?.resolve();
    }
    // ParameterStatus, BackendKeyData, rows, notices: nothing to do.
  }

  canStream(): boolean {
    return false;
  }

  onPiece(): void {}

  onProtocolError(reason: string): void {
    this.fail(new Error(`protocol error: ${reason}`));
  }

  private onAuth(buf: Buffer, start: number, end: number): void {
    const kind = buf.readInt32BE(start + 5);
    try {
      if (kind === 0) return; // AuthenticationOk: ReadyForQuery follows
      if (kind === 10) {
        const keys = this.opts.keys;
        this.scram = new ScramClientSession(keys);
        const first = Buffer.from(this.scram.clientFirst(), 'utf8');
        const length = Buffer.allocUnsafe(4);
        length.writeInt32BE(first.length, 0);
        this.socket.write(message(0x70, Buffer.concat([cstr(this.scram.mechanism), length, first])));
      } else if (kind === 11 && this.scram !== undefined) {
        this.socket.write(message(0x70, Buffer.from(this.scram.handleServerFirst(buf.subarray(start + 9, end)), 'utf8')));
      } else if (kind === 12 && this.scram !== undefined) {
        this.scram.handleServerFinal(buf.subarray(start + 9, end));
      } else {
        throw new Error(`unsupported authentication request ${kind}`);
      }
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private fail(err: Error): void {
    const pending = this.pending;
    this.pending = undefined;
    if (!this.closed) {
      this.closed = true;
      this.reader.stop();
      this.socket.destroy();
    }
    pending?.reject(err);
  }
}
