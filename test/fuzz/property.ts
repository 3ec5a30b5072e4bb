/** The fuzzer's property, shared by the vitest file and the command-line runner. */
import fc from 'fast-check';
import { conversationArb, type ArbitraryOptions } from './arbitraries.js';
import type { Conversation } from './model.js';
import { ServerCrash, type DifferentialRunner, type Outcome } from './runner.js';

export class MismatchError extends Error {
  // A private field, not a property: vitest would print the whole outcome (every transcript) after the report.
  readonly #outcome: Outcome;

  constructor(outcome: Outcome) {
    super(outcome.report);
    this.name = 'MismatchError';
    this.#outcome = outcome;
  }

  get outcome(): Outcome {
    return this.#outcome;
  }
}

export interface PropertyOptions {
  arbitrary?: Partial<ArbitraryOptions>;
  /** A conversation whose every mismatch has its signature in here counts as passing (long runs looking for distinct bugs). */
  ignoreSignatures?: ReadonlySet<string>;
  /** Called after every conversation. */
  onRun?: (outcome: Outcome) => void;
  /**
   * Called when a PostgreSQL backend crashed while a conversation ran (then the conversation counts as passing:
   * PostgreSQL's bug, not a difference pgmux made). Without it a crash fails the property.
   */
  onServerCrash?: (crash: ServerCrash) => void;
}

/** Runs a conversation directly and through pgmux; throws a MismatchError with the report if they differ. */
export function checkConversation(runner: DifferentialRunner, options: PropertyOptions = {}): (conv: Conversation) => Promise<void> {
  return async (conv) => {
    let outcome: Outcome;
    try {
      outcome = await runner.run(conv);
    } catch (err) {
      if (err instanceof ServerCrash && options.onServerCrash !== undefined) {
        options.onServerCrash(err);
        return;
      }
      throw err;
    }
    options.onRun?.(outcome);
    if (!outcome.ok && outcome.signatures.some((s) => !(options.ignoreSignatures?.has(s) ?? false))) throw new MismatchError(outcome);
  };
}

export function differentialProperty(runner: DifferentialRunner, options: PropertyOptions = {}): fc.IAsyncPropertyWithHooks<[Conversation]> {
  return fc.asyncProperty(conversationArb({ ...runner.options, ...options.arbitrary }), checkConversation(runner, options));
}
