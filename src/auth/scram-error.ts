/**
 * A SCRAM exchange broke the protocol: a malformed or out-of-order message, a nonce or
 * channel-binding mismatch, an unsupported feature, or (as a client) a server that could
 * not prove it knows our secret. A plain wrong password is not an error: the server
 * session reports it as `{ ok: false }` so the caller can answer 28P01.
 */
export class ScramProtocolError extends Error {
  override readonly name = 'ScramProtocolError';
  readonly code = 'SCRAM_PROTOCOL_ERROR';
  /** protocol_violation, what PostgreSQL sends for a malformed SASL exchange. */
  readonly sqlState = '08P01';
}
