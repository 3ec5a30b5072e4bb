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
import { SCRAM_SHA_256, type ScramSecret } from './scram-secret.js';

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

type ServerState = 'awaiting-client-first' | 'awaiting-client-final' | 'done';

const CLIENT_FIRST = 'client-first-message';
const CLIENT_FINAL = 'client-final-message';
const COMMA = Buffer.from(',');

/**
 * Server side of one SCRAM-SHA-256(-PLUS) exchange: verifies a client against a secret.
 * Build the secret with parseScramVerifier() or, for a plaintext password, makeScramSecret().
 */
export class ScramServerSession {
  private state: ServerState = 'awaiting-client-first';
  private gs2Header: Buffer = Buffer.alloc(0);
  private clientFirstBare: Buffer = Buffer.alloc(0);
  private serverFirst = '';
  private nonce = '';

  constructor(
    private readonly secret: ScramSecret,
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
    const { bytes, text } = readMessage(payload, CLIENT_FIRST);
    const bareStart = this.parseGs2Header(text);
    // Copies: the payload may be a view into a receive buffer that gets reused.
    this.gs2Header = Buffer.from(bytes.subarray(0, bareStart));
    this.clientFirstBare = Buffer.from(bytes.subarray(bareStart));

    const bare = parseAttributes(text.slice(bareStart), CLIENT_FIRST);
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
   */
  handleClientFinal(payload: string | Buffer): ScramServerResult {
    this.begin('awaiting-client-final', CLIENT_FINAL);
    const { bytes, text } = readMessage(payload, CLIENT_FINAL);
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

    const withoutProof = bytes.subarray(0, bytes.length - last.value.length - ',p='.length);
    const authMessage = Buffer.concat([
      this.clientFirstBare, COMMA, Buffer.from(this.serverFirst, 'latin1'), COMMA, withoutProof,
    ]);
    if (!bindingOk) return { ok: false, reason: 'channel-binding' };
    const clientKey = xorBuffers(proof, hmacSha256(this.secret.storedKey, authMessage));
    if (!timingSafeEqual(sha256(clientKey), this.secret.storedKey)) return { ok: false };
    const serverSignature = hmacSha256(this.secret.serverKey, authMessage);
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
    const data = header[0] === 0x70 /* p */ ? this.options.channelBinding : undefined;
    if (data === undefined) {
      if (value !== header.toString('base64')) {
        throw new ScramProtocolError(
          `${CLIENT_FINAL}: channel binding does not match the gs2 header`,
        );
      }
      return true;
    }
    const received = decodeBase64(value, `${CLIENT_FINAL}: channel binding`);
    if (received.length < header.length || !received.subarray(0, header.length).equals(header)) {
      throw new ScramProtocolError(`${CLIENT_FINAL}: channel binding does not start with the gs2 header`);
    }
    const expected = Buffer.concat([header, data]);
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
