/**
 * The client-side protocol fuzzer, long runs: `npm run fuzz:protocol -- --frames 1000000 --seed 1 --seconds 3600`.
 * Starts its own PostgreSQL cluster (test/harness/postgres.ts) and pgmux as its own process with TLS; see
 * test/fuzz-protocol/README.md for what is generated and checked.
 *
 *   --frames N        stop after about N frames sent to pgmux (default 100000)
 *   --seed S          fast-check seed (default: random; printed)
 *   --seconds T       stop starting new rounds after about T seconds (default: no limit)
 *   --concurrency W   conversations at once (default 8)
 *   --round R         batches per fast-check round (default 25)
 *   --sweep-every K   a byte-boundary sweep every K rounds (default 4; 0: none)
 *   --shrink          shrink a failing batch before reporting it (re-runs it against the live pgmux)
 *   --stop            stop at the first failure (default: report each kind of failure once and go on)
 *   --no-tls          no TLS towards clients (TLS conversations are then skipped)
 *   --weights s,st,ssl,auth,admin   conversation kind weights (default 12,3,1,2,2)
 *   --pg-bin DIR      PostgreSQL binaries (default: as the test harness finds them)
 *   --case-timeout MS a case not answered in this time is a hang (default 10000)
 *   --replay FILE     run the conversation (JSON, as a report prints it) from FILE --times N times (default 20), report
 *                     what each run came to, and stop
 *   --report FILE     append each failure's full report to FILE (default: print it)
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { DEFAULT_WEIGHTS, type Weights } from '../test/fuzz-protocol/arbitraries.js';
import type { Conversation } from '../test/fuzz-protocol/plans.js';
import { fuzzLoop } from '../test/fuzz-protocol/property.js';
import { ProtocolFuzzer, DEFAULT_RUNNER_OPTIONS } from '../test/fuzz-protocol/runner.js';
import { FuzzTarget, prepareDatabase } from '../test/fuzz-protocol/target.js';
import { makeCertificates } from '../test/harness/certs.js';
import { startPostgres } from '../test/harness/postgres.js';
import { intOption } from './cli-args.js';
import { exitOnSignals } from '../test/harness/process.js';

exitOnSignals();

const { values } = parseArgs({
  options: {
    frames: { type: 'string', default: '100000' },
    seed: { type: 'string' },
    seconds: { type: 'string' },
    concurrency: { type: 'string', default: '8' },
    round: { type: 'string', default: '25' },
    'sweep-every': { type: 'string', default: '4' },
    shrink: { type: 'boolean', default: false },
    stop: { type: 'boolean', default: false },
    'no-tls': { type: 'boolean', default: false },
    weights: { type: 'string' },
    'pg-bin': { type: 'string' },
    report: { type: 'string' },
    'case-timeout': { type: 'string' },
    replay: { type: 'string' },
    times: { type: 'string', default: '20' },
  },
});

const frames = intOption('frames', values.frames, 100_000);
const seed = intOption('seed', values.seed, Math.floor(Math.random() * 2 ** 31));
const seconds = values.seconds === undefined ? Infinity : Number(values.seconds);
const concurrency = intOption('concurrency', values.concurrency, 8);
let weights: Weights = DEFAULT_WEIGHTS;
if (values.weights !== undefined) {
  const [session, startup, ssl, auth, admin] = values.weights.split(',').map(Number);
  weights = { session, startup, ssl, auth, admin };
}
if (values['pg-bin'] !== undefined) process.env.PG_BIN = values['pg-bin'];

async function main(): Promise<number> {
  const certs = values['no-tls'] ? null : await makeCertificates();
  const cluster = await startPostgres({ name: 'protofuzz' });
  const started = Date.now();
  let exit = 0;
  try {
    const setup = new pg.Client({ host: cluster.host, port: cluster.port, user: cluster.superuser, password: cluster.password, database: 'postgres' });
    await setup.connect();
    await setup.query('CREATE DATABASE protofuzz');
    await setup.end();
    const address = { host: cluster.host, port: cluster.port, superuser: cluster.superuser, password: cluster.password };
    const admin = new pg.Client({ ...address, user: address.superuser, database: 'protofuzz' });
    await admin.connect();
    await prepareDatabase(admin);
    await admin.end();
    const target = new FuzzTarget({
      pg: address,
      database: 'protofuzz',
      concurrency,
      ...(certs === null ? {} : { tls: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile } }),
    });
    await target.start();
    const fuzzer = new ProtocolFuzzer(target, address, { ...DEFAULT_RUNNER_OPTIONS, caseTimeoutMs: intOption('case-timeout', values['case-timeout'], DEFAULT_RUNNER_OPTIONS.caseTimeoutMs) });
    await fuzzer.start();
    console.log(`protocol fuzzer: seed ${seed}, pgmux pid ${target.pid} on port ${target.port}, PostgreSQL on ${cluster.port}`);
    if (values.replay !== undefined) {
      const conversation = JSON.parse(readFileSync(values.replay, 'utf8')) as Conversation;
      const kinds = new Map<string, number>();
      for (let i = 0; i < intOption('times', values.times, 20); i++) {
        const failures = await fuzzer.runBatch({ conversations: [conversation] });
        for (const f of failures) {
          if (!kinds.has(f.signature)) console.log(`run ${i}: ${f.report}\n`);
          kinds.set(f.signature, (kinds.get(f.signature) ?? 0) + 1);
        }
        if (failures.length === 0) kinds.set('pass', (kinds.get('pass') ?? 0) + 1);
      }
      console.log([...kinds].map(([k, n]) => `${n} x ${k}`).join('\n'));
      await fuzzer.close();
      await target.stop();
      return kinds.size === 1 && kinds.has('pass') ? 0 : 1;
    }
    let lastPrint = 0;
    const result = await fuzzLoop(fuzzer, {
      seed,
      frames,
      seconds,
      concurrency,
      round: intOption('round', values.round, 25),
      sweepEvery: intOption('sweep-every', values['sweep-every'], 4),
      shrink: values.shrink,
      keepGoing: !values.stop,
      weights,
      onFailure: (f) => {
        console.log(`failure: ${f.signature} (seed ${f.seed}, path ${f.path})`);
        if (values.report !== undefined) appendFileSync(values.report, `\n=== ${f.signature} (seed ${f.seed}, path ${f.path}) ===\n${f.report}\n`);
        else console.log(`${f.report}\n`);
      },
      onRound: () => {
        const s = (Date.now() - started) / 1000;
        if (s - lastPrint < 15) return;
        lastPrint = s;
        const st = fuzzer.stats;
        console.log(
          `${s.toFixed(0)} s: ${st.framesSent} frames (${(st.framesSent / s).toFixed(0)}/s), ${st.cases} cases, ${st.conversations} conversations, ` +
            `RSS ${st.rssLastKb} kB (max ${st.rssMaxKb}), failures ${[...st.failures].map(([k, v]) => `${k}:${v}`).join(' ') || 'none'}`,
        );
      },
    });
    await fuzzer.close();
    const crashes = target.crashes.length;
    await target.stop();
    const st = fuzzer.stats;
    console.log(`\n${st.framesSent} frames in ${result.seconds.toFixed(0)} s (${(st.framesSent / result.seconds).toFixed(0)} frames/s), seed ${seed}, ${result.rounds} rounds`);
    console.log(st.summary());
    console.log(`crashes: ${crashes}; bystander transactions: ${fuzzer.bystanders.map((b) => `${b.database} ${b.transactions}`).join(', ')}`);
    console.log(`${result.failures.length} distinct failure(s):`);
    for (const f of result.failures) console.log(`  ${f.signature}`);
    exit = result.failures.length === 0 ? 0 : 1;
  } finally {
    await cluster.stop();
    await certs?.remove();
  }
  return exit;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  },
);
