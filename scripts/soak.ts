/**
 * `npm run soak -- --minutes N [--seed S]`: a bounded soak run of pgmux (see test/soak/run.ts for what it does
 * and checks). Prints progress every 30 s and a summary at the end; exits 1 if an invariant failed.
 */
import { parseArgs } from 'node:util';
import { runSoak } from '../test/soak/run.js';

const USAGE = 'usage: npm run soak -- --minutes N [--seed S]   (N may be fractional; at most 24 h)';

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { minutes: { type: 'string' }, seed: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const minutes = Number(values.minutes ?? '');
  if (!Number.isFinite(minutes) || minutes <= 0 || minutes > 24 * 60) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const seed = values.seed === undefined ? undefined : Number(values.seed);
  if (seed !== undefined && !Number.isSafeInteger(seed)) {
    process.stderr.write(`--seed must be an integer\n${USAGE}\n`);
    return 2;
  }
  const report = await runSoak({
    durationMs: Math.round(minutes * 60_000),
    seed,
    log: (line) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`),
  });
  process.stdout.write(`\n${report.summary}\n`);
  return report.failures.length === 0 ? 0 : 1;
}

// Ctrl-C: exit through process.exit, so the 'exit' hooks stop pgmux and the cluster.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak run aborted: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
