/**
 * Transaction mode: the extended-protocol messages a client sent since nothing was outstanding,
 * kept as views (no copy) so one Sync-terminated segment can be sent again.
 *
 * Why: after a table's columns change, a statement prepared before the change fails at Bind with
 * 0A000 "cached plan must not change result type". PostgreSQL needs a fresh Parse; drivers that
 * do not re-prepare by themselves surface the error. pgmux can re-prepare and resend the segment
 * once, when doing so is invisible apart from the new result shape the client is told about.
 * ServerConnection decides when that is (nothing answered yet, implicit transaction); this class
 * decides whether the segment itself qualifies.
 */
import { FrontendCode } from '../protocol/codes.js';
import { readBindStatement } from '../protocol/frontend-messages.js';

/** Longer segments are not kept: a retry is for ordinary statements, not for bulk pipelines. */
const MAX_MESSAGES = 32;

export class SegmentReplay {
  private readonly bufs: Buffer[] = [];
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private count = 0;
  private syncs = 0;
  private described = false;
  /** Something unreplayable was sent (simple Query, COPY, too many messages). */
  private spoiled = false;
  /** The segment was replayed once already: a second failure goes to the client. */
  retried = false;

  reset(): void {
    // Drop references so received chunks can be collected; keep the arrays' storage.
    for (let i = 0; i < this.count; i++) this.bufs[i] = EMPTY;
    this.count = 0;
    this.syncs = 0;
    this.described = false;
    this.spoiled = false;
    this.retried = false;
  }

  record(code: number, buf: Buffer, start: number, end: number): void {
    if (this.spoiled) return;
    switch (code) {
      case FrontendCode.Parse:
      case FrontendCode.Bind:
      case FrontendCode.Execute:
      case FrontendCode.Close:
      case FrontendCode.Flush:
        break;
      case FrontendCode.Describe:
        this.described = true;
        break;
      case FrontendCode.Sync:
        this.syncs++;
        break;
      default:
        this.spoiled = true;
        return;
    }
    if (this.count === MAX_MESSAGES) {
      this.spoiled = true;
      return;
    }
    this.bufs[this.count] = buf;
    this.starts[this.count] = start;
    this.ends[this.count] = end;
    this.count++;
  }

  /**
   * Whether the kept messages are exactly one segment ending in Sync that may be sent again: it
   * Describes what it runs, so the client learns the new row shape rather than getting rows it
   * did not expect.
   */
  get replayable(): boolean {
    return !this.spoiled && !this.retried && this.syncs === 1 && this.count > 0 && this.bufs[this.count - 1][this.starts[this.count - 1]] === FrontendCode.Sync && this.described;
  }

  /** Client statement names the segment binds (the ones to prepare afresh). */
  boundStatements(): Set<string> {
    const names = new Set<string>();
    for (let i = 0; i < this.count; i++) {
      if (this.bufs[i][this.starts[i]] !== FrontendCode.Bind) continue;
      const name = readBindStatement(this.bufs[i], this.starts[i], this.ends[i]);
      if (name !== '') names.add(name);
    }
    return names;
  }

  forEach(send: (buf: Buffer, start: number, end: number) => void): void {
    for (let i = 0; i < this.count; i++) send(this.bufs[i], this.starts[i], this.ends[i]);
  }
}

const EMPTY = Buffer.alloc(0);
