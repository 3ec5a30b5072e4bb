import { describe, expect, it } from 'vitest';
import { LoginError, loginResponseLength } from './floor-forwarder.js';

function msg(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const cstrings = (...s: string[]): Buffer => Buffer.from(s.map((x) => `${x}\0`).join(''), 'utf8');

// What Postgres sends after a trusted StartupMessage.
const LOGIN = Buffer.concat([
  msg('R', int32(0)),
  msg('S', cstrings('server_version', '15.18')),
  msg('S', cstrings('client_encoding', 'UTF8')),
  msg('K', Buffer.concat([int32(4242), int32(123456)])),
  msg('Z', Buffer.from('I')),
]);

describe('loginResponseLength', () => {
  it('finds the end of the login response only once all of it has arrived, at every split', () => {
    for (let cut = 0; cut < LOGIN.length; cut++) expect(loginResponseLength(LOGIN.subarray(0, cut))).toBe(0);
    expect(loginResponseLength(LOGIN)).toBe(LOGIN.length);
  });

  it('stops at ReadyForQuery: anything after it is not part of the login', () => {
    const more = Buffer.concat([LOGIN, msg('N', cstrings('Mhello', ''))]);
    expect(loginResponseLength(more)).toBe(LOGIN.length);
  });

  it('rejects a refused login with its message', () => {
    const refused = msg('E', Buffer.concat([cstrings('SFATAL', 'C28000', 'Mno pg_hba.conf entry for host'), Buffer.from([0])]));
    expect(() => loginResponseLength(refused)).toThrow(LoginError);
    expect(() => loginResponseLength(refused)).toThrow(/no pg_hba.conf entry/);
  });

  it('rejects a password request: the floor never has one to give', () => {
    const sasl = msg('R', Buffer.concat([int32(10), cstrings('SCRAM-SHA-256', '')]));
    expect(() => loginResponseLength(sasl)).toThrow(/trust line/);
    expect(() => loginResponseLength(msg('R', int32(3)))).toThrow(/trust line/);
  });

  it('rejects a nonsense length before waiting for it', () => {
    const bad = Buffer.from([0x53, 0, 0, 0, 2]);
    expect(() => loginResponseLength(bad)).toThrow(/length 2/);
  });
});
