/**
 * ClientAuth's decisions on the SCRAM messages the protocol fuzzer sent (test/fuzz-protocol), each as PostgreSQL
 * decides them: which mechanism a client may choose, and which client-first messages let a client in.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
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
