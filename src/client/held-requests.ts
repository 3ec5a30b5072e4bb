/**
 * Requests held for a server that never came (no server in time, cancelled while queued): pgmux answers each as
 * PostgreSQL answers a failed one, so the client's protocol stays in step without a server.
 */
import type { PgmuxError } from '../errors.js';
import { errorResponse, readyForQuery } from '../protocol/backend-messages.js';
import { FrontendCode, TxStatus } from '../protocol/codes.js';
import { WriteBatch } from '../protocol/write-batch.js';

export interface HeldRequestsReply {
  readonly reply: WriteBatch;
  /** An extended-protocol batch failed without its Sync yet: skip what the client sends up to it, as PostgreSQL does. */
  readonly unsynced: boolean;
}

/** A Query gets the error and ReadyForQuery; an extended-protocol batch gets one error, then its Sync answers ReadyForQuery. */
export function failedRequestsReply(held: readonly Buffer[], error: PgmuxError): HeldRequestsReply {
  const reply = new WriteBatch();
  const wire = errorResponse(error.toFields());
  let batchFailed = false;
  for (const buf of held) {
    switch (buf[0]) {
      case FrontendCode.Query:
      case FrontendCode.FunctionCall:
        if (batchFailed) break;
        reply.addBuffer(wire);
        reply.addBuffer(readyForQuery(TxStatus.Idle));
        break;
      case FrontendCode.Sync:
        if (!batchFailed) reply.addBuffer(wire);
        reply.addBuffer(readyForQuery(TxStatus.Idle));
        batchFailed = false;
        break;
      case FrontendCode.Parse:
      case FrontendCode.Bind:
      case FrontendCode.Describe:
      case FrontendCode.Execute:
      case FrontendCode.Close:
        if (!batchFailed) reply.addBuffer(wire);
        batchFailed = true;
        break;
      default:
        break;
    }
  }
  return { reply, unsynced: batchFailed };
}
