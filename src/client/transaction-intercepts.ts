/**
 * Transaction mode: what pgmux does with a client message before it is forwarded, because the
 * client's session does not live on one server.
 *
 * - Named Parses sent while the client holds no server are answered here and prepared on the
 *   server where the statement is first used (drivers that prepare synchronously, like pgbench
 *   -M prepared, then run with more clients than server connections).
 * - A lone DEALLOCATE or DISCARD ALL from a client holding no server is answered here.
 * - Statements creating unmovable state under a `reject` policy are refused: answered here
 *   when no server is involved, otherwise replaced by a statement that fails on the server (so
 *   the server's transaction fails as PostgreSQL's would) whose error the link replaces with
 *   pgmux's explanation.
 * - SET-like and pinning statements are noted in the SessionState, checked at transaction end.
 */
import type { Socket } from 'node:net';
import { commandComplete, errorResponse, PARSE_COMPLETE, parameterStatus, readyForQuery, type ErrorFields } from '../protocol/backend-messages.js';
import { FrontendCode, TxStatus } from '../protocol/codes.js';
import { buildParse, buildQuery, readParse, readQuery, stringsAreUtf8 } from '../protocol/frontend-messages.js';
import { WriteBatch } from '../protocol/write-batch.js';
import { Owed } from '../link/request-ledger.js';
import { classifySql, SqlEffect, type PinKind } from './sql-classifier.js';
import type { SessionState } from './session-state.js';
import { DEALLOCATE_ALL, DEALLOCATE_NONE, StatementRouter } from './statement-router.js';

/** PostgreSQL's answer to a Sync with a body (pq_getmsgend), before its ReadyForQuery. */
const INVALID_SYNC = errorResponse({ severity: 'ERROR', code: '08P01', message: 'invalid message format' });

/** What the intercepts need of the client session. */
export interface InterceptHost {
  readonly socket: Socket;
  /** No server held and nothing held for one: pgmux may answer by itself, as PostgreSQL would. */
  readonly idle: boolean;
  /** Send on towards a server (held until one is attached). */
  forward(buf: Buffer, start: number, end: number): void;
  /** What PostgreSQL skips after an error: messages up to the next Sync. */
  skipToSync(): void;
  /** DISCARD ALL: back to startup settings; returns the reported parameters that changed. */
  resetParamsToStartup(): Iterable<[string, string]>;
  /** After a RESET of `names` ran on the current server: statements that put the client's startup values back there. */
  startupRestore(names: readonly string[] | 'all'): readonly string[];
}

/** A replacement message that must fail on the server, and the error the client gets instead. */
export interface Refusal {
  kind: Owed;
  error: Buffer;
}

export class TransactionIntercepts {
  /** The client's named statements, carried from server to server. */
  readonly router: StatementRouter;
  /** Named Parses sent while idle, answered by pgmux and prepared on a server when first used. */
  private readonly deferredParses: Buffer[] = [];
  /** Replacement messages (held while no server was attached) that must fail on the server; made at the first. */
  private refusals: Map<Buffer, Refusal> | null = null;

  constructor(
    private readonly host: InterceptHost,
    private readonly session: SessionState,
    private readonly maxPreparedStatements: number,
  ) {
    this.router = new StatementRouter(
      maxPreparedStatements > 0,
      (effects, customSettings) => void session.note(effects, customSettings),
      (names) => host.startupRestore(names),
    );
  }

  /** The refusal a replacement message stands for, if it is one (taken: each is sent once). */
  takeRefusal(buf: Buffer): Refusal | undefined {
    if (this.refusals === null || this.refusals.size === 0) return undefined;
    const refusal = this.refusals.get(buf);
    if (refusal !== undefined) this.refusals.delete(buf);
    return refusal;
  }

  /** Held messages were dropped (failed before reaching a server). */
  dropRefusals(): void {
    this.refusals?.clear();
    this.router.dropIntercepted();
  }

  /** Replace a refused statement with one that fails on the server, in its place in the stream. */
  private refuse(kind: PinKind, replacement: Buffer, owed: Owed): void {
    (this.refusals ??= new Map()).set(replacement, { kind: owed, error: errorResponse(rejectionError(kind)) });
    this.releaseDeferred();
    this.host.forward(replacement, 0, replacement.length);
  }

  /**
   * Transaction mode: look at a message before it is forwarded. Returns true when pgmux dealt
   * with it itself (answered it, or forwarded a replacement).
   */
  intercept(code: number, buf: Buffer, start: number, end: number): boolean {
    const session = this.session;
    const router = this.router;
    // No server held and nothing pending: pgmux may answer by itself, as PostgreSQL would.
    const idle = this.host.idle;
    switch (code) {
      case FrontendCode.Parse: {
        // Not UTF-8: the server refuses it (22021) before it means anything (stringsAreUtf8).
        if (!stringsAreUtf8(buf, start, end)) break;
        const info = readParse(buf, start, end);
        const classified = classifySql(info.query);
        const rejected = session.note(classified.effects, classified.customSettings);
        if (rejected !== null && idle && this.deferredParses.length === 0) {
          // First message of a batch and no server involved: answer as PostgreSQL would, skip to Sync.
          this.failBatchLocally(rejectionError(rejected));
          return true;
        }
        if (rejected !== null) {
          // Fails at Parse on the server (so the batch fails there as it would in PostgreSQL); the
          // client gets pgmux's explanation in place of the server's error.
          this.refuse(rejected, buildParse('', Buffer.concat([Buffer.from(`${REFUSED_SQL}\0`), Buffer.alloc(2)])), Owed.Parse);
          return true;
        }
        if (info.name === '' || this.maxPreparedStatements === 0) break;
        // A name the client has: the router has a server check the Parse, then refuse it, as PostgreSQL does.
        if (router.has(info.name)) break;
        if (idle || this.deferredParses.length > 0) {
          // No server needed to prepare: answered here, prepared where it is first used. This is
          // what lets drivers that prepare synchronously (pgbench -M prepared) run with more
          // clients than server connections.
          router.register(info);
          this.deferredParses.push(start === 0 && end === buf.length ? buf : buf.subarray(start, end));
          return true;
        }
        break;
      }
      case FrontendCode.Sync:
        // A Sync with a body is refused by PostgreSQL with an error, then ReadyForQuery (after what came before it).
        if (this.deferredParses.length > 0) {
          this.answerDeferred(true, end - start !== 5);
          return true;
        }
        if (idle) {
          if (end - start !== 5) this.host.socket.write(INVALID_SYNC);
          this.host.socket.write(readyForQuery(TxStatus.Idle));
          return true;
        }
        break;
      case FrontendCode.Flush:
        if (this.deferredParses.length > 0) {
          this.answerDeferred(false);
          return true;
        }
        break;
      case FrontendCode.Query: {
        if (!stringsAreUtf8(buf, start, end)) {
          // Refused by the server (22021) before it does anything: not classified, answered or counted.
          this.releaseDeferred();
          return this.forwardAsIs(buf, start, end);
        }
        const { effects, lone, customSettings } = classifySql(readQuery(buf, start, end));
        if (lone !== null && idle && this.deferredParses.length === 0) {
          this.answerLocally(lone);
          return true;
        }
        const rejected = session.note(effects, customSettings);
        if (rejected !== null) {
          router.queryIntercepted(DEALLOCATE_NONE);
          this.refuse(rejected, buildQuery(REFUSED_SQL), Owed.Query);
          return true;
        }
        // Made when the Query reaches the server (the server may skip it: an earlier message failed).
        this.releaseDeferred();
        router.queryIntercepted(
          (effects & SqlEffect.DeallocateAll) !== 0 ? DEALLOCATE_ALL : lone?.kind === 'deallocate' && lone.name !== null ? lone.name : DEALLOCATE_NONE,
        );
        return this.forwardAsIs(buf, start, end);
      }
      default:
        break;
    }
    this.releaseDeferred();
    return false;
  }

  private forwardAsIs(buf: Buffer, start: number, end: number): boolean {
    this.host.forward(buf, start, end);
    return true;
  }

  /** An error for the batch this message starts; the rest of it up to Sync is skipped, as PostgreSQL does. */
  private failBatchLocally(fields: ErrorFields): void {
    this.host.socket.write(errorResponse(fields));
    this.host.skipToSync();
  }

  /** Answer deferred Parses with ParseComplete (and ReadyForQuery for a Sync). */
  private answerDeferred(sync: boolean, malformedSync = false): void {
    const batch = new WriteBatch();
    for (let i = 0; i < this.deferredParses.length; i++) batch.addBuffer(PARSE_COMPLETE);
    if (malformedSync) batch.addBuffer(INVALID_SYNC);
    if (sync) batch.addBuffer(readyForQuery(TxStatus.Idle));
    this.deferredParses.length = 0;
    batch.flush(this.host.socket);
  }

  /** Something needs a server after all: deferred Parses go first, in order. */
  private releaseDeferred(): void {
    if (this.deferredParses.length === 0) return;
    const parses = this.deferredParses.splice(0);
    for (const parse of parses) {
      // Sent after all: registered when the router sends it, like any Parse.
      this.router.forget(readParse(parse, 0, parse.length).name);
      this.host.forward(parse, 0, parse.length);
    }
  }

  /** A lone DEALLOCATE or DISCARD ALL from a client that holds no server: nothing to do upstream. */
  private answerLocally(lone: NonNullable<ReturnType<typeof classifySql>['lone']>): void {
    const router = this.router;
    const batch = new WriteBatch();
    // A simple Query destroys the unnamed statement first, whatever it then does (PostgreSQL's exec_simple_query).
    router.dropUnnamed();
    if (lone.kind === 'discard-all') {
      router.clear();
      batch.addBuffer(commandComplete('DISCARD ALL'));
      // As PostgreSQL does after RESET ALL: report the reported parameters whose value changed.
      for (const [name, value] of this.host.resetParamsToStartup()) batch.addBuffer(parameterStatus(name, value));
    } else if (lone.name === null) {
      router.clear();
      batch.addBuffer(commandComplete('DEALLOCATE ALL'));
    } else if (router.has(lone.name)) {
      router.forget(lone.name);
      batch.addBuffer(commandComplete('DEALLOCATE'));
    } else {
      batch.addBuffer(errorResponse({ severity: 'ERROR', code: '26000', message: `prepared statement "${lone.name}" does not exist` }));
    }
    batch.addBuffer(readyForQuery(TxStatus.Idle));
    batch.flush(this.host.socket);
  }

}

/**
 * What a refused statement (the `reject` policy) is replaced with on the server: it fails at
 * Parse (42703: a column with no FROM), so the server's transaction fails exactly as PostgreSQL's
 * would, and the client gets rejectionError() in place of the server's error (a ReplaceError
 * reply in the link). In an aborted transaction the server's 25P02 passes, as PostgreSQL's would.
 */
const REFUSED_SQL = 'SELECT pgmux_refused_by_session_state_reject';

function rejectionError(kind: PinKind): ErrorFields {
  return {
    severity: 'ERROR',
    code: '0A000',
    message: `${kind.replace(/_/g, ' ')} is refused by pgmux in transaction mode (session_state_${kind} = reject)`,
    hint: `Set session_state_${kind}: pin, or connect to a pool with pool_mode: session.`,
  };
}
