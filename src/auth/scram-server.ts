import { timingSafeEqual } from 'node:crypto';

import { SCRAM_SHA_256_PLUS, TLS_SERVER_END_POINT } from './channel-binding.js';
import { hmacSha256, randomNonce, SCRAM_KEY_LENGTH, sha256, xorBuffers } from './scram-crypto.js';
import { ScramProtocolError } from './scram-error.js';
import {
  AttributeCursor,
  checkNonce,
  decodeBase64,
  parseAttributes,
  readMessage,
} from './scram-message.js';
import { SCRAM_SHA_256, type ScramSalt, type ScramSecret } from './scram-secret.js';

export interface ScramServerOptions {
  /** Returns the server's part of the nonce; injectable for test vectors. */
  nonce?: () => string;
  /**
   * Set when SCRAM-SHA-256-PLUS was advertised (TLS). A client that then says `y`
   * ("I could bind but you can't") is being downgraded and must be refused.
   * Defaults to whether `channelBinding` is given.
   */
  channelBindingOffered?: boolean;
  /**
   * tls-server-end-point data of pgmux's own certificate, on a TLS connection. Without it a
   * client asking for channel binding (`p=`) is refused; with it the client's `c=` must carry
   * exactly this data, else the exchange fails like a wrong password.
   */
  channelBinding?: Buffer;
  /**
   * The mechanism the client named in SASLInitialResponse. When given, the gs2 header must
   * agree with it, as PostgreSQL checks: SCRAM-SHA-256-PLUS requires `p=`, SCRAM-SHA-256
   * forbids it.
   */
  mechanism?: string;
}

export type ScramServerResult =
  | { ok: true; serverFinal: string; clientKey: Buffer }
  /** `reason` is set only when the proof was not even checked because channel binding failed. */
  | { ok: false; reason?: 'channel-binding' };

/** A client-final-message that passed every check but the proof's (readClientFinal), for verify(). */
export interface ScramClientFinal {
  /** client-first-bare,server-first,client-final-without-proof, one character a byte. */
  readonly authMessage: string;
  readonly proof: Buffer;
  readonly bindingOk: boolean;
}

type ServerState = 'awaiting-client-first' | 'awaiting-client-final' | 'done';

const CLIENT_FIRST = 'client-first-message';
const CLIENT_FINAL = 'client-final-message';
/** `c=` of a client that does not bind: base64 of its gs2 header, for the two headers there are. */
const UNBOUND_BINDING: ReadonlyMap<string, string> = new Map([['n,,', 'biws'], ['y,,', 'eSws']]);

/**
 * Server side of one SCRAM-SHA-256(-PLUS) exchange: verifies a client against a secret.
 * Build the secret with parseScramVerifier() or, for a plaintext password, makeScramSecret().
 *
 * The keys are needed only for the proof: a session may be built with the salt and iteration count alone
 * (`ScramSalt`) while the keys are derived, and be given them at client-final (handleClientFinal's or verify()'s
 * `secret`, which must have that salt and count).
 *
 * Per login this costs two HMACs and a SHA-256 (the proof, ServerSignature) and string work: messages are kept as
 * their one-byte-per-character text, never re-encoded, and the AuthMessage is hashed from that text.
 */
export class ScramServerSession {
  private state: ServerState = 'awaiting-client-first';
  /** gs2 header and client-first-message-bare as text (one character a byte): strings, so no view is kept. */
  private gs2Header = '';
  private clientFirstBare = '';
  private serverFirst = '';
  private nonce = '';

  constructor(
    private readonly secret: ScramSecret | ScramSalt,
    private readonly options: ScramServerOptions = {},
  ) {
    const data = options.channelBinding;
    if (data !== undefined && (!Buffer.isBuffer(data) || data.length === 0)) {
      throw new RangeError('SCRAM channel binding data must be a non-empty Buffer');
    }
    const mechanism = options.mechanism;
    if (mechanism !== undefined && mechanism !== SCRAM_SHA_256 && mechanism !== SCRAM_SHA_256_PLUS) {
      throw new ScramProtocolError('unsupported SASL mechanism');
    }
  }

  /** Takes the SASLInitialResponse data, returns server-first-message. */
  handleClientFirst(payload: string | Buffer): string {
    this.begin('awaiting-client-first', CLIENT_FIRST);
    const { text } = readMessage(payload, CLIENT_FIRST);
    const bareStart = this.parseGs2Header(text);
    this.gs2Header = text.slice(0, bareStart);
    this.clientFirstBare = text.slice(bareStart);

    const bare = parseAttributes(this.clientFirstBare, CLIENT_FIRST);
    const cursor = new AttributeCursor(bare, CLIENT_FIRST);
    if (cursor.peekName() === 'm') {
      throw new ScramProtocolError(`${CLIENT_FIRST}: client requires an unsupported SCRAM extension`);
    }
    cursor.take('n'); // PostgreSQL ignores it and uses the startup packet's user
    const clientNonce = checkNonce(cursor.take('r'), `${CLIENT_FIRST}: client nonce`, true);
    // Any attributes left are optional extensions; none are supported, so they are ignored.

    this.nonce = clientNonce + (this.options.nonce ?? randomNonce)();
    const salt = this.secret.salt.toString('base64');
    this.serverFirst = `r=${this.nonce},s=${salt},i=${this.secret.iterations}`;
    this.state = 'awaiting-client-final';
    return this.serverFirst;
  }

  /**
   * Takes the SASLResponse data. `ok: false` means a wrong password (answer 28P01), or with
   * `reason: 'channel-binding'` a client bound to another certificate than ours; on success `clientKey` is what lets pgmux log in upstream as this user (passthrough).
   * `secret`: the keys, when the session was built with the salt alone.
   */
  handleClientFinal(payload: string | Buffer, secret?: ScramSecret): ScramServerResult {
    return this.verify(this.readClientFinal(payload), secret);
  }

  /**
   * The checks of client-final that need no keys (syntax, nonce, channel binding data); a protocol error throws
   * here. What it returns holds copies only: verify() may run later, when the keys are there.
   */
  readClientFinal(payload: string | Buffer): ScramClientFinal {
    this.begin('awaiting-client-final', CLIENT_FINAL);
    const { text } = readMessage(payload, CLIENT_FINAL);
    const attributes = parseAttributes(text, CLIENT_FINAL);
    const cursor = new AttributeCursor(attributes, CLIENT_FINAL);

    const bindingOk = this.checkBinding(cursor.take('c'));
    if (cursor.take('r') !== this.nonce) throw new ScramProtocolError(`${CLIENT_FINAL}: nonce mismatch`);
    const last = attributes[attributes.length - 1];
    if (last.name !== 'p') {
      throw new ScramProtocolError(`${CLIENT_FINAL}: proof "p" missing or not the last attribute`);
    }
    const proof = decodeBase64(last.value, `${CLIENT_FINAL}: proof`);
    if (proof.length !== SCRAM_KEY_LENGTH) {
      throw new ScramProtocolError(
        `${CLIENT_FINAL}: proof is ${proof.length} bytes, expected ${SCRAM_KEY_LENGTH}`,
      );
    }
    const withoutProof = text.slice(0, text.length - last.value.length - ',p='.length);
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    return { authMessage, proof, bindingOk };
  }

  /** Checks the proof of a client-final this session read: the two HMACs and the SHA-256 of a login. */
  verify(final: ScramClientFinal, secret: ScramSecret | ScramSalt = this.secret): ScramServerResult {
    if (!('storedKey' in secret)) throw new Error('ScramServerSession: no keys to check the proof with');
    if (secret !== this.secret && (secret.iterations !== this.secret.iterations || !secret.salt.equals(this.secret.salt))) {
      throw new Error('ScramServerSession: the keys are not of the salt and iteration count sent to the client');
    }
    if (!final.bindingOk) return { ok: false, reason: 'channel-binding' };
    const clientKey = xorBuffers(final.proof, hmacSha256(secret.storedKey, final.authMessage));
    if (!timingSafeEqual(sha256(clientKey), secret.storedKey)) return { ok: false };
    const serverSignature = hmacSha256(secret.serverKey, final.authMessage);
    return { ok: true, serverFinal: `v=${serverSignature.toString('base64')}`, clientKey };
  }

  /** Returns where client-first-message-bare starts. */
  private parseGs2Header(text: string): number {
    const flagEnd = text.indexOf(',');
    const authzEnd = flagEnd < 0 ? -1 : text.indexOf(',', flagEnd + 1);
    if (authzEnd < 0) throw new ScramProtocolError(`${CLIENT_FIRST}: malformed gs2 header`);
    const flag = text.slice(0, flagEnd);
    if (flag.startsWith('p=')) this.checkBindingRequest(flag.slice(2));
    else if (flag !== 'n' && flag !== 'y') {
      throw new ScramProtocolError(`${CLIENT_FIRST}: invalid channel binding flag`);
    } else if (this.options.mechanism === SCRAM_SHA_256_PLUS) {
      throw new ScramProtocolError(
        `${CLIENT_FIRST}: client selected ${SCRAM_SHA_256_PLUS} but sent no channel binding`,
      );
    } else if (flag === 'y' && (this.options.channelBindingOffered ?? this.options.channelBinding !== undefined)) {
      throw new ScramProtocolError(
        `${CLIENT_FIRST}: client declined channel binding that the server offered`,
      );
    }
    if (authzEnd !== flagEnd + 1) {
      throw new ScramProtocolError(`${CLIENT_FIRST}: authorization identity (a=) is not supported`);
    }
    return authzEnd + 1;
  }

  /** A client-first `p=<cb-name>` is acceptable only for tls-server-end-point with data to check. */
  private checkBindingRequest(name: string): void {
    if (this.options.channelBinding === undefined) {
      throw new ScramProtocolError(
        `${CLIENT_FIRST}: channel binding not supported (${SCRAM_SHA_256_PLUS} is not offered)`,
      );
    }
    if (this.options.mechanism === SCRAM_SHA_256) {
      throw new ScramProtocolError(
        `${CLIENT_FIRST}: client selected ${SCRAM_SHA_256} but requested channel binding`,
      );
    }
    if (name !== TLS_SERVER_END_POINT) {
      throw new ScramProtocolError(
        `${CLIENT_FIRST}: unsupported channel binding type (only ${TLS_SERVER_END_POINT} is supported)`,
      );
    }
  }

  /**
   * client-final `c=` must be base64(gs2 header + channel binding data). A wrong header is a
   * protocol error; with `p=`, wrong data (a different certificate: a man in the middle) is
   * an authentication failure, compared in constant time.
   */
  private checkBinding(value: string): boolean {
    const header = this.gs2Header;
    const data = header.startsWith('p') ? this.options.channelBinding : undefined;
    if (data === undefined) {
      if (value !== (UNBOUND_BINDING.get(header) ?? Buffer.from(header, 'latin1').toString('base64'))) {
        throw new ScramProtocolError(
          `${CLIENT_FINAL}: channel binding does not match the gs2 header`,
        );
      }
      return true;
    }
    const received = decodeBase64(value, `${CLIENT_FINAL}: channel binding`);
    const headerBytes = Buffer.from(header, 'latin1');
    if (received.length < headerBytes.length || !received.subarray(0, headerBytes.length).equals(headerBytes)) {
      throw new ScramProtocolError(`${CLIENT_FINAL}: channel binding does not start with the gs2 header`);
    }
    const expected = Buffer.concat([headerBytes, data]);
    return received.length === expected.length && timingSafeEqual(received, expected);
  }

  /** Any failure leaves the session 'done': an exchange gets exactly one attempt. */
  private begin(expected: ServerState, what: string): void {
    if (this.state !== expected) {
      throw new ScramProtocolError(`${what} received out of order (state ${this.state})`);
    }
    this.state = 'done';
  }
}
