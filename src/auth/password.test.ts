import { describe, expect, it } from 'vitest';

import { classifyStoredPassword } from './password.js';

const VERIFIER =
  'SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=';

describe('classifyStoredPassword', () => {
  it('recognises a SCRAM verifier', () => {
    const stored = classifyStoredPassword(VERIFIER);
    expect(stored.kind).toBe('scram');
    if (stored.kind === 'scram') expect(stored.secret.iterations).toBe(4096);
  });

  it('recognises an md5 secret', () => {
    const hash = 'md54d45974e13472b5a0be3533de4666414';
    expect(classifyStoredPassword(hash)).toEqual({ kind: 'md5', hash });
  });

  it.each(['secret', '', 'md5notreallyhex', 'SCRAM-SHA-256$broken'])('treats %j as plaintext', (s) => {
    expect(classifyStoredPassword(s)).toEqual({ kind: 'plain', password: s });
  });
});
