/**
 * Raw logins that keep what was sent and received and how long the other side took to answer each
 * step: for tests that compare a wrong password with an unknown user (on the wire and in time) and that
 * look for the secrets of an exchange in logs. SCRAM-SHA-256(-PLUS), md5 and cleartext; a "password" of
 * null answers with random bytes (a wrong password that costs the client nothing).
 *
 * Independent of src/ on purpose (a test must not share a bug with the code). Built on wire.ts.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { authKind, message, parseErrorFields, RawConnection, startupPacket, type BackendMessage } from './wire.js';

/** The RFC 5802 keys of a password for a salt and iteration count. */
export interface ScramKeys {
  salted: Buffer;
  clientKey: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

export function scramKeys(password: string, salt: Buffer, iterations: number): ScramKeys {
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  return {
    salted,
    clientKey,
    storedKey: createHash('sha256').update(clientKey).digest(),
    serverKey: createHmac('sha256', salted).update('Server Key').digest(),
  };
}

/** `SCRAM-SHA-256$<i>:<salt>$<StoredKey>:<ServerKey>` split into its parts. */
export function parseVerifier(verifier: string): { iterations: number; salt: Buffer; storedKey: Buffer; serverKey: Buffer } {
  const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(verifier);
  if (m === null) throw new Error(`not a SCRAM verifier: ${verifier.slice(0, 20)}...`);
  return { iterations: Number(m[1]), salt: Buffer.from(m[2], 'base64'), storedKey: Buffer.from(m[3], 'base64'), serverKey: Buffer.from(m[4], 'base64') };
}

export function md5Hex(text: string | Buffer): string {
  return createHash('md5').update(text).digest('hex');
}

export interface ProbeOptions {
  /** A connection already open (over TLS, say); default a new plain TCP one. */
  conn?: RawConnection;
  /** tls-server-end-point data: answer SCRAM with SCRAM-SHA-256-PLUS bound to it. */
  channelBinding?: Buffer;
  /** Sent in the same write as the last authentication message (commands pipelined behind the login). */
  after?: Buffer[];
  /** Answer the first authentication request with this PasswordMessage instead (a confused client). */
  answerWith?: Buffer;
  /** Answer server-first with this message instead of client-final (a confused client). */
  finalWith?: Buffer;
  timeoutMs?: number;
}

export interface ProbeResult {
  /** Authentication request types received, in order (10 SASL, 11 continue, 12 final, 5 md5, 3 cleartext, 0 ok). */
  requests: number[];
  mechanisms: string[];
  /** server-first-message, and what it says. */
  serverFirst?: string;
  salt?: Buffer;
  iterations?: number;
  /** The ErrorResponse that ended the login, if one did. */
  error?: Record<string, string>;
  /** AuthenticationOk then ReadyForQuery. */
  ok: boolean;
  /**
   * Milliseconds from each of our messages to the answer: `challenge` (startup → first request), `first`
   * (SASLInitialResponse → server-first), `final` (client-final or password → error or AuthenticationOk).
   */
  ms: { challenge?: number; first?: number; final?: number };
  /** Everything secret this exchange computed or sent (proof, signatures, keys, md5 response). */
  secrets: Record<string, Buffer | string>;
  /** Everything received after the startup packet. */
  messages: BackendMessage[];
  conn: RawConnection;
}

const count = (c: RawConnection, code: string): number => c.messages.filter((m) => m.code === code).length;

/** Waits for the n-th 'R' or an 'E' or the close; returns the milliseconds it took from `since`. */
async function answer(conn: RawConnection, requests: number, since: number, timeoutMs: number): Promise<number> {
  await conn.until((c) => count(c, 'R') >= requests || count(c, 'E') > 0 || c.closed, timeoutMs, `authentication request ${requests}`);
  return performance.now() - since;
}

function saslInitial(mechanism: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeInt32BE(data.length);
  return message('p', Buffer.concat([Buffer.from(`${mechanism}\0`), len, data]));
}

/**
 * Logs in with `params` (user, database ...) answering whatever is asked with `password` (null: random
 * proof / response). Never throws for a refused login: look at `error`. Leaves the connection open (the
 * caller destroys `conn`).
 */
export async function probeLogin(port: number, params: Record<string, string>, password: string | null, options: ProbeOptions = {}): Promise<ProbeResult> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const conn = options.conn ?? (await RawConnection.connect(port));
  const result: ProbeResult = { requests: [], mechanisms: [], ok: false, ms: {}, secrets: {}, messages: [], conn };
  const user = params.user ?? '';
  const after = Buffer.concat(options.after ?? []);
  const lastRequest = (): number => {
    const rs = conn.messages.filter((m) => m.code === 'R');
    return rs.length === 0 ? -1 : authKind(rs[rs.length - 1]);
  };
  const finish = async (): Promise<ProbeResult> => {
    await conn.until((c) => count(c, 'Z') > 0 || count(c, 'E') > 0 || c.closed, timeoutMs, 'ReadyForQuery or an error');
    result.messages = conn.messages;
    result.requests = result.messages.filter((m) => m.code === 'R').map(authKind);
    const error = result.messages.find((m) => m.code === 'E');
    if (error !== undefined) result.error = parseErrorFields(error.body);
    result.ok = error === undefined && result.requests.includes(0) && count(conn, 'Z') > 0;
    return result;
  };

  let t = performance.now();
  await conn.write(startupPacket(params));
  result.ms.challenge = await answer(conn, 1, t, timeoutMs);
  const kind = lastRequest();
  if (count(conn, 'E') > 0 || kind === 0 || kind === -1) return finish();
  if (options.answerWith !== undefined) {
    await conn.write(Buffer.concat([options.answerWith, after]));
    return finish();
  }

  if (kind === 10) {
    const offered = conn.messages.filter((m) => m.code === 'R')[0].body.toString('utf8', 4).split('\0').filter((s) => s !== '');
    result.mechanisms = offered;
    const plus = options.channelBinding !== undefined;
    const gs2 = plus ? 'p=tls-server-end-point,,' : 'n,,';
    const clientNonce = randomBytes(18).toString('base64');
    const clientFirstBare = `n=,r=${clientNonce}`;
    t = performance.now();
    await conn.write(saslInitial(plus ? 'SCRAM-SHA-256-PLUS' : 'SCRAM-SHA-256', Buffer.from(gs2 + clientFirstBare)));
    result.ms.first = await answer(conn, 2, t, timeoutMs);
    if (lastRequest() !== 11) return finish();
    const serverFirst = conn.messages.filter((m) => m.code === 'R')[1].body.toString('utf8', 4);
    result.serverFirst = serverFirst;
    const attrs = new Map(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)] as const));
    const nonce = attrs.get('r') ?? '';
    result.salt = Buffer.from(attrs.get('s') ?? '', 'base64');
    result.iterations = Number(attrs.get('i'));
    if (options.finalWith !== undefined) {
      await conn.write(Buffer.concat([options.finalWith, after]));
      return finish();
    }
    const binding = Buffer.concat([Buffer.from(gs2), options.channelBinding ?? Buffer.alloc(0)]).toString('base64');
    const finalWithoutProof = `c=${binding},r=${nonce}`;
    const authMessage = `${clientFirstBare},${serverFirst},${finalWithoutProof}`;
    let proof: Buffer;
    if (password === null) {
      proof = randomBytes(32);
    } else {
      const keys = scramKeys(password, result.salt, result.iterations);
      const clientSignature = createHmac('sha256', keys.storedKey).update(authMessage).digest();
      proof = Buffer.alloc(32);
      for (let i = 0; i < 32; i++) proof[i] = keys.clientKey[i] ^ clientSignature[i];
      Object.assign(result.secrets, keys, {
        clientSignature,
        serverSignature: createHmac('sha256', keys.serverKey).update(authMessage).digest(),
      });
    }
    result.secrets.proof = proof;
    t = performance.now();
    await conn.write(Buffer.concat([message('p', `${finalWithoutProof},p=${proof.toString('base64')}`), after]));
    result.ms.final = await answer(conn, 3, t, timeoutMs);
    return finish();
  }

  let response: string;
  if (kind === 5) {
    const salt = conn.messages.filter((m) => m.code === 'R')[0].body.subarray(4, 8);
    if (password === null) {
      response = `md5${randomBytes(16).toString('hex')}`;
    } else {
      const inner = md5Hex(password + user);
      result.secrets.md5Secret = `md5${inner}`;
      response = `md5${md5Hex(Buffer.concat([Buffer.from(inner), salt]))}`;
    }
    result.secrets.md5Response = response;
  } else if (kind === 3) {
    response = password ?? randomBytes(12).toString('hex');
  } else {
    throw new Error(`unexpected authentication request ${kind}`);
  }
  t = performance.now();
  await conn.write(Buffer.concat([message('p', `${response}\0`), after]));
  result.ms.final = await answer(conn, 2, t, timeoutMs);
  return finish();
}
