/**
 * Which messages a client may send, and how long each may be, as PostgreSQL reads them. Checked on the declared
 * length, before anything is buffered (FrameReader's limit callback).
 */
import { FrontendCode } from '../protocol/codes.js';
import { ClientState } from './client-state.js';

/** Message types a logged-in client may send (Terminate aside, which the session handles first). */
export function isFrontendMessage(code: number): boolean {
  switch (code) {
    case FrontendCode.Query:
    case FrontendCode.Parse:
    case FrontendCode.Bind:
    case FrontendCode.Execute:
    case FrontendCode.Describe:
    case FrontendCode.Close:
    case FrontendCode.Sync:
    case FrontendCode.Flush:
    case FrontendCode.FunctionCall:
    case FrontendCode.CopyData:
    case FrontendCode.CopyDone:
    case FrontendCode.CopyFail:
      return true;
    default:
      return false;
  }
}

/**
 * The longest message a client may declare, as PostgreSQL reads them: after login, per type (postgres.c
 * SocketBackend: PQ_LARGE_MESSAGE_LIMIT or PQ_SMALL_MESSAGE_LIMIT; 0 for a type it refuses at its first byte),
 * during authentication only a password message (auth.c: PG_MAX_AUTH_TOKEN_LENGTH, PG_MAX_SASL_MESSAGE_LENGTH
 * for SASL). Without these a client could make pgmux wait for (and buffer) up to 1 GB where PostgreSQL closes
 * the connection, e.g. a Sync declaring 20000 bytes, an unknown type byte, or a password message before login.
 */
const LARGE_MESSAGE_LIMIT = 0x3ffffffe;
const SMALL_MESSAGE_LIMIT = 10000;
const AUTH_MESSAGE_LIMIT = 65535;
const SASL_MESSAGE_LIMIT = 1024;

function loggedInMessageLimit(code: number): number {
  switch (code) {
    case FrontendCode.Query:
    case FrontendCode.FunctionCall:
    case FrontendCode.Parse:
    case FrontendCode.Bind:
    case FrontendCode.CopyData:
      return LARGE_MESSAGE_LIMIT;
    case FrontendCode.Execute:
    case FrontendCode.Describe:
    case FrontendCode.Close:
    case FrontendCode.Sync:
    case FrontendCode.Flush:
    case FrontendCode.CopyDone:
    case FrontendCode.CopyFail:
    case FrontendCode.Terminate:
      return SMALL_MESSAGE_LIMIT;
    default:
      return 0;
  }
}

/**
 * The longest message of this type a client in `state` may send (0: none of this type). `login`: the login under way,
 * if any (its exchange is SASL, whose messages are capped lower).
 */
export function messageLimit(state: ClientState, code: number, login: { readonly sasl: boolean } | null): number {
  if (state === ClientState.Startup || state === ClientState.Authenticating) {
    if (code !== FrontendCode.PasswordMessage) return 0;
    return login?.sasl === true ? SASL_MESSAGE_LIMIT : AUTH_MESSAGE_LIMIT;
  }
  return loggedInMessageLimit(code);
}
