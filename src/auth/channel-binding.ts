/**
 * SCRAM channel binding of type tls-server-end-point (RFC 5929 §4): the hash of the server's
 * DER certificate, computed with the hash of the certificate's own signature algorithm, MD5 and
 * SHA-1 being replaced by SHA-256. Node's X509Certificate does not expose the signature
 * algorithm, so it is read from the DER with the small bounds-checked walker below.
 */
import { createHash } from 'node:crypto';

/** The SASL mechanism name of SCRAM-SHA-256 with channel binding. */
export const SCRAM_SHA_256_PLUS = 'SCRAM-SHA-256-PLUS';

/** The only channel binding type pgmux (like PostgreSQL) supports. */
export const TLS_SERVER_END_POINT = 'tls-server-end-point';

export type ChannelBindingErrorCode = 'CERTIFICATE_MALFORMED' | 'CHANNEL_BINDING_UNSUPPORTED';

/** The certificate cannot be parsed, or its signature algorithm gives no hash to bind with. */
export class ChannelBindingError extends Error {
  override readonly name = 'ChannelBindingError';

  constructor(
    readonly code: ChannelBindingErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The tls-server-end-point channel binding data of a certificate given as DER. */
export function tlsServerEndPoint(certificateDer: Buffer): Buffer {
  return createHash(certificateBindingHash(certificateDer)).update(certificateDer).digest();
}

/**
 * The node:crypto hash name tls-server-end-point uses for this certificate (RFC 5929 §4.1).
 * Throws ChannelBindingError for a malformed certificate or a signature algorithm with no
 * single hash (Ed25519, Ed448) or one not known here.
 */
export function certificateBindingHash(certificateDer: Buffer): string {
  const { oid, parameters } = readSignatureAlgorithm(certificateDer);
  if (oid === RSASSA_PSS) return upgradeWeak(pssHash(certificateDer, parameters));
  const hash = SIGNATURE_HASHES.get(oid);
  if (hash !== undefined) return upgradeWeak(hash);
  const name = NO_HASH_ALGORITHMS.get(oid);
  throw new ChannelBindingError(
    'CHANNEL_BINDING_UNSUPPORTED',
    name === undefined
      ? `certificate signature algorithm ${oid} is not supported for channel binding`
      : `certificate signature algorithm ${name} has no hash function, so tls-server-end-point channel binding is undefined for it`,
  );
}

// ---------------------------------------------------------------------------------------------
// Algorithm tables

const RSASSA_PSS = '1.2.840.113549.1.1.10';

/** Signature algorithm OID -> the single hash it uses. */
const SIGNATURE_HASHES: ReadonlyMap<string, string> = new Map([
  // PKCS #1 v1.5 (RFC 8017)
  ['1.2.840.113549.1.1.4', 'md5'], // md5WithRSAEncryption
  ['1.2.840.113549.1.1.5', 'sha1'], // sha1WithRSAEncryption
  ['1.2.840.113549.1.1.14', 'sha224'],
  ['1.2.840.113549.1.1.11', 'sha256'],
  ['1.2.840.113549.1.1.12', 'sha384'],
  ['1.2.840.113549.1.1.13', 'sha512'],
  // ECDSA (RFC 5758)
  ['1.2.840.10045.4.1', 'sha1'], // ecdsa-with-SHA1
  ['1.2.840.10045.4.3.1', 'sha224'],
  ['1.2.840.10045.4.3.2', 'sha256'],
  ['1.2.840.10045.4.3.3', 'sha384'],
  ['1.2.840.10045.4.3.4', 'sha512'],
  // DSA (RFC 3279, RFC 5758)
  ['1.2.840.10040.4.3', 'sha1'],
  ['2.16.840.1.101.3.4.3.1', 'sha224'],
  ['2.16.840.1.101.3.4.3.2', 'sha256'],
]);

/** Hash algorithm OID (as in RSASSA-PSS parameters) -> hash name. */
const HASH_ALGORITHMS: ReadonlyMap<string, string> = new Map([
  ['1.2.840.113549.2.5', 'md5'],
  ['1.3.14.3.2.26', 'sha1'],
  ['2.16.840.1.101.3.4.2.4', 'sha224'],
  ['2.16.840.1.101.3.4.2.1', 'sha256'],
  ['2.16.840.1.101.3.4.2.2', 'sha384'],
  ['2.16.840.1.101.3.4.2.3', 'sha512'],
]);

const NO_HASH_ALGORITHMS: ReadonlyMap<string, string> = new Map([
  ['1.3.101.112', 'Ed25519'],
  ['1.3.101.113', 'Ed448'],
]);

/** RFC 5929 §4.1: MD5 and SHA-1 are replaced by SHA-256. */
function upgradeWeak(hash: string): string {
  return hash === 'md5' || hash === 'sha1' ? 'sha256' : hash;
}

/**
 * RSASSA-PSS-params ::= SEQUENCE { hashAlgorithm [0] AlgorithmIdentifier DEFAULT sha1, ... }
 * (RFC 4055). Absent parameters or hash mean SHA-1, which becomes SHA-256 anyway; a hash not
 * in the table is refused rather than guessed.
 */
function pssHash(der: Buffer, parameters: Tlv | undefined): string {
  if (parameters === undefined || parameters.tag === TAG_NULL) return 'sha1';
  expectTag(parameters, TAG_SEQUENCE, 'RSASSA-PSS parameters');
  const first = parameters.start < parameters.end ? readTlv(der, parameters.start, parameters.end) : undefined;
  if (first === undefined || first.tag !== TAG_CONTEXT_0) return 'sha1';
  const hashAlgorithm = readTlv(der, first.start, first.end);
  expectTag(hashAlgorithm, TAG_SEQUENCE, 'RSASSA-PSS hashAlgorithm');
  const hashOid = readTlv(der, hashAlgorithm.start, hashAlgorithm.end);
  expectTag(hashOid, TAG_OID, 'RSASSA-PSS hash algorithm identifier');
  const oid = decodeOid(der.subarray(hashOid.start, hashOid.end));
  const hash = HASH_ALGORITHMS.get(oid);
  if (hash === undefined) {
    throw new ChannelBindingError(
      'CHANNEL_BINDING_UNSUPPORTED',
      `certificate RSASSA-PSS hash algorithm ${oid} is not supported for channel binding`,
    );
  }
  return hash;
}

// ---------------------------------------------------------------------------------------------
// DER walker: just enough to reach Certificate.signatureAlgorithm.

const TAG_SEQUENCE = 0x30;
const TAG_OID = 0x06;
const TAG_NULL = 0x05;
const TAG_CONTEXT_0 = 0xa0;

/** One TLV: its tag, and where its contents start and end in the buffer. */
interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly end: number;
}

function malformed(reason: string): ChannelBindingError {
  return new ChannelBindingError('CERTIFICATE_MALFORMED', `certificate is not valid DER: ${reason}`);
}

/** Reads the TLV at `offset`, which must lie entirely before `limit`. */
function readTlv(der: Buffer, offset: number, limit: number): Tlv {
  if (offset + 2 > limit) throw malformed(`truncated element at byte ${offset}`);
  const tag = der[offset];
  if ((tag & 0x1f) === 0x1f) throw malformed(`multi-byte tag at byte ${offset}`);
  const first = der[offset + 1];
  let pos = offset + 2;
  let length: number;
  if (first < 0x80) {
    length = first;
  } else {
    const count = first & 0x7f;
    // 0x80 is BER's indefinite length, never valid in DER; 4 length bytes cover any real certificate.
    if (count === 0 || count > 4) throw malformed(`unsupported length encoding at byte ${offset}`);
    if (pos + count > limit) throw malformed(`truncated length at byte ${offset}`);
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + der[pos + i];
    pos += count;
  }
  if (length > limit - pos) throw malformed(`element at byte ${offset} runs past its container`);
  return { tag, start: pos, end: pos + length };
}

function expectTag(tlv: Tlv, tag: number, what: string): void {
  if (tlv.tag !== tag) {
    throw malformed(`${what} has tag 0x${tlv.tag.toString(16)}, expected 0x${tag.toString(16)}`);
  }
}

/** Dotted form of an OBJECT IDENTIFIER's contents (X.690 §8.19). */
function decodeOid(bytes: Buffer): string {
  if (bytes.length === 0) throw malformed('empty object identifier');
  const arcs: bigint[] = [];
  let value = 0n;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (value === 0n && byte === 0x80) throw malformed('object identifier arc with a leading zero byte');
    value = (value << 7n) | BigInt(byte & 0x7f);
    if ((byte & 0x80) === 0) {
      arcs.push(value);
      value = 0n;
    } else if (i === bytes.length - 1) {
      throw malformed('truncated object identifier');
    }
  }
  const first = arcs[0];
  const root = first < 40n ? 0n : first < 80n ? 1n : 2n;
  return [root, first - root * 40n, ...arcs.slice(1)].join('.');
}

/**
 * Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm AlgorithmIdentifier,
 * signatureValue BIT STRING }; AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }.
 */
function readSignatureAlgorithm(der: Buffer): { oid: string; parameters: Tlv | undefined } {
  if (!Buffer.isBuffer(der)) throw malformed('expected a Buffer of DER');
  const certificate = readTlv(der, 0, der.length);
  expectTag(certificate, TAG_SEQUENCE, 'Certificate');
  if (certificate.end !== der.length) throw malformed('trailing bytes after the certificate');
  const tbs = readTlv(der, certificate.start, certificate.end);
  expectTag(tbs, TAG_SEQUENCE, 'tbsCertificate');
  const algorithm = readTlv(der, tbs.end, certificate.end);
  expectTag(algorithm, TAG_SEQUENCE, 'signatureAlgorithm');
  const oid = readTlv(der, algorithm.start, algorithm.end);
  expectTag(oid, TAG_OID, 'signatureAlgorithm.algorithm');
  const parameters = oid.end < algorithm.end ? readTlv(der, oid.end, algorithm.end) : undefined;
  return { oid: decodeOid(der.subarray(oid.start, oid.end)), parameters };
}
