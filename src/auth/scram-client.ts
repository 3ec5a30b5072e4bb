import { timingSafeEqual } from 'node:crypto';

import {
  hmacSha256,
  randomNonce,
  SCRAM_KEY_LENGTH,
  sha256,
  xorBuffers,
} from './scram-crypto.js';
import { SCRAM_SHA_256_PLUS, TLS_SERVER_END_POINT } from './channel-binding.js';
import { ScramProtocolError } from './scram-error.js';
import {
  AttributeCursor,
  checkNonce,
  clip,
  decodeBase64,
  parseAttributes,
  parseIterationCount,
  readMessage,
} from './scram-message.js';
import { ScramKeyCache } from './scram-key-cache.js';
import { SCRAM_SHA_256 } from './scram-secret.js';

/**
 * Either the password, or the keys recovered when pgmux verified the client itself
 * (passthrough). ClientKey and ServerKey are enough to build the proof and check the
 * server's signature, but only if the server's salt and iteration count are the ones the
 * keys were derived with, i.e. the upstream verifier is the one pgmux checked the client
 * against. Pass `salt`/`iterations` to fail early with a clear error when they differ;
 * without them a mismatch surfaces as the server rejecting the proof.
 */
export type ScramClientCredentials =
  | { password: string }
  | { clientKey: Buffer; serverKey: Buffer; salt?: Buffer; iterations?: number };

export interface ScramClientOptions {
  /** Returns the client nonce; injectable for test vectors. */
  nonce?: () => string;
  /** Sent as `n=`; PostgreSQL ignores it and uses the startup packet's user. */
  username?: string;
  /**
   * tls-server-end-point data of the server's certificate (see tlsServerEndPoint()), when on
   * TLS. With it the exchange binds to the TLS channel: SCRAM-SHA-256-PLUS, gs2 header
   * `p=tls-server-end-point,,` — unless `serverSupportsBinding` is false.
   */
  channelBinding?: Buffer;
  /**
   * Whether the server advertised SCRAM-SHA-256-PLUS. Only matters with `channelBinding`:
   * then `false` means "we could bind but the server cannot", sent as the `y` flag (RFC 5802
   * §6) so a server that does support binding detects the downgrade. Without binding data
   * the flag is always `n`: a server that offered PLUS refuses `y` as a downgrade, as
   * PostgreSQL does. Defaults to true when `channelBinding` is given.
   */
  serverSupportsBinding?: boolean;
  /**
   * Where keys derived from a password are cached (default: one cache shared by every server login of the
   * process, UPSTREAM_KEY_CACHE). Each (password, salt, iterations) costs one PBKDF2, not one per server login.
   */
  keyCache?: ScramKeyCache;
}

/**
 * The keys of pgmux's own server logins. A pool's users are few and PostgreSQL's salt is its verifier's, stable
 * until the password changes, so a handful of entries serve every login; the bound only caps a pathological config.
 */
export const UPSTREAM_KEY_CACHE = new ScramKeyCache(1024);

type ClientState = 'initial' | 'sent-client-first' | 'sent-client-final' | 'done';

const SERVER_FIRST = 'server-first-message';
const SERVER_FINAL = 'server-final-message';
const COMMA = Buffer.from(',');

/** Client side of one SCRAM-SHA-256(-PLUS) exchange: logs pgmux into an upstream server. */
export class ScramClientSession {
  private state: ClientState = 'initial';
  private clientNonce = '';
  private clientFirstBare: Buffer = Buffer.alloc(0);
  private expectedServerSignature: Buffer = Buffer.alloc(0);
  /** `n,,`, `y,,` or `p=tls-server-end-point,,`: no authzid is ever sent. */
  private readonly gs2Header: string;
  /** The `c=` value of client-final: base64(gs2 header + channel binding data). */
  private readonly binding: string;

  constructor(
    private readonly credentials: ScramClientCredentials,
    private readonly options: ScramClientOptions = {},
  ) {
    if ('clientKey' in credentials) {
      const { clientKey, serverKey } = credentials;
      if (clientKey.length !== SCRAM_KEY_LENGTH || serverKey.length !== SCRAM_KEY_LENGTH) {
        throw new RangeError(`SCRAM passthrough keys must be ${SCRAM_KEY_LENGTH} bytes`);
      }
    }
    const data = options.channelBinding;
    if (data !== undefined && (!Buffer.isBuffer(data) || data.length === 0)) {
      throw new RangeError('SCRAM channel binding data must be a non-empty Buffer');
    }
    const cbData = data !== undefined && options.serverSupportsBinding !== false ? data : undefined;
    this.gs2Header = cbData !== undefined ? `p=${TLS_SERVER_END_POINT},,` : data !== undefined ? 'y,,' : 'n,,';
    const header = Buffer.from(this.gs2Header, 'latin1');
    this.binding = (cbData === undefined ? header : Buffer.concat([header, cbData])).toString('base64');
  }

  /** The SASL mechanism to name in SASLInitialResponse: SCRAM-SHA-256-PLUS when binding. */
  get mechanism(): string {
    return this.gs2Header.startsWith('p=') ? SCRAM_SHA_256_PLUS : SCRAM_SHA_256;
  }

  /** The SASLInitialResponse data: `<gs2 header>n=*,r=<nonce>`. */
  clientFirst(): string {
    this.begin('initial', 'client-first-message');
    this.clientNonce = checkNonce((this.options.nonce ?? randomNonce)(), 'client nonce');
    const bare = `n=${escapeSaslName(this.options.username ?? '*')},r=${this.clientNonce}`;
    this.clientFirstBare = Buffer.from(bare, 'utf8');
    this.state = 'sent-client-first';
    return `${this.gs2Header}${bare}`;
  }

  /** Takes AuthenticationSASLContinue data, returns the SASLResponse data. */
  handleServerFirst(payload: string | Buffer): string {
    this.begin('sent-client-first', SERVER_FIRST);
    const { bytes, text } = readMessage(payload, SERVER_FIRST);
    const cursor = new AttributeCursor(parseAttributes(text, SERVER_FIRST), SERVER_FIRST);
    if (cursor.peekName() === 'm') {
      throw new ScramProtocolError(`${SERVER_FIRST}: server requires an unsupported SCRAM extension`);
    }
    const nonce = checkNonce(cursor.take('r'), `${SERVER_FIRST}: nonce`);
    if (!nonce.startsWith(this.clientNonce) || nonce.length === this.clientNonce.length) {
      throw new ScramProtocolError(`${SERVER_FIRST}: nonce does not extend the client nonce`);
    }
    const salt = decodeBase64(cursor.take('s'), `${SERVER_FIRST}: salt`);
    if (salt.length === 0) throw new ScramProtocolError(`${SERVER_FIRST}: salt is empty`);
    const rawIterations = cursor.take('i');
    const iterations = parseIterationCount(rawIterations);
    if (iterations === null) {
      throw new ScramProtocolError(`${SERVER_FIRST}: invalid iteration count "${clip(rawIterations)}"`);
    }

    const { clientKey, serverKey } = this.keysFor(salt, iterations);
    const withoutProof = `c=${this.binding},r=${nonce}`;
    const authMessage = Buffer.concat([
      this.clientFirstBare, COMMA, bytes, COMMA, Buffer.from(withoutProof, 'latin1'),
    ]);
    const proof = xorBuffers(clientKey, hmacSha256(sha256(clientKey), authMessage));
    this.expectedServerSignature = hmacSha256(serverKey, authMessage);
    this.state = 'sent-client-final';
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Takes AuthenticationSASLFinal data; throws unless the server proved it knows the secret. */
  handleServerFinal(payload: string | Buffer): void {
    this.begin('sent-client-final', SERVER_FINAL);
    const { text } = readMessage(payload, SERVER_FINAL);
    const cursor = new AttributeCursor(parseAttributes(text, SERVER_FINAL), SERVER_FINAL);
    if (cursor.peekName() === 'e') {
      throw new ScramProtocolError(`${SERVER_FINAL}: server reported error "${clip(cursor.take('e'))}"`);
    }
    const signature = decodeBase64(cursor.take('v'), `${SERVER_FINAL}: signature`);
    const expected = this.expectedServerSignature;
    if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
      throw new ScramProtocolError(`${SERVER_FINAL}: server signature mismatch`);
    }
  }

  private keysFor(salt: Buffer, iterations: number): { clientKey: Buffer; serverKey: Buffer } {
    const credentials = this.credentials;
    // Synchronous on a miss: the server login answers server-first in the same turn. Once per
    // (password, salt, iterations) per process; every later server login is a cache hit.
    if ('password' in credentials) return (this.options.keyCache ?? UPSTREAM_KEY_CACHE).deriveSync(credentials.password, salt, iterations);
    const saltDiffers = credentials.salt !== undefined && !credentials.salt.equals(salt);
    const iterationsDiffer = credentials.iterations !== undefined && credentials.iterations !== iterations;
    if (saltDiffers || iterationsDiffer) {
      throw new ScramProtocolError(
        `${SERVER_FIRST}: server's salt or iteration count differ from those of the passthrough keys`,
      );
    }
    return credentials;
  }

  /** Any failure leaves the session 'done': an exchange gets exactly one attempt. */
  private begin(expected: ClientState, what: string): void {
    if (this.state !== expected) {
      throw new ScramProtocolError(`${what} out of order (state ${this.state})`);
    }
    this.state = 'done';
  }
}

/** RFC 5802 saslname: ',' and '=' are escaped as =2C and =3D. */
function escapeSaslName(name: string): string {
  return name.replace(/=/g, '=3D').replace(/,/g, '=2C');
}
