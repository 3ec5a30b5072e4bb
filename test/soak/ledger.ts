/**
 * What the load did, kept so it can be checked against the table afterwards. Every transaction gets a unique
 * txid and writes `parts` (2 or more) rows `(txid, part, client, parts)` to `soak_ledger` plus one increment of
 * its client's `soak_counter` row. The client records how far it got:
 *
 * - `open`: COMMIT was never sent (the client was cut, or failed, before it): none of its rows may exist.
 * - `maybe`: COMMIT may have reached the server and its answer was lost (or a psql script was killed): all of
 *   its rows or none.
 * - `acked`: the client saw COMMIT's CommandComplete: all of its rows must exist.
 */
import type pg from 'pg';

export const SCHEMA_SQL = `
CREATE TABLE soak_ledger (
  txid bigint NOT NULL,
  part int NOT NULL,
  client text NOT NULL,
  parts int NOT NULL,
  payload text,
  PRIMARY KEY (txid, part)
);
CREATE TABLE soak_counter (client text PRIMARY KEY, n bigint NOT NULL DEFAULT 0);
`;

export const enum TxState {
  Open = 1,
  Maybe = 2,
  Acked = 3,
}

const STATE_NAMES = ['', 'open', 'maybe', 'acked'];

export interface LedgerCheck {
  transactions: number;
  rows: number;
  acked: number;
  /** maybe-state transactions found committed / absent. */
  maybeCommitted: number;
  maybeAbsent: number;
  openAbsent: number;
  /** Every violation found, described (at most 20 of each kind kept). */
  lostCommits: string[];
  halfApplied: string[];
  appliedWithoutCommit: string[];
  phantoms: string[];
  counterMismatches: string[];
  lostCommitCount: number;
  halfAppliedCount: number;
  appliedWithoutCommitCount: number;
  phantomCount: number;
}

export class Ledger {
  private next = 1;
  private state = new Uint8Array(1 << 16);
  private parts = new Uint8Array(1 << 16);
  private client = new Uint16Array(1 << 16);
  readonly clients: string[] = [];

  /** Registers a client name (one soak_counter row each); returns its index. */
  addClient(name: string): number {
    this.clients.push(name);
    return this.clients.length - 1;
  }

  /** A new transaction of `client` writing `parts` rows; its state is `open` (or `maybe` for a psql script). */
  begin(client: number, parts: number, state: TxState = TxState.Open): number {
    const txid = this.next++;
    if (txid >= this.state.length) this.grow();
    this.state[txid] = state;
    this.parts[txid] = parts;
    this.client[txid] = client;
    return txid;
  }

  commitSent(txid: number): void {
    if (this.state[txid] === TxState.Open) this.state[txid] = TxState.Maybe;
  }

  acked(txid: number): void {
    this.state[txid] = TxState.Acked;
  }

  get issued(): number {
    return this.next - 1;
  }

  count(state: TxState): number {
    let n = 0;
    for (let txid = 1; txid < this.next; txid++) if (this.state[txid] === state) n++;
    return n;
  }

  private grow(): void {
    const size = this.state.length * 2;
    const grown = <T extends Uint8Array | Uint16Array>(a: T, make: (n: number) => T): T => {
      const b = make(size);
      b.set(a);
      return b;
    };
    this.state = grown(this.state, (n) => new Uint8Array(n));
    this.parts = grown(this.parts, (n) => new Uint8Array(n));
    this.client = grown(this.client, (n) => new Uint16Array(n));
  }

  /** Compares the table with what the clients saw. `db` is a direct superuser connection to the cluster. */
  async verify(db: pg.Client): Promise<LedgerCheck> {
    const check: LedgerCheck = {
      transactions: 0,
      rows: 0,
      acked: 0,
      maybeCommitted: 0,
      maybeAbsent: 0,
      openAbsent: 0,
      lostCommits: [],
      halfApplied: [],
      appliedWithoutCommit: [],
      phantoms: [],
      counterMismatches: [],
      lostCommitCount: 0,
      halfAppliedCount: 0,
      appliedWithoutCommitCount: 0,
      phantomCount: 0,
    };
    const note = (list: string[], text: string): void => {
      if (list.length < 20) list.push(text);
    };
    const present = new Uint8Array(this.next);
    const describe = (txid: number): string =>
      `txid ${txid} (${this.clients[this.client[txid]] ?? '?'}, ${STATE_NAMES[this.state[txid]] ?? 'never issued'}, ${this.parts[txid]} rows)`;

    const step = 50_000;
    const max = Number((await db.query<{ m: string | null }>('SELECT max(txid)::text AS m FROM soak_ledger')).rows[0].m ?? 0);
    for (let from = 0; from <= max; from += step) {
      const res = await db.query({
        text: `SELECT txid, count(*)::int, min(parts), max(parts), min(client), max(client), count(DISTINCT part)::int, min(part), max(part)
                 FROM soak_ledger WHERE txid >= $1 AND txid < $2 GROUP BY txid`,
        values: [from, from + step],
        rowMode: 'array',
      });
      for (const row of res.rows as Array<[string, number, number, number, string, string, number, number, number]>) {
        const [txidText, n, pmin, pmax, cmin, cmax, distinctParts, partMin, partMax] = row;
        const txid = Number(txidText);
        check.transactions++;
        check.rows += n;
        if (!(txid >= 1 && txid < this.next)) {
          check.phantomCount++;
          note(check.phantoms, `txid ${txid}: ${n} rows of ${cmin} for a transaction no client began`);
          continue;
        }
        present[txid] = 1;
        const want = this.parts[txid];
        const name = this.clients[this.client[txid]];
        if (cmin !== name || cmax !== name) {
          check.phantomCount++;
          note(check.phantoms, `${describe(txid)}: rows written by ${cmin}..${cmax}`);
        }
        if (n !== want || pmin !== want || pmax !== want || distinctParts !== want || partMin !== 0 || partMax !== want - 1) {
          check.halfAppliedCount++;
          note(check.halfApplied, `${describe(txid)}: ${n} rows present (parts ${partMin}..${partMax})`);
        }
        switch (this.state[txid]) {
          case TxState.Acked:
            check.acked++;
            break;
          case TxState.Maybe:
            check.maybeCommitted++;
            break;
          case TxState.Open:
            check.appliedWithoutCommitCount++;
            note(check.appliedWithoutCommit, `${describe(txid)}: committed although its COMMIT was never sent`);
            break;
        }
      }
    }
    for (let txid = 1; txid < this.next; txid++) {
      if (present[txid] === 1) continue;
      switch (this.state[txid]) {
        case TxState.Acked:
          check.lostCommitCount++;
          note(check.lostCommits, `${describe(txid)}: COMMIT acknowledged, no row present`);
          break;
        case TxState.Maybe:
          check.maybeAbsent++;
          break;
        case TxState.Open:
          check.openAbsent++;
          break;
      }
    }

    // Each transaction also counted itself in its client's soak_counter row: the two must agree exactly.
    const counters = await db.query<{ client: string; n: string; txids: string | null }>(
      `SELECT c.client, c.n::text, l.txids::text FROM soak_counter c
         LEFT JOIN (SELECT client, count(DISTINCT txid) AS txids FROM soak_ledger GROUP BY client) l USING (client)`,
    );
    for (const r of counters.rows) {
      const txids = r.txids ?? '0';
      if (r.n !== txids) note(check.counterMismatches, `${r.client}: soak_counter says ${r.n} transactions, soak_ledger holds ${txids}`);
    }
    return check;
  }
}
