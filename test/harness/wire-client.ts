/**
 * A raw-wire client for differential tests: logs in with any startup parameters (any spelling, which no driver
 * lets you choose), sends requests as bytes and returns the backend messages up to the ReadyForQuery that ends
 * each request, in a form that can be compared between a direct connection and one through pgmux.
 *
 * Independent of src/ on purpose (a test must not share a bug with the code). Built on wire.ts.
 */
import { parseErrorFields, queryMessage, RawConnection, scramLogin, splitMessages, startupPacket, type BackendMessage } from './wire.js';

/** Frontend messages that each get their own ReadyForQuery (outside COPY): Query, Sync, FunctionCall. */
function requestCount(buffers: readonly Buffer[]): number {
  let n = 0;
  for (const buf of buffers) {
    // A buffer may hold several messages: walk them.
    let pos = 0;
    while (pos + 5 <= buf.length) {
      const code = buf[pos];
      if (code === 0x51 /* Q */ || code === 0x53 /* S */ || code === 0x46 /* F */) n++;
      pos += 1 + buf.readInt32BE(pos + 1);
    }
  }
  return n;
}

export interface LoginResult {
  client: WireClient;
  /** What the server said from AuthenticationOk up to the first ReadyForQuery. */
  welcome: BackendMessage[];
}

export class WireClient {
  private constructor(readonly conn: RawConnection) {}

  /**
   * Connects to 127.0.0.1:`port` and logs in with `params` (user and database included). Trust login, or SCRAM
   * when `password` is given. Throws with the server's error if the login fails.
   */
  static async login(port: number, params: Record<string, string>, password?: string, timeoutMs = 10_000): Promise<LoginResult> {
    const conn = await RawConnection.connect(port);
    try {
      await conn.write(startupPacket(params));
      if (password !== undefined) await scramLogin(conn, password, timeoutMs);
      else await conn.untilMessage('Z', timeoutMs);
    } catch (err) {
      conn.destroy();
      throw err;
    }
    const messages = conn.messages;
    const error = messages.find((m) => m.code === 'E');
    if (error !== undefined) {
      conn.destroy();
      throw new Error(`login failed: ${JSON.stringify(parseErrorFields(error.body))}`);
    }
    let bytes = 0;
    const welcome: BackendMessage[] = [];
    for (const m of messages) {
      bytes += 5 + m.body.length;
      if (m.code !== 'R') welcome.push({ code: m.code, body: Buffer.from(m.body) });
      if (m.code === 'Z') break;
    }
    conn.take(bytes);
    return { client: new WireClient(conn), welcome };
  }

  /**
   * Sends `send` (SQL text becomes one simple Query) in one write and returns every message up to the
   * ReadyForQuery of the last request in it. Throws (with what arrived) if the connection closes first.
   */
  async request(send: string | readonly Buffer[], timeoutMs = 10_000): Promise<BackendMessage[]> {
    const buffers = typeof send === 'string' ? [queryMessage(send)] : send;
    const want = requestCount(buffers);
    await this.conn.write(Buffer.concat(buffers));
    await this.conn.until((c) => c.closed || c.messages.filter((m) => m.code === 'Z').length >= want, timeoutMs, `${want} ReadyForQuery`);
    return this.takeUpTo(want);
  }

  /**
   * Runs simple queries back to back: each is written from the socket's data handler in the same tick the
   * ReadyForQuery of the one before arrives, as a client with its next statement ready does. Returns each
   * query's messages.
   */
  async runBackToBack(queries: readonly string[], timeoutMs = 20_000): Promise<BackendMessage[][]> {
    const socket = this.conn.socket;
    let sent = 0;
    let seenZ = 0;
    let buffered = this.conn.data.length > 0 ? Buffer.from(this.conn.data) : Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const { messages, rest } = splitMessages(buffered);
      buffered = Buffer.from(rest);
      for (const m of messages) {
        if (m.code !== 'Z') continue;
        seenZ++;
        if (seenZ === sent && sent < queries.length) {
          socket.write(queryMessage(queries[sent]));
          sent++;
        }
      }
    };
    socket.on('data', onData);
    try {
      sent = 1;
      socket.write(queryMessage(queries[0]));
      await this.conn.until((c) => c.closed || c.messages.filter((m) => m.code === 'Z').length >= queries.length, timeoutMs, `${queries.length} ReadyForQuery`);
    } finally {
      socket.off('data', onData);
    }
    const out: BackendMessage[][] = [];
    for (let i = 0; i < queries.length; i++) out.push(this.takeUpTo(1));
    return out;
  }

  /** Messages received and not yet returned by request(). */
  get pending(): BackendMessage[] {
    return this.conn.messages;
  }

  get closed(): boolean {
    return this.conn.closed;
  }

  destroy(): void {
    this.conn.destroy();
  }

  /** Takes messages up to and including the `want`-th ReadyForQuery (or everything, if the connection closed). */
  private takeUpTo(want: number): BackendMessage[] {
    const out: BackendMessage[] = [];
    let bytes = 0;
    let seen = 0;
    for (const m of this.conn.messages) {
      out.push({ code: m.code, body: Buffer.from(m.body) });
      bytes += 5 + m.body.length;
      if (m.code === 'Z' && ++seen === want) break;
    }
    this.conn.take(bytes);
    if (seen < want && !this.conn.closed) throw new Error(`only ${seen} of ${want} ReadyForQuery`);
    return out;
  }
}

/** The columns of a DataRow as text (null for SQL NULL). */
export function dataRowValues(body: Buffer): Array<string | null> {
  const cols: Array<string | null> = [];
  const n = body.readInt16BE(0);
  let pos = 2;
  for (let i = 0; i < n; i++) {
    const len = body.readInt32BE(pos);
    pos += 4;
    cols.push(len < 0 ? null : body.toString('utf8', pos, pos + len));
    if (len > 0) pos += len;
  }
  return cols;
}

/** A RowDescription as [name, table OID, column number, type OID, type size, type modifier, format] per column. */
export function rowDescription(body: Buffer): Array<[string, number, number, number, number, number, number]> {
  const out: Array<[string, number, number, number, number, number, number]> = [];
  const n = body.readInt16BE(0);
  let pos = 2;
  for (let i = 0; i < n; i++) {
    const end = body.indexOf(0, pos);
    const name = body.toString('utf8', pos, end);
    pos = end + 1;
    out.push([name, body.readUInt32BE(pos), body.readInt16BE(pos + 4), body.readUInt32BE(pos + 6), body.readInt16BE(pos + 10), body.readInt32BE(pos + 12), body.readInt16BE(pos + 16)]);
    pos += 18;
  }
  return out;
}

/**
 * What must be equal between a direct connection and pgmux: errors and notices by severity, SQLSTATE and message
 * (not position, file, line or routine); BackendKeyData left out; everything else byte for byte (rows as text).
 */
export function normalise(messages: readonly BackendMessage[]): string[] {
  return messages
    .filter((m) => m.code !== 'K')
    .map((m) => {
      switch (m.code) {
        case 'E':
        case 'N': {
          const f = parseErrorFields(m.body);
          return `${m.code} ${f.S}/${f.V} ${f.C} ${f.M}`;
        }
        case 'S':
        case 'C':
          return `${m.code} ${m.body.toString('utf8').replace(/\0/g, '|')}`;
        case 'Z':
          return `Z ${m.body.toString('latin1')}`;
        case 'D':
          return `D ${JSON.stringify(dataRowValues(m.body))}`;
        case 'T':
          return `T ${JSON.stringify(rowDescription(m.body))}`;
        default:
          return `${m.code} ${m.body.toString('hex')}`;
      }
    });
}

/** ParameterStatus messages as name → value (the last one of each name wins). */
export function parameterStatuses(messages: readonly BackendMessage[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of messages) {
    if (m.code !== 'S') continue;
    const [name, value] = m.body.toString('utf8').split('\0');
    out[name] = value;
  }
  return out;
}

/**
 * normalise(), with the ParameterStatus messages taken out and replaced by one line at the end listing the last
 * value reported for each name: what a driver keeps from them. (Where in a response a ParameterStatus comes, and
 * whether a value is reported twice, is nothing a client can act on.)
 */
export function normaliseWithFinalParameters(messages: readonly BackendMessage[]): string[] {
  const rest = normalise(messages.filter((m) => m.code !== 'S'));
  const params = parameterStatuses(messages);
  const names = Object.keys(params).sort();
  return names.length === 0 ? rest : [...rest, `parameters ${JSON.stringify(names.map((n) => [n, params[n]]))}`];
}

/** The rows of every DataRow in `messages`. */
export function rowsOf(messages: readonly BackendMessage[]): Array<Array<string | null>> {
  return messages.filter((m) => m.code === 'D').map((m) => dataRowValues(m.body));
}

/** The first ErrorResponse's fields, if any. */
export function errorOf(messages: readonly BackendMessage[]): Record<string, string> | undefined {
  const e = messages.find((m) => m.code === 'E');
  return e === undefined ? undefined : parseErrorFields(e.body);
}
