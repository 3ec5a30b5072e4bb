/**
 * Transaction mode: a client's named prepared statements follow it from server to server.
 *
 * The client's statements are kept here by the client's names; each server connection keeps
 * an LRU of what it has prepared. When a message refers to a statement the current server
 * lacks, the Parse is injected first and its ParseComplete swallowed. A server that already has
 * the statement (same text and types) is reused: the client's Parse is not sent, and pgmux's own
 * ParseComplete takes its place in the ledger, so answers stay in order.
 *
 * Statements keep the client's name on the server whenever that name is free there or already
 * means the same statement, so Bind/Describe are forwarded untouched; only on a clash a
 * `pgmux_<hash>` name is used and the message re-encoded.
 */
import { createHash } from 'node:crypto';
import { serialize } from 'pg-protocol';
import { CLOSE_COMPLETE, errorResponse, PARSE_COMPLETE } from '../protocol/backend-messages.js';
import { FrontendCode } from '../protocol/codes.js';
import {
  buildParse,
  buildTarget,
  readBindParameterCount,
  readBindStatement,
  readPortalName,
  readParse,
  readTarget,
  renameBind,
  STATEMENT,
  type ParseInfo,
} from '../protocol/frontend-messages.js';
import { SqlState } from '../protocol/sqlstate.js';
import type { WriteBatch } from '../protocol/write-batch.js';
import type { PreparedCache } from '../server/prepared-cache.js';
import { preparedResetNames } from './reset-to-startup.js';
import { classifySql, parameterCount, SqlEffect } from './sql-classifier.js';
import { Owed, Reply, type RequestLedger } from '../link/request-ledger.js';

interface Statement {
  /** Hash of query text and parameter types: equal keys are interchangeable statements. */
  key: string;
  tail: Buffer;
  /** What running it may do to the session (SqlEffect bits), noted again at each Bind; 0 for most. */
  effects: number;
  customSettings: readonly string[];
  /** Its number of parameters, as PostgreSQL counts them (sql-classifier parameterCount). */
  params: number;
  /** The settings it RESETs when run (a lone RESET, or SET ... TO DEFAULT), else null. */
  resets: Resets;
}

/** What a statement RESETs: 'all', some settings, or null (not a RESET). */
type Resets = readonly string[] | 'all' | null;

/**
 * The statements (one each, returning no rows) that put the client's startup values back on the current server after
 * a RESET of `names` ran there (reset-to-startup.ts restoreAfterReset); empty when nothing needs putting back.
 */
export type StartupRestore = (names: readonly string[] | 'all') => readonly string[];

/** Told when a Bind runs a statement whose SQL may change session state (a SET, an advisory lock ...). */
export type StatementUse = (effects: number, customSettings: readonly string[]) => void;

/** What the router writes to and records in: the link to the server now serving the client. */
/**
 * Identifies one unnamed Parse of the client's (which server has it: PreparedCache.unnamedOwner) and says what running
 * it does to the session (classifySql). Each Parse gets its own object, even for the same text.
 */
interface UnnamedToken {
  readonly effects: number;
  readonly customSettings: readonly string[];
  readonly resets: Resets;
}

/** What a statement's SQL resets, looked for only in one that sets something. */
function resetsOf(query: string, effects: number): Resets {
  return (effects & SqlEffect.SetsParams) === 0 ? null : preparedResetNames(query);
}

/** Bind and Execute of pgmux's statement that puts a startup value back: the unnamed portal, no parameters, all rows. */
const BIND_RESTORE = serialize.bind();
const EXECUTE_RESTORE = serialize.execute();

const NONE: readonly string[] = [];

export interface StatementTarget {
  /** What the server has prepared. */
  readonly statements: PreparedCache;
  readonly ledger: RequestLedger;
  readonly toServer: WriteBatch;
  /** Prepared-statement cache hits and misses (metrics). */
  readonly counters: { preparedHits: number; preparedMisses: number };
  /** Answer a message with pgmux's own reply, in its turn. */
  synthesize(kind: Owed, reply: Buffer): void;
  /** Segment of the messages routed now (Syncs sent before them): see PreparedCache.uncertain. */
  readonly segment: number;
  /** Send a message that fails on the server on purpose; the client gets `error` in its place. */
  injectFailure(kind: Owed, message: Buffer, error: Buffer): void;
  /**
   * The server may be inside a transaction block, maybe a failed one, when this message reaches it: its last
   * ReadyForQuery said so, or a Query, or an Execute of an earlier segment, sent since may have begun one.
   */
  readonly mayBeInTransaction: boolean;
  /**
   * A message of the current segment changed the client's statement `name` ('' the unnamed one). The server skips
   * it if an earlier message of the segment fails, so what a later segment's message of that name must do depends
   * on the answer (PendingChange says which messages wait for it).
   */
  changeSent(name: string, change: PendingChange): void;
}

/** Which later messages naming a statement changed in a segment still in flight wait for its answer (bits). */
export const enum PendingChange {
  /** A Parse of the name: it is refused (42P05) only if the earlier Parse ran. */
  Parse = 1,
  /** A Bind, Describe or Close of it: the statement they find depends on whether the change ran. */
  Use = 2,
  /** A new named statement: only a second Parse of the name depends on it (a Bind finds it on this server or not, as directly). */
  Parsed = Parse,
  /** A named Close (answered by pgmux, the server keeps it), or an unnamed Parse: everything naming it. */
  Replaced = Parse | Use,
}

/**
 * What the client is owed for a Bind of its statement when pgmux's Parse of it on this server fails because the
 * transaction is aborted (25P02): PostgreSQL's Bind checks the parameter count first (08P01). Null when the count
 * is right: then 25P02 is PostgreSQL's answer too.
 */
function bindInAbortedTransaction(name: string, required: number, supplied: number): Buffer | null {
  if (supplied === required) return null;
  return errorResponse({
    severity: 'ERROR',
    code: SqlState.ProtocolViolation,
    message: `bind message supplies ${supplied} parameters, but prepared statement "${name}" requires ${required}`,
  });
}

/** The parameter count of a statement from a Parse's tail (query, parameter types). */
function parameterCountOfTail(tail: Buffer): number {
  const nul = tail.indexOf(0);
  return parameterCount(tail.toString('utf8', 0, nul), tail.readInt16BE(nul + 1));
}

/** PostgreSQL's error for a Bind or Describe of the unnamed statement when there is none. */
export const NO_UNNAMED_STATEMENT = errorResponse({ severity: 'ERROR', code: '26000', message: 'unnamed prepared statement does not exist' });

/** Stand-in name for a statement the client never prepared but the server has (from another client). */
const UNPREPARED_PREFIX = 'pgmux_unprepared_';

function countLookup(target: StatementTarget, present: boolean): void {
  if (present) target.counters.preparedHits++;
  else target.counters.preparedMisses++;
}

/** What a Query DEALLOCATEs (StatementRouter.queryIntercepted), beside a statement name. */
export const DEALLOCATE_ALL = Symbol('DEALLOCATE ALL');
export const DEALLOCATE_NONE = Symbol('no DEALLOCATE');

/** Ledger name of the client's unnamed Parses (a NUL: no statement name can contain one). */
export const UNNAMED_MARK = '\u0000';
/**
 * Ledger name of pgmux's Parse that puts the client's unnamed statement back on the server. If it fails while
 * the client has no unnamed statement any more (the client's own Parse of it, in flight when this was sent,
 * failed too), the client is owed what it would get directly: 26000 for the Bind or Describe that needed it.
 */
export const RESTORED_UNNAMED_MARK = '\u0000pgmux-restore';

/** What the undo journal records: how to put back the client's statements as they were before a message. */
const enum Undo {
  /** The statement `name` changed (value: what it was before: a Statement, or undefined for none). */
  Named,
  /** Every named statement was removed (value: the map as it was). */
  Cleared,
  /** The unnamed statement changed (value: the tail before, token: the token before). */
  Unnamed,
  /** Rolled back already. */
  Undone,
}

/** PostgreSQL's error for an unnamed statement the session does not have. */

/** PostgreSQL's error for a statement name the session does not have. */
function noSuchStatement(name: string): Buffer {
  return errorResponse({ severity: 'ERROR', code: '26000', message: `prepared statement "${name}" does not exist` });
}

/**
 * A Parse that fails on the server in any state, aborted transaction included (42601: a prepared statement
 * holds one command, checked before the aborted-transaction check). It follows a check that already did
 * what PostgreSQL does before it would refuse the client's Parse.
 */
const ALWAYS_FAILING_PARSE = buildParse('pgmux always fails', Buffer.from('SELECT 1; SELECT 1\0\0\0', 'latin1'));
/** The statement name pgmux checks a client's duplicate Parse under (closed right after; a space: no driver's name). */
const CHECK_NAME = 'pgmux check';
const CLOSE_CHECK = buildTarget(FrontendCode.Close, STATEMENT, CHECK_NAME);

/** PostgreSQL's error for a Parse of a name the session has (after the Parse's own checks passed). */
function alreadyExists(name: string): Buffer {
  return errorResponse({ severity: 'ERROR', code: '42P05', message: `prepared statement "${name}" already exists` });
}

export class StatementRouter {
  private readonly statements = new Map<string, Statement>();
  /**
   * The client's unnamed statement (it outlives a Sync: psql's \gdesc prepares, then describes in a
   * second round trip), and the token that marks it on a server (PreparedCache.unnamedOwner).
   */
  private unnamedTail: Buffer | null = null;
  private unnamedToken: UnnamedToken | null = null;
  /**
   * The undo journal: what the messages now in flight changed, so that when the server skips them (an
   * earlier message failed) the client's statements are put back as PostgreSQL leaves them. Parallel arrays,
   * emptied whenever nothing is owed (settle): no allocation per message.
   */
  private readonly undoKinds: Undo[] = [];
  private readonly undoNames: string[] = [];
  private readonly undoValues: unknown[] = [];
  private readonly undoTokens: Array<UnnamedToken | null> = [];
  /** The token of the unnamed statement the client last Closed: the server still has it if that Close was skipped. */
  private closedUnnamed: object | null = null;
  /** What each Query let through by the intercepts and not yet routed DEALLOCATEs, in order. */
  private readonly queryDeallocations: Array<string | typeof DEALLOCATE_ALL | typeof DEALLOCATE_NONE> = [];

  /** The portal a Bind of a RESET statement made (null: none), and what that RESET resets; see executed(). */
  private resetPortal: string | null = null;
  private portalResets: Resets = null;

  /** `tracking` false (max_prepared_statements 0): named statements are passed through as sent. */
  constructor(
    private readonly tracking = true,
    private readonly onUse: StatementUse | null = null,
    private readonly restore: StartupRestore | null = null,
  ) {}

  get size(): number {
    return this.statements.size;
  }

  has(name: string): boolean {
    return this.statements.has(name);
  }

  /** Record a statement the client prepared (a Parse answered by pgmux and prepared on a server at first use). */
  register(info: ParseInfo): Statement {
    const { effects, customSettings } = this.onUse === null ? { effects: 0, customSettings: [] } : classifySql(info.query);
    // After the query's zero (found in the bytes: text that is not valid UTF-8 decodes to more bytes than it had).
    const declaredTypes = info.tail.readInt16BE(info.tail.indexOf(0) + 1);
    const params = parameterCount(info.query, declaredTypes);
    const statement = { key: createHash('sha1').update(info.tail).digest('hex').slice(0, 20), tail: info.tail, effects, customSettings, params, resets: resetsOf(info.query, effects) };
    this.statements.set(info.name, statement);
    return statement;
  }

  /** Forget a statement the client has not been told about yet (a deferred Parse about to be sent after all). */
  forget(name: string): void {
    this.statements.delete(name);
  }

  /** Everything prepared is gone and cannot come back (DISCARD ALL or DEALLOCATE ALL answered by pgmux). */
  clear(): void {
    this.statements.clear();
  }

  /** A simple Query pgmux answered itself (nothing in flight): the client's unnamed statement is gone, as directly. */
  dropUnnamed(): void {
    this.unnamedTail = null;
    this.unnamedToken = null;
    this.closedUnnamed = null;
  }

  /** Make the server's unnamed statement this client's, if the client has one; false if it has none. */
  private ensureUnnamed(target: StatementTarget, bindParameters: number | null = null): boolean {
    if (this.unnamedToken === null || this.unnamedTail === null) {
      // Closed in a message the server may yet skip: the server's unnamed statement is what it is.
      return this.closedUnnamed !== null && target.statements.unnamedOwner === this.closedUnnamed;
    }
    if (target.statements.unnamedOwner === this.unnamedToken) return true;
    target.toServer.addBuffer(buildParse('', this.unnamedTail));
    // For a Bind in an aborted transaction (the Parse then fails with 25P02): PostgreSQL's parameter count check
    // comes first. Counted only here, off the path of every unnamed Parse.
    const answerIfAborted = bindParameters === null ? null : bindInAbortedTransaction('', parameterCountOfTail(this.unnamedTail), bindParameters);
    target.ledger.push(Owed.Parse, Reply.Swallow, answerIfAborted, null, null, RESTORED_UNNAMED_MARK);
    target.changeSent('', PendingChange.Use);
    target.statements.unnamedOwner = this.unnamedToken;
    return true;
  }

  /** Whether the client has an unnamed statement now. */
  get hasUnnamed(): boolean {
    return this.unnamedTail !== null;
  }

  /**
   * Whether the client had an unnamed statement at journal mark `mark` (where a message was routed): messages
   * routed after it may have changed it since (a pipelined Close, seed 70815). The first change recorded from
   * there on holds the value before it; rolled-back records hand theirs on (restoreUnnamed).
   */
  hasUnnamedAt(mark: number): boolean {
    for (let j = Math.max(0, mark); j < this.undoKinds.length; j++) {
      if (this.undoKinds[j] === Undo.Unnamed) return this.undoValues[j] !== null;
    }
    return this.unnamedTail !== null;
  }

  // ---- the undo journal ----

  /** Where the journal stands: what a message routed now changes is recorded from here on. */
  get journalMark(): number {
    return this.undoKinds.length;
  }

  private record(kind: Undo, name: string, value: unknown, token: UnnamedToken | null = null): void {
    this.undoKinds.push(kind);
    this.undoNames.push(name);
    this.undoValues.push(value);
    this.undoTokens.push(token);
  }

  /** Nothing is owed any more: no message in flight can be skipped, nothing can need undoing. */
  settle(): void {
    // Its Close was answered or skipped (then the journal put the statement back): nothing to decide any more.
    this.closedUnnamed = null;
    if (this.undoKinds.length === 0) return;
    this.undoKinds.length = 0;
    this.undoNames.length = 0;
    this.undoValues.length = 0;
    this.undoTokens.length = 0;
  }

  /**
   * The server skipped (or failed) the messages routed from journal mark `from` up to `to` (the Sync it skips
   * to). Messages after that Sync did run: where one of them changed a statement again, its change stands, and
   * what it would put back becomes what the skipped ones left.
   */
  rollback(from: number, to: number, failedUnnamedParse = false, onlyDeallocations = false): void {
    const end = Math.min(to, this.undoKinds.length);
    // What each name was before the first skipped message (latest first, so the earliest record wins).
    const named = new Map<string, Statement | undefined>();
    let unnamed: { tail: Buffer | null; token: UnnamedToken | null } | null = null;
    for (let i = end - 1; i >= from; i--) {
      const value = this.undoValues[i];
      switch (this.undoKinds[i]) {
        case Undo.Named:
          named.set(this.undoNames[i], value as Statement | undefined);
          break;
        case Undo.Cleared: {
          const before = value as Map<string, Statement>;
          for (const name of named.keys()) if (!before.has(name)) named.set(name, undefined);
          for (const name of this.statements.keys()) if (!before.has(name)) named.set(name, undefined);
          for (const [name, statement] of before) named.set(name, statement);
          break;
        }
        case Undo.Unnamed:
          if (onlyDeallocations) continue;
          // A failed unnamed Parse drops the unnamed statement before it parses (PostgreSQL's order).
          unnamed = i === from && failedUnnamedParse ? { tail: null, token: null } : { tail: value as Buffer | null, token: this.undoTokens[i] };
          break;
        case Undo.Undone:
          break;
      }
      // Kept in place (later messages' marks count it), but done with.
      this.undoKinds[i] = Undo.Undone;
      this.undoValues[i] = undefined;
    }
    for (const [name, before] of named) this.restoreNamed(name, before, end);
    if (failedUnnamedParse && unnamed === null) unnamed = { tail: null, token: null };
    if (unnamed !== null) this.restoreUnnamed(unnamed.tail, unnamed.token, end);
  }

  private restoreNamed(name: string, before: Statement | undefined, later: number): void {
    for (let j = later; j < this.undoKinds.length; j++) {
      const kind = this.undoKinds[j];
      if (kind === Undo.Named && this.undoNames[j] === name) {
        this.undoValues[j] = before;
        return;
      }
      if (kind === Undo.Cleared) {
        const snapshot = this.undoValues[j] as Map<string, Statement>;
        if (before === undefined) snapshot.delete(name);
        else snapshot.set(name, before);
        return;
      }
    }
    if (before === undefined) this.statements.delete(name);
    else this.statements.set(name, before);
  }

  private restoreUnnamed(tail: Buffer | null, token: UnnamedToken | null, later: number): void {
    for (let j = later; j < this.undoKinds.length; j++) {
      if (this.undoKinds[j] !== Undo.Unnamed) continue;
      this.undoValues[j] = tail;
      this.undoTokens[j] = token;
      return;
    }
    this.unnamedTail = tail;
    this.unnamedToken = token;
  }

  private setUnnamed(tail: Buffer | null, token: UnnamedToken | null): void {
    // A later change of the unnamed statement makes a Close before it irrelevant (seed 1414145).
    this.closedUnnamed = null;
    this.record(Undo.Unnamed, '', this.unnamedTail, this.unnamedToken);
    this.unnamedTail = tail;
    this.unnamedToken = token;
  }

  /**
   * The intercepts let a Query through: `deallocate` is what it DEALLOCATEs (a name, ALL, or NONE). The change is
   * made when the Query is routed to a server (journaled: the server may skip it), in the order Queries are
   * routed, so messages held before it (a Parse) are registered first.
   */
  queryIntercepted(deallocate: string | typeof DEALLOCATE_ALL | typeof DEALLOCATE_NONE): void {
    this.queryDeallocations.push(deallocate);
  }

  /**
   * The unnamed statement is gone for certain (a simple Query destroys it). Recorded even when the client has none
   * now: an earlier message in flight that the server skips would put one back, and this change stands after it
   * (seed 121328: Parse, a failing Describe, Close, Sync, then a Query: the Parse stood, the Query dropped it).
   */
  private dropUnnamedInFlight(): void {
    if (this.unnamedTail !== null || this.unnamedToken !== null || this.undoKinds.length > 0) this.setUnnamed(null, null);
  }

  /** A simple Query goes to the server: it destroys the unnamed statement, and makes its DEALLOCATE happen. */
  querySent(): void {
    this.dropUnnamedInFlight();
    const deallocate = this.queryDeallocations.length === 0 ? DEALLOCATE_NONE : this.queryDeallocations.shift();
    if (deallocate === DEALLOCATE_ALL) {
      this.record(Undo.Cleared, '', new Map(this.statements));
      this.statements.clear();
    } else if (typeof deallocate === 'string') {
      const statement = this.statements.get(deallocate);
      if (statement !== undefined) {
        this.record(Undo.Named, deallocate, statement);
        this.statements.delete(deallocate);
      }
    }
  }

  /**
   * A simple Query failed before its DEALLOCATE ran (no DEALLOCATE CommandComplete came): the statements it
   * would have deallocated are the client's again. (The unnamed statement stays dropped: PostgreSQL drops it
   * before it parses the query.)
   */
  queryFailed(from: number, to: number): void {
    this.rollback(from, to, false, true);
  }

  /** A Query the server would discard (it skips to Sync), so the link does: it changes nothing. */
  queryDiscarded(): void {
    this.queryDeallocations.shift();
  }

  /** Held messages were dropped: the Queries among them will not be routed. */
  dropIntercepted(): void {
    this.queryDeallocations.length = 0;
  }

  /** A Query refused by pgmux (a stand-in runs instead): its DEALLOCATE does not happen. */
  queryRefused(): void {
    this.queryDeallocations.shift();
    this.dropUnnamedInFlight();
  }

  /**
   * Send one Parse, Bind, Describe or Close of the client's to `target`, rewritten as needed,
   * with whatever must precede it, and record the answers it earns.
   */
  send(code: number, buf: Buffer, start: number, end: number, target: StatementTarget): void {
    const batch = target.toServer;
    const ledger = target.ledger;
    switch (code) {
      case FrontendCode.Parse: {
        if (buf[start + 5] === 0) {
          // The unnamed statement: forwarded as is, and now this client's on this server. Its token says what
          // running it does to the session (a Bind of it in a later transaction runs it again: seed 90921).
          const info = readParse(buf, start, end);
          const classified = this.onUse === null ? null : classifySql(info.query);
          const token: UnnamedToken =
            classified === null
              ? { effects: 0, customSettings: NONE, resets: null }
              : { effects: classified.effects, customSettings: classified.customSettings, resets: resetsOf(info.query, classified.effects) };
          this.setUnnamed(info.tail, token);
          target.statements.unnamedOwner = token;
          batch.add(buf, start, end);
          ledger.push(Owed.Parse, Reply.Forward, null, null, null, UNNAMED_MARK);
          target.changeSent('', PendingChange.Use);
          return;
        }
        if (!this.tracking) break;
        // Registered as it is sent, so the client's statements change in the order of its messages.
        const info = readParse(buf, start, end);
        const name = info.name;
        if (this.statements.has(name)) {
          // The client's session has it already: PostgreSQL refuses the Parse (and skips to Sync), but only after
          // the Parse's own checks (syntax, aborted transaction, analysis). Those are made by the same Parse under
          // a name of pgmux's (its error is the client's), closed again; if it passes, a Parse that always fails
          // stands for the refusal. Both named: neither touches the server's unnamed statement, as the client's
          // refused Parse would not (seed 1212128).
          batch.addBuffer(buildParse(CHECK_NAME, info.tail));
          ledger.push(Owed.Parse, Reply.Swallow);
          batch.addBuffer(CLOSE_CHECK);
          ledger.push(Owed.Close, Reply.Swallow);
          target.injectFailure(Owed.Parse, ALWAYS_FAILING_PARSE, alreadyExists(name));
          return;
        }
        this.record(Undo.Named, name, undefined);
        target.changeSent(name, PendingChange.Parsed);
        const statement = this.register(info);
        const placed = this.place(name, statement, target.statements);
        countLookup(target, placed.present);
        if (placed.present && !target.statements.uncertain(placed.name, target.segment)) {
          if (target.mayBeInTransaction) {
            // In a transaction block the Parse may be refused (25P02 once it has failed, unless it ends it): the
            // same Parse under pgmux's name says whether, its error the client's (seeds 70848, 101028).
            batch.addBuffer(buildParse(CHECK_NAME, statement.tail));
            ledger.push(Owed.Parse, Reply.Swallow);
            batch.addBuffer(CLOSE_CHECK);
            ledger.push(Owed.Close, Reply.Swallow);
            // Whether the client has the statement now depends on the check, while the server has it either way: a
            // later segment's Bind or Describe of it waits for the answer (seed 20261369: the check failed in an
            // aborted transaction, and a Describe found the server's statement, 25P02, where directly it is 26000).
            target.changeSent(name, PendingChange.Replaced);
          }
          target.synthesize(Owed.Parse, PARSE_COMPLETE);
          return;
        }
        if (placed.present) this.closeFirst(placed.name, target);
        else this.evictFor(placed.name, statement.key, target);
        if (placed.name === name) batch.add(buf, start, end);
        else batch.addBuffer(buildParse(placed.name, statement.tail));
        ledger.push(Owed.Parse, Reply.Forward, null, placed.name, null, name);
        target.statements.sent(placed.name, target.segment, false);
        return;
      }
      case FrontendCode.Bind: {
        const name = readBindStatement(buf, start, end);
        if (name === '') {
          const token = this.unnamedToken;
          if (token !== null && token.effects !== 0) this.onUse?.(token.effects, token.customSettings);
          this.noteBind(buf, start, end, token?.resets ?? null);
          if (this.ensureUnnamed(target, readBindParameterCount(buf, start, end))) {
            batch.add(buf, start, end);
            ledger.push(Owed.Bind);
          } else {
            batch.addBuffer(renameBind(buf, start, end, `${UNPREPARED_PREFIX}unnamed`));
            ledger.push(Owed.Bind, Reply.ReplaceError, NO_UNNAMED_STATEMENT);
          }
          return;
        }
        const used = this.statements.get(name);
        if (used !== undefined && used.effects !== 0) this.onUse?.(used.effects, used.customSettings);
        this.noteBind(buf, start, end, used?.resets ?? null);
        const serverName = this.ensurePrepared(name, target, used === undefined ? null : bindInAbortedTransaction(name, used.params, readBindParameterCount(buf, start, end)));
        if (serverName === null) {
          // Never prepared by this client, but another client left one of that name here: make
          // the server fail as it would in the client's own session, under the client's name.
          batch.addBuffer(renameBind(buf, start, end, `${UNPREPARED_PREFIX}${name}`));
          ledger.push(Owed.Bind, Reply.ReplaceError, noSuchStatement(name));
          return;
        }
        if (serverName === name) {
          batch.add(buf, start, end);
          ledger.push(Owed.Bind);
        } else {
          // Under an alias: an error naming it is put back in the client's name (Attachment.onError).
          batch.addBuffer(renameBind(buf, start, end, serverName));
          ledger.push(Owed.Bind, Reply.Forward, null, serverName, null, name);
        }
        return;
      }
      case FrontendCode.Describe: {
        const described = readTarget(buf, start, end);
        if (described.kind !== STATEMENT) {
          batch.add(buf, start, end);
          ledger.push(Owed.DescribePortal);
          return;
        }
        if (described.name === '') {
          if (this.ensureUnnamed(target)) {
            batch.add(buf, start, end);
            ledger.push(Owed.DescribeStatement);
          } else {
            batch.addBuffer(buildTarget(FrontendCode.Describe, STATEMENT, `${UNPREPARED_PREFIX}unnamed`));
            ledger.push(Owed.DescribeStatement, Reply.ReplaceError, NO_UNNAMED_STATEMENT);
          }
          return;
        }
        const serverName = this.ensurePrepared(described.name, target);
        if (serverName === null) {
          batch.addBuffer(buildTarget(FrontendCode.Describe, STATEMENT, `${UNPREPARED_PREFIX}${described.name}`));
          ledger.push(Owed.DescribeStatement, Reply.ReplaceError, noSuchStatement(described.name));
          return;
        }
        if (serverName === described.name) {
          batch.add(buf, start, end);
          ledger.push(Owed.DescribeStatement);
        } else {
          batch.addBuffer(buildTarget(FrontendCode.Describe, STATEMENT, serverName));
          ledger.push(Owed.DescribeStatement, Reply.Forward, null, serverName, null, described.name);
        }
        return;
      }
      case FrontendCode.Close: {
        const closed = readTarget(buf, start, end);
        if (closed.kind === STATEMENT && closed.name !== '') {
          // The server keeps it for other clients (the LRU ages it out); this client forgets it.
          const statement = this.statements.get(closed.name);
          if (statement !== undefined) {
            this.record(Undo.Named, closed.name, statement);
            this.statements.delete(closed.name);
            target.changeSent(closed.name, PendingChange.Replaced);
          }
          target.synthesize(Owed.Close, CLOSE_COMPLETE);
          return;
        }
        if (closed.kind === STATEMENT) {
          // The unnamed statement: closed on the server only if it is this client's there.
          if (this.unnamedTail === null) {
            target.synthesize(Owed.Close, CLOSE_COMPLETE);
            return;
          }
          // A later segment's message of the unnamed statement waits for this one's answer: if the server skips
          // this Close, the client still has the statement (a second Close must close it, not be answered).
          target.changeSent('', PendingChange.Use);
          // Closed on the server, which has to be the client's there first: if an earlier message fails, the
          // server skips the Close and the client keeps its statement, and a pipelined Bind after the Sync is
          // forwarded for the server to decide (see closedUnnamed).
          this.ensureUnnamed(target);
          const closing = this.unnamedToken;
          this.setUnnamed(null, null);
          this.closedUnnamed = closing;
        }
        batch.add(buf, start, end);
        ledger.push(Owed.Close);
        return;
      }
      default:
        break;
    }
    batch.add(buf, start, end);
    ledger.push(code === FrontendCode.Parse ? Owed.Parse : code === FrontendCode.Bind ? Owed.Bind : code === FrontendCode.Describe ? Owed.DescribeStatement : Owed.Close);
  }

  // ---- RESET through the extended protocol ----

  /** A Bind of a statement that RESETs `resets` (null: none) makes its portal the one to watch; another Bind to that portal ends it. */
  private noteBind(buf: Buffer, start: number, end: number, resets: Resets): void {
    if (resets === null && this.resetPortal === null) return;
    const portal = readPortalName(buf, start, end);
    if (resets !== null && this.restore !== null) {
      this.resetPortal = portal;
      this.portalResets = resets;
    } else if (portal === this.resetPortal) {
      this.resetPortal = null;
    }
  }

  /** Whether an Execute may run a RESET (then the link calls executed() after sending it). */
  get resetBound(): boolean {
    return this.resetPortal !== null;
  }

  /**
   * An Execute was sent: if it runs the RESET bound last, the client's startup values are put back right after it, in
   * the same segment (a server's own reset values are its defaults or another client's startup values; PostgreSQL
   * resets to the client's). pgmux's statements use the server's unnamed statement and portal (the client's unnamed
   * statement is prepared again where it is needed next: unnamedOwner), and their answers are swallowed. If the RESET
   * fails, the server skips them with it. ParameterStatus goes out at ReadyForQuery, with the final value only.
   */
  executed(buf: Buffer, start: number, end: number, target: StatementTarget): void {
    if (readPortalName(buf, start, end) !== this.resetPortal) return;
    this.resetPortal = null; // run to completion: executing the portal again resets nothing
    const statements = (this.restore as StartupRestore)(this.portalResets as readonly string[] | 'all');
    if (statements.length === 0) return;
    const batch = target.toServer;
    for (const sql of statements) {
      batch.addBuffer(serialize.parse({ text: sql }));
      target.ledger.push(Owed.Parse, Reply.Swallow);
      batch.addBuffer(BIND_RESTORE);
      target.ledger.push(Owed.Bind, Reply.Swallow);
      batch.addBuffer(EXECUTE_RESTORE);
      target.ledger.push(Owed.Execute, Reply.Swallow);
    }
    target.statements.unnamedOwner = null;
  }

  /**
   * The server's copy of the client's statement `name` is stale (its result type changed): close
   * it there, so the next message using it prepares it afresh.
   */
  invalidate(name: string, target: StatementTarget): void {
    const statement = this.statements.get(name);
    if (statement === undefined) return;
    for (const serverName of [name, `pgmux_${statement.key}`]) {
      if (target.statements.use(serverName) !== statement.key) continue;
      target.statements.delete(serverName);
      target.toServer.addBuffer(buildTarget(FrontendCode.Close, STATEMENT, serverName));
      target.ledger.push(Owed.Close, Reply.Swallow);
    }
  }

  /**
   * Make sure the server has the client's statement `name`; returns the name it has there, or
   * null when the client never prepared `name` but the server has a statement of that name.
   */
  private ensurePrepared(name: string, target: StatementTarget, answerIfAborted: Buffer | null = null): string | null {
    const statement = this.statements.get(name);
    if (statement === undefined) return target.statements.has(name) ? null : name;
    const placed = this.place(name, statement, target.statements);
    countLookup(target, placed.present);
    const uncertain = placed.present && target.statements.uncertain(placed.name, target.segment);
    if (!placed.present || uncertain) {
      if (uncertain) this.closeFirst(placed.name, target);
      else this.evictFor(placed.name, statement.key, target);
      target.toServer.addBuffer(buildParse(placed.name, statement.tail));
      target.ledger.push(Owed.Parse, Reply.Swallow, answerIfAborted, placed.name);
      target.statements.sent(placed.name, target.segment, true);
    }
    return placed.name;
  }

  /**
   * The statement rests on pgmux's Parse in an earlier segment still in flight, which the server skips if a
   * message before it fails: prepare it again, closing it first (a Close of a name the server lacks is no error).
   */
  private closeFirst(name: string, target: StatementTarget): void {
    target.toServer.addBuffer(buildTarget(FrontendCode.Close, STATEMENT, name));
    target.ledger.push(Owed.Close, Reply.Swallow);
  }

  /** Where the statement lives (or will) on this server, and whether it is there already. */
  private place(name: string, statement: Statement, cache: PreparedCache): { name: string; present: boolean } {
    const owner = cache.use(name);
    if (owner === statement.key) return { name, present: true };
    const alias = `pgmux_${statement.key}`;
    if (owner === undefined) return { name, present: false };
    return { name: alias, present: cache.use(alias) === statement.key };
  }

  /** Record a statement about to be prepared, closing what the LRU pushes out. */
  private evictFor(name: string, key: string, target: StatementTarget): void {
    for (const [evicted, evictedKey] of target.statements.add(name, key)) {
      target.toServer.addBuffer(buildTarget(FrontendCode.Close, STATEMENT, evicted));
      // The key goes with it: if the server skips this Close, the statement is still there.
      target.ledger.push(Owed.Close, Reply.Swallow, Buffer.from(evictedKey, 'latin1'), evicted);
    }
  }
}
