/**
 * Client messages that must wait for an earlier segment's answer before they can be routed (Attachment.fromClient).
 *
 * A segment is what a client sends up to a Sync. If a message of a segment fails, the server skips the rest of it,
 * changes to statements included: a Close pgmux answered itself did not happen, an unnamed Parse left the server's
 * unnamed statement as it was (which need not be the client's: statements move between servers), a Parse of a new
 * name did not create it. A later segment's message naming such a statement must be routed knowing which, so it
 * waits until the earlier segment is answered (seeds 70814, 1212128). Drivers rarely pipeline these.
 */
import { FrontendCode } from '../protocol/codes.js';
import { PendingChange } from '../client/statement-router.js';
import type { OwnStatements } from './request-ledger.js';
import type { Owed } from './request-ledger.js';

/** A held message the session handed over as an extended Query (own) or as a refusal (failure, error). */
export interface HeldAs {
  own: OwnStatements | null;
  failure: Owed;
  error: Buffer;
}

/** Statements changed by messages the server may yet skip: the latest change's segment, and what waits for it. */
export class PendingChanges {
  private readonly changes = new Map<string, { segment: number; waits: PendingChange }>();
  /** The latest segment with a change. */
  private until = -1;

  /** A message of `segment` changed statement `name` ('' the unnamed one). */
  note(name: string, segment: number, waits: PendingChange): void {
    const earlier = this.changes.get(name);
    // The latest change decides; an earlier one of the same segment still counts (a Close, then a Parse).
    this.changes.set(name, { segment, waits: earlier !== undefined && earlier.segment === segment ? earlier.waits | waits : waits });
    this.until = segment;
  }

  /** Every segment with a change has been answered (segments below `answered`): nothing can wait any more. */
  allAnswered(answered: number): boolean {
    return answered > this.until;
  }

  /**
   * The segment a message of type `code` naming `name`, routed in segment `current`, must wait for; -1: none.
   * Segments below `answered` have their answers.
   */
  waitFor(code: number, name: string, answered: number, current: number): number {
    const change = this.changes.get(name);
    if (change === undefined || change.segment < answered || change.segment >= current) return -1;
    return (change.waits & (code === FrontendCode.Parse ? PendingChange.Parse : PendingChange.Use)) === 0 ? -1 : change.segment;
  }
}

/** The held messages, in order, as views (they are not copied; the chunks they are in are not reused). */
export class HeldMessages {
  /** At most this much client input is held; beyond it, messages are routed at once (as if nothing were held). */
  static readonly MAX_BYTES = 1 << 20;

  readonly bufs: Buffer[] = [];
  readonly starts: number[] = [];
  readonly ends: number[] = [];
  /** The message type of each (not always bufs[i][starts[i]]: COPY data comes in pieces). */
  readonly codes: number[] = [];
  /** What the session asked for each beyond routing (null: route it as the client sent it). */
  readonly as: Array<HeldAs | null> = [];
  private bytes = 0;

  constructor(
    /** The segment whose answer they wait for. */
    readonly segment: number,
  ) {}

  /** Holds one more; returns false when the bound is passed. */
  push(code: number, buf: Buffer, start: number, end: number, as: HeldAs | null): boolean {
    this.bufs.push(buf);
    this.starts.push(start);
    this.ends.push(end);
    this.codes.push(code);
    this.as.push(as);
    this.bytes += end - start;
    return this.bytes <= HeldMessages.MAX_BYTES;
  }
}
