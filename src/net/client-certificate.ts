/**
 * Checks a TLS client's certificate chain against client_tls_ca_file. A TLSSocket made outside
 * a tls.Server never gets `authorized` set, so the chain is verified here with public APIs:
 * each certificate must be within its validity period and signed by the next one (certificates
 * the client sent, then our CAs), ending at a configured CA.
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';

const MAX_DEPTH = 8;

/** Parses every certificate of a PEM bundle. */
export function parseCaBundle(pem: Buffer): X509Certificate[] {
  const blocks = pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

/** Null when the peer's certificate chains to one of `cas`; otherwise the reason it does not. */
export function verifyClientCertificate(socket: TLSSocket, cas: readonly X509Certificate[]): string | null {
  const leaf = socket.getPeerX509Certificate();
  if (leaf === undefined) return 'no client certificate was presented';
  const presented: X509Certificate[] = [];
  let legacy = socket.getPeerCertificate(true) as { issuerCertificate?: unknown; raw?: Buffer };
  for (let i = 0; i < MAX_DEPTH && legacy?.issuerCertificate && legacy.issuerCertificate !== legacy; i++) {
    legacy = legacy.issuerCertificate as { issuerCertificate?: unknown; raw?: Buffer };
    if (legacy.raw) presented.push(new X509Certificate(legacy.raw));
  }
  const now = Date.now();
  let current = leaf;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    if (now < Date.parse(current.validFrom) || now > Date.parse(current.validTo)) return `certificate "${current.subject}" is outside its validity period`;
    const anchor = cas.find((ca) => current.checkIssued(ca) && current.verify(ca.publicKey));
    if (anchor !== undefined) return null;
    const next = presented.find((c) => c !== current && c.ca && current.checkIssued(c) && current.verify(c.publicKey));
    if (next === undefined) return 'the client certificate is not trusted: no CA in client_tls_ca_file signed it';
    current = next;
  }
  return 'the certificate chain is too long';
}
