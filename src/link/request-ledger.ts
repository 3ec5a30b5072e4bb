/**
 * The answers a server still owes the client it serves, one entry per message sent that earns
 * one, in the order the server will answer them. Nothing here is a flag that can get stuck: a
 * server is provably done with a client when the ledger is empty and its last ReadyForQuery said
 * idle.
 *
 * Parallel arrays used as a queue (a head index, storage kept between batches): no allocation
 * per message.
 */
import type { Insertion } from '../protocol/error-rewrite.js';

/** What a client message earns from the server. */
export const enum Owed {
  /** ParseComplete. */
  Parse = 1,
  /** BindComplete. */
  Bind,
  /** ParameterDescription, then RowDescription or NoData. */
  DescribeStatement,
  /** RowDescription or NoData. */
  DescribePortal,
  /** Rows or COPY, then CommandComplete, EmptyQueryResponse or PortalSuspended. */
  Execute,
  /** CloseComplete. */
  Close,
  /** ReadyForQuery. */
  Sync,
  /** Any number of results, then ReadyForQuery. */
  Query,
  /** FunctionCallResponse, then ReadyForQuery. */
  FunctionCall,
  /**
   * A Flush with a body, sent where a COPY IN may be in progress: ignored by the server during COPY IN (the entry is
   * dropped when COPY begins), otherwise refused with an ErrorResponse (08P01 "invalid message format").
   */
  FlushWithBody,
  /**
   * A Sync sent during COPY IN: the server ignores it if it reads it while the COPY runs, and answers it with
   * ReadyForQuery if it reads it after the COPY failed on data sent before it (which one pgmux cannot know). Dropped
   * when the COPY succeeds, or when another answer comes first; see Attachment.copyFailed (and creditedSyncInCopy,
   * for two ReadyForQuery in a row).
   */
  SyncInCopy,
}

/** How the answer reaches the client. */
export const enum Reply {
  /** The server's answer is passed on. */
  Forward = 0,
  /** pgmux's own message (an injected Parse or Close): its answer is dropped. */
  Swallow,
  /** Nothing was sent: pgmux's message (the payload) is the answer, emitted when its turn comes. */
  Synthesize,
  /** The server is made to fail this message: the client gets pgmux's error (the payload) instead. */
  ReplaceError,
  /**
   * A Query pgmux extended with statements of its own: the results listed for the entry (one
   * per statement, counted from 0) are swallowed; everything else passes.
   */
  PartlyOwn,
}

/** Whether a message of this kind belongs to an extended-protocol batch (an error skips the rest up to Sync). */
export function isExtended(kind: Owed): boolean {
  return kind <= Owed.Close || kind === Owed.FlushWithBody;
}

/** Whether this kind's answer ends with ReadyForQuery. */
export function endsWithReady(kind: Owed): boolean {
  return kind >= Owed.Sync && kind !== Owed.FlushWithBody;
}

/** Drop the SyncInCopy entries at the head of `ledger`: the server read them inside the COPY, which ignores them. */
export function dropSyncsInCopy(ledger: RequestLedger): void {
  while (ledger.next === Owed.SyncInCopy) ledger.shift();
}

/** The statements pgmux added to a client's Query: their results (one per statement, from 0) and their text. */
export interface OwnStatements {
  readonly results: readonly number[];
  readonly insertions: readonly Insertion[];
}

const NO_INSERTIONS: readonly Insertion[] = [];

export class RequestLedger {
  private readonly kinds: Owed[] = [];
  private readonly replies: Reply[] = [];
  private readonly payloads: Array<Buffer | null> = [];
  /** Server-side statement name of a Parse pgmux placed in the server's cache (forgotten if the Parse never runs). */
  private readonly names: Array<string | null> = [];
  /** The client's name for the statement of a Parse the client sent (it has no such statement if the Parse never runs). */
  private readonly clientNames: Array<string | null> = [];
  /** For PartlyOwn queries: which results are pgmux's, and where its text went. */
  private readonly owned: Array<OwnStatements | null> = [];
  /** The statement router's journal mark when the message was routed (StatementRouter.rollback). */
  private readonly marks: number[] = [];
  /**
   * What the server would make of the messages sent after an Execute or Query if that one starts COPY IN (see
   * `enterCopy`): the Syncs (and Flushes with a body) sent right after it, which the server ignores during COPY IN ...
   */
  private readonly copySyncs: number[] = [];
  /**
   * ... and the type of the client's message that broke the copy (0: none): a request sent before any CopyDone or
   * CopyFail, which the server reads as part of the COPY (it fails the COPY with 08P01 "unexpected message type"
   * and closes the connection: "protocol synchronization was lost").
   */
  private readonly copyBrokenBy: number[] = [];
  /**
   * For a Sync sent while a copy was open: whether COPY data was sent before it (after the message that began the
   * copy). If the COPY fails on its data, such a Sync may come after the bad line, where the server reads it as
   * the Sync it skips to; one sent before any data was read inside the COPY (ignored).
   */
  private readonly afterCopyData: boolean[] = [];
  /** For a Sync: it had a body (PostgreSQL answers it with 08P01 "invalid message format", then ReadyForQuery). */
  private readonly withBody: boolean[] = [];
  /** COPY data was sent since the open copy's Execute or Query. */
  private dataInOpenCopy = false;
  /**
   * The latest Execute or Query (an absolute index) whose copy is still open: nothing but Syncs (and COPY data,
   * Flush) was sent after it, no CopyDone or CopyFail. -1: none. At most one is open: any other request sent
   * after it breaks it.
   */
  private openCopy = -1;
  /** The mark entries pushed from now on get (set as each client message is admitted). */
  mark = 0;
  private head = 0;
  /**
   * The server is discarding messages up to the next Sync (an extended-protocol message failed
   * and no Sync was sent yet): what the client sends until then earns nothing.
   */
  skippingToSync = false;

  get length(): number {
    return this.kinds.length - this.head;
  }

  get empty(): boolean {
    return this.head === this.kinds.length;
  }

  push(kind: Owed, reply: Reply = Reply.Forward, payload: Buffer | null = null, name: string | null = null, owned: OwnStatements | null = null, clientName: string | null = null): void {
    const inOpenCopy = this.openCopy >= this.head;
    if ((kind === Owed.Sync || kind === Owed.FlushWithBody) && inOpenCopy) this.copySyncs[this.openCopy]++;
    this.afterCopyData.push(inOpenCopy && this.dataInOpenCopy);
    this.withBody.push(false);
    // A synthesized reply stands for a message the server never gets: it cannot start COPY.
    if (reply !== Reply.Synthesize && (kind === Owed.Execute || kind === Owed.Query)) {
      this.openCopy = this.kinds.length;
      this.dataInOpenCopy = false;
    }
    this.copySyncs.push(0);
    this.copyBrokenBy.push(0);
    this.kinds.push(kind);
    this.replies.push(reply);
    this.payloads.push(payload);
    this.names.push(name);
    this.owned.push(owned);
    this.clientNames.push(clientName);
    this.marks.push(this.mark);
  }

  /** The next answer owed, or undefined when nothing is owed. */
  get next(): Owed | undefined {
    return this.head < this.kinds.length ? this.kinds[this.head] : undefined;
  }

  get nextReply(): Reply {
    return this.replies[this.head];
  }

  get nextPayload(): Buffer | null {
    return this.payloads[this.head];
  }

  /** The server-side statement name of the next entry (a Parse that creates one), if any. */
  get nextName(): string | null {
    return this.names[this.head] ?? null;
  }

  /** The journal mark of the next entry. */
  get nextMark(): number {
    return this.marks[this.head] ?? this.mark;
  }

  /** The journal mark of the entry after the next one (where the next entry's own records end; none: the end). */
  get markAfterNext(): number {
    return this.marks[this.head + 1] ?? Number.POSITIVE_INFINITY;
  }

  /** The client's statement name of the next entry (a Parse or Close of the client's), if any. */
  get nextClientName(): string | null {
    return this.clientNames[this.head] ?? null;
  }

  /** Whether result `index` of the next entry (a PartlyOwn query) is pgmux's. */
  nextOwnsResult(index: number): boolean {
    return this.owned[this.head]?.results.includes(index) ?? false;
  }

  /** Where pgmux's statements were inserted into the next entry's text (a PartlyOwn query). */
  get nextInsertions(): readonly Insertion[] {
    return this.owned[this.head]?.insertions ?? NO_INSERTIONS;
  }

  /** The entries certain to be answered: all but the Syncs sent during a COPY (Owed.SyncInCopy). */
  get definite(): number {
    let n = 0;
    for (let i = this.head; i < this.kinds.length; i++) if (this.kinds[i] !== Owed.SyncInCopy) n++;
    return n;
  }

  /** Whether an extended-protocol entry is owed with no Sync (or Query) sent after it. */
  get unsyncedTail(): boolean {
    for (let i = this.kinds.length - 1; i >= this.head; i--) {
      const kind = this.kinds[i];
      if (kind === Owed.Sync || kind === Owed.SyncInCopy || kind === Owed.Query) return false;
      if (isExtended(kind)) return true;
    }
    return false;
  }

  /** Whether an entry of this kind is owed. */
  owes(kind: Owed): boolean {
    for (let i = this.head; i < this.kinds.length; i++) if (this.kinds[i] === kind) return true;
    return false;
  }

  /** The next answer arrived in full. */
  shift(): void {
    if (this.head >= this.kinds.length) return;
    this.payloads[this.head] = null;
    this.owned[this.head] = null;
    this.head++;
    if (this.head === this.kinds.length) this.compact();
  }

  /**
   * An extended-protocol message failed: the server skips everything up to the next Sync, so
   * nothing before it will be answered. `notRun` gets each dropped entry that names a statement
   * (the failing message is the first dropped): a Parse that never ran, a Close that did not close.
   * Returns whether a Sync is owed (otherwise the server skips what comes next too). `afterFailedCopy`: the error
   * failed a COPY on its data, so a Sync sent during it (SyncInCopy) is the one the server skips to.
   */
  dropToSync(notRun: (kind: Owed, reply: Reply, serverName: string | null, clientName: string | null, payload: Buffer | null) => void, afterFailedCopy = false): boolean {
    while (this.head < this.kinds.length && this.kinds[this.head] !== Owed.Sync && !(afterFailedCopy && this.kinds[this.head] === Owed.SyncInCopy && this.afterCopyData[this.head])) {
      if (this.names[this.head] !== null || this.clientNames[this.head] !== null) {
        notRun(this.kinds[this.head], this.replies[this.head], this.names[this.head], this.clientNames[this.head], this.payloads[this.head]);
      }
      this.payloads[this.head] = null;
      this.head++;
    }
    const synced = this.head < this.kinds.length;
    if (!synced) {
      this.compact();
      this.skippingToSync = true;
    }
    return synced;
  }

  /** The entry pushed last is a Sync with a body. */
  lastHadBody(): void {
    this.withBody[this.withBody.length - 1] = true;
  }

  /** Whether the next entry is a Sync (during COPY or not) that had a body. */
  get nextHadBody(): boolean {
    return this.head < this.kinds.length && this.withBody[this.head];
  }

  /** The client sent COPY data (it belongs to the open copy, if any). */
  copyDataSent(): void {
    if (this.openCopy >= this.head) this.dataInOpenCopy = true;
  }

  /** The client sent CopyDone or CopyFail: the open copy (if any) ends there; what follows is not part of it. */
  copyEnded(): void {
    this.openCopy = -1;
  }

  /** The client sent a request of type `code` (not a Sync, Flush or COPY message): it breaks the open copy, if any. */
  breakCopy(code: number): void {
    if (this.openCopy < this.head) return;
    this.copyBrokenBy[this.openCopy] = code;
    this.openCopy = -1;
  }

  /** Whether an Execute or Query is owed whose copy (should it start COPY IN) the client has not ended or broken. */
  get copyOpen(): boolean {
    return this.openCopy >= this.head && this.openCopy < this.kinds.length;
  }

  /** Whether the next entry's copy is still open (the client has not ended or broken it yet). */
  get nextCopyOpen(): boolean {
    return this.openCopy === this.head && this.head < this.kinds.length;
  }

  /** The type of the client's message that broke the next entry's copy (0: none). */
  get nextCopyBrokenBy(): number {
    return this.head < this.kinds.length ? this.copyBrokenBy[this.head] : 0;
  }

  /**
   * COPY IN began for the next entry (an Execute or Query): the Syncs (and Flushes with a body) sent right after it
   * were read by the server as part of the COPY, which ignores them, and earn nothing. Returns how many were dropped.
   */
  enterCopy(): number {
    const syncs = this.copySyncs[this.head] ?? 0;
    if (syncs === 0) return 0;
    this.copySyncs[this.head] = 0;
    // The Syncs become SyncInCopy: ignored if the server reads them inside the COPY, answered if the COPY fails
    // on data sent before them (the client may have sent data and Syncs before the CopyInResponse came back).
    // A Flush with a body earns nothing either way here.
    let flushes = 0;
    for (let i = this.head + 1; i <= this.head + syncs; i++) {
      if (this.kinds[i] === Owed.Sync) this.kinds[i] = Owed.SyncInCopy;
      else flushes++;
    }
    if (flushes > 0) {
      for (let i = this.head + syncs; i > this.head; i--) {
        if (this.kinds[i] === Owed.FlushWithBody) this.removeAt(i);
      }
    }
    return syncs;
  }

  /**
   * COPY IN began for the next entry: the server ignores Syncs until the copy ends, so the Syncs
   * sent right after the message that started it (at most `max`: those sent before CopyDone) earn nothing.
   */
  dropSyncsAfterNext(max = Number.POSITIVE_INFINITY): number {
    let i = this.head + 1;
    while (i < this.kinds.length && this.kinds[i] === Owed.Sync && i - (this.head + 1) < max) i++;
    const dropped = i - (this.head + 1);
    if (dropped === 0) return 0;
    this.removeAfterHead(dropped);
    return dropped;
  }

  /** Removes `n` entries right after the next one. */
  private removeAt(i: number): void {
    for (const column of [this.kinds, this.replies, this.payloads, this.names, this.owned, this.clientNames, this.marks, this.copySyncs, this.copyBrokenBy, this.afterCopyData, this.withBody] as unknown[][]) column.splice(i, 1);
    if (this.openCopy > i) this.openCopy--;
    else if (this.openCopy === i) this.openCopy = -1;
  }

  private removeAfterHead(n: number): void {
    const at = this.head + 1;
    this.kinds.splice(at, n);
    this.replies.splice(at, n);
    this.payloads.splice(at, n);
    this.names.splice(at, n);
    this.owned.splice(at, n);
    this.clientNames.splice(at, n);
    this.marks.splice(at, n);
    this.copySyncs.splice(at, n);
    this.copyBrokenBy.splice(at, n);
    this.afterCopyData.splice(at, n);
    this.withBody.splice(at, n);
    if (this.openCopy >= at + n) this.openCopy -= n;
    else if (this.openCopy >= at) this.openCopy = -1;
  }

  clear(): void {
    this.compact();
    this.skippingToSync = false;
  }

  private compact(): void {
    // Keep the arrays' storage: the ledger empties after every batch.
    this.kinds.length = 0;
    this.replies.length = 0;
    this.payloads.length = 0;
    this.names.length = 0;
    this.owned.length = 0;
    this.clientNames.length = 0;
    this.marks.length = 0;
    this.copySyncs.length = 0;
    this.copyBrokenBy.length = 0;
    this.afterCopyData.length = 0;
    this.withBody.length = 0;
    this.openCopy = -1;
    this.dataInOpenCopy = false;
    this.head = 0;
  }
}
