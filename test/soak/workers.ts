/**
 * The clients of the soak load. Each runs transactions in a loop until the run stops; every transaction is
 * recorded in the Ledger before it starts and as it gets further (COMMIT sent, COMMIT acknowledged). A worker that
 * is handed a fault token cuts its own connection at the matching point of its next transaction:
 *
 * - node-postgres: RST or FIN mid-transaction (BEGIN and one INSERT done), RST right after COMMIT is written.
 * - postgres.js: RST or FIN mid-transaction, on a reserved connection (its socket comes from the `socket` option).
 * - raw protocol (wire-session.ts): RST or FIN mid-COPY (COPY FROM STDIN with part of its data sent), RST or FIN
 *   mid-result (a 50 MB SELECT with its first 256 kB read, then left unread for a moment).
 * - psql: a script of several transactions (INSERTs, inline COPY), SIGKILLed at a random moment.
 *
 * Every wait on the network is bounded (`opBoundMs`): an operation that does not finish or fail in time is
 * counted as stuck, and the worker drops that connection and goes on.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import pg from 'pg';
import postgres from 'postgres';
import { libpqEnv } from '../harness/process.js';
import { APP_ROLE } from '../harness/roles.js';
import { sleep } from '../harness/wait.js';
import { TxState, type Ledger } from './ledger.js';
import type { Random } from './random.js';
import type { ClientKind, SoakStats } from './stats.js';
import { WireClosedError, WireServerError, WireSession } from './wire-session.js';

export const CLIENT_FAULTS = [
  'RST mid-transaction (node-postgres)',
  'FIN mid-transaction (node-postgres)',
  'RST after COMMIT sent (node-postgres)',
  'RST mid-transaction (postgres.js)',
  'FIN mid-transaction (postgres.js)',
  'RST mid-COPY (raw)',
  'FIN mid-COPY (raw)',
  'RST mid-result (raw)',
  'FIN mid-result (raw)',
  'SIGKILL psql mid-script',
] as const;
export type ClientFault = (typeof CLIENT_FAULTS)[number];

export interface WorkerEnv {
  readonly rng: Random;
  /** pgmux's port. */
  readonly port: number;
  readonly ledger: Ledger;
  readonly stats: SoakStats;
  readonly opBoundMs: number;
  /** The cluster's psql. */
  readonly psql: string;
  running(): boolean;
  /** A pending fault token of one of these kinds, taken (at most one per transaction). */
  takeFault(kinds: readonly ClientFault[]): ClientFault | undefined;
  /** Whether a connection (by its local ports) that closed without a word has a known cause since `since`. */
  disconnectExplained(localPorts: readonly number[], since: number): boolean;
}

export interface Worker {
  readonly name: string;
  readonly kind: ClientKind;
  /** Runs until env.running() turns false, then closes its connections. */
  run(): Promise<void>;
  /** Drops every connection at once (a worker that did not stop in time). */
  abort(): void;
}

const INSERT_SQL = 'INSERT INTO soak_ledger (txid, part, client, parts, payload) VALUES ($1, $2, $3, $4, $5)';
const COUNT_SQL = 'SELECT count(*)::int AS n FROM soak_ledger WHERE txid = $1';
const COUNTER_SQL = 'UPDATE soak_counter SET n = n + 1 WHERE client = $1';
const COPY_SQL = 'COPY soak_ledger (txid, part, client, parts, payload) FROM STDIN';
/** 50 000 rows of 1 kB: far more than socket buffers hold, so the server is still sending when the client goes. */
const LARGE_SELECT = "SELECT g, repeat('x', 1000) FROM generate_series(1, 50000) g";

/** The operation took longer than opBoundMs (already counted as stuck). */
class StuckError extends Error {}
/** The worker cut its own connection: whatever error follows is its own doing. */
class SelfCut extends Error {}

function payload(rng: Random, txid: number): string {
  return `p${txid}-${'x'.repeat(rng.int(0, 3) === 0 ? rng.int(100, 2000) : rng.int(0, 40))}`;
}

function literal(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

abstract class BaseWorker implements Worker {
  abstract readonly kind: ClientKind;
  protected selfCut = false;
  /** When the current connection was opened (a disconnect is explained by faults after this). */
  protected openedAt = 0;
  /** The first error a driver reported for the current connection outside a query (a FATAL while idle). */
  protected cause: unknown;

  constructor(
    protected readonly env: WorkerEnv,
    readonly name: string,
    protected readonly clientIndex: number,
    protected readonly database: string,
  ) {}

  abstract run(): Promise<void>;
  abstract abort(): void;

  /** Local ports of the current connection(s), for KILL_CLIENT attribution. */
  protected abstract localPorts(): number[];

  protected bounded<T>(what: string, p: Promise<T>, onStuck: () => void): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.env.stats.stuckOp(this.name, what, this.env.opBoundMs);
        onStuck();
        reject(new StuckError(what));
      }, this.env.opBoundMs);
    });
    return Promise.race([p, limit]).finally(() => clearTimeout(timer));
  }

  /** Files a failure (unless self-inflicted or already counted as stuck) and counts the transaction as failed. */
  protected failed(err: unknown): void {
    this.env.stats.bump(this.env.stats.failedTx, this.kind);
    if (err instanceof StuckError || err instanceof SelfCut || this.selfCut) return;
    // Prefer whichever of the two carries a SQLSTATE: a FATAL to an idle connection comes as an 'error' event,
    // and the next query only learns that the connection is gone.
    const withCode = (e: unknown): boolean => e instanceof pg.DatabaseError || e instanceof postgres.PostgresError || e instanceof WireServerError;
    const cause = withCode(err) || !withCode(this.cause) ? err : this.cause;
    this.env.stats.error(this.name, cause, this.env.disconnectExplained(this.localPorts(), this.openedAt));
  }

  protected think(): Promise<void> {
    return sleep(this.env.rng.int(2, 25));
  }

  protected acked(txid: number): void {
    this.env.ledger.acked(txid);
    this.env.stats.bump(this.env.stats.acked, this.kind);
  }

  protected checkCount(txid: number, got: number, want: number, where: string): void {
    if (got !== want) this.env.stats.splitTransaction(`${this.name}: txid ${txid} ${where}: saw ${got} of its ${want} rows`);
  }
}

// ---------------------------------------------------------------------------------------------------------------

export class NodePostgresWorker extends BaseWorker {
  readonly kind = 'pg';
  private client: pg.Client | null = null;

  private get socket(): net.Socket | undefined {
    return (this.client as unknown as { connection?: { stream?: net.Socket } } | null)?.connection?.stream;
  }

  protected localPorts(): number[] {
    const port = this.socket?.localPort;
    return port === undefined ? [] : [port];
  }

  private async connect(): Promise<pg.Client> {
    const client = new pg.Client({
      host: '127.0.0.1',
      port: this.env.port,
      user: APP_ROLE.name,
      password: APP_ROLE.password,
      database: this.database,
      application_name: this.name,
      connectionTimeoutMillis: this.env.opBoundMs,
    });
    this.cause = undefined;
    this.selfCut = false;
    client.on('error', (err) => (this.cause ??= err));
    this.client = client;
    this.openedAt = Date.now();
    await this.bounded('connect', client.connect(), () => this.drop());
    this.env.stats.logins++;
    return client;
  }

  private drop(): void {
    this.socket?.destroy();
    this.client = null;
  }

  abort(): void {
    this.drop();
  }

  private cut(how: 'RST' | 'FIN', fault: ClientFault): void {
    this.selfCut = true;
    const socket = this.socket;
    if (how === 'RST') socket?.resetAndDestroy();
    else {
      socket?.end();
      setTimeout(() => socket?.destroy(), 1_000).unref();
    }
    this.client = null;
    this.env.stats.fault(fault);
  }

  async run(): Promise<void> {
    while (this.env.running()) {
      try {
        const client = this.client ?? (await this.connect());
        await this.transaction(client);
      } catch (err) {
        this.failed(err);
        this.drop();
        await sleep(this.env.rng.int(20, 200));
      }
      await this.think();
    }
    const client = this.client;
    this.client = null;
    if (client !== null) await this.bounded('end', client.end(), () => this.socket?.destroy()).catch(() => undefined);
  }

  private async transaction(client: pg.Client): Promise<void> {
    const { rng, ledger } = this.env;
    const fault = this.env.takeFault(['RST mid-transaction (node-postgres)', 'FIN mid-transaction (node-postgres)', 'RST after COMMIT sent (node-postgres)']);
    const parts = rng.int(2, 4);
    const txid = ledger.begin(this.clientIndex, parts);
    const q = (what: string, config: string | pg.QueryConfig): Promise<pg.QueryResult> => this.bounded(what, client.query(config), () => this.drop());

    if (fault === undefined && rng.chance(0.3)) {
      // One simple Query holding the whole transaction.
      const values = Array.from({ length: parts }, (_, part) => `(${txid}, ${part}, ${literal(this.name)}, ${parts}, ${literal(payload(rng, txid))})`);
      ledger.commitSent(txid);
      const results = (await q('simple transaction', `BEGIN; INSERT INTO soak_ledger (txid, part, client, parts, payload) VALUES ${values.join(', ')}; UPDATE soak_counter SET n = n + 1 WHERE client = ${literal(this.name)}; COMMIT`)) as unknown as pg.QueryResult[];
      const last = results[results.length - 1];
      if (last?.command !== 'COMMIT') throw new Error(`the simple transaction ended with ${last?.command}`);
      this.acked(txid);
      return;
    }

    await q('BEGIN', 'BEGIN');
    await q('INSERT', { text: INSERT_SQL, values: [txid, 0, this.name, parts, payload(rng, txid)] });
    if (fault === 'RST mid-transaction (node-postgres)' || fault === 'FIN mid-transaction (node-postgres)') {
      this.cut(fault.startsWith('RST') ? 'RST' : 'FIN', fault);
      return;
    }
    for (let part = 1; part < parts; part++) {
      await q('INSERT (named)', { name: 'soak_insert', text: INSERT_SQL, values: [txid, part, this.name, parts, payload(rng, txid)] });
    }
    if (rng.chance(0.3)) {
      const r = await q('SELECT count', { name: 'soak_count', text: COUNT_SQL, values: [txid] });
      this.checkCount(txid, (r.rows[0] as { n: number }).n, parts, 'inside its own transaction');
    }
    await q('UPDATE', { name: 'soak_counter', text: COUNTER_SQL, values: [this.name] });
    ledger.commitSent(txid);
    if (fault === 'RST after COMMIT sent (node-postgres)') {
      client.query('COMMIT').catch(() => undefined);
      await sleep(rng.int(0, 3));
      this.cut('RST', fault);
      return;
    }
    const done = await q('COMMIT', 'COMMIT');
    if (done.command !== 'COMMIT') throw new Error(`COMMIT answered ${done.command}`);
    this.acked(txid);
    if (rng.chance(0.1)) {
      // An acknowledged commit is visible at once, on whatever server the next statement gets.
      const r = await q('SELECT count after COMMIT', { name: 'soak_count', text: COUNT_SQL, values: [txid] });
      this.checkCount(txid, (r.rows[0] as { n: number }).n, parts, 'after its acknowledged COMMIT');
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------

/**
 * postgres.js, in the two ways applications use it.
 *
 * postgres.js 3.4.9 does not survive connections closed under it well, and the soak must not mistake its bugs
 * for pgmux's: a write issued after a connection closed crashes the process from a setImmediate
 * (porsager/postgres#1208, #1154; `sql.begin` does it itself, with its ROLLBACK), and a connection object whose
 * close raced a pending write stops flushing small writes (porsager/postgres#1215). So:
 *
 * - `transactions` mode (one connection, `max: 1`): explicit BEGIN ... COMMIT on a reserved connection; before
 *   each statement the socket is checked to be open (a close that comes later cancels the pending write), and
 *   after any lost connection the whole instance is replaced, as a new client would connect;
 * - `pool` mode (`connections` shared by `loops` concurrent loops): each transaction is one statement (a
 *   data-modifying CTE writing its rows and its counter, atomic as any transaction), so nothing is ever written
 *   to a connection in a transaction; a lost connection also replaces the instance, and the errors its other
 *   loops then get are the worker's own doing.
 */
export class PostgresJsWorker extends BaseWorker {
  readonly kind = 'postgres.js';
  private sql: postgres.Sql | null = null;
  private readonly retired = new WeakSet<postgres.Sql>();
  private readonly instanceSockets = new WeakMap<postgres.Sql, Set<net.Socket>>();
  private readonly connected = new WeakSet<postgres.Sql>();
  private readonly portsSeen: number[] = [];

  constructor(
    env: WorkerEnv,
    name: string,
    private readonly clientIndexes: number[],
    database: string,
    private readonly mode: 'transactions' | 'pool',
    private readonly connections: number,
  ) {
    super(env, name, clientIndexes[0], database);
  }

  protected localPorts(): number[] {
    return this.portsSeen.slice(-20);
  }

  private instance(): postgres.Sql {
    if (this.sql !== null) return this.sql;
    const port = this.env.port;
    const sockets = new Set<net.Socket>();
    const options = {
      host: '127.0.0.1',
      port,
      user: APP_ROLE.name,
      pass: APP_ROLE.password,
      database: this.database,
      max: this.mode === 'transactions' ? 1 : this.connections,
      prepare: true,
      // The array-type query postgres.js sends on each new connection rejects unhandled when it fails (as
      // during the upstream restart) and takes the process down; nothing here needs array types.
      fetch_types: false,
      connect_timeout: Math.ceil(this.env.opBoundMs / 1000),
      idle_timeout: 0,
      onnotice: () => undefined,
      connection: { application_name: this.name },
      // postgres.js expects a connected socket from this option.
      socket: () =>
        new Promise<net.Socket>((resolve, reject) => {
          const socket = net.connect({ port, host: '127.0.0.1' });
          socket.once('error', reject);
          socket.once('connect', () => {
            socket.off('error', reject);
            sockets.add(socket);
            if (socket.localPort !== undefined) this.portsSeen.push(socket.localPort);
            if (this.portsSeen.length > 100) this.portsSeen.splice(0, 50);
            this.env.stats.logins++;
            socket.once('close', () => sockets.delete(socket));
            resolve(socket);
          });
        }),
    };
    this.openedAt = Date.now();
    this.selfCut = false;
    const sql = postgres(options as postgres.Options<Record<string, postgres.PostgresType>>);
    this.sql = sql;
    this.instanceSockets.set(sql, sockets);
    return sql;
  }

  /** Ends an instance (at once) and forgets it; what its queries get from now on is the worker's own doing. */
  private retire(sql: postgres.Sql): void {
    if (this.retired.has(sql)) return;
    this.retired.add(sql);
    if (this.sql === sql) this.sql = null;
    for (const s of this.instanceSockets.get(sql) ?? []) s.destroy();
    void sql.end({ timeout: 0 }).catch(() => undefined);
  }

  abort(): void {
    if (this.sql !== null) this.retire(this.sql);
  }

  async run(): Promise<void> {
    const loops = this.clientIndexes.map(async (clientIndex, i) => {
      const loopName = this.clientIndexes.length === 1 ? this.name : `${this.name}/${i}`;
      while (this.env.running()) {
        const sql = this.instance();
        try {
          if (this.mode === 'transactions') await this.transaction(sql, clientIndex, loopName);
          else await this.statement(sql, clientIndex, loopName);
        } catch (err) {
          if (this.retired.has(sql) && !(err instanceof postgres.PostgresError)) this.env.stats.bump(this.env.stats.failedTx, this.kind);
          else this.failed(err);
          if (!(err instanceof postgres.PostgresError && err.severity === 'ERROR')) this.retire(sql);
          this.selfCut = false;
          await sleep(this.env.rng.int(20, 200));
        }
        await this.think();
      }
    });
    await Promise.all(loops);
    const sql = this.sql;
    this.sql = null;
    if (sql !== null) await this.bounded('end', sql.end({ timeout: 5 }), () => this.retire(sql)).catch(() => undefined);
  }

  private rows(txid: number, parts: number, client: string): Array<Record<string, string | number>> {
    return Array.from({ length: parts }, (_, part) => ({ txid, part, client, parts, payload: payload(this.env.rng, txid) }));
  }

  /** One statement, one transaction: the rows and the counter in a data-modifying CTE. */
  private async statement(sql: postgres.Sql, clientIndex: number, loopName: string): Promise<void> {
    const { rng, ledger } = this.env;
    const parts = rng.int(2, 4);
    const client = ledger.clients[clientIndex];
    const txid = ledger.begin(clientIndex, parts);
    ledger.commitSent(txid);
    const [r] = await this.bounded(
      'INSERT ... UPDATE',
      sql<Array<{ n: number; u: number }>>`
        WITH ins AS (INSERT INTO soak_ledger ${sql(this.rows(txid, parts, client))} RETURNING 1),
             upd AS (UPDATE soak_counter SET n = n + 1 WHERE client = ${client} RETURNING 1)
        SELECT (SELECT count(*) FROM ins)::int AS n, (SELECT count(*) FROM upd)::int AS u`.execute(),
      () => this.retire(sql),
    );
    if (r.n !== parts || r.u !== 1) throw new Error(`${loopName}: the statement wrote ${r.n} rows and ${r.u} counters`);
    this.acked(txid);
    if (rng.chance(0.1)) {
      const [{ n }] = await this.bounded('SELECT count', sql<Array<{ n: number }>>`SELECT count(*)::int AS n FROM soak_ledger WHERE txid = ${txid}`.execute(), () => this.retire(sql));
      this.checkCount(txid, n, parts, `after its acknowledged COMMIT (${loopName})`);
    }
  }

  /** BEGIN ... COMMIT on the reserved connection of a one-connection instance. */
  private async transaction(sql: postgres.Sql, clientIndex: number, loopName: string): Promise<void> {
    const { rng, ledger } = this.env;
    const fault = this.env.takeFault(['RST mid-transaction (postgres.js)', 'FIN mid-transaction (postgres.js)']);
    const parts = rng.int(2, 4);
    const client = ledger.clients[clientIndex];
    const sockets = this.instanceSockets.get(sql) ?? new Set<net.Socket>();
    const open = (): boolean => [...sockets].some((s) => !s.destroyed && s.writable);
    if (!this.connected.has(sql)) {
      // With fetch_types off, a reserve() that opens the connection never resolves (postgres.js 3.4.9 does not
      // hand a connection it opened for a reserve() to it): open it with a query first.
      await this.bounded('connect', sql`SELECT 1`.execute(), () => this.retire(sql));
      this.connected.add(sql);
    } else if (!open()) {
      // Closed while idle (KILL_CLIENT): a reserve() now would reconnect, and hang as above.
      throw Object.assign(new Error('connection closed while idle'), { code: 'CONNECTION_CLOSED' });
    }
    const tx = await this.bounded('reserve', sql.reserve(), () => this.retire(sql));
    const txid = ledger.begin(clientIndex, parts);
    const rows = this.rows(txid, parts, client);
    // A statement only while the connection is open (see above); else the loss surfaces here.
    const run = <T>(what: string, query: () => Promise<T>): Promise<T> => {
      if (!open()) return Promise.reject(Object.assign(new Error(`connection lost before ${what}`), { code: 'CONNECTION_CLOSED' }));
      return this.bounded(what, query(), () => this.retire(sql));
    };
    try {
      await run('BEGIN', () => tx`BEGIN`.execute());
      await run('INSERT', () => tx`INSERT INTO soak_ledger ${tx(rows.slice(0, 1))}`.execute());
      if (fault !== undefined) {
        this.selfCut = true;
        this.env.stats.fault(fault);
        for (const s of sockets) {
          if (fault.startsWith('RST')) s.resetAndDestroy();
          else s.end();
        }
        throw new SelfCut(fault);
      }
      await run('INSERT', () => tx`INSERT INTO soak_ledger ${tx(rows.slice(1))}`.execute());
      if (rng.chance(0.3)) {
        const [{ n }] = await run('SELECT count', () => tx<Array<{ n: number }>>`SELECT count(*)::int AS n FROM soak_ledger WHERE txid = ${txid}`.execute());
        this.checkCount(txid, n, parts, `inside its own transaction (${loopName})`);
      }
      await run('UPDATE', () => tx`UPDATE soak_counter SET n = n + 1 WHERE client = ${client}`.execute());
      ledger.commitSent(txid);
      const done = await run('COMMIT', () => tx`COMMIT`.execute());
      if (done.command !== 'COMMIT') throw new Error(`COMMIT answered ${done.command}`);
      this.acked(txid);
    } catch (err) {
      // An ERROR (not FATAL) leaves the connection open in a failed transaction: roll it back and hand it back.
      // Anything else: the instance is replaced (run()), and the reserved connection with it.
      if (err instanceof postgres.PostgresError && err.severity === 'ERROR') {
        const rolledBack = await run('ROLLBACK', () => tx`ROLLBACK`.execute()).then(
          () => true,
          () => false,
        );
        if (rolledBack) tx.release();
        else this.retire(sql);
      }
      throw err;
    }
    tx.release();
  }
}

// ---------------------------------------------------------------------------------------------------------------

export class WireWorker extends BaseWorker {
  readonly kind = 'wire';
  private session: WireSession | null = null;

  protected localPorts(): number[] {
    const port = this.session?.localPort;
    return port === undefined ? [] : [port];
  }

  abort(): void {
    this.session?.destroy();
    this.session = null;
  }

  private async connect(): Promise<WireSession> {
    this.selfCut = false;
    this.openedAt = Date.now();
    const session = await this.bounded(
      'connect',
      WireSession.open(this.env.port, APP_ROLE.name, APP_ROLE.password as string, this.database, this.name),
      () => undefined,
    );
    this.env.stats.logins++;
    this.session = session;
    return session;
  }

  async run(): Promise<void> {
    while (this.env.running()) {
      try {
        const session = this.session ?? (await this.connect());
        await this.transaction(session);
      } catch (err) {
        this.failed(this.session?.firstError !== undefined && err instanceof WireClosedError ? new WireServerError(this.session.firstError) : err);
        this.abort();
        await sleep(this.env.rng.int(20, 200));
      }
      await this.think();
    }
    this.session?.terminate();
    this.session = null;
  }

  private cut(session: WireSession, fault: ClientFault): void {
    this.selfCut = true;
    this.env.stats.fault(fault);
    if (fault.startsWith('RST')) session.reset();
    else session.fin();
    this.session = null;
  }

  private copyRows(txid: number, parts: number, from: number): string {
    let text = '';
    for (let part = from; part < parts; part++) text += `${txid}\t${part}\t${this.name}\t${parts}\t${payload(this.env.rng, txid)}\n`;
    return text;
  }

  private async transaction(session: WireSession): Promise<void> {
    const { rng, ledger } = this.env;
    const fault = this.env.takeFault(['RST mid-COPY (raw)', 'FIN mid-COPY (raw)', 'RST mid-result (raw)', 'FIN mid-result (raw)']);
    const parts = rng.int(2, 5);
    const txid = ledger.begin(this.clientIndex, parts);
    const b = <T>(what: string, p: Promise<T>): Promise<T> => this.bounded(what, p, () => this.abort());

    await b('BEGIN', session.query('BEGIN'));
    if (fault === 'RST mid-COPY (raw)' || fault === 'FIN mid-COPY (raw)') {
      await b('INSERT', session.query(`INSERT INTO soak_ledger VALUES (${txid}, 0, ${literal(this.name)}, ${parts}, 'before copy')`));
      await b('COPY start', session.copyStart(COPY_SQL));
      const rows = this.copyRows(txid, parts, 1);
      // Whole rows, then part of one: the server has a row it cannot finish.
      session.copyData(rows.slice(0, Math.max(1, Math.floor(rows.length * rng.between(0.3, 0.9)))));
      await sleep(rng.int(5, 150));
      this.cut(session, fault);
      return;
    }
    if (fault === 'RST mid-result (raw)' || fault === 'FIN mid-result (raw)') {
      await b('INSERT', session.query(`INSERT INTO soak_ledger SELECT ${txid}, p, ${literal(this.name)}, ${parts}, 'before select' FROM generate_series(0, ${parts - 1}) p`));
      const before = session.bytes;
      session.send(LARGE_SELECT);
      await b('first 256 kB of the result', session.untilBytes(before + 256 * 1024, this.env.opBoundMs));
      session.socket.pause();
      await sleep(rng.int(20, 400));
      this.cut(session, fault);
      return;
    }

    await b('COPY start', session.copyStart(COPY_SQL));
    const rows = this.copyRows(txid, parts, 0);
    const split = rng.int(1, rows.length - 1);
    session.copyData(rows.slice(0, split));
    session.copyData(rows.slice(split));
    const copied = await b('COPY', session.copyDone());
    if (copied.tags[0] !== `COPY ${parts}`) throw new Error(`COPY answered ${copied.tags.join(',')}`);
    if (rng.chance(0.2)) {
      // A large result read in full, inside the transaction.
      const r = await b('large SELECT', session.query("SELECT g, repeat('y', 1000) FROM generate_series(1, 3000) g"));
      if (r.rows !== 3000) throw new Error(`the large SELECT returned ${r.rows} rows, not 3000`);
    }
    const seen = await b('SELECT', session.query(`SELECT 1 FROM soak_ledger WHERE txid = ${txid}`));
    this.checkCount(txid, seen.rows, parts, 'inside its own transaction');
    await b('UPDATE', session.query(`UPDATE soak_counter SET n = n + 1 WHERE client = ${literal(this.name)}`));
    ledger.commitSent(txid);
    const done = await b('COMMIT', session.query('COMMIT'));
    if (done.tags[0] !== 'COMMIT' || done.status !== 'I') throw new Error(`COMMIT answered ${done.tags.join(',')} / ${done.status}`);
    this.acked(txid);
  }
}

// ---------------------------------------------------------------------------------------------------------------

/** psql error lines with VERBOSITY verbose: `ERROR:  57P01: terminating connection ...`. */
const PSQL_ERROR = /^(?:psql:[^\n]*?)?(?:ERROR|FATAL):\s+([0-9A-Z]{5}):\s*(.*)$/m;

export class PsqlWorker extends BaseWorker {
  readonly kind = 'psql';
  private child: ReturnType<typeof spawn> | null = null;

  protected localPorts(): number[] {
    return [];
  }

  abort(): void {
    this.child?.kill('SIGKILL');
  }

  async run(): Promise<void> {
    while (this.env.running()) {
      try {
        await this.script();
      } catch (err) {
        this.failed(err);
        await sleep(this.env.rng.int(20, 200));
      }
      await this.think();
    }
  }

  private async script(): Promise<void> {
    const { rng, ledger } = this.env;
    const fault = this.env.takeFault(['SIGKILL psql mid-script']);
    const lines = ['\\set ON_ERROR_STOP 1', '\\set VERBOSITY verbose'];
    const txids: number[] = [];
    for (let i = rng.int(3, 8); i > 0; i--) {
      const parts = rng.int(2, 4);
      // Which of a script's transactions ran is only known from its output: all start as "maybe".
      const txid = ledger.begin(this.clientIndex, parts, TxState.Maybe);
      txids.push(txid);
      lines.push(`\\echo soak-tx ${txid}`, 'BEGIN;');
      if (rng.chance(0.4)) {
        lines.push(`${COPY_SQL};`);
        for (let part = 0; part < parts; part++) lines.push(`${txid}\t${part}\t${this.name}\t${parts}\t${payload(rng, txid)}`);
        lines.push('\\.');
      } else {
        for (let part = 0; part < parts; part++) lines.push(`INSERT INTO soak_ledger VALUES (${txid}, ${part}, ${literal(this.name)}, ${parts}, ${literal(payload(rng, txid))});`);
      }
      if (rng.chance(0.3)) lines.push('SELECT pg_sleep(0.01);');
      lines.push(`UPDATE soak_counter SET n = n + 1 WHERE client = ${literal(this.name)};`, 'COMMIT;');
    }
    this.selfCut = false;
    this.openedAt = Date.now();
    const env = { ...libpqEnv({ password: APP_ROLE.password }), PGAPPNAME: this.name };
    const child = spawn(this.env.psql, ['-X', '-A', '-t', '-h', '127.0.0.1', '-p', String(this.env.port), '-U', APP_ROLE.name, '-d', this.database, '-f', '-'], {
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child = child;
    this.env.stats.logins++;
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.on('error', () => undefined);
    child.stdin.end(`${lines.join('\n')}\n`);
    const exited = new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code) => resolve(code));
    });
    let killTimer: NodeJS.Timeout | undefined;
    if (fault !== undefined) {
      killTimer = setTimeout(() => {
        this.selfCut = true;
        this.env.stats.fault(fault);
        child.kill('SIGKILL');
      }, rng.int(20, 600));
    }
    let code: number | null;
    try {
      code = await this.bounded('psql script', exited, () => child.kill('SIGKILL'));
    } finally {
      clearTimeout(killTimer);
      this.child = null;
    }
    // Output order: "soak-tx N", BEGIN, ..., COMMIT. A COMMIT printed after a marker acknowledges its transaction.
    let current: number | undefined;
    for (const line of stdout.split('\n')) {
      const marker = /^soak-tx (\d+)$/.exec(line);
      if (marker !== null) current = Number(marker[1]);
      else if (line === 'COMMIT' && current !== undefined) {
        this.acked(current);
        current = undefined;
      }
    }
    if (code === 0 || this.selfCut) return;
    const m = PSQL_ERROR.exec(stderr);
    if (m !== null) throw new WireServerError({ S: 'ERROR', C: m[1], M: m[2] });
    if (/server closed the connection unexpectedly|connection to server .* failed|SSL SYSCALL|no connection to the server/.test(stderr)) {
      throw new WireClosedError(`psql: ${stderr.trim().split('\n')[0]}`);
    }
    throw new Error(`psql exited ${code}: ${stderr.trim().slice(0, 300)}`);
  }
}
