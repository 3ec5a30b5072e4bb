/**
 * The client-side protocol fuzzer, fixed-seed slice (test/fuzz-protocol/README.md): malformed and out-of-state
 * frames in every client state (startup, authentication, idle, in a transaction, failed, extended batch, COPY in and
 * out, the admin console, TLS), sent to a pgmux process and to PostgreSQL directly and judged against each other,
 * with bystander clients checking their own transactions all along. Bounded in frames and seconds; a failure prints
 * each report (the conversation JSON in it replays with `npm run fuzz:protocol -- --replay FILE`). Long runs:
 * `npm run fuzz:protocol -- --frames 100000 --seed S`.
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { fuzzLoop } from './fuzz-protocol/property.js';
import { DEFAULT_RUNNER_OPTIONS, ProtocolFuzzer } from './fuzz-protocol/runner.js';
import { FuzzTarget, prepareDatabase } from './fuzz-protocol/target.js';
import { makeCertificates, type TestCerts } from './harness/certs.js';
import { createTestDatabase, dropTestDatabase, pgInfo } from './harness/context.js';

const SEED = Number(process.env.FUZZ_PROTOCOL_SEED ?? 20_261_203);
const FRAMES = Number(process.env.FUZZ_PROTOCOL_FRAMES ?? 4000);
const SECONDS = Number(process.env.FUZZ_PROTOCOL_SECONDS ?? 45);

let db: string;
let certs: TestCerts | null = null;
let target: FuzzTarget | null = null;
let fuzzer: ProtocolFuzzer | null = null;

beforeAll(async () => {
  db = await createTestDatabase('protofuzz');
  const info = pgInfo();
  const admin = new pg.Client({ host: info.host, port: info.port, user: info.superuser, password: info.password, database: db });
  await admin.connect();
  try {
    await prepareDatabase(admin);
  } finally {
    await admin.end();
  }
  certs = await makeCertificates();
  const address = { host: info.host, port: info.port, superuser: info.superuser, password: info.password };
  target = new FuzzTarget({ pg: address, database: db, concurrency: 4, tls: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile } });
  await target.start();
  fuzzer = new ProtocolFuzzer(target, address, DEFAULT_RUNNER_OPTIONS);
  await fuzzer.start();
});

afterAll(async () => {
  await fuzzer?.close();
  await target?.stop();
  await certs?.remove();
  if (db !== undefined) await dropTestDatabase(db);
});

it(`protocol fuzzer, seed ${SEED}: every invariant holds for ${FRAMES} frames or ${SECONDS} s`, async () => {
  const f = fuzzer as ProtocolFuzzer;
  const result = await fuzzLoop(f, { seed: SEED, frames: FRAMES, seconds: SECONDS, concurrency: 4, round: 5, sweepEvery: 4, shrink: false, keepGoing: true });
  const crashes = (target as FuzzTarget).crashes;
  console.info(`protocol fuzzer slice: ${f.stats.framesSent} frames, ${f.stats.cases} cases, ${f.stats.conversations} conversations in ${result.seconds.toFixed(0)} s (${result.rounds} rounds); ${f.stats.summary().replace(/\n/g, '; ')}`);
  const report = [...result.failures.map((x) => `[${x.kind}] ${x.signature} (seed ${x.seed}, path ${x.path})\n${x.report}`), ...crashes.map((c) => `[crash]\n${c}`)].join('\n\n');
  expect(report, report).toBe('');
  // The slice did fuzz: frames were sent, and the bystanders kept working.
  expect(f.stats.framesSent).toBeGreaterThan(500);
  for (const b of f.bystanders) expect(b.transactions, `bystander of ${b.database}`).toBeGreaterThan(0);
}, (SECONDS + 90) * 1000);
