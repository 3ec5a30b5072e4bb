import { Parser } from 'pg-protocol/dist/parser.js';
import { describe, expect, it } from 'vitest';

import {
  AUTHENTICATION_CLEARTEXT,
  AUTHENTICATION_OK,
  SSL_NOT_SUPPORTED,
  authenticationMD5,
  authenticationSASL,
  authenticationSASLContinue,
  authenticationSASLFinal,
  backendKeyData,
  errorResponse,
  negotiateProtocolVersion,
  noticeResponse,
  parameterStatus,
  readyForQuery,
  type ErrorFields,
} from './backend-messages.js';
import { TxStatus } from './codes.js';
import { readErrorFields, readParameterStatus } from './fields.js';

/** Checks the header of a single message and returns its body. */
function body(buf: Buffer, code: string): Buffer {
  expect(String.fromCharCode(buf[0])).toBe(code);
  expect(buf.readInt32BE(1)).toBe(buf.length - 1);
  return buf.subarray(5);
}

/** Decodes with node-postgres's own parser, as a real client would. */
function decode(buf: Buffer): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  new Parser().parse(buf, (msg) => out.push(msg as unknown as Record<string, unknown>));
  return out;
}

const FULL_ERROR: ErrorFields = {
  severity: 'FATAL',
  code: '28P01',
  message: 'password authentication failed for user "zoë"',
  detail: 'Connection matched pgmux rule 3: «md5»',
  hint: 'Check the password — 密码',
};

describe('backend messages', () => {
  it('every writer declares the length it has', () => {
    const all: Array<[string, Buffer]> = [
      ['R', AUTHENTICATION_OK],
      ['R', AUTHENTICATION_CLEARTEXT],
      ['R', authenticationMD5(Buffer.from([1, 2, 3, 4]))],
      ['R', authenticationSASL(['SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS'])],
      ['R', authenticationSASL([])],
      ['R', authenticationSASLContinue('r=abc,s=c2FsdA==,i=4096')],
      ['R', authenticationSASLFinal('v=c2lnbmF0dXJl')],
      ['S', parameterStatus('application_name', 'café ☕')],
      ['S', parameterStatus('', '')],
      ['K', backendKeyData(1, 2)],
      ['Z', readyForQuery()],
      ['Z', readyForQuery(TxStatus.InTransaction)],
      ['E', errorResponse(FULL_ERROR)],
      ['E', errorResponse({ severity: 'ERROR', code: '08P01', message: '' })],
      ['N', noticeResponse({ severity: 'NOTICE', code: '00000', message: 'ünïcødé 🐘' })],
      ['v', negotiateProtocolVersion(0, ['_pq_.a', '_pq_.é'])],
      ['v', negotiateProtocolVersion(2, [])],
    ];
    for (const [code, buf] of all) body(buf, code);
    // Back to back they are one well-formed stream for a real client parser.
    expect(decode(Buffer.concat(all.filter(([code]) => code !== 'v').map(([, b]) => b)))).toHaveLength(all.length - 2);
  });

  it('answers SSLRequest with a single N', () => {
    expect(SSL_NOT_SUPPORTED).toEqual(Buffer.from([0x4e]));
  });

  it('writes AuthenticationOk and AuthenticationCleartextPassword', () => {
    expect(AUTHENTICATION_OK).toEqual(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0]));
    expect(AUTHENTICATION_CLEARTEXT).toEqual(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3]));
    expect(decode(AUTHENTICATION_OK)[0].name).toBe('authenticationOk');
    expect(decode(AUTHENTICATION_CLEARTEXT)[0].name).toBe('authenticationCleartextPassword');
  });

  it('writes AuthenticationMD5Password with its salt', () => {
    const salt = Buffer.from([0xde, 0xad, 0xbe, 0xef]);
    const b = body(authenticationMD5(salt), 'R');
    expect(b.readInt32BE(0)).toBe(5);
    expect(b.subarray(4)).toEqual(salt);
    const [msg] = decode(authenticationMD5(salt));
    expect(msg.name).toBe('authenticationMD5Password');
    expect(msg.salt).toEqual(salt);
  });

  it('lists SASL mechanisms NUL-separated with a final NUL', () => {
    const b = body(authenticationSASL(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']), 'R');
    expect(b.readInt32BE(0)).toBe(10);
    expect(b.subarray(4).toString('latin1')).toBe('SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0');
    const [msg] = decode(authenticationSASL(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']));
    expect(msg.name).toBe('authenticationSASL');
    expect(msg.mechanisms).toEqual(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']);

    const one = body(authenticationSASL(['SCRAM-SHA-256']), 'R');
    expect(one.subarray(4).toString('latin1')).toBe('SCRAM-SHA-256\0\0');
  });

  it('writes SASLContinue and SASLFinal data without a terminator', () => {
    const data = 'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096';
    const cont = body(authenticationSASLContinue(data), 'R');
    expect(cont.readInt32BE(0)).toBe(11);
    expect(cont.subarray(4).toString()).toBe(data);
    const fin = body(authenticationSASLFinal('v=rmF9pqV8S7suAoZWja4dJRkFsKQ='), 'R');
    expect(fin.readInt32BE(0)).toBe(12);
    expect(fin.subarray(4).toString()).toBe('v=rmF9pqV8S7suAoZWja4dJRkFsKQ=');
    expect(decode(authenticationSASLContinue(data))[0]).toMatchObject({ name: 'authenticationSASLContinue', data });
  });

  it('round-trips ParameterStatus through readParameterStatus, UTF-8 included', () => {
    for (const [name, value] of [
      ['server_version', '17.2'],
      ['application_name', 'café ☕ 日本語'],
      ['TimeZone', ''],
      ['ключ', 'значение'],
    ]) {
      const buf = parameterStatus(name, value);
      body(buf, 'S');
      expect(buf[buf.length - 1]).toBe(0);
      expect(readParameterStatus(buf, 0, buf.length)).toEqual([name, value]);
      // In the middle of a larger buffer too.
      const framed = Buffer.concat([Buffer.from('xyz'), buf, Buffer.from('\0\0')]);
      expect(readParameterStatus(framed, 3, 3 + buf.length)).toEqual([name, value]);
      expect(decode(buf)[0]).toMatchObject({ name: 'parameterStatus', parameterName: name, parameterValue: value });
    }
  });

  it('writes BackendKeyData, keys with the high bit set included', () => {
    const b = body(backendKeyData(12345, 0xdeadbeef), 'K');
    expect(b.length).toBe(8);
    expect(b.readInt32BE(0)).toBe(12345);
    expect(b.readUInt32BE(4)).toBe(0xdeadbeef);
    expect(decode(backendKeyData(-1, 0x7fffffff))[0]).toMatchObject({ processID: -1, secretKey: 0x7fffffff });
  });

  it('puts the transaction status byte in ReadyForQuery', () => {
    expect(readyForQuery()).toEqual(Buffer.from('Z\0\0\0\x05I', 'latin1'));
    expect(readyForQuery(TxStatus.Idle)).toEqual(Buffer.from('Z\0\0\0\x05I', 'latin1'));
    expect(readyForQuery(TxStatus.InTransaction)).toEqual(Buffer.from('Z\0\0\0\x05T', 'latin1'));
    expect(readyForQuery(TxStatus.Failed)).toEqual(Buffer.from('Z\0\0\0\x05E', 'latin1'));
    expect(decode(readyForQuery(TxStatus.Failed))[0]).toMatchObject({ name: 'readyForQuery', status: 'E' });
  });

  it('round-trips ErrorResponse fields with detail and hint through readErrorFields', () => {
    const buf = errorResponse(FULL_ERROR);
    body(buf, 'E');
    expect(buf[buf.length - 1]).toBe(0);
    expect(buf[buf.length - 2]).toBe(0); // end of the last field, then the terminator
    const fields = readErrorFields(buf, 0, buf.length);
    expect(Object.fromEntries(fields)).toEqual({
      S: 'FATAL',
      V: 'FATAL',
      C: '28P01',
      M: FULL_ERROR.message,
      D: FULL_ERROR.detail,
      H: FULL_ERROR.hint,
    });
    expect(decode(buf)[0]).toMatchObject({
      name: 'error',
      severity: 'FATAL',
      code: '28P01',
      message: FULL_ERROR.message,
      detail: FULL_ERROR.detail,
      hint: FULL_ERROR.hint,
    });
  });

  it('leaves out detail and hint when absent', () => {
    const buf = errorResponse({ severity: 'ERROR', code: '53300', message: 'too many clients' });
    expect(Object.fromEntries(readErrorFields(buf, 0, buf.length))).toEqual({
      S: 'ERROR',
      V: 'ERROR',
      C: '53300',
      M: 'too many clients',
    });
    // Four fields: "S" "V" "C" "M", each letter + value + NUL, then the terminator.
    expect(buf.length).toBe(5 + (2 + 5) * 2 + (2 + 5) + (2 + 16) + 1);
  });

  it('writes NoticeResponse with the N code and the same fields', () => {
    const fields: ErrorFields = { severity: 'WARNING', code: '01000', message: 'größer als 😀', hint: 'ヒント' };
    const buf = noticeResponse(fields);
    body(buf, 'N');
    expect(Object.fromEntries(readErrorFields(buf, 0, buf.length))).toEqual({
      S: 'WARNING',
      V: 'WARNING',
      C: '01000',
      M: 'größer als 😀',
      H: 'ヒント',
    });
    expect(decode(buf)[0]).toMatchObject({ name: 'notice', message: 'größer als 😀', hint: 'ヒント' });
  });

  it('reads error fields in place inside a larger buffer', () => {
    const msg = errorResponse(FULL_ERROR);
    const framed = Buffer.concat([readyForQuery(), msg, readyForQuery()]);
    const fields = readErrorFields(framed, 6, 6 + msg.length);
    expect(fields.get('M')).toBe(FULL_ERROR.message);
    expect(fields.get('H')).toBe(FULL_ERROR.hint);
  });

  it('lays out NegotiateProtocolVersion: version code 3.minor (as PostgreSQL and libpq 18 read it), count, NUL-terminated names', () => {
    const b = body(negotiateProtocolVersion(2, ['_pq_.compression', '_pq_.ünï']), 'v');
    expect(b.readInt32BE(0)).toBe(0x0003_0002);
    expect(b.readInt32BE(4)).toBe(2);
    expect(b.subarray(8).toString('utf8')).toBe('_pq_.compression\0_pq_.ünï\0');

    // 3.0 is 196608, not 0: a bare 0 made libpq 18 refuse the login ("downgrade to pre-3.0 protocol version").
    const none = negotiateProtocolVersion(0, []);
    expect(none).toEqual(Buffer.from([0x76, 0, 0, 0, 12, 0, 3, 0, 0, 0, 0, 0, 0]));
  });

  it('returns fresh buffers from the builders', () => {
    expect(parameterStatus('a', 'b')).not.toBe(parameterStatus('a', 'b'));
    expect(errorResponse(FULL_ERROR)).not.toBe(errorResponse(FULL_ERROR));
    expect(authenticationSASL(['SCRAM-SHA-256'])).not.toBe(authenticationSASL(['SCRAM-SHA-256']));
  });
});
