import { describe, expect, it } from 'vitest';

import { isMd5Secret, md5Response, md5Secret, verifyMd5Response } from './md5.js';

const SECRET = 'md54d45974e13472b5a0be3533de4666414'; // 'md5' + md5('password' + 'user')
const SALT = Buffer.from([1, 2, 3, 4]);
const RESPONSE = 'md5a3576f1ae039b8996bc4fc2720f9c71a'; // computed independently with Python

describe('md5 auth', () => {
  it('builds the stored secret like PostgreSQL', () => {
    expect(md5Secret('user', 'password')).toBe(SECRET);
  });

  it('answers a salt from the password or from the secret alike', () => {
    expect(md5Response('user', 'password', SALT)).toBe(RESPONSE);
    expect(md5Response('user', SECRET, SALT)).toBe(RESPONSE);
  });

  it('verifies responses', () => {
    expect(verifyMd5Response('user', SECRET, SALT, RESPONSE)).toBe(true);
    expect(verifyMd5Response('user', 'password', SALT, RESPONSE)).toBe(true);
    expect(verifyMd5Response('user', 'wrong', SALT, RESPONSE)).toBe(false);
    expect(verifyMd5Response('other', 'password', SALT, RESPONSE)).toBe(false);
    expect(verifyMd5Response('user', SECRET, Buffer.from([4, 3, 2, 1]), RESPONSE)).toBe(false);
    expect(verifyMd5Response('user', SECRET, SALT, 'md5')).toBe(false);
    expect(verifyMd5Response('user', SECRET, SALT, '')).toBe(false);
  });

  it('recognises secrets by PostgreSQL rule (lowercase hex)', () => {
    expect(isMd5Secret(SECRET)).toBe(true);
    expect(isMd5Secret(SECRET.toUpperCase())).toBe(false);
    expect(isMd5Secret(SECRET.slice(0, -1))).toBe(false);
  });
});
