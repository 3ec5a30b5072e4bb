/**
 * Counters of a soak run and the one place errors seen by clients are classified.
 *
 * An error is filed under its SQLSTATE when the server (or pgmux) sent one, else under what the driver said
 * (`no SQLSTATE: ...`). Errors a client brought on itself (it cut its own connection) are not filed. Some
 * SQLSTATEs are what the injected faults cause (57P01 from the upstream restart or KILL_CLIENT, 08006 from a lost
 * server, 57P03 while the cluster starts); any other SQLSTATE is unexplained and fails the run, as does a
 * connection that closed without a word outside the faults that explain it (the upstream restart, KILL_CLIENT of
 * that client).
 */
import pg from 'pg';
import postgres from 'postgres';
import { WireClosedError, WireServerError } from './wire-session.js';

/** SQLSTATEs the faults injected explain. */
export const EXPLAINED_SQLSTATES: ReadonlySet<string> = new Set([
  '57P01', // admin_shutdown: the cluster's fast shutdown terminates backends; KILL_CLIENT
  '57P03', // cannot_connect_now: the cluster is starting up
  '08006', // connection_failure: pgmux lost its server (the restart) or could not connect to it
]);

export type ClientKind = 'pg' | 'postgres.js' | 'wire' | 'psql';

export interface ErrorClass {
  key: string;
  sqlstate: string | undefined;
}

/** SQLSTATE and a key for an error from any of the clients. */
export function classifyError(err: unknown): ErrorClass {
  if (err instanceof pg.DatabaseError || err instanceof postgres.PostgresError || err instanceof WireServerError) {
    const code = (err as { code?: string }).code ?? '';
    return { key: code, sqlstate: code };
  }
  if (err instanceof WireClosedError) return { key: 'no SQLSTATE: connection closed', sqlstate: undefined };
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : undefined;
  const message = typeof e.message === 'string' ? e.message : String(err);
  return { key: `no SQLSTATE: ${code ?? message.replace(/[0-9]+/g, 'N').slice(0, 60)}`, sqlstate: undefined };
}

export class SoakStats {
  readonly acked = new Map<ClientKind, number>();
  readonly failedTx = new Map<ClientKind, number>();
  readonly faults = new Map<string, number>();
  readonly errors = new Map<string, number>();
  readonly errorSamples = new Map<string, string>();
  /** Problems that fail the run, by invariant. */
  readonly unexplained: string[] = [];
  readonly stuck: string[] = [];
  readonly splitTransactions: string[] = [];

  splitTransaction(text: string): void {
    if (this.splitTransactions.length < 30) this.splitTransactions.push(text);
    this.onProblem(text);
  }
  unexplainedCount = 0;
  stuckCount = 0;
  /** Connections opened by the load (logins through pgmux). */
  logins = 0;
  /** Told of each problem as it happens (the summary only comes at the end). */
  onProblem: (text: string) => void = () => undefined;

  ackedTotal(): number {
    let n = 0;
    for (const v of this.acked.values()) n += v;
    return n;
  }

  bump<K>(map: Map<K, number>, key: K, by = 1): void {
    map.set(key, (map.get(key) ?? 0) + by);
  }

  fault(kind: string): void {
    this.bump(this.faults, kind);
  }

  /** Files an error a client saw; `explainedDisconnect` says whether a close without SQLSTATE has a known cause. */
  error(client: string, err: unknown, explainedDisconnect: boolean): void {
    const { key, sqlstate } = classifyError(err);
    this.bump(this.errors, key);
    const text = `${client}: ${(err as Error)?.message ?? String(err)}`;
    if (!this.errorSamples.has(key)) this.errorSamples.set(key, text);
    const explained = sqlstate !== undefined ? EXPLAINED_SQLSTATES.has(sqlstate) : explainedDisconnect;
    if (!explained) {
      this.unexplainedCount++;
      if (this.unexplained.length < 30) this.unexplained.push(`${new Date().toISOString()} ${key}: ${text}`);
      this.onProblem(`unexplained error ${key}: ${text}`);
    }
  }

  stuckOp(client: string, what: string, ms: number): void {
    this.stuckCount++;
    const text = `${client}: ${what} did not finish within ${ms} ms`;
    if (this.stuck.length < 30) this.stuck.push(text);
    this.onProblem(`stuck: ${text}`);
  }
}
