import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { describe, expect, it } from 'vitest';

import {
  makeScramSecret,
  parseScramVerifier,
  ScramClientSession,
  ScramKeyCache,
  ScramProtocolError,
  ScramServerSession,
  type ScramSecret,
} from './scram.js';

// RFC 7677 §3 example: user "user", password "pencil".
const RFC = {
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal:
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
  salt: Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'),
};

const rfcSecret = (): ScramSecret => makeScramSecret('pencil', { salt: RFC.salt, iterations: 4096 });

/** Runs a whole exchange; returns the server's verdict, or the error either side threw. */
function exchange(client: ScramClientSession, server: ScramServerSession) {
  const serverFirst = server.handleClientFirst(client.clientFirst());
  const result = server.handleClientFinal(client.handleServerFirst(serverFirst));
  if (result.ok) client.handleServerFinal(result.serverFinal);
  return result;
}

describe('RFC 7677 test vector', () => {
  it('server side reproduces the published messages', () => {
    const server = new ScramServerSession(rfcSecret(), { nonce: () => RFC.serverNonce });
    expect(server.handleClientFirst(RFC.clientFirst)).toBe(RFC.serverFirst);
    const result = server.handleClientFinal(RFC.clientFinal);
    expect(result).toMatchObject({ ok: true, serverFinal: RFC.serverFinal });
  });

  it('client side reproduces the published messages', () => {
    const client = new ScramClientSession(
      { password: 'pencil' },
      { nonce: () => RFC.clientNonce, username: 'user' },
    );
    expect(client.clientFirst()).toBe(RFC.clientFirst);
    expect(client.handleServerFirst(RFC.serverFirst)).toBe(RFC.clientFinal);
    expect(() => client.handleServerFinal(RFC.serverFinal)).not.toThrow();
  });

  it('accepts Buffers, and keeps no view into them between messages', () => {
    const server = new ScramServerSession(rfcSecret(), { nonce: () => RFC.serverNonce });
    const receiveBuffer = Buffer.from(RFC.clientFirst);
    server.handleClientFirst(receiveBuffer);
    receiveBuffer.fill(0x41); // the connection reuses its buffer for the next frame
    expect(server.handleClientFinal(Buffer.from(RFC.clientFinal)).ok).toBe(true);
  });
});

describe('round trips', () => {
  it('right password succeeds and the client sends n=* by default', () => {
    const client = new ScramClientSession({ password: 'secret' });
    const first = client.clientFirst();
    expect(first).toMatch(/^n,,n=\*,r=[A-Za-z0-9+/=]{24}$/);
    const server = new ScramServerSession(makeScramSecret('secret'));
    const serverFirst = server.handleClientFirst(first);
    const result = server.handleClientFinal(client.handleServerFirst(serverFirst));
    expect(result.ok).toBe(true);
    if (result.ok) expect(() => client.handleServerFinal(result.serverFinal)).not.toThrow();
  });

  it('wrong password is rejected without an exception', () => {
    const client = new ScramClientSession({ password: 'wrong' });
    expect(exchange(client, new ScramServerSession(makeScramSecret('secret')))).toEqual({ ok: false });
  });

  it('works against a server holding only the stored verifier', () => {
    const verifier =
      'SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=';
    const secret = parseScramVerifier(verifier);
    expect(secret).not.toBeNull();
    if (secret === null) return;
    expect(exchange(new ScramClientSession({ password: 'pencil' }), new ScramServerSession(secret)).ok).toBe(true);
    expect(exchange(new ScramClientSession({ password: 'pen' }), new ScramServerSession(secret)).ok).toBe(false);
  });

  it('normalises non-ASCII passwords the same way on both sides', () => {
    const secret = makeScramSecret('Ⅸ'); // NFKC of U+2168 is "IX"
    expect(exchange(new ScramClientSession({ password: 'IX' }), new ScramServerSession(secret)).ok).toBe(true);
  });

  it('passthrough: the ClientKey a server recovers logs in upstream without the password', () => {
    const secret = makeScramSecret('hunter2');
    const front = exchange(new ScramClientSession({ password: 'hunter2' }), new ScramServerSession(secret));
    expect(front.ok).toBe(true);
    if (!front.ok) return;

    const upstream = new ScramServerSession(secret);
    const passthrough = new ScramClientSession({
      clientKey: front.clientKey,
      serverKey: secret.serverKey,
      salt: secret.salt,
      iterations: secret.iterations,
    });
    expect(exchange(passthrough, upstream).ok).toBe(true);
  });

  it('passthrough keys meeting a different salt fail early and clearly', () => {
    const secret = makeScramSecret('hunter2');
    const front = exchange(new ScramClientSession({ password: 'hunter2' }), new ScramServerSession(secret));
    if (!front.ok) throw new Error('front-end login failed');
    const other = makeScramSecret('hunter2'); // same password, fresh salt
    const client = new ScramClientSession({ clientKey: front.clientKey, serverKey: secret.serverKey, salt: secret.salt });
    expect(() => exchange(client, new ScramServerSession(other))).toThrow(/passthrough keys/);
    // Without the salt to compare, the upstream simply rejects the proof.
    const blind = new ScramClientSession({ clientKey: front.clientKey, serverKey: secret.serverKey });
    expect(exchange(blind, new ScramServerSession(other)).ok).toBe(false);
  });

  it('accepts the y flag with its matching channel binding (eSws)', () => {
    const server = new ScramServerSession(rfcSecret(), { nonce: () => 'srv' });
    const serverFirst = server.handleClientFirst('y,,n=,r=abc');
    expect(serverFirst).toBe('r=abcsrv,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096');
    // The proof is wrong, but getting to the verdict shows c=eSws was accepted.
    expect(server.handleClientFinal(`c=eSws,r=abcsrv,p=${Buffer.alloc(32).toString('base64')}`)).toEqual({ ok: false });
  });
});

describe('client verifies the server', () => {
  it('rejects a tampered server signature', () => {
    const client = new ScramClientSession({ password: 'pencil' }, { nonce: () => RFC.clientNonce, username: 'user' });
    client.clientFirst();
    client.handleServerFirst(RFC.serverFirst);
    const sig = Buffer.from(RFC.serverFinal.slice(2), 'base64');
    sig[0] ^= 1;
    expect(() => client.handleServerFinal(`v=${sig.toString('base64')}`)).toThrow(/signature mismatch/);
  });

  it('rejects a server that does not know the password', () => {
    const client = new ScramClientSession({ password: 'pencil' });
    const impostor = new ScramServerSession(makeScramSecret('pencil'));
    const serverFirst = impostor.handleClientFirst(client.clientFirst());
    client.handleServerFirst(serverFirst);
    expect(() => client.handleServerFinal(`v=${Buffer.alloc(32).toString('base64')}`)).toThrow(ScramProtocolError);
  });

  it('reports a server-final error attribute', () => {
    const client = new ScramClientSession({ password: 'pencil' }, { nonce: () => RFC.clientNonce });
    client.clientFirst();
    client.handleServerFirst(RFC.serverFirst);
    expect(() => client.handleServerFinal('e=invalid-proof')).toThrow(/invalid-proof/);
  });
});

const huge = 'r=' + 'x'.repeat(70_000);

describe('what PostgreSQL accepts in client-first', () => {
  // Fuzzer seed 7 path 5: PostgreSQL lets a client log in with an empty nonce (is_scram_printable("") is true: the
  // server's half makes the exchange fresh); pgmux refused it with 08P01.
  it('an empty client nonce, with the proof over the server nonce alone', () => {
    const server = new ScramServerSession(rfcSecret(), { nonce: () => RFC.serverNonce });
    const serverFirst = server.handleClientFirst('n,,n=,r=');
    expect(serverFirst).toBe(`r=${RFC.serverNonce},s=${RFC.salt.toString('base64')},i=4096`);
    const withoutProof = `c=biws,r=${RFC.serverNonce}`;
    const salted = pbkdf2Sync('pencil', RFC.salt, 4096, 32, 'sha256');
    const clientKey = createHmac('sha256', salted).update('Client Key').digest();
    const storedKey = createHash('sha256').update(clientKey).digest();
    const signature = createHmac('sha256', storedKey).update(`n=,r=,${serverFirst},${withoutProof}`).digest();
    const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]));
    expect(server.handleClientFinal(`${withoutProof},p=${proof.toString('base64')}`).ok).toBe(true);
  });

  it('still not a nonce with a byte outside printable ASCII (PostgreSQL: 08P01)', () => {
    const server = new ScramServerSession(rfcSecret());
    expect(() => server.handleClientFirst('n,,n=,r=ab\x01cd')).toThrow(/not printable/);
  });
});

describe('server rejects malformed client messages', () => {
  const firstCases: Array<[string, string]> = [
    ['empty', ''],
    ['no gs2 header', 'n=user,r=abc'],
    ['unknown cbind flag', 'x,,n=,r=abc'],
    ['channel binding requested', 'p=tls-server-end-point,,n=,r=abc'],
    ['authzid', 'n,a=admin,n=,r=abc'],
    ['mandatory extension', 'n,,m=ext,n=,r=abc'],
    ['missing username', 'n,,r=abc'],
    ['missing nonce', 'n,,n=user'],
    ['non-printable nonce', 'n,,n=user,r=ab\x01c'],
    ['garbage attribute', 'n,,n=user,r=abc,garbage'],
    ['huge input', `n,,n=,${huge}`],
  ];
  it.each(firstCases)('client-first: %s', (_name, message) => {
    const server = new ScramServerSession(rfcSecret());
    expect(() => server.handleClientFirst(message)).toThrow(ScramProtocolError);
  });

  const proof = RFC.clientFinal.slice(RFC.clientFinal.indexOf(',p=') + 1);
  const nonce = `r=${RFC.clientNonce}${RFC.serverNonce}`;
  const finalCases: Array<[string, string]> = [
    ['empty', ''],
    ['missing channel binding', `${nonce},${proof}`],
    ['wrong channel binding', `c=eSws,${nonce},${proof}`],
    ['wrong nonce', `c=biws,r=${RFC.clientNonce}other,${proof}`],
    ['missing nonce', `c=biws,${proof}`],
    ['missing proof', `c=biws,${nonce}`],
    ['proof not last', `c=biws,${nonce},${proof},x=1`],
    ['bad base64 proof', `c=biws,${nonce},p=not*base64`],
    ['short proof', `c=biws,${nonce},p=AAAA`],
    ['huge input', `c=biws,${nonce},${huge}`],
  ];
  it.each(finalCases)('client-final: %s', (_name, message) => {
    const server = new ScramServerSession(rfcSecret(), { nonce: () => RFC.serverNonce });
    server.handleClientFirst(RFC.clientFirst);
    expect(() => server.handleClientFinal(message)).toThrow(ScramProtocolError);
  });

  it('rejects y when channel binding was offered (downgrade)', () => {
    const server = new ScramServerSession(rfcSecret(), { channelBindingOffered: true });
    expect(() => server.handleClientFirst('y,,n=,r=abc')).toThrow(/declined channel binding/);
  });

  it('rejects messages out of order, and a retry after a failure', () => {
    const server = new ScramServerSession(rfcSecret());
    expect(() => server.handleClientFinal(RFC.clientFinal)).toThrow(/out of order/);
    const again = new ScramServerSession(rfcSecret());
    expect(() => again.handleClientFirst('garbage')).toThrow(ScramProtocolError);
    expect(() => again.handleClientFirst(RFC.clientFirst)).toThrow(/out of order/);
  });

  it('rejects a non-string payload with ScramProtocolError, not a TypeError', () => {
    const server = new ScramServerSession(rfcSecret());
    expect(() => server.handleClientFirst(undefined as unknown as string)).toThrow(ScramProtocolError);
  });
});

describe('client rejects malformed server messages', () => {
  const c = RFC.clientNonce;
  const cases: Array<[string, string]> = [
    ['empty', ''],
    ['mandatory extension', `m=ext,r=${c}x,s=QUJD,i=4096`],
    ['missing nonce', 's=QUJD,i=4096'],
    ['nonce not extending ours', 'r=someoneelse,s=QUJD,i=4096'],
    ['nonce equal to ours', `r=${c},s=QUJD,i=4096`],
    ['missing salt', `r=${c}x,i=4096`],
    ['empty salt', `r=${c}x,s=,i=4096`],
    ['bad base64 salt', `r=${c}x,s=%%%,i=4096`],
    ['missing iterations', `r=${c}x,s=QUJD`],
    ['iteration 0', `r=${c}x,s=QUJD,i=0`],
    ['negative iterations', `r=${c}x,s=QUJD,i=-1`],
    ['iterations beyond int32', `r=${c}x,s=QUJD,i=2147483648`],
    ['non-numeric iterations', `r=${c}x,s=QUJD,i=4k`],
    ['huge input', `${huge}`],
  ];
  it.each(cases)('server-first: %s', (_name, message) => {
    const client = new ScramClientSession({ password: 'pencil' }, { nonce: () => c });
    client.clientFirst();
    expect(() => client.handleServerFirst(message)).toThrow(ScramProtocolError);
  });

  const finalCases: Array<[string, string]> = [
    ['empty', ''],
    ['missing signature', 'x=1'],
    ['bad base64 signature', 'v=***'],
    ['short signature', 'v=AAAA'],
  ];
  it.each(finalCases)('server-final: %s', (_name, message) => {
    const client = new ScramClientSession({ password: 'pencil' }, { nonce: () => c });
    client.clientFirst();
    client.handleServerFirst(RFC.serverFirst);
    expect(() => client.handleServerFinal(message)).toThrow(ScramProtocolError);
  });

  it('rejects calls out of order', () => {
    const client = new ScramClientSession({ password: 'pencil' });
    expect(() => client.handleServerFirst(RFC.serverFirst)).toThrow(/out of order/);
  });

  it('refuses passthrough keys of the wrong size', () => {
    expect(() => new ScramClientSession({ clientKey: Buffer.alloc(3), serverKey: Buffer.alloc(32) })).toThrow(
      RangeError,
    );
  });
});

describe('what a login costs', () => {
  it('pgmux logging in upstream derives the keys of a password once per salt and iteration count', () => {
    const keyCache = new ScramKeyCache(4);
    const secret = makeScramSecret('hunter2');
    for (let i = 0; i < 3; i++) {
      expect(exchange(new ScramClientSession({ password: 'hunter2' }, { keyCache }), new ScramServerSession(secret)).ok).toBe(true);
    }
    expect(keyCache.stats).toEqual({ hits: 2, derivedSync: 1, derivedAsync: 0 });
    // The server's verifier changed (a new salt): derived again, and the old entry cannot answer for it.
    expect(exchange(new ScramClientSession({ password: 'hunter2' }, { keyCache }), new ScramServerSession(makeScramSecret('hunter2'))).ok).toBe(true);
    expect(keyCache.stats.derivedSync).toBe(2);
    // A cached wrong password still fails: the entry is keyed on the password.
    expect(exchange(new ScramClientSession({ password: 'hunter3' }, { keyCache }), new ScramServerSession(secret)).ok).toBe(false);
  });

  it('a server session can start with the salt alone and be given the keys at client-final', () => {
    const secret = rfcSecret();
    const server = new ScramServerSession({ salt: secret.salt, iterations: secret.iterations }, { nonce: () => RFC.serverNonce });
    expect(server.handleClientFirst(RFC.clientFirst)).toBe(RFC.serverFirst);
    const final = server.readClientFinal(RFC.clientFinal);
    expect(() => server.verify(final)).toThrow(/no keys/);
    expect(() => server.verify(final, makeScramSecret('pencil', { iterations: 4096 }))).toThrow(/not of the salt/);
    expect(server.verify(final, secret)).toMatchObject({ ok: true, serverFinal: RFC.serverFinal });
    expect(server.verify(final, makeScramSecret('pen', { salt: RFC.salt, iterations: 4096 }))).toEqual({ ok: false });
  });

  it('client-final is read once: a second message is out of order even before the proof is checked', () => {
    const server = new ScramServerSession(rfcSecret(), { nonce: () => RFC.serverNonce });
    server.handleClientFirst(RFC.clientFirst);
    server.readClientFinal(RFC.clientFinal);
    expect(() => server.readClientFinal(RFC.clientFinal)).toThrow(/out of order/);
  });
});
