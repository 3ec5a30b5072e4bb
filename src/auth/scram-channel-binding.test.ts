import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';

import {
  makeScramSecret,
  SCRAM_SHA_256,
  SCRAM_SHA_256_PLUS,
  ScramClientSession,
  type ScramClientOptions,
  ScramProtocolError,
  ScramServerSession,
  type ScramServerOptions,
} from './scram.js';

// SCRAM-SHA-256-PLUS with tls-server-end-point (RFC 5802 §6, RFC 5929). The binding data
// stands in for the hash of a certificate; channel-binding.test.ts covers computing it.
const CERT_HASH = createHash('sha256').update('the server certificate').digest();
const OTHER_HASH = createHash('sha256').update('a man in the middle').digest();
const secret = makeScramSecret('pencil');
const P_HEADER = 'p=tls-server-end-point,,';

function exchange(clientOptions: ScramClientOptions, serverOptions: ScramServerOptions, password = 'pencil') {
  const client = new ScramClientSession({ password }, clientOptions);
  const server = new ScramServerSession(secret, { mechanism: client.mechanism, ...serverOptions });
  const clientFirst = client.clientFirst();
  const clientFinal = client.handleServerFirst(server.handleClientFirst(clientFirst));
  const result = server.handleClientFinal(clientFinal);
  if (result.ok) client.handleServerFinal(result.serverFinal);
  return { client, clientFirst, clientFinal, result };
}

describe('client', () => {
  it('binds with p=tls-server-end-point and announces SCRAM-SHA-256-PLUS', () => {
    const client = new ScramClientSession({ password: 'pencil' }, { channelBinding: CERT_HASH, nonce: () => 'abc' });
    expect(client.mechanism).toBe(SCRAM_SHA_256_PLUS);
    expect(client.clientFirst()).toBe(`${P_HEADER}n=*,r=abc`);
    const final = client.handleServerFirst('r=abcdef,s=QUJD,i=4096');
    const c = /^c=([^,]+),r=abcdef,p=/.exec(final)?.[1] ?? '';
    expect(Buffer.from(c, 'base64').equals(Buffer.concat([Buffer.from(P_HEADER), CERT_HASH]))).toBe(true);
  });

  it('says y when it could bind but the server did not offer PLUS', () => {
    const client = new ScramClientSession(
      { password: 'pencil' },
      { channelBinding: CERT_HASH, serverSupportsBinding: false, nonce: () => 'abc' },
    );
    expect(client.mechanism).toBe(SCRAM_SHA_256);
    expect(client.clientFirst()).toBe('y,,n=*,r=abc');
    expect(client.handleServerFirst('r=abcdef,s=QUJD,i=4096')).toMatch(/^c=eSws,/);
  });

  it('says n without binding data, even when the server offered PLUS', () => {
    // A server that offered PLUS refuses `y` as a downgrade (PostgreSQL does), so a client
    // without data to bind with must say it does not support binding at all.
    for (const serverSupportsBinding of [undefined, false, true]) {
      const client = new ScramClientSession({ password: 'pencil' }, { serverSupportsBinding, nonce: () => 'abc' });
      expect(client.mechanism).toBe(SCRAM_SHA_256);
      expect(client.clientFirst()).toBe('n,,n=*,r=abc');
    }
  });

  it('refuses empty binding data', () => {
    expect(() => new ScramClientSession({ password: 'x' }, { channelBinding: Buffer.alloc(0) })).toThrow(RangeError);
  });
});

describe('round trips', () => {
  it('succeed when both sides bind to the same certificate', () => {
    const { client, result } = exchange({ channelBinding: CERT_HASH }, { channelBinding: CERT_HASH });
    expect(client.mechanism).toBe(SCRAM_SHA_256_PLUS);
    expect(result.ok).toBe(true);
  });

  it('fail, without an exception, when the client saw another certificate', () => {
    const { result } = exchange({ channelBinding: OTHER_HASH }, { channelBinding: CERT_HASH });
    expect(result).toEqual({ ok: false, reason: 'channel-binding' });
  });

  it('fail on a binding of another length', () => {
    const longer = createHash('sha384').update('x').digest();
    expect(exchange({ channelBinding: longer }, { channelBinding: CERT_HASH }).result).toEqual({
      ok: false,
      reason: 'channel-binding',
    });
  });

  it('still report a wrong password as a plain failure', () => {
    const { result } = exchange({ channelBinding: CERT_HASH }, { channelBinding: CERT_HASH }, 'wrong');
    expect(result).toEqual({ ok: false });
  });

  it('work with passthrough keys', () => {
    const client = new ScramClientSession(
      { clientKey: makeClientKey(), serverKey: secret.serverKey },
      { channelBinding: CERT_HASH },
    );
    const server = new ScramServerSession(secret, { channelBinding: CERT_HASH, mechanism: client.mechanism });
    const result = server.handleClientFinal(client.handleServerFirst(server.handleClientFirst(client.clientFirst())));
    expect(result.ok).toBe(true);
    if (result.ok) client.handleServerFinal(result.serverFinal);
  });

  it('without binding data on the client pass a server that offers PLUS (n flag)', () => {
    expect(exchange({ serverSupportsBinding: true }, { channelBinding: CERT_HASH }).result.ok).toBe(true);
  });

  it('y passes a server without TLS and is refused as a downgrade by one offering PLUS', () => {
    expect(exchange({ channelBinding: CERT_HASH, serverSupportsBinding: false }, {}).result.ok).toBe(true);
    expect(() =>
      exchange({ channelBinding: CERT_HASH, serverSupportsBinding: false }, { channelBinding: CERT_HASH }),
    ).toThrow(/declined channel binding/);
    expect(() =>
      exchange({ channelBinding: CERT_HASH, serverSupportsBinding: false }, { channelBindingOffered: true }),
    ).toThrow(/declined channel binding/);
  });
});

/** The ClientKey of `secret` for 'pencil', recovered the way pgmux does it (a front-end exchange). */
function makeClientKey(): Buffer {
  const front = new ScramServerSession(secret);
  const client = new ScramClientSession({ password: 'pencil' });
  const result = front.handleClientFinal(client.handleServerFirst(front.handleClientFirst(client.clientFirst())));
  if (!result.ok) throw new Error('front-end exchange failed');
  return result.clientKey;
}

describe('server refuses', () => {
  const server = (options: ScramServerOptions) => new ScramServerSession(secret, options);

  it('p= when it has no binding data', () => {
    expect(() => server({}).handleClientFirst(`${P_HEADER}n=,r=abc`)).toThrow(/channel binding not supported/);
    expect(() => server({ channelBindingOffered: true }).handleClientFirst(`${P_HEADER}n=,r=abc`)).toThrow(
      /channel binding not supported/,
    );
  });

  it.each(['tls-unique', 'tls-exporter', 'TLS-SERVER-END-POINT', ''])('channel binding type "%s"', (type) => {
    expect(() => server({ channelBinding: CERT_HASH }).handleClientFirst(`p=${type},,n=,r=abc`)).toThrow(
      /unsupported channel binding type/,
    );
  });

  it('a gs2 header that contradicts the mechanism', () => {
    const plus = server({ channelBinding: CERT_HASH, mechanism: SCRAM_SHA_256_PLUS });
    expect(() => plus.handleClientFirst('n,,n=,r=abc')).toThrow(/selected SCRAM-SHA-256-PLUS but sent no channel binding/);
    const plain = server({ channelBinding: CERT_HASH, mechanism: SCRAM_SHA_256 });
    expect(() => plain.handleClientFirst(`${P_HEADER}n=,r=abc`)).toThrow(/selected SCRAM-SHA-256 but requested/);
    expect(() => server({ mechanism: 'SCRAM-SHA-1' })).toThrow(ScramProtocolError);
  });

  it('a PLUS exchange without data, and empty data', () => {
    expect(() => server({ mechanism: SCRAM_SHA_256_PLUS }).handleClientFirst(`${P_HEADER}n=,r=abc`)).toThrow(
      /not supported/,
    );
    expect(() => server({ channelBinding: Buffer.alloc(0) })).toThrow(RangeError);
  });

  const finalWith = (c: string) => {
    const s = server({ channelBinding: CERT_HASH, nonce: () => 'srv' });
    s.handleClientFirst(`${P_HEADER}n=,r=abc`);
    return () => s.handleClientFinal(`c=${c},r=abcsrv,p=${Buffer.alloc(32).toString('base64')}`);
  };

  it.each([
    ['the n header', Buffer.from('n,,').toString('base64')],
    ['the n header and the data', Buffer.concat([Buffer.from('n,,'), CERT_HASH]).toString('base64')],
    ['the p header alone', Buffer.from(P_HEADER).subarray(0, 10).toString('base64')],
    ['not base64', '***'],
  ])('a client-final c= holding %s', (_name, c) => {
    expect(finalWith(c)).toThrow(ScramProtocolError);
  });

  it('accepts the right c= (the proof then decides)', () => {
    const c = Buffer.concat([Buffer.from(P_HEADER), CERT_HASH]).toString('base64');
    expect(finalWith(c)()).toEqual({ ok: false });
  });
});
