/**
 * Transaction mode: a client's named prepared statements follow it from server to server.
 *
 * The client's statements are kept here by the client's names; each server connection keeps
 * an LRU of what it has prepared. When a message refers to a statement the current server
 * lacks, the Parse is injected first and its ParseComplete swallowed. A server that already has
 * the statement (same text and types) is reused: the client's own Parse is replaced by a Close of
 * nothing, whose CloseComplete becomes the client's ParseComplete, so answers stay in order.
 *
 * Statements keep the client's name on the server whenever that name is free there or already
 * means the same statement, so Bind/Describe are forwarded untouched; only on a clash a
 * `pgmux_<hash>` name is used and the message re-encoded.
 */
import { createHash } from 'node:crypto';
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
import type { ServerConnection } from '../server/server-connection.js';
import { Expect } from '../server/response-queue.js';

interface Statement {
  /** Hash of query text and parameter types: equal keys are interchangeable statements. */
  key: string;
  tail: Buffer;
}

/** Prefix of the stand-in name for a statement the client never prepared (see ServerConnection's error handling). */
export const UNPREPARED_PREFIX = 'pgmux_unprepared_';

/** Closing a statement that does not exist succeeds: used where an answer is needed but no effect. */
const CLOSE_NOTHING = buildTarget(FrontendCode.Close, STATEMENT, 'pgmux_nothing');

/** Prepared-statement cache hit (the server had it) or miss (pgmux prepares it), for metrics: two field increments. */
function countLookup(server: ServerConnection, present: boolean): void {
  const stats = server.owner.stats;
  if (present) stats.preparedHits++;
  else stats.preparedMisses++;
}

export class StatementRouter {
  private readonly statements = new Map<string, Statement>();

  get size(): number {
    return this.statements.size;
  }

  has(name: string): boolean {
    return this.statements.has(name);
  }

  register(info: ParseInfo): void {
    const key = createHash('sha1').update(info.tail).digest('hex').slice(0, 20);
    this.statements.set(info.name, { key, tail: info.tail });
  }

  forget(name: string): void {
    this.statements.delete(name);
  }

  clear(): void {
    this.statements.clear();
  }

  /**
   * Queue one client message for `server`, rewritten as needed, with whatever must precede it,
   * and record how the server's answers are to be treated.
   */
  send(code: number, buf: Buffer, start: number, end: number, server: ServerConnection, batch: WriteBatch): void {
    switch (code) {
      case FrontendCode.Parse: {
        if (buf[start + 5] === 0) break; // unnamed: forwarded as is
        const info = readParse(buf, start, end);
        const statement = this.statements.get(info.name);
        if (statement === undefined) break;
        const placed = this.place(info.name, statement, server);
        countLookup(server, placed.present);
        if (placed.present) {
          batch.addBuffer(CLOSE_NOTHING);
          server.expect.push(Expect.ParseFake);
          return;
        }
        this.evictFor(placed.name, statement.key, server, batch);
        if (placed.name === info.name) batch.add(buf, start, end);
        else batch.addBuffer(buildParse(placed.name, statement.tail));
        server.expect.push(Expect.ParsePass, placed.name);
        return;
      }
      case FrontendCode.Bind: {
        const name = readBindStatement(buf, start, end);
        if (name === '') break;
        const serverName = this.ensurePrepared(name, server, batch);
        if (serverName === name) batch.add(buf, start, end);
        else batch.addBuffer(renameBind(buf, start, end, serverName));
        return;
      }
      case FrontendCode.Describe: {
        const target = readTarget(buf, start, end);
        if (target.kind !== STATEMENT || target.name === '') break;
        const serverName = this.ensurePrepared(target.name, server, batch);
        if (serverName === target.name) batch.add(buf, start, end);
        else batch.addBuffer(buildTarget(FrontendCode.Describe, STATEMENT, serverName));
        return;
      }
      case FrontendCode.Close: {
        const target = readTarget(buf, start, end);
        if (target.kind === STATEMENT && target.name !== '') {
          // The server keeps it for other clients (the LRU ages it out); this client forgets it.
          this.statements.delete(target.name);
          batch.addBuffer(CLOSE_NOTHING);
        } else {
          batch.add(buf, start, end);
        }
        server.expect.push(Expect.ClosePass);
        return;
      }
      default:
        break;
    }
    if (code === FrontendCode.Parse) server.expect.push(Expect.ParsePass);
    batch.add(buf, start, end);
  }

  /**
   * The server's copy of the client's statement `name` is stale (its result type changed): close
   * it there, so the next message using it prepares it afresh.
   */
  invalidate(name: string, server: ServerConnection, batch: WriteBatch): void {
    const statement = this.statements.get(name);
    if (statement === undefined) return;
    for (const serverName of [name, `pgmux_${statement.key}`]) {
      if (server.statements.use(serverName) !== statement.key) continue;
      server.statements.delete(serverName);
      batch.addBuffer(buildTarget(FrontendCode.Close, STATEMENT, serverName));
      server.expect.push(Expect.CloseSwallow);
    }
  }

  /** Make sure `server` has the client's statement `name`; returns the name it has there. */
  private ensurePrepared(name: string, server: ServerConnection, batch: WriteBatch): string {
    const statement = this.statements.get(name);
    if (statement === undefined) {
      // Never prepared by this client: the server must say "does not exist", even if another
      // client left a statement of that name there.
      // (The error names the stand-in; the server connection puts the client's name back.)
      return server.statements.has(name) ? `${UNPREPARED_PREFIX}${name}` : name;
    }
    const placed = this.place(name, statement, server);
    countLookup(server, placed.present);
    if (!placed.present) {
      this.evictFor(placed.name, statement.key, server, batch);
      batch.addBuffer(buildParse(placed.name, statement.tail));
      server.expect.push(Expect.ParseSwallow, placed.name);
    }
    return placed.name;
  }

  /** Where the statement lives (or will) on this server, and whether it is there already. */
  private place(name: string, statement: Statement, server: ServerConnection): { name: string; present: boolean } {
    const cache = server.statements;
    const owner = cache.use(name);
    if (owner === statement.key) return { name, present: true };
    const alias = `pgmux_${statement.key}`;
    if (owner === undefined) return { name, present: false };
    return { name: alias, present: cache.use(alias) === statement.key };
  }

  /** Record a statement about to be prepared, closing what the LRU pushes out. */
  private evictFor(name: string, key: string, server: ServerConnection, batch: WriteBatch): void {
    for (const evicted of server.statements.add(name, key)) {
      batch.addBuffer(buildTarget(FrontendCode.Close, STATEMENT, evicted));
      server.expect.push(Expect.CloseSwallow);
    }
  }
}
