/**
 * The protocol fuzzer's loop, shared by the fixed-seed vitest slice and the long run: fast-check rounds of
 * batches (each batch: conversations run at once, then the health checks), every few rounds one conversation
 * split at every byte boundary of its first write, until a frame count or a time limit is reached.
 */
import fc from 'fast-check';
import { batch, conversation, DEFAULT_WEIGHTS, type Weights } from './arbitraries.js';
import type { Batch, Conversation } from './plans.js';
import type { Failure, ProtocolFuzzer } from './runner.js';

export class FuzzFailure extends Error {
  constructor(readonly failures: Failure[]) {
    super(failures.map((f) => `[${f.kind}] ${f.report}`).join('\n\n'));
  }
}

export interface LoopOptions {
  seed: number;
  /** Stop after about this many frames sent to pgmux. */
  frames: number;
  /** Stop starting new rounds after this many seconds. */
  seconds: number;
  /** Conversations per batch. */
  concurrency: number;
  /** Batches per fast-check round (the limits are checked between rounds). */
  round: number;
  /** A byte-boundary sweep every this many rounds (0: never). */
  sweepEvery: number;
  /** Shrink a failing batch to a smaller one (re-running it) before reporting it. */
  shrink: boolean;
  /** After a failure, note its kind and go on (long runs): each kind is reported once. */
  keepGoing: boolean;
  weights?: Weights;
  onRound?: (round: number) => void;
  /** Each failure reported, as soon as it is found. */
  onFailure?: (f: { kind: string; signature: string; report: string; seed: number; path: string }) => void;
}

export interface LoopResult {
  failures: Array<{ kind: string; signature: string; report: string; seed: number; path: string }>;
  rounds: number;
  seconds: number;
}

type Work = { sweep: Conversation } | { batch: Batch };

/** Conversations a sweep may take: one whose first write is short enough to try every split of. */
const sweepable: fc.Arbitrary<Conversation> = conversation({ session: 6, startup: 3, ssl: 0, auth: 0, admin: 0 }).map((c) => (c.kind === 'session' ? { ...c, cases: c.cases.slice(0, 1).map((k) => ({ ...k, frames: k.frames.slice(0, 3) })) } : c));

export async function fuzzLoop(fuzzer: ProtocolFuzzer, options: LoopOptions): Promise<LoopResult> {
  const started = Date.now();
  const failures: LoopResult['failures'] = [];
  const seenKinds = new Set<string>();
  const batchArb = batch(options.concurrency, options.weights ?? DEFAULT_WEIGHTS);
  let round = 0;
  const elapsed = () => (Date.now() - started) / 1000;
  while (fuzzer.stats.framesSent < options.frames && elapsed() < options.seconds) {
    const seed = options.seed + round;
    const sweeping = options.sweepEvery > 0 && round % options.sweepEvery === options.sweepEvery - 1;
    const work: fc.Arbitrary<Work> = sweeping ? sweepable.map((c): Work => ({ sweep: c })) : batchArb.map((b): Work => ({ batch: b }));
    const property = fc.asyncProperty(work, async (w) =>
      check('sweep' in w ? await fuzzer.sweep(w.sweep, options.concurrency) : await fuzzer.runBatch(w.batch), seenKinds, options.keepGoing),
    );
    const details = await fc.check(property, {
      seed,
      numRuns: sweeping ? 1 : options.round,
      endOnFailure: !options.shrink,
      // The time limit ends a round early; a failure found meanwhile is still reported.
      interruptAfterTimeLimit: Math.max(1000, (options.seconds - elapsed()) * 1000 + 30_000),
      markInterruptAsFailure: false,
    });
    round++;
    options.onRound?.(round);
    if (details.failed) {
      const err = details.errorInstance;
      const found: Failure[] = err instanceof FuzzFailure ? err.failures : [{ kind: 'exception', signature: 'exception', report: String((err as Error | undefined)?.stack ?? err) }];
      for (const f of found) {
        if (options.keepGoing && seenKinds.has(f.signature)) continue;
        seenKinds.add(f.signature);
        const found = { ...f, seed: details.seed, path: details.counterexamplePath ?? '' };
        failures.push(found);
        options.onFailure?.(found);
      }
      if (!options.keepGoing) break;
    }
  }
  return { failures, rounds: round, seconds: elapsed() };
}

/** A batch passes when it found nothing new (kinds already reported do not fail a long run again). */
function check(failures: Failure[], seen: ReadonlySet<string>, keepGoing: boolean): void {
  const fresh = keepGoing ? failures.filter((f) => !seen.has(f.signature)) : failures;
  if (fresh.length > 0) throw new FuzzFailure(fresh);
}
