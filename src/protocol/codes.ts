/**
 * PostgreSQL v3 message type bytes. `const enum` so uses compile to plain numbers on the hot path.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html
 */

/** Messages a client (frontend) sends. */
export const enum FrontendCode {
  Bind = 0x42, // 'B'
  Close = 0x43, // 'C'
  CopyData = 0x64, // 'd'
  CopyDone = 0x63, // 'c'
  CopyFail = 0x66, // 'f'
  Describe = 0x44, // 'D'
  Execute = 0x45, // 'E'
  Flush = 0x48, // 'H'
  FunctionCall = 0x46, // 'F'
  Parse = 0x50, // 'P'
  /** Also GSSResponse / SASLInitialResponse / SASLResponse: the meaning depends on the auth exchange. */
  PasswordMessage = 0x70, // 'p'
  Query = 0x51, // 'Q'
  Sync = 0x53, // 'S'
  Terminate = 0x58, // 'X'
}

/** Messages a server (backend) sends. */
export const enum BackendCode {
  Authentication = 0x52, // 'R'
  BackendKeyData = 0x4b, // 'K'
  BindComplete = 0x32, // '2'
  CloseComplete = 0x33, // '3'
  CommandComplete = 0x43, // 'C'
  CopyData = 0x64, // 'd'
  CopyDone = 0x63, // 'c'
  CopyInResponse = 0x47, // 'G'
  CopyOutResponse = 0x48, // 'H'
  CopyBothResponse = 0x57, // 'W'
  DataRow = 0x44, // 'D'
  EmptyQueryResponse = 0x49, // 'I'
  ErrorResponse = 0x45, // 'E'
  NegotiateProtocolVersion = 0x76, // 'v'
  NoData = 0x6e, // 'n'
  NoticeResponse = 0x4e, // 'N'
  NotificationResponse = 0x41, // 'A'
  ParameterDescription = 0x74, // 't'
  ParameterStatus = 0x53, // 'S'
  ParseComplete = 0x31, // '1'
  PortalSuspended = 0x73, // 's'
  ReadyForQuery = 0x5a, // 'Z'
  RowDescription = 0x54, // 'T'
  FunctionCallResponse = 0x56, // 'V'
}

/**
 * Type bytes a server may send after login (a table, so the check is one load). Anything else means the byte
 * stream is not PostgreSQL's any more: the connection is closed, never passed on.
 */
const BACKEND_AFTER_LOGIN = (() => {
  const table = new Uint8Array(256);
  for (const c of 'RKSZTDCEIGHWdcvnNAt123sV') table[c.charCodeAt(0)] = 1;
  return table;
})();

/** Whether `code` is a message type a server sends once logged in. */
export function isBackendCode(code: number): boolean {
  return BACKEND_AFTER_LOGIN[code] === 1;
}

/** Authentication request subtypes (the Int32 after 'R'). */
export const enum AuthRequest {
  Ok = 0,
  CleartextPassword = 3,
  MD5Password = 5,
  SASL = 10,
  SASLContinue = 11,
  SASLFinal = 12,
}

/** ReadyForQuery transaction status bytes. */
export const enum TxStatus {
  Idle = 0x49, // 'I'
  InTransaction = 0x54, // 'T'
  Failed = 0x45, // 'E'
}

/** Special protocol codes in the startup packet's version field. */
export const PROTOCOL_V3 = 196608; // 3 << 16
export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;

/** PostgreSQL's own cap (MAX_STARTUP_PACKET_LENGTH); anything longer is hostile or broken. */
export const MAX_STARTUP_PACKET_LENGTH = 10000;
/** PostgreSQL's largest message body is 1 GB; anything claiming more is garbage. */
export const MAX_MESSAGE_LENGTH = 0x40000000;
