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

/** Bound on cached secrets: a client spraying user names must not grow the cache without end. */
const MAX_CACHED_SECRETS = 10_000;

/**
 * SCRAM secrets for exchanges whose salt pgmux chooses: plaintext passwords (PBKDF2 is costly and
 * synchronous, so each is derived once) and unknown users (a mock secret nobody knows the password of).
 *
 * Both salts are HMACs under one key (`useKey`), which the configuration's own secrets give: so a
 * user name gets the same salt at every attempt, after a restart and from every instance that runs the
 * configuration, like a stored verifier's salt does; two users with one password get different salts; and
 * nobody without the key can compute the mock salt of a name to compare. (PostgreSQL's mock salt is the
 * same idea, keyed by a secret of the cluster.)
 */
export class ScramSecretCache {
  private readonly secrets = new Map<string, ScramSecret>();
  /** Stored passwords already classified (a verifier's parse would cost a known user microseconds more). */
  private readonly classified = new Map<string, StoredPassword>();
  private readonly md5Fakes = new Map<string, string>();
  private key: Buffer = randomBytes(32);
  private keyed = false;

  /**
   * The key of the salts; null when the configuration holds no secret (then a random key for this
   * process: salts stable until restart). A new key drops the cached secrets.
   */
  useKey(key: Buffer | null): void {
    if (key === null ? !this.keyed : this.keyed && key.equals(this.key)) return;
    this.key = key ?? randomBytes(32);
    this.keyed = key !== null;
    this.secrets.clear();
    this.md5Fakes.clear();
  }

  /** What a stored password is (classifyStoredPassword), remembered. */
  classify(password: string): StoredPassword {
    let stored = this.classified.get(password);
    if (stored === undefined) {
      stored = classifyStoredPassword(password);
      remember(this.classified, password, stored);
    }
    return stored;
  }

  forPassword(user: string, password: string): ScramSecret {
    const id = `${user}\0${password}`;
    let secret = this.secrets.get(id);
    if (secret === undefined) {
      secret = makeScramSecret(password, { salt: this.salt('password', id) });
      remember(this.secrets, id, secret);
    }
    return secret;
  }

  /** A secret nobody knows the password of, with a salt that is stable per user name. */
  fake(user: string): ScramSecret {
    const id = `\0mock\0${user}`;
    let secret = this.secrets.get(id);
    if (secret === undefined) {
      secret = { iterations: 4096, salt: this.salt('mock', user), storedKey: randomBytes(32), serverKey: randomBytes(32) };
      remember(this.secrets, id, secret);
    }
    return secret;
  }

  /** The md5 secret an unknown user is checked against, so a refusal costs what a known user's does. */
  fakeMd5(user: string): string {
    let secret = this.md5Fakes.get(user);
    if (secret === undefined) {
      secret = `md5${this.salt('md5', user).toString('hex')}`;
      remember(this.md5Fakes, user, secret);
    }
    return secret;
  }

  private salt(kind: string, id: string): Buffer {
    return createHmac('sha256', this.key).update(`${kind}\0${id}`).digest().subarray(0, 16);
  }
}

function remember<T>(map: Map<string, T>, key: string, value: T): void {
  if (map.size >= MAX_CACHED_SECRETS) map.clear();
  map.set(key, value);
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
    this.stored = password === undefined ? null : secrets.classify(password);
    if (authType === 'plain') this.method = 'plain';
    else if (authType === 'md5' && this.stored?.kind !== 'scram') this.method = 'md5';
    else if (this.stored?.kind === 'md5') this.method = 'md5'; // an md5 secret cannot answer SCRAM
    else this.method = 'scram';
  }

  /** The exchange is SASL (SCRAM): its messages are capped as PostgreSQL caps them (1024 bytes). */
  get sasl(): boolean {
    return this.method === 'scram';
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
        case 'md5': {
          const text = passwordText(buf, start, end);
          // As PostgreSQL: the password's terminating zero must end the message (bytes after it were let in before).
          if (text === null) return { kind: 'fail', error: Errors.authProtocol('invalid password packet size') };
          return this.method === 'plain' ? this.checkPlain(text) : this.checkMd5(text);
        }
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
      if (mechanism !== SCRAM_SHA_256 && !plus) {
        // The name is not repeated: a client that answers with a password message puts its password here.
        const offered = this.channelBinding === null ? SCRAM_SHA_256 : `${SCRAM_SHA_256_PLUS} or ${SCRAM_SHA_256}`;
        return { kind: 'fail', error: Errors.authProtocol(`client selected an invalid SASL authentication mechanism (pgmux offers ${offered})`) };
      }
      if (pos + 4 > end) return { kind: 'fail', error: Errors.authProtocol('truncated SASLInitialResponse') };
      const length = buf.readInt32BE(pos);
      if (length < 0 || pos + 4 + length > end) return { kind: 'fail', error: Errors.authProtocol('bad SASLInitialResponse length') };
      // As PostgreSQL (pq_getmsgend: 08P01 "invalid message format"): the data must end the message. Bytes after it
      // were ignored and the client let in (fuzzer seed 39 path 22: two zero bytes behind the data).
      if (pos + 4 + length !== end) return { kind: 'fail', error: Errors.authProtocol('invalid message format: bytes after the SASLInitialResponse data') };
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
    if (stored?.kind === 'plain') return this.secrets.forPassword(this.user, stored.password);
    return this.secrets.fake(this.user);
  }

  private checkMd5(response: string): AuthStep {
    const stored = this.stored;
    if (this.md5Salt === null || stored?.kind === 'scram') return this.failed();
    // An unknown user is checked against a mock secret: the same work, the same answer as a wrong password.
    const secret = stored === null ? this.secrets.fakeMd5(this.user) : stored.kind === 'md5' ? stored.hash : stored.password;
    const ok = verifyMd5Response(this.user, secret, this.md5Salt, response);
    return ok && stored !== null ? { kind: 'ok', messages: [] } : this.failed();
  }

  private checkPlain(given: string): AuthStep {
    const stored = this.stored;
    if (stored === null) {
      safeEqual(given, this.secrets.fakeMd5(this.user)); // as much work as a plaintext password's check
      return this.failed();
    }
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

/** The text of a password message (`buf[start, end)`), or null unless one zero-terminated string fills its body. */
function passwordText(buf: Buffer, start: number, end: number): string | null {
  const nul = buf.indexOf(0, start + 5);
  return nul === end - 1 ? buf.toString('utf8', start + 5, nul) : null;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  // Compare equal-length buffers so the time does not depend on where they differ.
  return x.length === y.length ? timingSafeEqual(x, y) : (timingSafeEqual(x, x), false);
}
