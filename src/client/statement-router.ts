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
import { CLOSE_COMPLETE, errorResponse, PARSE_COMPLETE } from '../protocol/backend-messages.js';
import { FrontendCode } from '../protocol/codes.js';
import {
  buildParse,
  buildTarget,
  readBindStatement,
  readParse,
  readTarget,
  renameBind,
  STATEMENT,
  type ParseInfo,
} from '../protocol/frontend-messages.js';
import type { WriteBatch } from '../protocol/write-batch.js';
import type { PreparedCache } from '../server/prepared-cache.js';
import { Owed, Reply, type RequestLedger } from '../link/request-ledger.js';

interface Statement {
  /** Hash of query text and parameter types: equal keys are interchangeable statements. */
  key: string;
  tail: Buffer;
}

/** What the router writes to and records in: the link to the server now serving the client. */
export interface StatementTarget {
  /** What the server has prepared. */
  readonly statements: PreparedCache;
  readonly ledger: RequestLedger;
  readonly toServer: WriteBatch;
  /** Prepared-statement cache hits and misses (metrics). */
  readonly counters: { preparedHits: number; preparedMisses: number };
  /** Answer a message with pgmux's own reply, in its turn (`clientName`: the statement a Parse so answered creates). */
  synthesize(kind: Owed, reply: Buffer, clientName?: string | null): void;
  /** Send a message that fails on the server on purpose; the client gets `error` in its place. */
  injectFailure(kind: Owed, message: Buffer, error: Buffer): void;
}

/** Stand-in name for a statement the client never prepared but the server has (from another client). */
const UNPREPARED_PREFIX = 'pgmux_unprepared_';

function countLookup(target: StatementTarget, present: boolean): void {
  if (present) target.counters.preparedHits++;
  else target.counters.preparedMisses++;
}

/** Ledger name of the client's unnamed Parses: a NUL, which no statement name can contain, and its number. */
export const UNNAMED_MARK = '\u0000';

/** PostgreSQL's error for an unnamed statement the session does not have. */
const NO_UNNAMED_STATEMENT = errorResponse({ severity: 'ERROR', code: '26000', message: 'unnamed prepared statement does not exist' });

/** PostgreSQL's error for a statement name the session does not have. */
function noSuchStatement(name: string): Buffer {
  return errorResponse({ severity: 'ERROR', code: '26000', message: `prepared statement "${name}" does not exist` });
}

/**
 * A Parse that fails on the server, so a batch fails there as it would in the client's own session: a column
 * reference with no FROM (42703) fails at analysis, after PostgreSQL's aborted-transaction check (25P02 first).
 */
const FAILING_PARSE = buildParse('', Buffer.from('SELECT pgmux_refused_parse\0\0\0', 'latin1'));

export class StatementRouter {
  private readonly statements = new Map<string, Statement>();
  /**
   * The client's unnamed statement (it outlives a Sync: psql's \gdesc prepares, then describes in a
   * second round trip), and the token that marks it on a server (PreparedCache.unnamedOwner).
   */
  private unnamedTail: Buffer | null = null;
  private unnamedToken: object | null = null;
  /** Unnamed Parses sent so far (see UNNAMED_MARK). */
  private unnamedParses = 0;
  /** Statements the client Closed whose CloseComplete pgmux has not given yet: the server may still skip the Close. */
  private readonly closing = new Map<string, Statement>();

  /** `tracking` false (max_prepared_statements 0): named statements are passed through as sent. */
  constructor(private readonly tracking = true) {}

  get size(): number {
    return this.statements.size;
  }

  has(name: string): boolean {
    return this.statements.has(name);
  }

  /** Record a statement the client prepared (a Parse answered by pgmux and prepared on a server at first use). */
  register(info: ParseInfo): Statement {
    const statement = { key: createHash('sha1').update(info.tail).digest('hex').slice(0, 20), tail: info.tail };
    this.statements.set(info.name, statement);
    return statement;
  }

  forget(name: string): void {
    if (!name.startsWith(UNNAMED_MARK)) this.statements.delete(name);
    else if (name === `${UNNAMED_MARK}${this.unnamedParses}`) this.unnamedDropped();
  }

  /** The client's unnamed statement is gone (a simple Query, a Close, a failed Parse). */
  unnamedDropped(): void {
    this.unnamedTail = null;
    this.unnamedToken = null;
  }

  /** Make the server's unnamed statement this client's, if the client has one; false if it has none. */
  private ensureUnnamed(target: StatementTarget): boolean {
    if (this.unnamedToken === null || this.unnamedTail === null) return false;
    if (target.statements.unnamedOwner === this.unnamedToken) return true;
    target.toServer.addBuffer(buildParse('', this.unnamedTail));
    target.ledger.push(Owed.Parse, Reply.Swallow);
    target.statements.unnamedOwner = this.unnamedToken;
    return true;
  }

  /** The client's Close of `name` was answered: it is gone for good. */
  closeDone(name: string): void {
    this.closing.delete(name);
  }

  /** The client's Close of `name` was skipped by the server (an earlier message failed): the client still has it. */
  closeUndone(name: string): void {
    const statement = this.closing.get(name);
    this.closing.delete(name);
    if (statement !== undefined && !this.statements.has(name)) this.statements.set(name, statement);
  }

  clear(): void {
    this.statements.clear();
    this.closing.clear();
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
          // The unnamed statement: forwarded as is, and now this client's on this server.
          const token = {};
          this.unnamedTail = readParse(buf, start, end).tail;
          this.unnamedToken = token;
          this.unnamedParses++;
          target.statements.unnamedOwner = token;
          batch.add(buf, start, end);
          // Named for the ledger by its number: if it fails, only this one is undone (a later one may be in flight).
          ledger.push(Owed.Parse, Reply.Forward, null, null, null, `${UNNAMED_MARK}${this.unnamedParses}`);
          return;
        }
        if (!this.tracking) break;
        // Registered as it is sent, so the client's statements change in the order of its messages.
        const info = readParse(buf, start, end);
        const name = info.name;
        if (this.statements.has(name)) {
          // The client's session has it already: PostgreSQL refuses the Parse (and skips to Sync).
          target.injectFailure(Owed.Parse, FAILING_PARSE, errorResponse({ severity: 'ERROR', code: '42P05', message: `prepared statement "${name}" already exists` }));
          return;
        }
        const statement = this.register(info);
        const placed = this.place(name, statement, target.statements);
        countLookup(target, placed.present);
        if (placed.present) {
          target.synthesize(Owed.Parse, PARSE_COMPLETE, name);
          return;
        }
        this.evictFor(placed.name, statement.key, target);
        if (placed.name === name) batch.add(buf, start, end);
        else batch.addBuffer(buildParse(placed.name, statement.tail));
        ledger.push(Owed.Parse, Reply.Forward, null, placed.name, null, name);
        return;
      }
      case FrontendCode.Bind: {
        const name = readBindStatement(buf, start, end);
        if (name === '') {
          if (this.ensureUnnamed(target)) {
            batch.add(buf, start, end);
            ledger.push(Owed.Bind);
          } else {
            batch.addBuffer(renameBind(buf, start, end, `${UNPREPARED_PREFIX}unnamed`));
            ledger.push(Owed.Bind, Reply.ReplaceError, NO_UNNAMED_STATEMENT);
          }
          return;
        }
        const serverName = this.ensurePrepared(name, target);
        if (serverName === null) {
          // Never prepared by this client, but another client left one of that name here: make
          // the server fail as it would in the client's own session, under the client's name.
          batch.addBuffer(renameBind(buf, start, end, `${UNPREPARED_PREFIX}${name}`));
          ledger.push(Owed.Bind, Reply.ReplaceError, noSuchStatement(name));
          return;
        }
        if (serverName === name) batch.add(buf, start, end);
        else batch.addBuffer(renameBind(buf, start, end, serverName));
        ledger.push(Owed.Bind);
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
        if (serverName === described.name) batch.add(buf, start, end);
        else batch.addBuffer(buildTarget(FrontendCode.Describe, STATEMENT, serverName));
        ledger.push(Owed.DescribeStatement);
        return;
      }
      case FrontendCode.Close: {
        const closed = readTarget(buf, start, end);
        if (closed.kind === STATEMENT && closed.name !== '') {
          // The server keeps it for other clients (the LRU ages it out); this client forgets it.
          const statement = this.statements.get(closed.name);
          if (statement !== undefined) this.closing.set(closed.name, statement);
          this.statements.delete(closed.name);
          target.synthesize(Owed.Close, CLOSE_COMPLETE, closed.name);
          return;
        }
        if (closed.kind === STATEMENT) {
          // The unnamed statement: closed on the server only if it is this client's there.
          const here = this.unnamedToken !== null && target.statements.unnamedOwner === this.unnamedToken;
          this.unnamedDropped();
          if (!here) {
            target.synthesize(Owed.Close, CLOSE_COMPLETE);
            return;
          }
          target.statements.unnamedOwner = null;
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
  private ensurePrepared(name: string, target: StatementTarget): string | null {
    const statement = this.statements.get(name);
    if (statement === undefined) return target.statements.has(name) ? null : name;
    const placed = this.place(name, statement, target.statements);
    countLookup(target, placed.present);
    if (!placed.present) {
      this.evictFor(placed.name, statement.key, target);
      target.toServer.addBuffer(buildParse(placed.name, statement.tail));
      target.ledger.push(Owed.Parse, Reply.Swallow, null, placed.name);
    }
    return placed.name;
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
