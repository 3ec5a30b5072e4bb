import { isMd5Secret } from './md5.js';
import { parseScramVerifier, type ScramSecret } from './scram-secret.js';

/**
 * What a configured or looked-up password is, by PostgreSQL's rules: a parseable SCRAM
 * verifier, else an md5 secret ('md5' + 32 lowercase hex), else plaintext. A malformed
 * verifier is therefore plaintext, as in PostgreSQL.
 */
export type StoredPassword =
  | { kind: 'scram'; secret: ScramSecret }
  | { kind: 'md5'; hash: string } // the full 'md5…' string, ready for md5Response()
  | { kind: 'plain'; password: string };

export function classifyStoredPassword(s: string): StoredPassword {
  const secret = parseScramVerifier(s);
  if (secret !== null) return { kind: 'scram', secret };
  if (isMd5Secret(s)) return { kind: 'md5', hash: s };
  return { kind: 'plain', password: s };
}
