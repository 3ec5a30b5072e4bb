/**
 * The soak run (test/soak/run.ts) for one minute: pgmux as its own process, transaction mode, pools of 5 and 3
 * servers in front of a cluster of its own; about 30 node-postgres, postgres.js, raw-protocol and psql clients;
 * every kind of fault at least once (clients cut by RST and FIN mid-transaction, mid-COPY, mid-result, right
 * after COMMIT; psql killed; SIGHUP with new pool sizes; RECONNECT; KILL_CLIENT; PAUSE/RESUME; one upstream
 * restart). Then every invariant must hold: acknowledged commits present, nothing half-applied, nothing applied
 * without COMMIT, no stuck client, no leaked server connection, no backend idle in transaction, RSS within +10% of
 * its plateau, no error the faults do not explain. `npm run soak -- --minutes N` runs the same for longer.
 */
import { expect, it } from 'vitest';
import { adminClient, createTestDatabase, dropTestDatabase } from './harness/context.js';
import { Ledger, SCHEMA_SQL, TxState } from './soak/ledger.js';
import { ADMIN_FAULTS, RESTART_FAULT } from './soak/operator.js';
import { runSoak } from './soak/run.js';
import { CLIENT_FAULTS } from './soak/workers.js';

it('a minute of mixed load under faults: every invariant holds', async () => {
  const seed = process.env.SOAK_SEED === undefined ? undefined : Number(process.env.SOAK_SEED);
  // 48 s of load; with the cluster's start, settling and the checks, about a minute. A client operation that
  // takes 12 s is stuck (pgmux's query_wait_timeout is 6 s).
  const report = await runSoak({
    durationMs: 48_000,
    opBoundMs: 12_000,
    settleMs: 15_000,
    seed,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  console.log(report.summary);

  expect(report.failures, report.summary).toEqual([]);
  // The run did what it says: load, every fault, and checks that had something to check.
  expect(report.acked).toBeGreaterThan(1_000);
  for (const kind of [...CLIENT_FAULTS, ...ADMIN_FAULTS]) expect(report.faults[kind] ?? 0, `faults of kind ${kind}`).toBeGreaterThan(0);
  expect(report.faults[RESTART_FAULT]).toBe(1);
  expect(report.ledger?.acked).toBe(report.acked);
  expect(report.ledger?.openAbsent, 'transactions cut before COMMIT (all must be absent)').toBeGreaterThan(0);
  expect((report.ledger?.maybeAbsent ?? 0) + (report.ledger?.maybeCommitted ?? 0), 'transactions in doubt').toBeGreaterThan(0);
  expect(report.servers?.pgmux).toBe(report.servers?.postgres);
  expect(report.rss?.finalKb).toBeLessThanOrEqual((report.rss?.plateauKb ?? 0) * 1.1);
}, 75_000);

it('the ledger check finds every kind of violation it looks for', async () => {
  // Against the shared cluster: rows written as pgmux could have mangled them, then the check.
  const name = await createTestDatabase('soak_ledger');
  const db = await adminClient(name);
  try {
    await db.query(SCHEMA_SQL);
    const ledger = new Ledger();
    const a = ledger.addClient('a');
    const b = ledger.addClient('b');
    await db.query("INSERT INTO soak_counter (client) VALUES ('a'), ('b')");
    const rows = async (txid: number, client: string, parts: number, present: number[]): Promise<void> => {
      for (const part of present) await db.query('INSERT INTO soak_ledger VALUES ($1, $2, $3, $4, NULL)', [txid, part, client, parts]);
      if (present.length > 0) await db.query('UPDATE soak_counter SET n = n + 1 WHERE client = $1', [client]);
    };
    const good = ledger.begin(a, 2);
    ledger.acked(good);
    await rows(good, 'a', 2, [0, 1]);
    const lost = ledger.begin(a, 2);
    ledger.acked(lost);
    const half = ledger.begin(b, 3);
    ledger.commitSent(half);
    await rows(half, 'b', 3, [0, 2]);
    const uncommitted = ledger.begin(b, 2);
    await rows(uncommitted, 'b', 2, [0, 1]);
    const absent = ledger.begin(a, 2, TxState.Maybe);
    const foreign = ledger.begin(a, 2);
    ledger.acked(foreign);
    await rows(foreign, 'b', 2, [0, 1]);
    await rows(999, 'a', 2, [0, 1]);
    await db.query("UPDATE soak_counter SET n = n + 5 WHERE client = 'a'");

    const check = await ledger.verify(db);
    expect(check.acked).toBe(2);
    expect(check.lostCommitCount).toBe(1);
    expect(check.lostCommits[0]).toContain(`txid ${lost} `);
    expect(check.halfAppliedCount).toBe(1);
    expect(check.halfApplied[0]).toContain(`txid ${half} `);
    expect(check.appliedWithoutCommitCount).toBe(1);
    expect(check.appliedWithoutCommit[0]).toContain(`txid ${uncommitted} `);
    // A row of a transaction nobody began, and rows under another client's name.
    expect(check.phantomCount).toBe(2);
    expect(check.maybeAbsent).toBe(1);
    expect(absent).toBeGreaterThan(0);
    // b counted each transaction it wrote; a's counter was bumped 5 times without a row.
    expect(check.counterMismatches).toEqual(['a: soak_counter says 7 transactions, soak_ledger holds 2']);
  } finally {
    await db.end();
    await dropTestDatabase(name);
  }
});
