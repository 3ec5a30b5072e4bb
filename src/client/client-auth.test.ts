/**
 * ClientAuth's decisions on the SCRAM messages the protocol fuzzer sent (test/fuzz-protocol), each as PostgreSQL
 * decides them: which mechanism a client may choose, and which client-first messages let a client in.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { formatScramVerifier, makeScramSecret } from '../auth/scram.js';
import { ClientAuth, ScramSecretCache, type AuthStep } from './client-auth.js';

const USER = 'alice';
const PASSWORD = 'secret-pass';
/** tls-server-end-point data of a certificate: the client is on TLS and SCRAM-SHA-256-PLUS is offered. */
const BINDING = createHash('sha256').update('certificate').digest();

/** A 'p' message: SASLInitialResponse (mechanism, Int32 length, data) or SASLResponse (data). */
function passwordMessage(body: Buffer): Buffer {
  const buf = Buffer.alloc(5 + body.length);
  buf.write('p', 0, 'latin1');
  buf.writeInt32BE(4 + body.length, 1);
  body.copy(buf, 5);
  return buf;
}

function saslInitial(mechanism: string, data: string): Buffer {
  const length = Buffer.alloc(4);
  length.writeInt32BE(Buffer.byteLength(data, 'latin1'));
  return passwordMessage(Buffer.concat([Buffer.from(`${mechanism}\0`, 'latin1'), length, Buffer.from(data, 'latin1')]));
}

const feed = (auth: ClientAuth, m: Buffer): AuthStep => auth.onMessage(m, 0, m.length);

/** The mechanisms the AuthenticationSASL request offers. */
function offered(auth: ClientAuth): string[] {
  const m = auth.start();
  return m.subarray(9).toString('latin1').split('\0').filter((s) => s !== '');
}

/** Answers server-first as a correct client with the password (independent of src/auth: its own arithmetic). */
function clientFinal(clientFirstBare: string, gs2: string, step: AuthStep, password = PASSWORD): Buffer {
  if (step.kind !== 'send') throw new Error(`expected server-first, got ${step.kind}`);
  const serverFirst = step.message.subarray(9).toString('latin1');
  const attrs = new Map(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)] as const));
  const salted = pbkdf2Sync(password, Buffer.from(attrs.get('s') as string, 'base64'), Number(attrs.get('i')), 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const withoutProof = `c=${Buffer.from(gs2, 'latin1').toString('base64')},r=${attrs.get('r')}`;
  const signature = createHmac('sha256', storedKey).update(`${clientFirstBare},${serverFirst},${withoutProof}`).digest();
  const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]));
  return passwordMessage(Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'latin1'));
}

function session(binding: Buffer | null): ClientAuth {
  const secrets = new ScramSecretCache();
  secrets.useKey(randomBytes(32));
  return new ClientAuth(USER, PASSWORD, 'scram-sha-256', secrets, binding);
}

describe('ClientAuth: SCRAM mechanism choice', () => {
  it('refuses SCRAM-SHA-256-PLUS where it was not offered (no TLS), as PostgreSQL does (08P01)', () => {
    const auth = session(null);
    expect(offered(auth)).toEqual(['SCRAM-SHA-256']);
    const step = feed(auth, saslInitial('SCRAM-SHA-256-PLUS', 'p=tls-server-end-point,,n=,r=abcdef'));
    expect(step.kind).toBe('fail');
    if (step.kind === 'fail') {
      expect(step.error.sqlstate).toBe('08P01');
      expect(step.error.message).toMatch(/client selected an invalid SASL authentication mechanism/);
    }
  });

  // Fuzzer seed 19 path 23 ("auth-accepted after mech-plus-unoffered"): over TLS pgmux offers SCRAM-SHA-256-PLUS, so
  // the mutation did nothing and the client made a correct SCRAM-SHA-256 login without binding ('n'), which
  // PostgreSQL accepts too. pgmux was right to let it in; the judge now knows the mutation was a no-op there.
  it('lets in a correct SCRAM-SHA-256 login that does not bind although PLUS was offered', () => {
    const auth = session(BINDING);
    expect(offered(auth)).toEqual(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']);
    const bare = 'n=,r=fzNonce123';
    const first = feed(auth, saslInitial('SCRAM-SHA-256', `n,,${bare}`));
    expect(feed(auth, clientFinal(bare, 'n,,', first)).kind).toBe('ok');
  });

  it('refuses the same login with a wrong password (28P01)', () => {
    const auth = session(BINDING);
    auth.start();
    const first = feed(auth, saslInitial('SCRAM-SHA-256', 'n,,n=,r=fzNonce123'));
    const step = feed(auth, clientFinal('n=,r=fzNonce123', 'n,,', first, 'wrong-pass'));
    expect(step.kind).toBe('fail');
    if (step.kind === 'fail') expect(step.error.sqlstate).toBe('28P01');
  });
});

describe('ClientAuth: client-first as PostgreSQL reads it', () => {
  // Fuzzer seed 39 path 22: a SASLInitialResponse whose frame holds two zero bytes after its data. PostgreSQL refuses
  // it (pq_getmsgend: 08P01 "invalid message format"); pgmux ignored them and let the client in.
  it('refuses bytes after the SASLInitialResponse data (08P01)', () => {
    for (const extra of [Buffer.alloc(2), Buffer.from('x')]) {
      const auth = session(null);
      auth.start();
      const good = saslInitial('SCRAM-SHA-256', 'n,,n=,r=fzNonce123');
      const bad = Buffer.concat([good, extra]);
      bad.writeInt32BE(bad.length - 1, 1);
      const step = feed(auth, bad);
      expect(step.kind).toBe('fail');
      if (step.kind === 'fail') expect(step.error.sqlstate).toBe('08P01');
    }
  });


  // Fuzzer seed 7 path 5: "n,,n=,r=" (an empty client nonce) logs in to PostgreSQL; pgmux refused it with 08P01.
  it('lets in a client whose nonce is empty', () => {
    const auth = session(null);
    auth.start();
    const first = feed(auth, saslInitial('SCRAM-SHA-256', 'n,,n=,r='));
    expect(first.kind).toBe('send');
    expect(feed(auth, clientFinal('n=,r=', 'n,,', first)).kind).toBe('ok');
  });

  it('refuses a nonce with a byte outside printable ASCII (PostgreSQL: 08P01 non-printable characters)', () => {
    const auth = session(null);
    auth.start();
    const step = feed(auth, saslInitial('SCRAM-SHA-256', 'n,,n=,r=ab\x01cd'));
    expect(step.kind).toBe('fail');
    if (step.kind === 'fail') expect(step.error.sqlstate).toBe('08P01');
  });
});

describe('ClientAuth: what a login costs, and what is cached', () => {
  const VERIFIER = formatScramVerifier(makeScramSecret(PASSWORD));

  function cache(): ScramSecretCache {
    const secrets = new ScramSecretCache();
    secrets.useKey(randomBytes(32));
    return secrets;
  }

  /** A whole SCRAM login; returns the last step (after a 'pending' one, what it settled as). */
  async function scramLogin(auth: ClientAuth, password = PASSWORD): Promise<AuthStep> {
    auth.start();
    const bare = `n=,r=nonce${randomBytes(4).toString('hex')}`;
    const first = feed(auth, saslInitial('SCRAM-SHA-256', `n,,${bare}`));
    const step = feed(auth, clientFinal(bare, 'n,,', first, password));
    return step.kind === 'pending' ? step.next : step;
  }

  function plainMessage(password: string): Buffer {
    return passwordMessage(Buffer.from(`${password}\0`, 'utf8'));
  }

  it('a stored verifier is parsed once, whoever logs in with it', () => {
    const secrets = cache();
    expect(secrets.classify(VERIFIER)).toBe(secrets.classify(VERIFIER));
    expect(secrets.classify('md5' + 'a'.repeat(32)).kind).toBe('md5');
    // A malformed verifier is a plaintext password, as in PostgreSQL; it is not kept.
    const notAVerifier = 'SCRAM-SHA-256$oops';
    expect(secrets.classify(notAVerifier)).toEqual({ kind: 'plain', password: notAVerifier });
    expect(secrets.classify(notAVerifier)).not.toBe(secrets.classify(notAVerifier));
  });

  it('a verifier login needs no key derivation at all', async () => {
    const secrets = cache();
    expect((await scramLogin(new ClientAuth(USER, VERIFIER, 'scram-sha-256', secrets))).kind).toBe('ok');
    expect(secrets.stats).toEqual({ derivedAsync: 0, derivedSync: 0 });
  });

  it('a plaintext password is derived once, in the threadpool, while the client answers', async () => {
    const secrets = cache();
    const first = new ClientAuth(USER, PASSWORD, 'scram-sha-256', secrets, null, { mayWait: true });
    first.start();
    const bare = 'n=,r=first';
    const serverFirst = feed(first, saslInitial('SCRAM-SHA-256', `n,,${bare}`));
    const final = feed(first, clientFinal(bare, 'n,,', serverFirst));
    // Nothing yielded to the event loop since the derivation started: the answer waits for it.
    expect(final.kind).toBe('pending');
    if (final.kind !== 'pending') return;
    // Nothing is taken meanwhile (PostgreSQL would not read it either before answering).
    const early = feed(first, clientFinal(bare, 'n,,', serverFirst));
    expect(early.kind === 'fail' && early.error.sqlstate).toBe('08P01');
    expect((await final.next).kind).toBe('ok');
    for (let i = 0; i < 3; i++) {
      const step = await scramLogin(new ClientAuth(USER, PASSWORD, 'scram-sha-256', secrets, null, { mayWait: true }));
      expect(step.kind).toBe('ok');
    }
    expect(secrets.stats).toEqual({ derivedAsync: 1, derivedSync: 0 });
    const wrong = await scramLogin(new ClientAuth(USER, PASSWORD, 'scram-sha-256', secrets, null, { mayWait: true }), 'wrong-pass');
    expect(wrong.kind === 'fail' && wrong.error.sqlstate).toBe('28P01');
  });

  it('a caller that cannot wait gets its answer at once: derived on the spot once, then cached', async () => {
    const secrets = cache();
    // Synchronous from construction to client-final: the threadpool cannot have answered.
    const step = await scramLogin(new ClientAuth(USER, PASSWORD, 'scram-sha-256', secrets));
    expect(step.kind).toBe('ok');
    expect(secrets.stats).toEqual({ derivedAsync: 1, derivedSync: 1 });
    expect((await scramLogin(new ClientAuth(USER, PASSWORD, 'scram-sha-256', secrets))).kind).toBe('ok');
    expect(secrets.stats).toEqual({ derivedAsync: 1, derivedSync: 1 });
  });

  it('the salt of a plaintext password is the HMAC it always was (stable across restarts and versions)', () => {
    const key = randomBytes(32);
    const secrets = new ScramSecretCache();
    secrets.useKey(key);
    const expected = createHmac('sha256', key).update(`password\0${USER}\0${PASSWORD}`).digest().subarray(0, 16);
    expect(secrets.forPassword(USER, PASSWORD).salt.equals(expected)).toBe(true);
    const mock = createHmac('sha256', key).update('mock\0nobody').digest().subarray(0, 16);
    expect(secrets.fake('nobody').salt.equals(mock)).toBe(true);
  });

  it('holds no plaintext password: plaintext secrets are found by a keyed hash', () => {
    const secrets = cache();
    const password = 'plaintext-that-must-not-be-kept';
    secrets.forPassword(USER, password);
    secrets.classify(password);
    const held = secrets as unknown as Record<string, { map?: Map<string, unknown> }>;
    for (const field of ['classified', 'verifierEntries', 'plaintext', 'mocks', 'md5Fakes']) {
      for (const name of held[field].map?.keys() ?? []) expect(name).not.toContain(password);
    }
  });

  it('mock secrets are bounded: a client spraying user names cannot grow them without end', () => {
    const secrets = cache();
    const firstMock = secrets.fake('user-0');
    expect(secrets.fake('user-0')).toBe(firstMock);
    for (let i = 1; i <= 10_000; i++) secrets.fake(`user-${i}`);
    const again = secrets.fake('user-0');
    expect(again).not.toBe(firstMock); // dropped, made again: the same salt, fresh keys
    expect(again.salt.equals(firstMock.salt)).toBe(true);
  });

  it('an unknown user goes through the same exchange as a known one, with no derivation either', async () => {
    const secrets = cache();
    for (let i = 0; i < 2; i++) {
      const step = await scramLogin(new ClientAuth('nobody', undefined, 'scram-sha-256', secrets, null, { mayWait: true }), 'whatever');
      expect(step.kind === 'fail' && step.error.sqlstate).toBe('28P01');
    }
    expect(secrets.stats).toEqual({ derivedAsync: 0, derivedSync: 0 });
  });

  it('auth_type plain against a verifier: a right password is derived once; wrong ones every time, never kept', () => {
    const secrets = cache();
    const checked = secrets.checkedPasswords;
    const login = (password: string): AuthStep => {
      const auth = new ClientAuth(USER, VERIFIER, 'plain', secrets);
      auth.start();
      return feed(auth, plainMessage(password));
    };
    expect(login(PASSWORD).kind).toBe('ok');
    expect(login(PASSWORD).kind).toBe('ok');
    expect(checked.stats).toMatchObject({ derivedSync: 1, hits: 1 });
    for (let i = 0; i < 2; i++) {
      const step = login('not-it');
      expect(step.kind === 'fail' && step.error.sqlstate).toBe('28P01');
    }
    expect(checked.stats.derivedSync).toBe(3);
    expect(checked.size).toBe(1);
  });

  it('auth_type plain against a verifier, when the caller can wait: the PBKDF2 runs in the threadpool', async () => {
    const secrets = cache();
    const auth = new ClientAuth(USER, VERIFIER, 'plain', secrets, null, { mayWait: true });
    auth.start();
    const step = feed(auth, plainMessage(PASSWORD));
    expect(step.kind).toBe('pending');
    if (step.kind === 'pending') expect((await step.next).kind).toBe('ok');
    expect(secrets.checkedPasswords.stats).toMatchObject({ derivedSync: 0, derivedAsync: 1 });
    const wrong = new ClientAuth(USER, VERIFIER, 'plain', secrets, null, { mayWait: true });
    wrong.start();
    const refused = feed(wrong, plainMessage('not-it'));
    const settled = refused.kind === 'pending' ? await refused.next : refused;
    expect(settled.kind === 'fail' && settled.error.sqlstate).toBe('28P01');
  });
});

describe('ScramSecretCache.classify', () => {
  it('tells stored passwords apart exactly as classifyStoredPassword does', async () => {
    const { classifyStoredPassword } = await import('../auth/password.js');
    const secrets = new ScramSecretCache();
    const verifier = formatScramVerifier(makeScramSecret('x'));
    const samples = [
      verifier, `${verifier}x`, 'SCRAM-SHA-256$', 'SCRAM-SHA-256$4096:abc', 'scram-sha-256$4096:x$y:z',
      `md5${'0'.repeat(32)}`, `md5${'A'.repeat(32)}`, `md5${'0'.repeat(31)}`, `md5${'0'.repeat(33)}`, `MD5${'0'.repeat(32)}`,
      'md5', '', 'plain password', 'ünïcödé',
    ];
    for (const s of samples) {
      expect(secrets.classify(s)).toEqual(classifyStoredPassword(s));
      expect(secrets.classify(s)).toEqual(classifyStoredPassword(s)); // and from the cache
    }
  });
});
