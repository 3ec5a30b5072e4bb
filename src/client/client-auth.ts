/**
 * pgmux in the server role during login: challenges a client according to auth_type and the
 * stored password, and checks its answers. Unknown users get the same challenge as known ones
 * (a fake SCRAM secret stable per user name) and the same 28P01, so user names cannot be probed.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { md5Secret, verifyMd5Response } from '../auth/md5.js';
import { classifyStoredPassword, type StoredPassword } from '../auth/password.js';
import { makeScramSecret, ScramProtocolError, ScramServerSession, SCRAM_SHA_256, type ScramSecret } from '../auth/scram.js';
import type { AuthType } from '../config/index.js';
import { SCRAM_SHA_256_PLUS } from '../auth/channel-binding.js';
import { Errors, type PgmuxError } from '../errors.js';
import {
  AUTHENTICATION_CLEARTEXT,
  authenticationMD5,
  authenticationSASL,
  authenticationSASLContinue,
  authenticationSASLFinal,
} from '../protocol/backend-messages.js';
import { readCString } from '../protocol/fields.js';

/** Result of feeding one PasswordMessage-family message to the exchange. */
export type AuthStep =
  | { kind: 'send'; message: Buffer }
  | { kind: 'ok'; messages: Buffer[]; scramKeys?: { clientKey: Buffer; serverKey: Buffer } }
  | { kind: 'fail'; error: PgmuxError };

const FAKE_KEY = randomBytes(32);

/** Caches SCRAM secrets derived from plaintext passwords (PBKDF2 is costly and synchronous). */
export class ScramSecretCache {
  private readonly secrets = new Map<string, ScramSecret>();

  forPassword(password: string): ScramSecret {
    let secret = this.secrets.get(password);
    if (secret === undefined) {
      secret = makeScramSecret(password);
      this.secrets.set(password, secret);
    }
    return secret;
  }

  /** A secret nobody knows the password of, with a salt that is stable per user name. */
  fake(user: string): ScramSecret {
    const key = `\0fake:${user}`;
    let secret = this.secrets.get(key);
    if (secret === undefined) {
      const salt = createHmac('sha256', FAKE_KEY).update(user).digest().subarray(0, 16);
      secret = { iterations: 4096, salt, storedKey: randomBytes(32), serverKey: randomBytes(32) };
      if (this.secrets.size > 10_000) this.secrets.clear(); // bound memory under user-name spraying
      this.secrets.set(key, secret);
    }
    return secret;
  }
}

export class ClientAuth {
  private scram: ScramServerSession | null = null;
  private md5Salt: Buffer | null = null;
  private readonly stored: StoredPassword | null;
  private readonly method: 'scram' | 'md5' | 'plain';

  /**
   * @param password the user's stored password, or undefined when the user is unknown
   */
  constructor(
    private readonly user: string,
    password: string | undefined,
    authType: Exclude<AuthType, 'trust' | 'cert'>,
    private readonly secrets: ScramSecretCache,
    /** tls-server-end-point data of pgmux's certificate when the client is on TLS: SCRAM-SHA-256-PLUS is offered. */
    private readonly channelBinding: Buffer | null = null,
  ) {
    this.stored = password === undefined ? null : classifyStoredPassword(password);
    if (authType === 'plain') this.method = 'plain';
    else if (authType === 'md5' && this.stored?.kind !== 'scram') this.method = 'md5';
    else if (this.stored?.kind === 'md5') this.method = 'md5'; // an md5 secret cannot answer SCRAM
    else this.method = 'scram';
  }

  /** The first challenge to send. */
  start(): Buffer {
    switch (this.method) {
      case 'plain':
        return AUTHENTICATION_CLEARTEXT;
      case 'md5':
        this.md5Salt = randomBytes(4);
        return authenticationMD5(this.md5Salt);
      case 'scram':
        return authenticationSASL(this.channelBinding === null ? [SCRAM_SHA_256] : [SCRAM_SHA_256_PLUS, SCRAM_SHA_256]);
    }
  }

  /** Handles the body of a 'p' message (`buf[start, end)` is the whole message). */
  onMessage(buf: Buffer, start: number, end: number): AuthStep {
    try {
      switch (this.method) {
        case 'plain':
          return this.checkPlain(readCString(buf, start + 5, end)[0]);
        case 'md5':
          return this.checkMd5(readCString(buf, start + 5, end)[0]);
        case 'scram':
          return this.scramStep(buf, start, end);
      }
    } catch (err) {
      if (err instanceof ScramProtocolError || err instanceof RangeError) return { kind: 'fail', error: Errors.authProtocol(err.message) };
      throw err;
    }
  }

  private scramStep(buf: Buffer, start: number, end: number): AuthStep {
    if (this.scram === null) {
      // SASLInitialResponse: mechanism, Int32 length, data
      const [mechanism, pos] = readCString(buf, start + 5, end);
      const plus = mechanism === SCRAM_SHA_256_PLUS && this.channelBinding !== null;
      if (mechanism !== SCRAM_SHA_256 && !plus) return { kind: 'fail', error: Errors.authProtocol(`unsupported SASL mechanism "${mechanism}"`) };
      if (pos + 4 > end) return { kind: 'fail', error: Errors.authProtocol('truncated SASLInitialResponse') };
      const length = buf.readInt32BE(pos);
      if (length < 0 || pos + 4 + length > end) return { kind: 'fail', error: Errors.authProtocol('bad SASLInitialResponse length') };
      this.scram = new ScramServerSession(this.scramSecret(), {
        channelBinding: plus ? (this.channelBinding ?? undefined) : undefined,
        channelBindingOffered: this.channelBinding !== null,
        mechanism: plus ? SCRAM_SHA_256_PLUS : SCRAM_SHA_256,
      });
      const serverFirst = this.scram.handleClientFirst(buf.subarray(pos + 4, pos + 4 + length));
      return { kind: 'send', message: authenticationSASLContinue(serverFirst) };
    }
    const result = this.scram.handleClientFinal(buf.subarray(start + 5, end));
    if (!result.ok || this.stored === null) return this.failed();
    const messages = [authenticationSASLFinal(result.serverFinal)];
    // Verified against a stored verifier: the recovered ClientKey lets pgmux log in upstream as this user.
    if (this.stored.kind === 'scram') return { kind: 'ok', messages, scramKeys: { clientKey: result.clientKey, serverKey: this.stored.secret.serverKey } };
    return { kind: 'ok', messages };
  }

  private scramSecret(): ScramSecret {
    const stored = this.stored;
    if (stored?.kind === 'scram') return stored.secret;
    if (stored?.kind === 'plain') return this.secrets.forPassword(stored.password);
    return this.secrets.fake(this.user);
  }

  private checkMd5(response: string): AuthStep {
    const stored = this.stored;
    if (stored === null || stored.kind === 'scram' || this.md5Salt === null) return this.failed();
    const secret = stored.kind === 'md5' ? stored.hash : stored.password;
    return verifyMd5Response(this.user, secret, this.md5Salt, response) ? { kind: 'ok', messages: [] } : this.failed();
  }

  private checkPlain(given: string): AuthStep {
    const stored = this.stored;
    if (stored === null) return this.failed();
    let ok: boolean;
    switch (stored.kind) {
      case 'plain':
        ok = safeEqual(given, stored.password);
        break;
      case 'md5':
        ok = safeEqual(md5Secret(this.user, given), stored.hash);
        break;
      case 'scram': {
        const derived = makeScramSecret(given, { salt: stored.secret.salt, iterations: stored.secret.iterations });
        ok = timingSafeEqual(derived.storedKey, stored.secret.storedKey);
        break;
      }
    }
    return ok ? { kind: 'ok', messages: [] } : this.failed();
  }

  private failed(): AuthStep {
    return { kind: 'fail', error: Errors.authFailed(this.user) };
  }
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  // Compare equal-length buffers so the time does not depend on where they differ.
  return x.length === y.length ? timingSafeEqual(x, y) : (timingSafeEqual(x, x), false);
}
