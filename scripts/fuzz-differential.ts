/**
 * The differential fuzzer, long runs: `npm run fuzz:differential -- --runs 100000 --seed 1 --seconds 3600`.
 * Starts its own PostgreSQL cluster (test/harness/postgres.ts) and, per conversation, a fresh pgmux in this
 * process; see test/fuzz/runner.ts for what is compared.
 *
 *   --runs N          conversations to run (default 1000)
 *   --seed S          fast-check seed (default: random; printed)
 *   --seconds T       stop starting new conversations after about T seconds (shrinking a failure may take longer)
 *   --step-timeout MS a step not answered in this time is a failure (default 10000)
 *   --tolerate a,b    look past differences already reported (runner.ts TOLERABLE), to find the next ones
 *   --path P          replay one counterexample: the seed and path fast-check printed
 *   --distinct        after a failure, note its signature and go on looking for different ones
 *   --max-clients N   at most N clients per conversation (default 8); --max-steps N (default 14 groups)
 *   --pool A-B        pool sizes A..B (default 2-3)
 *   --max-startup N   startup settings per client, at most (default 4; 0: none)
 *   --weight k=n      weight of a statement kind (model.ts STMT_RENDER keys), e.g. --weight role=0
 *   --star-named      also prepare `select *` under a name (ALTER TABLE then changes its result type)
 *   --pg-bin DIR      PostgreSQL binaries (default: as the test harness finds them)
 *
 * FUZZ_LOG_STATEMENTS=1 (for a replay) logs every statement in the cluster's log, copied at the end to
 * .tmp/logs/fuzz-postgres-<pid>.log; pgmux's own log is .tmp/logs/pgmux-fuzz-<pid>.log.
 */
import fc from 'fast-check';
import pg from 'pg';
import { copyFileSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { STMT_WEIGHTS, type ArbitraryOptions } from '../test/fuzz/arbitraries.js';
import { formatConversation, type Conversation, type StmtKind } from '../test/fuzz/model.js';
import { MismatchError, differentialProperty } from '../test/fuzz/property.js';
import { DifferentialRunner, ServerCrash, TOLERABLE, type Outcome, type Tolerable } from '../test/fuzz/runner.js';
import { PGMUX_SETTINGS, prepareTarget, type FuzzTarget } from '../test/fuzz/target.js';
import { startPostgres } from '../test/harness/postgres.js';
import { intOption } from './cli-args.js';
import { exitOnSignals } from '../test/harness/process.js';

exitOnSignals();

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '1000' },
    seed: { type: 'string' },
    seconds: { type: 'string' },
    path: { type: 'string' },
    distinct: { type: 'boolean', default: false },
    'max-clients': { type: 'string' },
    'max-steps': { type: 'string' },
    'max-startup': { type: 'string' },
    pool: { type: 'string' },
    weight: { type: 'string', multiple: true, default: [] },
    'star-named': { type: 'boolean', default: false },
    'pg-bin': { type: 'string' },
    'step-timeout': { type: 'string' },
    tolerate: { type: 'string', default: '' },
  },
});

const runs = intOption('runs', values.runs, 1000);
const seed = intOption('seed', values.seed, Math.floor(Math.random() * 2 ** 31));
const seconds = values.seconds === undefined ? undefined : Number(values.seconds);
const arbitrary: Partial<ArbitraryOptions> = { starNamed: values['star-named'] };
if (values['max-clients'] !== undefined) arbitrary.maxClients = intOption('max-clients', values['max-clients'], 8);
if (values['max-steps'] !== undefined) arbitrary.maxSteps = intOption('max-steps', values['max-steps'], 14);
if (values['max-startup'] !== undefined) arbitrary.maxStartup = intOption('max-startup', values['max-startup'], 4);
if (values.pool !== undefined) {
  const [a, b] = values.pool.split('-').map(Number);
  arbitrary.minPool = a;
  arbitrary.maxPool = b ?? a;
}
if (values.weight.length > 0) {
  const weights = { ...STMT_WEIGHTS };
  for (const w of values.weight) {
    const [k, n] = w.split('=');
    if (!(k in weights)) throw new Error(`--weight: no statement kind ${k} (kinds: ${Object.keys(weights).join(', ')})`);
    weights[k as StmtKind] = Number(n);
  }
  arbitrary.stmtWeights = weights;
}
if (values['pg-bin'] !== undefined) process.env.PG_BIN = values['pg-bin'];
const tolerate = new Set<Tolerable>();
for (const t of values.tolerate.split(',').filter((x) => x !== '')) {
  if (!(t in TOLERABLE)) throw new Error(`--tolerate: no such difference ${t} (known: ${Object.keys(TOLERABLE).join(', ')})`);
  tolerate.add(t as Tolerable);
}
/** Conversations per fast-check round: the time limit is checked between rounds. */
const ROUND = 100;

async function main(): Promise<number> {
  const cluster = await startPostgres({ name: 'fuzz' });
  const started = Date.now();
  const stats = { conversations: 0, clients: 0, steps: 0, mismatched: 0, passMs: 0 };
  const phases: Record<string, number> = {};
  let last = Date.now();
  const failures: Array<{ signature: string; report: string; seed: number; path: string }> = [];
  const crashes: ServerCrash[] = [];
  /** Conversations (shrinking runs included) in which each signature was seen. */
  const seen = new Map<string, number>();
  try {
    const setup = new pg.Client({ host: cluster.host, port: cluster.port, user: cluster.superuser, password: cluster.password, database: 'postgres' });
    await setup.connect();
    await setup.query('CREATE DATABASE fuzz');
    if (process.env.FUZZ_LOG_STATEMENTS === '1') {
      // For a replay: every statement any backend runs, in the cluster's log.
      await setup.query("ALTER SYSTEM SET log_statement = 'all'");
      await setup.query("ALTER SYSTEM SET log_connections = 'on'");
      await setup.query('SELECT pg_reload_conf()');
    }
    await setup.end();
    const target: FuzzTarget = {
      pg: { host: cluster.host, port: cluster.port, user: cluster.superuser, password: cluster.password, socketDir: cluster.socketDir },
      database: 'fuzz',
      settings: process.env.FUZZ_PGMUX_LOG === undefined ? PGMUX_SETTINGS : { ...PGMUX_SETTINGS, log_level: process.env.FUZZ_PGMUX_LOG },
      serverLog: cluster.logFile,
    };
    await prepareTarget(target);
    const runner = new DifferentialRunner(target, {
      starNamed: values['star-named'],
      tolerate,
      stepTimeoutMs: intOption('step-timeout', values['step-timeout'], 10_000),
    });
    const known = new Set<string>();
    const onRun = (o: Outcome) => {
      stats.conversations++;
      stats.clients += o.direct.length;
      stats.steps += o.direct.reduce((n, t) => n + t.steps.length, 0);
      for (const [k, ms] of Object.entries(o.timings)) phases[k] = (phases[k] ?? 0) + ms;
      if (!o.ok) {
        stats.mismatched++;
        for (const x of new Set(o.signatures)) seen.set(x, (seen.get(x) ?? 0) + 1);
      }
      else stats.passMs += Date.now() - last;
      last = Date.now();
      if (stats.conversations % 100 === 0) {
        const s = (Date.now() - started) / 1000;
        console.log(`${stats.conversations} conversations (${stats.mismatched} with mismatches) in ${s.toFixed(0)} s`);
      }
    };
    const onServerCrash = (crash: ServerCrash) => {
      stats.conversations++;
      crashes.push(crash);
      console.log(`\n=== PostgreSQL backend crashed (conversation ${stats.conversations}; not counted as a mismatch) ===\n${crash.serverLog}\nConversation:\n\n${formatConversation(crash.conversation)}\n`);
    };
    let round = 0;
    let left = runs;
    for (;;) {
      const elapsed = (Date.now() - started) / 1000;
      if (left <= 0 || (seconds !== undefined && elapsed >= seconds)) break;
      const roundSeed = seed + round++;
      const before = stats.conversations;
      const details = await fc.check(differentialProperty(runner, { arbitrary, ignoreSignatures: known, onRun, onServerCrash }), {
        seed: roundSeed,
        numRuns: Math.min(left, ROUND),
        // A replay runs the counterexample once, without shrinking it again.
        ...(values.path === undefined ? {} : { path: values.path, endOnFailure: true }),
      });
      left -= details.numRuns;
      if (!details.failed) {
        if (details.numRuns === 0 || stats.conversations === before || values.path !== undefined) break;
        continue;
      }
      const err = details.errorInstance;
      const report = err instanceof MismatchError ? err.outcome.report : String((err as Error | undefined)?.stack ?? err);
      const signature = err instanceof MismatchError ? (err.outcome.signatures.find((x) => !known.has(x)) ?? 'known') : 'exception';
      failures.push({ signature, report, seed: details.seed, path: details.counterexamplePath ?? '' });
      console.log(`\n=== mismatch (seed ${details.seed}, path ${details.counterexamplePath}, ${details.numShrinks} shrinks) ===\n${report}\n`);
      if (signature === 'exception') {
        // Often the server itself: show what it logged last.
        const log = readFileSync(cluster.logFile, 'utf8').split('\n').slice(-40).join('\n');
        console.log(`--- last lines of ${cluster.logFile} ---\n${log}\n`);
        const conv = (details.counterexample as [Conversation] | null)?.[0];
        if (conv !== undefined) console.log(`Conversation:\n\n${formatConversation(conv)}\n`);
      }
      if (!values.distinct || values.path !== undefined || signature === 'exception') break;
      for (const x of err instanceof MismatchError ? err.outcome.signatures : []) known.add(x);
    }
    await runner.close();
  } finally {
    if (process.env.FUZZ_LOG_STATEMENTS === '1') copyFileSync(cluster.logFile, `.tmp/logs/fuzz-postgres-${process.pid}.log`);
    await cluster.stop();
  }
  const s = ((Date.now() - started) / 1000).toFixed(0);
  console.log(
    `\n${stats.conversations} conversations (${stats.clients} clients, ${stats.steps} steps) in ${s} s, seed ${seed}: ` +
      `${stats.conversations - stats.mismatched} without mismatch (${(stats.passMs / Math.max(1, stats.conversations - stats.mismatched)).toFixed(0)} ms each), ` +
      `${failures.length} distinct failure(s) reported.`,
  );
  if (stats.conversations > 0) {
    console.log(`  per conversation: ${Object.entries(phases).map(([k, ms]) => `${k} ${(ms / stats.conversations).toFixed(0)} ms`).join(', ')}`);
  }
  for (const f of failures) console.log(`  - ${f.signature}   (replay: --seed ${f.seed} --path ${f.path})`);
  if (crashes.length > 0) console.log(`  PostgreSQL backend crashes (PostgreSQL's bug; those conversations are not compared): ${crashes.length}`);
  if (seen.size > 0) {
    console.log('  conversations with each signature (shrinking runs included):');
    for (const [x, n] of [...seen].sort((a, b) => b[1] - a[1])) console.log(`    ${String(n).padStart(6)}  ${x}`);
  }
  return failures.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  },
);
