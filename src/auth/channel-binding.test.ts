import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { certificateBindingHash, ChannelBindingError, tlsServerEndPoint } from './channel-binding.js';

// Certificates made with the openssl CLI; the expected binding is computed by openssl too.

let dir = '';
const openssl = (args: string[], input?: Buffer): Buffer =>
  execFileSync('openssl', args, { cwd: dir, input, stdio: ['pipe', 'pipe', 'pipe'] });

/** A self-signed certificate with the given key options and digest; returns its DER. */
function selfSigned(name: string, keyArgs: string[], extra: string[] = []): Buffer {
  openssl(['req', '-x509', ...keyArgs, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`, ...extra]);
  return openssl(['x509', '-in', `${name}.crt`, '-outform', 'DER']);
}

/** What openssl says the hash of the DER is: the reference value. */
const opensslDigest = (der: Buffer, hash: string): Buffer => openssl(['dgst', `-${hash}`, '-binary'], der);

const certs: Record<string, Buffer> = {};

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgmux-cb-'));
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'rsa.key']);
  const rsa = ['-key', 'rsa.key'];
  certs.rsaSha256 = selfSigned('rsa-sha256', rsa, ['-sha256']);
  certs.rsaSha512 = selfSigned('rsa-sha512', rsa, ['-sha512']);
  certs.rsaSha1 = selfSigned('rsa-sha1', rsa, ['-sha1']);
  certs.pssSha384 = selfSigned('pss-sha384', rsa, ['-sha384', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32']);
  certs.ecSha384 = selfSigned('ec-sha384', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'], ['-sha384']);
  certs.ecSha256 = selfSigned('ec-sha256', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], ['-sha256']);
  certs.ed25519 = selfSigned('ed25519', ['-newkey', 'ed25519']);
  certs.ed448 = selfSigned('ed448', ['-newkey', 'ed448']);
});

afterAll(() => {
  if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
});

describe('tlsServerEndPoint', () => {
  it.each([
    ['RSA with SHA-256', 'rsaSha256', 'sha256'],
    ['RSA with SHA-512', 'rsaSha512', 'sha512'],
    ['RSA with SHA-1 (upgraded to SHA-256)', 'rsaSha1', 'sha256'],
    ['RSA-PSS with SHA-384 (hash from the parameters)', 'pssSha384', 'sha384'],
    ['ECDSA P-384 with SHA-384', 'ecSha384', 'sha384'],
    ['ECDSA P-256 with SHA-256', 'ecSha256', 'sha256'],
  ])('%s matches openssl dgst', (_name, key, hash) => {
    const der = certs[key];
    expect(certificateBindingHash(der)).toBe(hash);
    expect(tlsServerEndPoint(der).equals(opensslDigest(der, hash))).toBe(true);
  });

  it.each([
    ['Ed25519', 'ed25519'],
    ['Ed448', 'ed448'],
  ])('refuses %s, whose signature has no hash', (name, key) => {
    expect(() => tlsServerEndPoint(certs[key])).toThrow(
      expect.objectContaining({ code: 'CHANNEL_BINDING_UNSUPPORTED', message: expect.stringContaining(name) }),
    );
  });

  it('agrees with the certificate a TLS peer sees', async () => {
    const pem = fs.readFileSync(path.join(dir, 'ec-sha256.crt'));
    const server = tls.createServer({ cert: pem, key: fs.readFileSync(path.join(dir, 'ec-sha256.key')) }, (s) => s.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    try {
      const peer = await new Promise<X509Certificate>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port, ca: pem, servername: 'ec-sha256', checkServerIdentity: () => undefined });
        socket.once('secureConnect', () => {
          const cert = socket.getPeerX509Certificate();
          socket.destroy();
          if (cert === undefined) reject(new Error('no peer certificate'));
          else resolve(cert);
        });
        socket.once('error', reject);
      });
      expect(tlsServerEndPoint(peer.raw).equals(tlsServerEndPoint(new X509Certificate(pem).raw))).toBe(true);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('signature algorithms by OID', () => {
  const SHA256_RSA = Buffer.from('06092a864886f70d01010b', 'hex'); // 1.2.840.113549.1.1.11

  /** The RSA certificate with its outer signatureAlgorithm OID's last arc replaced. */
  function withRsaArc(arc: number): Buffer {
    const der = Buffer.from(certs.rsaSha256);
    const at = der.lastIndexOf(SHA256_RSA);
    expect(at).toBeGreaterThan(der.indexOf(SHA256_RSA)); // the outer one, not the tbsCertificate copy
    der[at + SHA256_RSA.length - 1] = arc;
    return der;
  }

  it.each([
    [4, 'sha256'], // md5WithRSAEncryption: MD5 is replaced by SHA-256
    [5, 'sha256'], // sha1WithRSAEncryption
    [10, 'sha256'], // RSASSA-PSS with NULL parameters: default SHA-1, replaced
    [12, 'sha384'],
    [13, 'sha512'],
    [14, 'sha224'],
  ])('1.2.840.113549.1.1.%i -> %s', (arc, hash) => {
    expect(certificateBindingHash(withRsaArc(arc))).toBe(hash);
  });

  it('names an unknown algorithm by its OID', () => {
    expect(() => certificateBindingHash(withRsaArc(15))).toThrow(/1\.2\.840\.113549\.1\.1\.15 is not supported/);
  });
});

describe('malformed DER', () => {
  const good = (): Buffer => Buffer.from(certs.ecSha256);
  const cases: Array<[string, () => Buffer]> = [
    ['empty', () => Buffer.alloc(0)],
    ['one byte', () => Buffer.from([0x30])],
    ['PEM instead of DER', () => fs.readFileSync(path.join(dir, 'ec-sha256.crt'))],
    ['truncated', () => good().subarray(0, 200)],
    ['trailing bytes', () => Buffer.concat([good(), Buffer.from([0])])],
    ['indefinite length', () => Buffer.from([0x30, 0x80, 0x30, 0x00, 0x00, 0x00])],
    ['length of 5 bytes', () => Buffer.from([0x30, 0x85, 0, 0, 0, 0, 3, 1, 2, 3])],
    ['huge declared length', () => Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x30, 0x00])],
    ['not a sequence', () => Buffer.from([0x04, 0x02, 0x30, 0x00])],
    ['no signatureAlgorithm', () => Buffer.from([0x30, 0x02, 0x30, 0x00])],
    ['algorithm not an OID', () => Buffer.from([0x30, 0x08, 0x30, 0x00, 0x30, 0x04, 0x04, 0x02, 0x2a, 0x03])],
    ['empty OID', () => Buffer.from([0x30, 0x06, 0x30, 0x00, 0x30, 0x02, 0x06, 0x00])],
    ['truncated OID arc', () => Buffer.from([0x30, 0x07, 0x30, 0x00, 0x30, 0x03, 0x06, 0x01, 0x86])],
    ['multi-byte tag', () => Buffer.from([0x30, 0x04, 0x1f, 0x81, 0x01, 0x00])],
  ];
  it.each(cases)('%s', (_name, make) => {
    expect(() => tlsServerEndPoint(make())).toThrow(ChannelBindingError);
    expect(() => tlsServerEndPoint(make())).toThrow(expect.objectContaining({ code: 'CERTIFICATE_MALFORMED' }));
  });

  it('survives every truncation and single-byte corruption without a non-ChannelBindingError', () => {
    const der = good();
    for (let n = 0; n < der.length; n++) {
      expect(() => tlsServerEndPoint(der.subarray(0, n))).toThrow(ChannelBindingError);
    }
    for (let i = 0; i < Math.min(der.length, 64); i++) {
      const bad = Buffer.from(der);
      bad[i] ^= 0xff;
      try {
        tlsServerEndPoint(bad);
      } catch (err) {
        expect(err).toBeInstanceOf(ChannelBindingError);
      }
    }
  });
});
