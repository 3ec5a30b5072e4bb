/**
 * The differential fuzzer, fixed seed (test/fuzz/): generated conversations of several clients run concurrently
 * through pgmux in transaction mode over a pool smaller than the number of clients, and each client's script runs
 * again alone on a direct connection. Every backend message of every step (and each client's table afterwards)
 * must be the same. A failure prints the shrunk conversation and a diff of the messages; long runs:
 * `npm run fuzz:differential -- --runs N --seed S`.
 */
import { test } from '@fast-check/vitest';
import { afterAll, beforeAll, describe } from 'vitest';
import { conversationArb } from './fuzz/arbitraries.js';
import { checkConversation } from './fuzz/property.js';
import { DifferentialRunner } from './fuzz/runner.js';
import { PGMUX_SETTINGS, prepareTarget, type FuzzTarget } from './fuzz/target.js';
import { createTestDatabase, dropTestDatabase, pgInfo } from './harness/context.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20_251_202);
// 38, not more, for now: conversation 39 of this seed makes a PostgreSQL 15.18 backend die with SIGSEGV (in an
// aborted transaction, after COPY ... TO STDOUT binary and a multi-statement query); the shared test cluster then
// goes through crash recovery and every test running beside this one fails. Isolating that upstream crash is
// the next step; the long runs (npm run fuzz:differential) use a cluster of their own.
const RUNS = Number(process.env.FUZZ_RUNS ?? 38);

let db: string;
let runner: DifferentialRunner;

beforeAll(async () => {
  db = await createTestDatabase('fuzz');
  const info = pgInfo();
  const target: FuzzTarget = {
    pg: { host: info.host, port: info.port, user: info.superuser, password: info.password, socketDir: info.socketDir },
    database: db,
    settings: PGMUX_SETTINGS,
  };
  await prepareTarget(target);
  runner = new DifferentialRunner(target);
});

afterAll(async () => {
  await runner?.close();
  if (db !== undefined) await dropTestDatabase(db);
});

describe('differential fuzzer: through pgmux as directly', () => {
  test.prop([conversationArb()], {
    seed: SEED,
    numRuns: RUNS,
    // Shrinking a failure is bounded too; fast-check then reports the smallest conversation found so far.
    interruptAfterTimeLimit: 240_000,
  })(`${RUNS} conversations (seed ${SEED}) get the same messages through pgmux as directly`, async (conv) => {
    await checkConversation(runner)(conv);
  }, 300_000);
});
