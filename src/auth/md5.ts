import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * PostgreSQL's md5 scheme. The stored secret is 'md5' + hex(md5(password + user)); on
 * the wire the client answers a 4-byte salt with 'md5' + hex(md5(hex-of-secret + salt)).
 */

const MD5_SECRET = /^md5[0-9a-f]{32}$/;

function md5Hex(...parts: Buffer[]): string {
  const hash = createHash('md5');
  for (const part of parts) hash.update(part);
  return hash.digest('hex');
}

/**
 * Whether a stored string is an md5 secret. Same rule as PostgreSQL (lowercase hex only),
 * so a plaintext password that happens to look like one is treated as one, as there.
 */
export function isMd5Secret(s: string): boolean {
  return MD5_SECRET.test(s);
}

export function md5Secret(user: string, password: string): string {
  return `md5${md5Hex(Buffer.from(password, 'utf8'), Buffer.from(user, 'utf8'))}`;
}

/** The PasswordMessage a client sends for `salt`, from a plaintext password or an md5 secret. */
export function md5Response(user: string, secretOrPassword: string, salt: Buffer): string {
  const secret = isMd5Secret(secretOrPassword) ? secretOrPassword : md5Secret(user, secretOrPassword);
  return `md5${md5Hex(Buffer.from(secret.slice(3), 'latin1'), salt)}`;
}

/**
 * Checks a client's md5 response in constant time. `storedSecretOrPassword` is an md5
 * secret or a plaintext password; a SCRAM verifier cannot answer md5 and must not be
 * passed here (it would be taken as a plaintext password).
 */
export function verifyMd5Response(
  user: string,
  storedSecretOrPassword: string,
  salt: Buffer,
  response: string,
): boolean {
  const expected = Buffer.from(md5Response(user, storedSecretOrPassword, salt), 'latin1');
  const actual = Buffer.from(response, 'utf8');
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
