/**
 * The floor: the least any Node.js pooler must do, as a benchmark target. floor.ts runs it as its own process, like
 * the poolers, so its CPU time and RSS are read from /proc.
 *
 * - Keeps `spare` server connections logged in ahead of need (trust auth for a role of its own, see floor.ts) and
 *   opens another whenever a client takes one, so `pgbench -C` works: a client that finds none ready waits for the
 *   next login to finish.
 * - Answers a client's startup itself. SSLRequest and GSSENCRequest get `N`; a CancelRequest is passed on to
 *   Postgres (the key the client holds is its server's own); a StartupMessage, whatever user or password it
 *   names, is answered with the login response its server connection got (AuthenticationOk, ParameterStatus…,
 *   BackendKeyData, ReadyForQuery): the client is never asked for a password.
 * - Pairs the client with that server connection for the client's lifetime: no pooling, and after the startup no
 *   parsing at all. Bytes are copied both ways, one write per read, pausing the reader until the writer drains.
 * - Sockets as pgmux's: noDelay, keepalive after 60 s idle (pgmux's tcp_keepidle default), listen backlog 4096.
 *
 * It imports only node: modules, so floor.ts can transpile this one file and run it with plain `node`, as pgmux is
 * run (from JavaScript, not through a TypeScript loader).
 *
 *   node floor-forwarder.mjs '{"listenPort":6433,"serverHost":"127.0.0.1","serverPort":5432,"user":"bench_floor","database":"app","spare":8}'
 */
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface FloorConfig {
  listenPort: number;
  serverHost: string;
  serverPort: number;
  /** The role the server connections log in as (trusted in pg_hba.conf). */
  user: string;
  database: string;
  /** Logged-in server connections kept ready beyond those clients hold. */
  spare: number;
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const PROTOCOL_3_0 = 196608;
/** PostgreSQL's own cap on a startup packet. */
const MAX_STARTUP_LENGTH = 10_000;
const KEEPIDLE_MS = 60_000;
/** Pause before opening server connections again after a login failed (e.g. too many connections). */
const RETRY_MS = 200;
const NO_ENCRYPTION = Buffer.from('N');

/** A server connection that did not log in: an ErrorResponse, an authentication request, or nonsense. */
export class LoginError extends Error {}

/** The `M` (message) field of an ErrorResponse body: a type byte and a C string per field, a zero byte at the end. */
function errorMessage(fields: Buffer): string {
  let i = 0;
  while (i < fields.length && fields[i] !== 0) {
    const stop = fields.indexOf(0, i + 1);
    if (stop < 0) break;
    if (fields[i] === 0x4d) return fields.toString('utf8', i + 1, stop);
    i = stop + 1;
  }
  return '(no message)';
}

/**
 * The length of the login response at the start of `buf`: the offset just past its ReadyForQuery, or 0 while it is
 * incomplete. Reads message headers only (and an ErrorResponse's text); throws LoginError when the server refused
 * the login or asked for a password (the floor's role is not trusted).
 */
export function loginResponseLength(buf: Buffer): number {
  let offset = 0;
  while (offset + 5 <= buf.length) {
    const type = buf[offset];
    const length = buf.readInt32BE(offset + 1);
    if (length < 4) throw new LoginError(`server sent a message of length ${length}`);
    const end = offset + 1 + length;
    if (end > buf.length) return 0;
    if (type === 0x45 /* E */) throw new LoginError(`server refused the login: ${errorMessage(buf.subarray(offset + 5, end))}`);
    if (type === 0x52 /* R */ && (length !== 8 || buf.readInt32BE(offset + 5) !== 0)) {
      throw new LoginError(`server asked for authentication (request ${length >= 8 ? buf.readInt32BE(offset + 5) : '?'}): the floor's role needs a trust line in pg_hba.conf`);
    }
    if (type === 0x5a /* Z */) return end;
    offset = end;
  }
  return 0;
}

function startupMessage(user: string, database: string): Buffer {
  const params = ['user', user, 'database', database, 'application_name', 'pgmux-bench-floor'];
  const body = Buffer.from(`${params.map((p) => `${p}\0`).join('')}\0`, 'utf8');
  const head = Buffer.allocUnsafe(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(PROTOCOL_3_0, 4);
  return Buffer.concat([head, body]);
}

/** A logged-in server connection, the response its login got, and (while idle) what to do if it closes. */
interface Server {
  socket: net.Socket;
  login: Buffer;
  onIdleClose: () => void;
}

/** A client whose startup has been read, waiting for a server connection; `rest` is what it sent after it. */
interface Waiting {
  socket: net.Socket;
  rest: Buffer;
  onClose: () => void;
}

class Floor {
  private readonly idle: Server[] = [];
  private readonly waiting: Waiting[] = [];
  /** Server logins in progress. */
  private pending = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly startup: Buffer;
  /** Until the first login has finished: how to report it (a failure then ends the process). */
  private firstLogin: ((err: Error | undefined) => void) | undefined;

  constructor(private readonly config: FloorConfig) {
    this.startup = startupMessage(config.user, config.database);
  }

  /** Resolves once one server connection has logged in and the listener is up. */
  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.firstLogin = (err) => (err === undefined ? resolve() : reject(err));
      this.replenish();
    });
    const listener = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen({ host: '127.0.0.1', port: this.config.listenPort, backlog: 4096 }, () => resolve());
    });
  }

  /** Opens server connections until `spare` are ready or logging in beyond what waiting clients need. */
  private replenish(): void {
    if (this.retryTimer !== undefined) return;
    while (this.idle.length + this.pending < this.config.spare + this.waiting.length) this.openServer();
  }

  private openServer(): void {
    this.pending++;
    const socket = net.connect({ host: this.config.serverHost, port: this.config.serverPort, noDelay: true });
    socket.setKeepAlive(true, KEEPIDLE_MS);
    let received: Buffer = Buffer.alloc(0);
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      this.pending--;
      socket.destroy();
      this.loginFailed(why);
    };
    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      let length: number;
      try {
        length = loginResponseLength(received);
      } catch (err) {
        fail((err as Error).message);
        return;
      }
      if (length === 0) return;
      // Postgres sends nothing unasked after ReadyForQuery; anything more would be lost in the replay.
      if (length !== received.length) return fail('server sent more than its login response');
      settled = true;
      this.pending--;
      socket.off('data', onData);
      socket.pause();
      this.serverReady(socket, received);
    };
    socket.once('connect', () => socket.write(this.startup));
    socket.on('data', onData);
    // Stays for the socket's lifetime: errors after login end in 'close', handled where the socket is used.
    socket.on('error', (err) => fail(err.message));
    socket.once('close', () => fail('server closed the connection during login'));
  }

  private loginFailed(why: string): void {
    if (this.firstLogin !== undefined) {
      const report = this.firstLogin;
      this.firstLogin = undefined;
      report(new LoginError(why));
      return;
    }
    process.stderr.write(`floor: server login failed, retrying in ${RETRY_MS} ms: ${why}\n`);
    this.retryTimer ??= setTimeout(() => {
      this.retryTimer = undefined;
      this.replenish();
    }, RETRY_MS);
  }

  private serverReady(socket: net.Socket, login: Buffer): void {
    const server: Server = {
      socket,
      login,
      onIdleClose: () => {
        const i = this.idle.indexOf(server);
        if (i >= 0) this.idle.splice(i, 1);
        this.replenish();
      },
    };
    socket.once('close', server.onIdleClose);
    if (this.firstLogin !== undefined) {
      const report = this.firstLogin;
      this.firstLogin = undefined;
      report(undefined);
    }
    let client = this.waiting.shift();
    // A client that left is dropped from the queue on 'close'; one destroyed a moment ago may still be in it.
    while (client !== undefined && client.socket.destroyed) {
      client.socket.off('close', client.onClose);
      client = this.waiting.shift();
    }
    if (client === undefined) this.idle.push(server);
    else this.pair(client, server);
    this.replenish();
  }

  /** Reads a client's startup: answers SSL/GSS requests, passes a cancel on, and for a login finds it a server. */
  private accept(socket: net.Socket): void {
    socket.setKeepAlive(true, KEEPIDLE_MS);
    socket.on('error', () => undefined);
    let received: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      while (received.length >= 8) {
        const length = received.readInt32BE(0);
        if (length < 8 || length > MAX_STARTUP_LENGTH) {
          socket.destroy();
          return;
        }
        if (received.length < length) return;
        const code = received.readInt32BE(4);
        if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
          socket.write(NO_ENCRYPTION);
          received = received.subarray(length);
          continue;
        }
        socket.off('data', onData);
        if (code === CANCEL_REQUEST) {
          this.passCancel(received.subarray(0, length));
          socket.destroy();
          return;
        }
        socket.pause();
        this.clientReady(socket, received.subarray(length));
        return;
      }
    };
    socket.on('data', onData);
  }

  private passCancel(packet: Buffer): void {
    const socket = net.connect({ host: this.config.serverHost, port: this.config.serverPort });
    socket.on('error', () => undefined);
    socket.end(packet);
  }

  private clientReady(socket: net.Socket, rest: Buffer): void {
    const waiting: Waiting = {
      socket,
      rest,
      onClose: () => {
        const i = this.waiting.indexOf(waiting);
        if (i >= 0) this.waiting.splice(i, 1);
      },
    };
    let server = this.idle.shift();
    while (server !== undefined && server.socket.destroyed) {
      server.socket.off('close', server.onIdleClose);
      server = this.idle.shift();
    }
    if (server !== undefined) {
      this.pair(waiting, server);
    } else {
      socket.once('close', waiting.onClose);
      this.waiting.push(waiting);
    }
    this.replenish();
  }

  /** The client gets the server's login response, then the two sockets are joined until either closes. */
  private pair(client: Waiting, server: Server): void {
    const c = client.socket;
    const s = server.socket;
    c.off('close', client.onClose);
    s.off('close', server.onIdleClose);
    c.write(server.login);
    if (client.rest.length > 0) s.write(client.rest);
    c.on('data', (chunk: Buffer) => {
      if (!s.write(chunk)) {
        c.pause();
        s.once('drain', () => c.resume());
      }
    });
    s.on('data', (chunk: Buffer) => {
      if (!c.write(chunk)) {
        s.pause();
        c.once('drain', () => s.resume());
      }
    });
    c.once('close', () => s.destroy());
    s.once('close', () => c.destroy());
    c.resume();
    s.resume();
  }
}

function main(): void {
  const config = JSON.parse(process.argv[2] ?? '{}') as FloorConfig;
  new Floor(config).start().catch((err: unknown) => {
    process.stderr.write(`floor: ${(err as Error).message}\n`);
    process.exit(1);
  });
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
