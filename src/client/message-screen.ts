/**
 * What pgmux does itself with a message from a logged-in pool client before the transaction-mode intercepts and the
 * server see it: it drops what the server would ignore or discard, and refuses what PostgreSQL refuses, without
 * involving (and so without losing) a server connection. Decided in this order.
 */
import { breaksCopy, type Attachment } from '../link/attachment.js';
import { FrontendCode } from '../protocol/codes.js';
import { ClientState } from './client-state.js';
import { isFrontendMessage } from './message-limits.js';

export const enum Screened {
  /** On to the intercepts and the server. */
  Pass,
  /** Dropped: the server would ignore or discard it. */
  Drop,
  /** The Sync that ends pgmux's own skip after it failed an unsynced batch: pgmux answers ReadyForQuery. */
  EndSkip,
  /** Not a message type a client may send: refused (08P01), as PostgreSQL refuses it. */
  UnknownType,
  /** A request in the middle of COPY IN (transaction mode): refused and closed, as PostgreSQL does. */
  BreaksCopy,
  /** A Flush with a body and nothing in flight: refused (08P01). */
  FlushWithBody,
}

/**
 * `length`: the whole message's; `link`: the attached server's while the client is active, else null;
 * `transactionMode`: the client's statements are routed (the server may not get a request as it was sent);
 * `skipping`: pgmux skips to the next Sync after failing an unsynced batch itself.
 */
export function screenMessage(code: number, length: number, state: ClientState, link: Attachment | null, transactionMode: boolean, skipping: boolean): Screened {
  if (!isFrontendMessage(code)) return Screened.UnknownType;
  if (skipping) return code === FrontendCode.Sync ? Screened.EndSkip : Screened.Drop;
  if (state === ClientState.Idle && (code === FrontendCode.CopyData || code === FrontendCode.CopyDone || code === FrontendCode.CopyFail)) {
    return Screened.Drop; // COPY messages after a COPY ended (e.g. failed): the server would ignore them too
  }
  // What the server discards (it skips to Sync after an error) is discarded here too, before it has any effect.
  if (code !== FrontendCode.Sync && link?.ledger.skippingToSync === true) return Screened.Drop;
  // PostgreSQL reads a request sent in the middle of COPY IN as part of the COPY: refused there, and it closes. (In
  // transaction mode, where the server may not get the request as sent; session mode lets the server answer it.)
  if (transactionMode && link?.copyIn === true && breaksCopy(code)) return Screened.BreaksCopy;
  // A Flush with a body fails on the server (an ERROR, then it skips to Sync) though a Flush earns no answer:
  // the link would then take the error for the next request's and lose step with the server (a desync that
  // cost the client its server connection). Refused here instead, as the protocol violation it is.
  // Where a COPY IN may be in progress it goes on: PostgreSQL ignores it there (the link keeps an entry for the error
  // it earns should no COPY begin). That is known when it reaches the server (ServerForwarding.sendToServer); with
  // nothing in flight it cannot be.
  if (code === FrontendCode.Flush && length !== 5 && state === ClientState.Idle) return Screened.FlushWithBody;
  return Screened.Pass;
}
