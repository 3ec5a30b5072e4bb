/**
 * Messages pgmux writes to its clients in the server role. pg-protocol only writes frontend
 * messages, so this side is ours. Each function returns a fresh Buffer that may be handed to a
 * socket; constant messages are built once.
 */
import { AuthRequest, BackendCode, TxStatus } from './codes.js';

/** Fields of an ErrorResponse / NoticeResponse, by their protocol letter. */
export interface ErrorFields {
  severity: 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'DEBUG' | 'INFO' | 'LOG';
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

function message(code: number, bodyLength: number): Buffer {
  const buf = Buffer.allocUnsafe(5 + bodyLength);
  buf[0] = code;
  buf.writeInt32BE(4 + bodyLength, 1);
  return buf;
}

function authentication(kind: AuthRequest, extra: Buffer | null = null): Buffer {
  const extraLength = extra === null ? 0 : extra.length;
  const buf = message(BackendCode.Authentication, 4 + extraLength);
  buf.writeInt32BE(kind, 5);
  if (extra !== null) extra.copy(buf, 9);
  return buf;
}

export const AUTHENTICATION_OK = authentication(AuthRequest.Ok);
export const AUTHENTICATION_CLEARTEXT = authentication(AuthRequest.CleartextPassword);
/** The single byte that answers SSLRequest / GSSENCRequest with "not supported". */
export const SSL_NOT_SUPPORTED = Buffer.from('N');
/** The single byte that answers SSLRequest with "go ahead with the TLS handshake". */
export const SSL_SUPPORTED = Buffer.from('S');

function bodyless(code: number): Buffer {
  return message(code, 0);
}

export const PARSE_COMPLETE = bodyless(BackendCode.ParseComplete);
export const CLOSE_COMPLETE = bodyless(BackendCode.CloseComplete);

export function commandComplete(tag: string): Buffer {
  const n = Buffer.byteLength(tag);
  const buf = message(BackendCode.CommandComplete, n + 1);
  buf.write(tag, 5);
  buf[5 + n] = 0;
  return buf;
}

export function authenticationMD5(salt: Buffer): Buffer {
  return authentication(AuthRequest.MD5Password, salt);
}

export function authenticationSASL(mechanisms: readonly string[]): Buffer {
  return authentication(AuthRequest.SASL, Buffer.from(mechanisms.map((m) => `${m}\0`).join('') + '\0'));
}

export function authenticationSASLContinue(data: string): Buffer {
  return authentication(AuthRequest.SASLContinue, Buffer.from(data));
}

export function authenticationSASLFinal(data: string): Buffer {
  return authentication(AuthRequest.SASLFinal, Buffer.from(data));
}

export function parameterStatus(name: string, value: string): Buffer {
  const n = Buffer.byteLength(name);
  const v = Buffer.byteLength(value);
  const buf = message(BackendCode.ParameterStatus, n + v + 2);
  buf.write(name, 5);
  buf[5 + n] = 0;
  buf.write(value, 6 + n);
  buf[6 + n + v] = 0;
  return buf;
}

export function backendKeyData(processId: number, secretKey: number): Buffer {
  const buf = message(BackendCode.BackendKeyData, 8);
  buf.writeInt32BE(processId | 0, 5);
  buf.writeInt32BE(secretKey | 0, 9);
  return buf;
}

const READY = {
  [TxStatus.Idle]: readyForQueryUncached(TxStatus.Idle),
  [TxStatus.InTransaction]: readyForQueryUncached(TxStatus.InTransaction),
  [TxStatus.Failed]: readyForQueryUncached(TxStatus.Failed),
};

function readyForQueryUncached(status: TxStatus): Buffer {
  const buf = message(BackendCode.ReadyForQuery, 1);
  buf[5] = status;
  return buf;
}

/** ReadyForQuery; shared constant buffers (never mutated after construction). */
export function readyForQuery(status: TxStatus = TxStatus.Idle): Buffer {
  return READY[status];
}

export function errorResponse(fields: ErrorFields): Buffer {
  return noticeLike(BackendCode.ErrorResponse, fields);
}

/**
 * An error in the version-2 protocol's format ('E', then "SEVERITY:  message\n" and a zero, no length), which is
 * how PostgreSQL answers a startup packet asking for a protocol below 3.0 (libpq reads it as a pre-3.0 server's
 * error).
 */
export function errorResponseV2(f: ErrorFields): Buffer {
  return Buffer.from(`E${f.severity}:  ${f.message}\n\0`, 'utf8');
}

export function noticeResponse(fields: ErrorFields): Buffer {
  return noticeLike(BackendCode.NoticeResponse, fields);
}

function noticeLike(code: BackendCode, f: ErrorFields): Buffer {
  const parts: Array<[string, string]> = [
    ['S', f.severity],
    ['V', f.severity],
    ['C', f.code],
    ['M', f.message],
  ];
  if (f.detail !== undefined) parts.push(['D', f.detail]);
  if (f.hint !== undefined) parts.push(['H', f.hint]);
  let length = 1;
  for (const [, value] of parts) length += 2 + Buffer.byteLength(value);
  const buf = message(code, length);
  let pos = 5;
  for (const [type, value] of parts) {
    buf[pos++] = type.charCodeAt(0);
    pos += buf.write(value, pos);
    buf[pos++] = 0;
  }
  buf[pos] = 0;
  return buf;
}

/** An ErrorResponse/NoticeResponse from decoded fields (all of them, in order). */
export function encodeErrorFields(code: number, fields: ReadonlyMap<string, string>): Buffer {
  let length = 1;
  for (const [, value] of fields) length += 2 + Buffer.byteLength(value);
  const buf = message(code, length);
  let pos = 5;
  for (const [type, value] of fields) {
    buf[pos++] = type.charCodeAt(0);
    pos += buf.write(value, pos);
    buf[pos++] = 0;
  }
  buf[pos] = 0;
  return buf;
}

/**
 * NegotiateProtocolVersion: the newest 3.x minor version we speak and the options we did not recognise. The first
 * field is the whole version code (3 << 16 | minor), as PostgreSQL sends it (PG_PROTOCOL_LATEST, then from 18 on
 * FrontendProtocol), although the protocol docs call it the minor version: libpq 18 reads it as the version code
 * and refuses a bare minor ("server requested downgrade to pre-3.0 protocol version"), as pgmux once sent.
 */
export function negotiateProtocolVersion(minorSupported: number, unrecognised: readonly string[]): Buffer {
  let length = 8;
  for (const o of unrecognised) length += Buffer.byteLength(o) + 1;
  const buf = message(BackendCode.NegotiateProtocolVersion, length);
  buf.writeInt32BE(0x0003_0000 | minorSupported, 5);
  buf.writeInt32BE(unrecognised.length, 9);
  let pos = 13;
  for (const o of unrecognised) {
    pos += buf.write(o, pos);
    buf[pos++] = 0;
  }
  return buf;
}
