/**
 * One client⇄server link: created when a server is lent to a client, dropped when it goes back.
 *
 * It owns everything that decides what the client is owed and when the server is done:
 * - the ledger of answers owed, one entry per message that earns one (see RequestLedger);
 * - the response path: each server answer is forwarded, swallowed (pgmux's injected messages),
 *   replaced (an error pgmux caused on purpose) or preceded by pgmux's own synthesized reply,
 *   in exactly the order PostgreSQL would have answered;
 * - COPY IN state, and the stale-plan replay of a segment;
 * - the release rule: `settled` is true when every owed answer has arrived and the last
 *   ReadyForQuery said idle.
 *
 * No sockets here: the link writes into two WriteBatches that its owners flush, so unit tests
 * drive it with hand-built messages.
 */
import { BackendCode, FrontendCode, TxStatus } from '../protocol/codes.js';
import { errorInClientText, errorNamingClientStatement } from '../protocol/error-rewrite.js';
import { readErrorFields } from '../protocol/fields.js';
import { checkRoutable, readParse, statementNameOf, stringsAreUtf8 } from '../protocol/frontend-messages.js';
import { HeldMessages, PendingChanges, type HeldAs } from './held-for-segment.js';
import { WriteBatch } from '../protocol/write-batch.js';
import type { SegmentReplay } from '../client/segment-replay.js';
import { NO_UNNAMED_STATEMENT, PendingChange, RESTORED_UNNAMED_MARK, UNNAMED_MARK, type StatementRouter, type StatementTarget } from '../client/statement-router.js';
import type { PreparedCache } from '../server/prepared-cache.js';
import { dropSyncsInCopy, endsWithReady, isExtended, Owed, Reply, RequestLedger, type OwnStatements } from './request-ledger.js';

/** 25P02: what the server answers every message in an aborted transaction block. */
const IN_FAILED_TRANSACTION = '25P02';
const DEALLOCATE_TAG = Buffer.from('DEALLOCATE');

/** Whether the CommandComplete at buf[start, end) is a DEALLOCATE's (tag `DEALLOCATE` or `DEALLOCATE ALL`). */
function isDeallocateTag(buf: Buffer, start: number, end: number): boolean {
  return end - start - 5 > DEALLOCATE_TAG.length && buf.compare(DEALLOCATE_TAG, 0, DEALLOCATE_TAG.length, start + 5, start + 5 + DEALLOCATE_TAG.length) === 0;
}

/**
 * Whether a client message sent during COPY IN breaks it: PostgreSQL takes only COPY data, CopyDone, CopyFail, Flush
 * and Sync there (copyfromparse.c CopyGetData); anything else is "unexpected message type 0x.. during COPY from
 * stdin", and the connection closes.
 */
export function breaksCopy(code: number): boolean {
  switch (code) {
    case FrontendCode.CopyData:
    case FrontendCode.CopyDone:
    case FrontendCode.CopyFail:
    case FrontendCode.Flush:
    case FrontendCode.Sync:
    case FrontendCode.Terminate: // the client session's business (it follows the requests owed)
      return false;
    default:
      return true;
  }
}

/** What one server message meant for the link's owners. */
export const enum LinkEvent {
  None = 0,
  /** A ReadyForQuery reached the client: a request completed (see `settled`). */
  Ready,
  /** The server answered something nobody asked for: nothing about it can be trusted. */
  Desync,
  /**
   * Transaction mode: COPY IN began, and the client had already sent a request in the middle of it (`copyBrokenBy`).
   * PostgreSQL reads that as part of the COPY, refuses it with 08P01 and closes the connection; the server may not
   * have got it as the client sent it (pgmux answers some itself, or sends a stand-in), so pgmux answers the client
   * as PostgreSQL does and closes it (and the server, mid-COPY, with it).
   */
  CopyBroken,
}

export interface LinkCounters {
  preparedHits: number;
  preparedMisses: number;
}

/**
 * PostgreSQL's error for a prepared statement whose result columns changed since it was planned
 * (raised at Bind). The routine name is checked too, since the message may be translated.
 */
function isStalePlan(fields: ReadonlyMap<string, string>): boolean {
  return fields.get('C') === '0A000' && (fields.get('R') === 'RevalidateCachedQuery' || fields.get('M') === 'cached plan must not change result type');
}

/** How pgmux's stand-ins fail on the server: no such column (refused statements), no such statement (26000), one command only (42601). */
const STAND_IN_FAILURES: ReadonlySet<string> = new Set(['42703', '26000', '42601']);

export class Attachment implements StatementTarget {
  readonly ledger = new RequestLedger();
  /** Bytes for the server, flushed by the client side after each chunk. */
  readonly toServer = new WriteBatch();
  /** Bytes for the client, flushed by the server side after each chunk (and after synthesized replies). */
  readonly toClient = new WriteBatch();
  /** Status byte of the last ReadyForQuery. */
  txStatus: number;
  /** Between the server's CopyInResponse and the client's CopyDone/CopyFail. */
  copyIn = false;
  /** The current or last COPY IN failed on the server (an ErrorResponse while in it): see Owed.SyncInCopy. */
  private copyFailed = false;
  /**
   * The last ReadyForQuery was taken as the answer to a Sync sent inside a COPY that failed (Owed.SyncInCopy), with a
   * plain Sync owed next. Two ReadyForQuery in a row cannot say which Sync each answers: if the server had read that
   * Sync inside the COPY (the bad line was split around it), the ReadyForQuery was the next Sync's, and the message
   * that comes next (not a ReadyForQuery) shows it (see handleServer).
   */
  private creditedSyncInCopy = false;
  /** The server is in COPY IN (from its CopyInResponse to its answer), whatever the client has sent since. */
  private serverInCopy = false;
  /** The client ended the current COPY IN with CopyFail. */
  private clientFailedCopy = false;
  /** The type of the client's message that broke a COPY IN (LinkEvent.CopyBroken); 0: none. */
  copyBrokenBy = 0;
  /**
   * Extended-protocol messages were sent and no Sync (or Query) since: the server is inside the
   * batch's implicit transaction even when every answer owed has arrived (Parse/Bind/Execute/Flush).
   */
  private unsynced = false;
  /** When the oldest request now owed was sent (performance.now() ms): query_timeout, query time. */
  requestSince = 0;
  /** A query_timeout cancel went out for the requests now owed. */
  cancelSent = false;
  /** Why the link desynchronised (for the log). */
  desyncReason = '';
  /** Something of the current segment reached the client (a stale-plan retry would then be visible). */
  private answered = false;
  /** A stale-plan error held back until its ReadyForQuery shows whether the segment can be retried. */
  private heldError: Buffer | null = null;
  /** PartlyOwn queries are owed: results must be counted, some are pgmux's. */
  private partlyOwnOwed = 0;
  /** Results of the current simple Query so far (each ends with CommandComplete or EmptyQueryResponse). */
  private results = 0;
  /** A DEALLOCATE of the Query now answered completed (then its failure does not undo it). */
  private deallocated = false;
  /** Syncs sent, and Syncs answered (or ignored by the server during COPY IN): entries between belong to segment `syncsDone`. */
  private syncsSent = 0;
  private syncsDone = 0;
  /**
   * Since the last ReadyForQuery with nothing after it: a Query or FunctionCall was sent, and the segment of the
   * first Execute sent (-1: none). Either may have begun a transaction block the status does not show yet.
   */
  private queryRanSinceReady = false;
  /** See ownRepliesDue. */
  private flushAsked = false;
  private firstExecuteSegment = -1;
  /** Statements changed by messages the server may yet skip (held-for-segment.ts); null when none. */
  private changes: PendingChanges | null = null;
  /** Client messages waiting for an earlier segment's answer; null when none. */
  private held: HeldMessages | null = null;

  constructor(
    readonly statements: PreparedCache,
    readonly counters: LinkCounters,
    /** Transaction mode: the client's statements, carried between servers (null: forward as sent). */
    private readonly router: StatementRouter | null,
    /** Transaction mode: the client's current segment, for the stale-plan retry. */
    private readonly replay: SegmentReplay | null,
    txStatus: number = TxStatus.Idle,
  ) {
    this.txStatus = txStatus;
  }

  /** A COPY IN is in progress, or may be: an Execute or Query is owed, with nothing but COPY data, Syncs and Flushes since. */
  get copyMayBeOpen(): boolean {
    return this.copyIn || this.ledger.copyOpen;
  }

  /** Every owed answer arrived and the server is idle: it may go back to the pool. */
  get settled(): boolean {
    return this.held === null && this.ledger.empty && !this.unsynced && !this.ledger.skippingToSync && !this.copyIn && this.heldError === null && this.txStatus === TxStatus.Idle;
  }

  /**
   * The client sent a Sync, Flush or Query since pgmux last wrote to it: replies pgmux made up may go out now.
   * PostgreSQL buffers its answers until one of those (protocol fuzzer seed 1415: a CloseComplete a client never
   * asked to be flushed, then a malformed message, reached the client through pgmux and not directly).
   */
  get ownRepliesDue(): boolean {
    return this.flushAsked;
  }

  /** What the link had for the client was written. */
  clientFlushed(): void {
    this.flushAsked = false;
  }

  /** The server's last ReadyForQuery said it is in a transaction block, or requests in flight may have begun one. */
  get mayBeInTransaction(): boolean {
    // A transaction begun in this segment is not aborted here: an error before this message would skip it.
    return this.txStatus !== TxStatus.Idle || this.queryRanSinceReady || (this.firstExecuteSegment >= 0 && this.firstExecuteSegment < this.syncsSent);
  }

  /** Requests outstanding (a running query, an unsynced batch, COPY): the server is not between requests. */
  get busy(): boolean {
    return this.held !== null || !this.ledger.empty || this.unsynced || this.ledger.skippingToSync || this.copyIn;
  }

  // ---- client → server ----

  fromClient(code: number, buf: Buffer, start: number, end: number): void {
    if (this.held !== null || (this.changes !== null && this.mustWait(code, buf, start, end))) {
      this.hold(code, buf, start, end, null);
      return;
    }
    if (this.admit(code, buf, start, end)) this.route(code, buf, start, end);
  }

  /** Whether this message names a statement changed in an earlier segment not answered yet (held-for-segment.ts). */
  private mustWait(code: number, buf: Buffer, start: number, end: number): boolean {
    // (`code` is not always buf[start]: COPY data comes in pieces.)
    if (code !== FrontendCode.Parse && code !== FrontendCode.Bind && code !== FrontendCode.Describe && code !== FrontendCode.Close) return false;
    const changes = this.changes as PendingChanges;
    if (changes.allAnswered(this.syncsDone)) {
      this.changes = null;
      return false;
    }
    if (this.ledger.skippingToSync) return false; // discarded anyway
    const name = statementNameOf(buf, start, end);
    if (name === null) return false;
    this.waitingFor = changes.waitFor(code, name, this.syncsDone, this.syncsSent);
    return this.waitingFor >= 0;
  }

  /** Set by mustWait: the segment the message waits for. */
  private waitingFor = -1;

  private hold(code: number, buf: Buffer, start: number, end: number, as: HeldAs | null): void {
    // Refused now, as the client's (08P01), not later inside the server's handler when it is routed.
    if (as === null && code !== FrontendCode.CopyData) checkRoutable(buf, start, end);
    if (this.held === null) this.held = new HeldMessages(this.waitingFor);
    if (!this.held.push(code, buf, start, end, as)) {
      this.changes = null; // past the bound: nothing waits any more
      this.releaseHeld();
    }
  }

  /** Route what was held, in order (a message may be held again, with the rest after it). */
  private releaseHeld(): void {
    const held = this.held;
    if (held === null) return;
    this.held = null;
    for (let i = 0; i < held.bufs.length; i++) {
      const buf = held.bufs[i];
      const as = held.as[i];
      if (as === null) this.fromClient(held.codes[i], buf, held.starts[i], held.ends[i]);
      else if (as.own !== null) this.sendExtendedQuery(buf, as.own);
      else this.injectFailure(as.failure, buf, as.error);
    }
  }

  changeSent(name: string, waits: PendingChange): void {
    if (this.changes === null) this.changes = new PendingChanges();
    this.changes.note(name, this.syncsSent, waits);
  }

  /** Bookkeeping for every client message; false when the server would discard it. */
  private admit(code: number, buf: Buffer, start: number, end: number): boolean {
    if (this.ledger.empty && !this.copyIn) {
      this.requestSince = performance.now();
      this.cancelSent = false;
      // Nothing in flight can be skipped any more: what was recorded to undo it is done with.
      this.router?.settle();
      this.statements.settle();
      this.syncsSent = this.syncsDone = 0;
      // An Execute answered without a Sync yet belongs to the segment now counted as 0.
      if (this.firstExecuteSegment > 0) this.firstExecuteSegment = 0;
      this.changes = null;
    }
    if (this.router !== null) this.ledger.mark = this.router.journalMark;
    if (this.ledger.skippingToSync) {
      // The server discards everything up to Sync after an error: so does pgmux.
      if (code === FrontendCode.Query) this.router?.queryDiscarded();
      if (code !== FrontendCode.Sync) return false;
      this.ledger.skippingToSync = false;
    }
    // A request sent after an Execute or Query not yet answered: if that one starts COPY IN, the server reads this
    // as part of the COPY (and refuses it there).
    if (breaksCopy(code)) this.ledger.breakCopy(code);
    this.replay?.record(code, buf, start, end);
    return true;
  }

  private route(code: number, buf: Buffer, start: number, end: number): void {
    const ledger = this.ledger;
    if (code === FrontendCode.Sync || code === FrontendCode.Flush || code === FrontendCode.Query || code === FrontendCode.FunctionCall) this.flushAsked = true;
    switch (code) {
      case FrontendCode.Parse:
      case FrontendCode.Bind:
      case FrontendCode.Describe:
      case FrontendCode.Close:
        this.unsynced = true;
        // Names the server refuses (not UTF-8: 22021) change nothing there: forwarded as they are, unrouted.
        if (this.router !== null && stringsAreUtf8(buf, start, end)) {
          this.router.send(code, buf, start, end, this);
          return;
        }
        ledger.push(
          code === FrontendCode.Parse
            ? Owed.Parse
            : code === FrontendCode.Bind
              ? Owed.Bind
              : code === FrontendCode.Close
                ? Owed.Close
                : buf[start + 5] === 0x53 // 'S'
                  ? Owed.DescribeStatement
                  : Owed.DescribePortal,
        );
        break;
      case FrontendCode.Execute:
        this.unsynced = true;
        if (this.firstExecuteSegment < 0) this.firstExecuteSegment = this.syncsSent;
        ledger.push(Owed.Execute);
        if (this.router?.resetBound === true) {
          // It may run a RESET: the client's startup values follow it (StatementRouter.executed).
          this.toServer.add(buf, start, end);
          this.router.executed(buf, start, end, this);
          return;
        }
        break;
      case FrontendCode.Sync:
        if (this.copyIn) {
          // Ignored by the server during COPY IN, answered if it fails before reading this (Owed.SyncInCopy).
          ledger.push(Owed.SyncInCopy);
        } else {
          this.unsynced = false;
          ledger.push(Owed.Sync);
          this.syncsSent++;
        }
        if (end - start !== 5) ledger.lastHadBody();
        break;
      case FrontendCode.Query:
        // A simple Query ends the implicit transaction of an unsynced batch too.
        this.unsynced = false;
        // Text that is not UTF-8 is refused (22021) before the Query does anything, unnamed statement included.
        if (this.router === null || stringsAreUtf8(buf, start, end)) this.queryDropsUnnamed();
        this.queryRanSinceReady = true;
        ledger.push(Owed.Query);
        break;
      case FrontendCode.FunctionCall:
        this.queryRanSinceReady = true;
        ledger.push(Owed.FunctionCall);
        break;
      case FrontendCode.CopyDone:
      case FrontendCode.CopyFail:
        if (code === FrontendCode.CopyFail && (this.copyIn || ledger.copyOpen)) this.clientFailedCopy = true;
        this.copyIn = false;
        ledger.copyEnded();
        break;
      case FrontendCode.Flush:
        // One with a body is ignored during COPY IN and refused otherwise (the client session lets it through only
        // where a COPY IN may be in progress: see copyMayBeOpen).
        if (end - start !== 5 && !this.copyIn) ledger.push(Owed.FlushWithBody);
        break;
      default:
        // CopyData: earns nothing of its own.
        if (code === FrontendCode.CopyData) ledger.copyDataSent();
        break;
    }
    this.toServer.add(buf, start, end);
  }

  /** Segment of the messages routed now (Syncs sent before them on this link): see PreparedCache.uncertain. */
  get segment(): number {
    return this.syncsSent;
  }

  /** A simple Query destroys the unnamed statement, the client's and the server's (and may DEALLOCATE). */
  private queryDropsUnnamed(): void {
    this.statements.unnamedOwner = null;
    this.router?.querySent();
  }

  /** Send the client's Query extended with statements of pgmux's own, whose results the client does not get. */
  sendExtendedQuery(message: Buffer, own: OwnStatements): void {
    // Behind held messages it waits its turn (a Query destroys the unnamed statement they may need).
    if (this.held !== null) return this.hold(FrontendCode.Query, message, 0, message.length, { own, failure: Owed.Query, error: message });
    if (!this.admit(FrontendCode.Query, message, 0, message.length)) return;
    this.unsynced = false;
    this.queryRanSinceReady = true;
    this.flushAsked = true;
    this.queryDropsUnnamed();
    this.toServer.addBuffer(message);
    this.ledger.push(Owed.Query, Reply.PartlyOwn, null, null, own);
    this.partlyOwnOwed++;
  }

  /** Whether the result now arriving belongs to a statement pgmux added to the client's query. */
  private get ownResult(): boolean {
    return this.partlyOwnOwed > 0 && this.ledger.next === Owed.Query && this.ledger.nextReply === Reply.PartlyOwn && this.ledger.nextOwnsResult(this.results);
  }

  /** Send a message that fails on the server on purpose; the client gets `error` in its place. */
  injectFailure(kind: Owed, message: Buffer, error: Buffer): void {
    // The router injects while routing (nothing is held then); the session's refusals wait behind held messages.
    if (this.held !== null) return this.hold(message[0], message, 0, message.length, { own: null, failure: kind, error });
    if (!this.admit(message[0], message, 0, message.length)) return;
    if (kind === Owed.Query) {
      this.flushAsked = true;
      this.unsynced = false;
      this.statements.unnamedOwner = null;
      this.router?.queryRefused();
    } else {
      this.unsynced = true;
      // A failing unnamed Parse drops the server's unnamed statement (the client's is not gone).
      if (kind === Owed.Parse && message[5] === 0) this.statements.unnamedOwner = null;
    }
    this.toServer.addBuffer(message);
    this.ledger.push(kind, Reply.ReplaceError, error);
  }

  synthesize(kind: Owed, reply: Buffer): void {
    this.ledger.push(kind, Reply.Synthesize, reply);
    this.emitSynthesized();
  }

  /** pgmux's own replies whose turn has come (nothing owed before them). */
  private emitSynthesized(): void {
    const ledger = this.ledger;
    while (ledger.next !== undefined && ledger.nextReply === Reply.Synthesize) {
      // A synthesized ParseComplete stands for a statement the server already had: not an
      // answer a stale-plan retry would repeat (the retry skips named Parses).
      if (ledger.next !== Owed.Parse) this.answered = true;
      this.toClient.addBuffer(ledger.nextPayload as Buffer);
      ledger.shift();
    }
  }

  // ---- server → client ----

  fromServer(code: number, buf: Buffer, start: number, end: number): LinkEvent {
    const event = this.handleServer(code, buf, start, end);
    // The segment held messages waited for is answered: they go now (flushed with the server's chunk).
    if (this.held !== null && this.syncsDone > this.held.segment && event !== LinkEvent.Desync) this.releaseHeld();
    return event;
  }

  private handleServer(code: number, buf: Buffer, start: number, end: number): LinkEvent {
    const ledger = this.ledger;
    // (A notification or parameter report may come between two ReadyForQuery: no evidence either way.)
    if (this.creditedSyncInCopy && code !== BackendCode.NotificationResponse && code !== BackendCode.ParameterStatus) {
      this.creditedSyncInCopy = false;
      // Something other than the owed Sync's answer: the ReadyForQuery before was that Sync's (the server had ignored
      // the one inside the COPY). The Sync is done; this message is the next request's (protocol fuzzer seed 342262391).
      if (ledger.next === Owed.Sync && code !== BackendCode.ReadyForQuery && !(code === BackendCode.ErrorResponse && ledger.nextHadBody)) {
        this.syncsDone++;
        ledger.shift();
      }
    }
    // A ReadyForQuery after a failed COPY answers a Sync sent during it; anything else means the server read
    // those Syncs inside the COPY.
    // (After a COPY that failed on its data, the server reads such a Sync as any Sync: one with a body earns an error,
    // then its ReadyForQuery: protocol fuzzer seed 1372. Any other error is the next request's: seed 1428.)
    if (ledger.next === Owed.SyncInCopy && !(this.copyFailed && (code === BackendCode.ReadyForQuery || (code === BackendCode.ErrorResponse && ledger.nextHadBody)))) {
      dropSyncsInCopy(ledger);
    }
    switch (code) {
      case BackendCode.ParseComplete:
        return this.complete(Owed.Parse, buf, start, end);
      case BackendCode.BindComplete:
        return this.complete(Owed.Bind, buf, start, end);
      case BackendCode.CloseComplete:
        return this.complete(Owed.Close, buf, start, end);
      case BackendCode.ParameterDescription:
        if (ledger.next !== Owed.DescribeStatement) return this.desync(code);
        this.forward(buf, start, end);
        return LinkEvent.None;
      case BackendCode.NoData:
        return this.complete(ledger.next === Owed.DescribePortal ? Owed.DescribePortal : Owed.DescribeStatement, buf, start, end);
      case BackendCode.RowDescription:
        if (ledger.next === Owed.DescribeStatement || ledger.next === Owed.DescribePortal) return this.complete(ledger.next, buf, start, end);
        if (!this.ownResult) this.forward(buf, start, end); // a result of a simple Query
        return LinkEvent.None;
      case BackendCode.CommandComplete:
      case BackendCode.EmptyQueryResponse:
      case BackendCode.PortalSuspended:
        if (ledger.next === Owed.Execute) return this.complete(Owed.Execute, buf, start, end);
        // One statement of a simple Query done.
        if (code === BackendCode.CommandComplete && this.router !== null && isDeallocateTag(buf, start, end)) this.deallocated = true;
        if (!this.ownResult) this.forward(buf, start, end);
        this.results++;
        return LinkEvent.None;
      case BackendCode.DataRow:
        if (!this.ownResult) this.forward(buf, start, end);
        return LinkEvent.None;
      case BackendCode.CopyInResponse:
        if (ledger.next !== Owed.Query && ledger.next !== Owed.Execute) return this.desync(code);
        // The server read what was sent after the message that started COPY as part of it: the Syncs right after it
        // earn nothing; a request sent before CopyDone/CopyFail broke the COPY. Still in COPY IN (for what the client
        // sends next) only if the client has not ended or broken it yet.
        this.copyBrokenBy = ledger.nextCopyBrokenBy;
        this.copyIn = ledger.nextCopyOpen;
        this.copyFailed = false;
        this.serverInCopy = true;
        this.syncsDone += ledger.enterCopy();
        this.forward(buf, start, end);
        // In session mode the server got the request as the client sent it: it answers as PostgreSQL does (the
        // request's entry stays owed, for a COPY that failed on its data before the request was read). In
        // transaction mode the router may have answered it itself or sent another message: see LinkEvent.CopyBroken.
        return this.copyBrokenBy === 0 || this.router === null ? LinkEvent.None : LinkEvent.CopyBroken;
      case BackendCode.ErrorResponse:
        return this.onError(buf, start, end);
      case BackendCode.ReadyForQuery:
        return this.onReady(buf, start, end);
      default:
        // Rows, COPY data, notices, notifications, ParameterStatus, FunctionCallResponse.
        this.forward(buf, start, end);
        return LinkEvent.None;
    }
  }

  /** A piece of a row or COPY message too large to hold whole. */
  streamPiece(buf: Buffer, start: number, end: number): void {
    if (!this.ownResult) this.forward(buf, start, end);
  }

  private forward(buf: Buffer, start: number, end: number): void {
    this.answered = true;
    this.toClient.add(buf, start, end);
  }

  /** The answer that completes the next entry, which must be of `kind`. */
  private complete(kind: Owed, buf: Buffer, start: number, end: number): LinkEvent {
    const ledger = this.ledger;
    if (ledger.next !== kind) return this.desync(buf[start]);
    const reply = ledger.nextReply;
    if (kind === Owed.Parse) {
      const name = ledger.nextName;
      if (name !== null) this.statements.confirm(name, this.syncsDone);
    }
    ledger.shift();
    this.serverInCopy = false;
    if (!this.copyFailed) dropSyncsInCopy(ledger);
    if (reply === Reply.Forward) this.forward(buf, start, end);
    this.emitSynthesized();
    return LinkEvent.None;
  }

  private onError(buf: Buffer, start: number, end: number): LinkEvent {
    const ledger = this.ledger;
    const next = ledger.next;
    // A COPY the client's CopyFail ended read everything sent before it inside the COPY (57014 "COPY from stdin
    // failed"); one that failed on its data left what came after the bad line unread (see Owed.SyncInCopy).
    if (this.serverInCopy) this.copyFailed = !(this.clientFailedCopy && readErrorFields(buf, start, end).get('C') === '57014');
    this.serverInCopy = false;
    this.clientFailedCopy = false;
    this.copyIn = false;
    let replacement = next !== undefined && ledger.nextReply === Reply.ReplaceError ? ledger.nextPayload : null;
    // Only the stand-in's own failure is replaced (no such column, or no such statement): one for another
    // cause (25P02 in an aborted transaction) is what PostgreSQL would have said too.
    if (replacement !== null && !STAND_IN_FAILURES.has(readErrorFields(buf, start, end).get('C') ?? '')) replacement = null;
    // In a query pgmux lengthened, the error position is counted in the client's text; a statement pgmux
    // prepared under an alias is named as the client named it.
    if (replacement === null) replacement = this.inClientTerms(next, buf, start, end);
    if (next === Owed.Query && this.router !== null && !this.deallocated) {
      // Nothing after the failing statement ran: a DEALLOCATE the Query was to do did not happen.
      this.router.queryFailed(ledger.nextMark, ledger.markAfterNext);
    }
    if (next === Owed.Parse && ledger.nextReply === Reply.Swallow && ledger.nextClientName === null && ledger.nextPayload !== null) {
      // pgmux's Parse of a statement the client Binds, refused in an aborted transaction: PostgreSQL's Bind
      // would have failed first on its parameter count.
      if ((readErrorFields(buf, start, end).get('C') ?? '') === IN_FAILED_TRANSACTION) replacement = ledger.nextPayload;
    }
    if (next === Owed.Parse && ledger.nextClientName === RESTORED_UNNAMED_MARK && this.router !== null) {
      if (!this.router.hasUnnamedAt(ledger.nextMark)) {
        // The client's own Parse of it failed first: directly, the message that needed it finds no unnamed
        // statement (a check PostgreSQL makes before the aborted-transaction one).
        replacement = NO_UNNAMED_STATEMENT;
      } else if (ledger.nextPayload !== null && (readErrorFields(buf, start, end).get('C') ?? '') === IN_FAILED_TRANSACTION) {
        // Refused in an aborted transaction: the Bind it was for would have failed on its parameter count first.
        replacement = ledger.nextPayload;
      }
    }
    if (next !== undefined && isExtended(next)) {
      // The server skips everything up to the next Sync: nothing before it will be answered, and what the
      // client's messages from the failing one on changed is undone (a failed unnamed Parse drops the client's
      // unnamed statement first, as PostgreSQL's does).
      const from = ledger.nextMark;
      const failedUnnamedParse = next === Owed.Parse && ledger.nextClientName === UNNAMED_MARK;
      const synced = ledger.dropToSync(this.notRun, this.copyFailed);
      if (this.router !== null) {
        this.router.rollback(from, synced ? ledger.nextMark : Number.POSITIVE_INFINITY, failedUnnamedParse);
      }
      if (this.replay !== null && !this.answered && ledger.length === 1 && this.replay.replayable && isStalePlan(readErrorFields(buf, start, end))) {
        this.heldError = buf.subarray(start, end);
        return LinkEvent.None;
      }
    }
    // Otherwise a Query, FunctionCall or Sync failed: its ReadyForQuery follows. (With nothing
    // owed it is the server's FATAL before it closes: the client is told too.)
    if (replacement !== null) {
      this.answered = true;
      this.toClient.addBuffer(replacement);
    } else {
      this.forward(buf, start, end);
    }
    return LinkEvent.None;
  }

  private inClientTerms(next: Owed | undefined, buf: Buffer, start: number, end: number): Buffer | null {
    const ledger = this.ledger;
    if (next === Owed.Query && ledger.nextReply === Reply.PartlyOwn) return errorInClientText(buf, start, end, ledger.nextInsertions);
    if (next === Owed.Bind || next === Owed.DescribeStatement) {
      const serverName = ledger.nextName;
      const clientName = ledger.nextClientName;
      if (serverName !== null && clientName !== null && serverName !== clientName) return errorNamingClientStatement(buf, start, end, serverName, clientName);
    }
    return null;
  }

  /** A message naming a statement that the server skipped (or that failed): undo what pgmux recorded for the server. */
  private readonly notRun = (kind: Owed, reply: Reply, serverName: string | null, clientName: string | null, payload: Buffer | null): void => {
    if (kind === Owed.Parse) {
      // The server does not have the statement (unless a later segment prepares it again).
      if (serverName !== null) this.statements.notPrepared(serverName, this.syncsDone);
      if (clientName === UNNAMED_MARK || clientName === RESTORED_UNNAMED_MARK) this.statements.unnamedOwner = null; // whose it is now is not known
    } else if (kind === Owed.Close && reply === Reply.Swallow && serverName !== null && payload !== null) {
      // An eviction Close that did not run: the statement is still there.
      this.statements.restore(serverName, payload.toString('latin1'));
    }
  };

  private onReady(buf: Buffer, start: number, end: number): LinkEvent {
    const ledger = this.ledger;
    const next = ledger.next;
    if (next === undefined || !endsWithReady(next)) return this.desync(BackendCode.ReadyForQuery);
    if (ledger.nextReply === Reply.PartlyOwn) this.partlyOwnOwed--;
    if (next === Owed.Sync) this.syncsDone++;
    ledger.shift();
    // A Sync sent during a COPY that failed before the server read it: it ended the batch sent before it.
    if (next === Owed.SyncInCopy) {
      this.unsynced = ledger.unsyncedTail;
      this.creditedSyncInCopy = ledger.next === Owed.Sync;
    }
    this.serverInCopy = false;
    if (!this.copyFailed) dropSyncsInCopy(ledger);
    this.txStatus = buf[start + 5];
    // What ran before it is summed up in the status now, unless more was sent after it (still owed).
    if (this.ledger.empty) {
      this.queryRanSinceReady = false;
      this.firstExecuteSegment = -1;
    }
    this.copyIn = false;
    this.results = 0;
    this.deallocated = false;
    const held = this.heldError;
    if (held !== null) {
      this.heldError = null;
      // In an implicit transaction (idle now) nothing of the segment took effect: prepare its
      // statements afresh and send it again; neither the error nor this ReadyForQuery is seen.
      if (this.txStatus === TxStatus.Idle && this.retryStalePlan()) return LinkEvent.None;
      this.toClient.add(held, 0, held.length);
    }
    this.toClient.add(buf, start, end);
    this.answered = false;
    this.emitSynthesized();
    if (ledger.empty) this.replay?.reset();
    return LinkEvent.Ready;
  }

  /**
   * Take the last owed ReadyForQuery without passing it on (statement mode refuses the
   * transaction it leaves open: the client is closed instead of being told).
   */
  withholdReady(status: number): void {
    if (this.ledger.length === 1 && this.ledger.next !== undefined && endsWithReady(this.ledger.next)) this.ledger.shift();
    this.txStatus = status;
  }

  /** Re-prepare the segment's statements and send it again, once. */
  private retryStalePlan(): boolean {
    const replay = this.replay as SegmentReplay;
    const router = this.router as StatementRouter;
    replay.retried = true;
    for (const name of replay.boundStatements()) router.invalidate(name, this);
    replay.forEach((buf, start, end) => {
      // A named Parse answered already (by the statement the server had, which is what went
      // stale) is not sent again: the Bind after it prepares the statement afresh. One the server
      // skipped after the error was forgotten, and goes again.
      if (buf[start] === FrontendCode.Parse && buf[start + 5] !== 0 && router.has(readParse(buf, start, end).name)) return;
      this.route(buf[start], buf, start, end);
    });
    return true;
  }

  /** Forget everything owed (the link is being dropped). */
  clear(): void {
    this.ledger.clear();
    this.toServer.clear();
    this.toClient.clear();
    this.heldError = null;
    this.copyIn = false;
    this.serverInCopy = false;
    this.copyFailed = false;
    this.clientFailedCopy = false;
    this.creditedSyncInCopy = false;
    this.unsynced = false;
    this.partlyOwnOwed = 0;
    this.results = 0;
    this.deallocated = false;
    this.held = null;
    this.changes = null;
  }

  private desync(code: number): LinkEvent {
    this.desyncReason = `got '${String.fromCharCode(code)}' while owing ${this.ledger.next === undefined ? 'nothing' : `message kind ${this.ledger.next}`}`;
    return LinkEvent.Desync;
  }
}
