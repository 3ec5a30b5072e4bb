/**
 * pgmux in the server role during login: challenges a client according to auth_type and the
 * stored password, and checks its answers. Unknown users get the same challenge as known ones
 * (a fake SCRAM secret stable per user name) and the same 28P01, so user names cannot be probed.
 *
 * What a SCRAM login costs (bench/scram-login.ts measures it): against a stored verifier, two HMACs and a SHA-256
 * and no decoding (the verifier is parsed once and remembered); against a plaintext password, a one-shot SHA-256
 * more (to find the secret pgmux made for it) and the PBKDF2 once per password, in the threadpool.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { md5Secret, verifyMd5Response } from '../auth/md5.js';
import { classifyStoredPassword, type StoredPassword } from '../auth/password.js';
import { deriveScramKeys, deriveScramKeysAsync, publicRandomBytes, sha256Text, type ScramKeys } from '../auth/scram-crypto.js';
import {
  LruMap,
  ScramKeyCache,
  ScramProtocolError,
  ScramServerSession,
  SCRAM_SHA_256,
  type ScramClientFinal,
  type ScramSalt,
  type ScramSecret,
} from '../auth/scram.js';
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
  | { kind: 'fail'; error: PgmuxError }
  /**
   * Only with `ClientAuthOptions.mayWait`: the answer waits for a PBKDF2 in libuv's threadpool. Send nothing and
   * feed no further message meanwhile; `next` (never 'pending', never rejected) is the step to take then.
   */
  | { kind: 'pending'; next: Promise<AuthStep> };

export interface ClientAuthOptions {
  /**
   * The caller handles 'pending' steps. Without it a login whose keys are not derived yet (the first logins of a
   * plaintext password whose threadpool derivation has not finished; auth_type plain against a SCRAM verifier
   * with a password not seen before, or a wrong one) derives them on the calling thread, with pbkdf2Sync.
   */
  mayWait?: boolean;
}

/** Bound on each cache below: a client spraying user names must not grow one without end. */
const MAX_CACHED_SECRETS = 10_000;
/** Iteration count of the secrets pgmux makes up (PostgreSQL's default, so they look like a stored verifier's). */
const MADE_UP_ITERATIONS = 4096;

/** The two AuthenticationSASL requests there are, built once. */
const SASL_REQUEST = authenticationSASL([SCRAM_SHA_256]);
const SASL_REQUEST_WITH_PLUS = authenticationSASL([SCRAM_SHA_256_PLUS, SCRAM_SHA_256]);

/**
 * The SCRAM secret pgmux gives a plaintext password: the salt at once, the keys when the PBKDF2 is done. Held
 * without the password: the entry is found by a keyed hash of it.
 */
export interface PlaintextSecret extends ScramSalt {
  /** Set once derived (by the threadpool, or by deriveNow()). */
  secret: ScramSecret | null;
  /** The derivation, while it runs; never rejects (null when it failed: deriveNow() then reports the error). */
  pending: Promise<ScramSecret | null> | null;
}

export interface ScramSecretCacheStats {
  /** PBKDF2 runs for plaintext passwords, in the threadpool. */
  derivedAsync: number;
  /** ...and on the event loop (a client answered before the threadpool was done, and the caller cannot wait). */
  derivedSync: number;
}

/**
 * SCRAM secrets for exchanges whose salt pgmux chooses: plaintext passwords (PBKDF2 is costly, so each is derived
 * once, in the threadpool) and unknown users (a mock secret nobody knows the password of); the verifiers it has
 * parsed; and, for auth_type plain against a verifier, the keys of passwords that proved right.
 *
 * Both salts are HMACs under one key (`useKey`), which the configuration's own secrets give: so a
 * user name gets the same salt at every attempt, after a restart and from every instance that runs the
 * configuration, like a stored verifier's salt does; two users with one password get different salts; and
 * nobody without the key can compute the mock salt of a name to compare. (PostgreSQL's mock salt is the
 * same idea, keyed by a secret of the cluster.)
 *
 * Every cache is bounded (least recently used first out) and none holds a plaintext password: verifiers are kept
 * by their own text, the secrets of a login by a keyed SHA-256 of kind, user and (plaintext) password, checked
 * passwords by an HMAC under a random key (ScramKeyCache). Wrong passwords are never kept.
 */
export class ScramSecretCache {
  /** Parsed SCRAM verifiers and md5 secrets, by their text (a parse decodes three base64 fields). */
  private readonly classified = new LruMap<string, StoredPassword>(MAX_CACHED_SECRETS);
  /** By scramSecretFor's keyed digest: no password, nor a fast unkeyed hash of one, is kept. */
  private readonly verifierEntries = new LruMap<string, ScramSecret>(MAX_CACHED_SECRETS);
  private readonly plaintext = new LruMap<string, PlaintextSecret>(MAX_CACHED_SECRETS);
  private readonly mocks = new LruMap<string, ScramSecret>(MAX_CACHED_SECRETS);
  private readonly md5Fakes = new LruMap<string, string>(MAX_CACHED_SECRETS);
  /** auth_type plain against a SCRAM verifier: keys of (password, salt, iterations) that matched a verifier. */
  readonly checkedPasswords = new ScramKeyCache();
  readonly stats: ScramSecretCacheStats = { derivedAsync: 0, derivedSync: 0 };
  private key: Buffer = randomBytes(32);
  private keyed = false;
  /** Secret prefix of scramSecretFor's entry names (random per process: the names never leave it). */
  private readonly entryKey = randomBytes(32).toString('hex');

  /**
   * The key of the salts; null when the configuration holds no secret (then a random key for this
   * process: salts stable until restart). A new key drops the cached secrets.
   */
  useKey(key: Buffer | null): void {
    if (key === null ? !this.keyed : this.keyed && key.equals(this.key)) return;
    this.key = key ?? randomBytes(32);
    this.keyed = key !== null;
    this.verifierEntries.clear();
    this.plaintext.clear();
    this.mocks.clear();
    this.md5Fakes.clear();
    this.checkedPasswords.clear();
  }

  /**
   * What a stored password is (classifyStoredPassword). SCRAM verifiers and md5 secrets are remembered by their
   * text (a verifier's parse decodes three base64 fields); a plaintext password is told by two string tests, not
   * kept, and costs no more than the lookup it was before.
   */
  classify(password: string): StoredPassword {
    // classifyStoredPassword's two patterns: ^SCRAM-SHA-256\$..., and ^md5 + 32 hex digits.
    const secretLike = password.startsWith('SCRAM-SHA-256$') || (password.length === 35 && password.startsWith('md5'));
    if (!secretLike) return { kind: 'plain', password };
    let stored = this.classified.get(password);
    if (stored === undefined) {
      stored = classifyStoredPassword(password);
      // A malformed verifier is a plaintext password (as in PostgreSQL): not kept.
      if (stored.kind !== 'plain') this.classified.set(password, stored);
    }
    return stored;
  }

  /**
   * The secret a SCRAM exchange with `user` is checked against, `stored` being what classify() said (null: a user
   * pgmux does not know): a verifier's own; for a plaintext password the secret pgmux made for it, whose keys are
   * derived in the threadpool on first use (shared by the logins that come meanwhile); or a mock.
   *
   * Whatever the kind, the same work: one keyed SHA-256 naming the entry (`entryKey`, one call into OpenSSL) and
   * one lookup, so that a known user's login costs what an unknown user's does at every step. (A verifier's entry
   * only mirrors its secret; it is there for that. A createHmac in the plaintext path measured ~20 µs at the
   * challenge step of test/security-auth-oracle.test.ts, where the unknown user's path had none.) The HMACs of the
   * salts are computed on a miss only.
   */
  scramSecretFor(user: string, stored: StoredPassword | null): ScramSecret | PlaintextSecret {
    const password = stored?.kind === 'plain' ? stored.password : '';
    const kind = stored === null ? 'mock' : stored.kind;
    const id = sha256Text(`${this.entryKey}\0${kind}\0${user}\0${password}`);
    if (stored?.kind === 'scram') {
      if (this.verifierEntries.get(id) !== stored.secret) this.verifierEntries.set(id, stored.secret);
      return stored.secret;
    }
    if (stored?.kind === 'plain') return this.plaintext.get(id) ?? this.madeUp(id, user, password);
    let mock = this.mocks.get(id);
    if (mock === undefined) {
      mock = { iterations: MADE_UP_ITERATIONS, salt: this.salt('mock', user), storedKey: randomBytes(32), serverKey: randomBytes(32) };
      this.mocks.set(id, mock);
    }
    return mock;
  }

  /** The secret pgmux gives a plaintext password (see scramSecretFor). */
  forPassword(user: string, password: string): PlaintextSecret {
    return this.scramSecretFor(user, { kind: 'plain', password }) as PlaintextSecret;
  }

  /** A secret nobody knows the password of, with a salt that is stable per user name (see scramSecretFor). */
  fake(user: string): ScramSecret {
    return this.scramSecretFor(user, null) as ScramSecret;
  }

  private madeUp(id: string, user: string, password: string): PlaintextSecret {
    const salt = this.salt('password', `${user}\0${password}`);
    const made: PlaintextSecret = { iterations: MADE_UP_ITERATIONS, salt, secret: null, pending: null };
    this.stats.derivedAsync++;
    made.pending = deriveScramKeysAsync(password, salt, MADE_UP_ITERATIONS).then(
      (keys) => {
        made.secret ??= secretOf(made, keys);
        made.pending = null;
        return made.secret;
      },
      () => {
        made.pending = null; // deriveNow() derives again and throws what went wrong
        return null;
      },
    );
    this.plaintext.set(id, made);
    return made;
  }

  /** The keys of a plaintext secret, derived on this thread if the threadpool is not done: for callers that cannot wait. */
  deriveNow(entry: PlaintextSecret, password: string): ScramSecret {
    if (entry.secret === null) {
      this.stats.derivedSync++;
      entry.secret = secretOf(entry, deriveScramKeys(password, entry.salt, entry.iterations));
    }
    return entry.secret;
  }

  /** The md5 secret an unknown user is checked against, so a refusal costs what a known user's does. */
  fakeMd5(user: string): string {
    let secret = this.md5Fakes.get(user);
    if (secret === undefined) {
      secret = `md5${this.salt('md5', user).toString('hex')}`;
      this.md5Fakes.set(user, secret);
    }
    return secret;
  }

  private salt(kind: string, id: string): Buffer {
    return createHmac('sha256', this.key).update(`${kind}\0${id}`).digest().subarray(0, 16);
  }
}

function secretOf(salt: ScramSalt, keys: ScramKeys): ScramSecret {
  return { iterations: salt.iterations, salt: salt.salt, storedKey: keys.storedKey, serverKey: keys.serverKey };
}

export class ClientAuth {
  private scram: ScramServerSession | null = null;
  private md5Salt: Buffer | null = null;
  private readonly stored: StoredPassword | null;
  private readonly method: 'scram' | 'md5' | 'plain';
  /** SCRAM: what the exchange is checked against; for a plaintext password not derived yet its salt and count. */
  private secret: ScramSecret | ScramSalt | null = null;
  /** SCRAM against a plaintext password: the secret pgmux made for it (its keys may still be being derived). */
  private plaintextSecret: PlaintextSecret | null = null;
  /** A 'pending' step was returned: the exchange takes no message until it is settled. */
  private waiting = false;

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
    private readonly options: ClientAuthOptions = {},
  ) {
    this.stored = password === undefined ? null : secrets.classify(password);
    if (authType === 'plain') this.method = 'plain';
    else if (authType === 'md5' && this.stored?.kind !== 'scram') this.method = 'md5';
    else if (this.stored?.kind === 'md5') this.method = 'md5'; // an md5 secret cannot answer SCRAM
    else this.method = 'scram';
    // Now, whatever the kind (the same work for a known and an unknown user at this step): a plaintext password's
    // PBKDF2, on its first login, then runs in the threadpool while the client is sent the challenge and answers.
    if (this.method === 'scram') this.secret = this.lookUpScramSecret();
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
        this.md5Salt = publicRandomBytes(4);
        return authenticationMD5(this.md5Salt);
      case 'scram':
        return this.channelBinding === null ? SASL_REQUEST : SASL_REQUEST_WITH_PLUS;
    }
  }

  /** Handles the body of a 'p' message (`buf[start, end)` is the whole message). */
  onMessage(buf: Buffer, start: number, end: number): AuthStep {
    if (this.waiting) return { kind: 'fail', error: Errors.authProtocol('message sent before the previous one was answered') };
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
      this.scram = new ScramServerSession(this.plaintextSecret?.secret ?? (this.secret as ScramSecret | ScramSalt), {
        channelBinding: plus ? (this.channelBinding ?? undefined) : undefined,
        channelBindingOffered: this.channelBinding !== null,
        mechanism: plus ? SCRAM_SHA_256_PLUS : SCRAM_SHA_256,
      });
      const serverFirst = this.scram.handleClientFirst(buf.subarray(pos + 4, pos + 4 + length));
      return { kind: 'send', message: authenticationSASLContinue(serverFirst) };
    }
    const final = this.scram.readClientFinal(buf.subarray(start + 5, end));
    const plaintext = this.plaintextSecret;
    if (plaintext === null || plaintext.secret !== null) return this.scramVerdict(final, plaintext?.secret ?? undefined);
    // The keys of a plaintext password not derived yet (the first logins with it).
    const pending = plaintext.pending;
    if (pending !== null && this.options.mayWait === true) {
      return this.wait(pending.then((secret) => this.scramVerdict(final, secret ?? this.secrets.deriveNow(plaintext, this.plainPassword()))));
    }
    return this.scramVerdict(final, this.secrets.deriveNow(plaintext, this.plainPassword()));
  }

  /** The answer to client-final, from the proof's check. */
  private scramVerdict(final: ScramClientFinal, secret: ScramSecret | undefined): AuthStep {
    const result = (this.scram as ScramServerSession).verify(final, secret);
    if (!result.ok || this.stored === null) return this.failed();
    const messages = [authenticationSASLFinal(result.serverFinal)];
    // Verified against a stored verifier: the recovered ClientKey lets pgmux log in upstream as this user.
    if (this.stored.kind === 'scram') return { kind: 'ok', messages, scramKeys: { clientKey: result.clientKey, serverKey: this.stored.secret.serverKey } };
    return { kind: 'ok', messages };
  }

  /** The secret of the exchange (ScramSecretCache.scramSecretFor); a plaintext password's is remembered with it. */
  private lookUpScramSecret(): ScramSecret | ScramSalt {
    const found = this.secrets.scramSecretFor(this.user, this.stored);
    if (!('pending' in found)) return found;
    this.plaintextSecret = found;
    return found.secret ?? found;
  }

  private plainPassword(): string {
    return (this.stored as { kind: 'plain'; password: string }).password;
  }

  /** A 'pending' step for `verdict`; it settles as a step, also when the derivation failed. */
  private wait(verdict: Promise<AuthStep>): AuthStep {
    this.waiting = true;
    const next = verdict.then(
      (step) => step,
      (err: unknown) => {
        if (err instanceof ScramProtocolError || err instanceof RangeError) return { kind: 'fail', error: Errors.authProtocol(err.message) } as AuthStep;
        return { kind: 'fail', error: Errors.internal(`password check failed: ${(err as Error).message}`) } as AuthStep;
      },
    ).finally(() => {
      this.waiting = false;
    });
    return { kind: 'pending', next };
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
      case 'scram':
        return this.checkPlainAgainstVerifier(given, stored.secret);
    }
    return ok ? { kind: 'ok', messages: [] } : this.failed();
  }

  /**
   * A cleartext password against a SCRAM verifier: Hi(password, salt, i) must give its StoredKey. A password that
   * matched before is a cache hit; any other costs a PBKDF2 (in the threadpool when the caller can wait), and is
   * not cached unless it matches, so wrong guesses cannot push right ones out.
   */
  private checkPlainAgainstVerifier(given: string, secret: ScramSecret): AuthStep {
    const cache = this.secrets.checkedPasswords;
    const verdict = (keys: ScramKeys): AuthStep => {
      if (!timingSafeEqual(keys.storedKey, secret.storedKey)) return this.failed();
      cache.set(given, secret.salt, secret.iterations, keys);
      return { kind: 'ok', messages: [] };
    };
    const cached = cache.get(given, secret.salt, secret.iterations);
    if (cached !== undefined) return verdict(cached);
    if (this.options.mayWait === true) return this.wait(cache.derive(given, secret.salt, secret.iterations, false).then(verdict));
    return verdict(cache.deriveSync(given, secret.salt, secret.iterations, false));
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
