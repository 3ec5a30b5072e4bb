/**
 * fast-check arbitraries for conversations (see model.ts). Everything is a record of small numbers, booleans and
 * arrays, so shrinking removes clients, steps, statements and segments, and moves each number towards 0 (the
 * plainest variant): a failing conversation shrinks to the few messages that matter.
 */
import fc from 'fast-check';
import {
  EXT_QUERIES,
  RANGE_QUERY,
  STAR_QUERY,
  STARTUP_GUCS,
  formatConversation,
  type ClientSpec,
  type Conversation,
  type Options,
  type Seg,
  type StartupSetting,
  type StepSpec,
  type Stmt,
  type StmtKind,
} from './model.js';

/** Relative weights of the statement kinds; 0 leaves a kind out (CLI: --weight kind=n). */
export const STMT_WEIGHTS: Record<StmtKind, number> = {
  set: 8,
  set_config: 3,
  reset: 4,
  reset_all: 2,
  show: 5,
  probe: 2,
  values: 4,
  role: 5,
  whoami: 4,
  begin: 7,
  commit: 5,
  rollback: 3,
  savepoint: 2,
  rollback_to: 2,
  release: 1,
  error: 3,
  noop: 2,
  notice: 2,
  insert: 4,
  update: 2,
  delete: 2,
  select_t: 3,
  alter: 2,
  prepare: 2,
  execute: 2,
  deallocate: 2,
  discard: 2,
  temp: 4,
  cursor: 4,
  lock: 4,
  listen: 3,
  notify: 3,
  copy_out: 2,
};

/** Relative weights of the kinds of step (simple queries, extended batches, COPY IN, a lone Sync, combinations). */
export const STEP_WEIGHTS = { simple: 12, ext: 6, copyin: 2, sync: 1, combo: 2 };

export interface ArbitraryOptions extends Options {
  stmtWeights: Record<StmtKind, number>;
  stepWeights: typeof STEP_WEIGHTS;
  maxClients: number;
  maxSteps: number;
  minPool: number;
  maxPool: number;
  /** Startup settings per client, at most (0: none). */
  maxStartup: number;
}

export const DEFAULT_ARBITRARY_OPTIONS: ArbitraryOptions = {
  starNamed: false,
  stmtWeights: STMT_WEIGHTS,
  stepWeights: STEP_WEIGHTS,
  maxClients: 8,
  maxSteps: 14,
  minPool: 2,
  maxPool: 3,
  maxStartup: 4,
};

const weighted = <T>(entries: Array<[fc.Arbitrary<T>, number]>): fc.Arbitrary<T> =>
  fc.oneof(...entries.filter(([, w]) => w > 0).map(([arbitrary, weight]) => ({ arbitrary, weight })));

const often = (yes: number, no: number): fc.Arbitrary<boolean> => weighted([[fc.constant(true), yes], [fc.constant(false), no]]);

const pauseArb: fc.Arbitrary<number> = weighted([[fc.constant(0), 12], [fc.constant(1), 2], [fc.constant(3), 1]]);

function stmtArb(o: ArbitraryOptions): fc.Arbitrary<Stmt> {
  const kinds = Object.entries(o.stmtWeights).filter(([, w]) => w > 0) as Array<[StmtKind, number]>;
  if (kinds.length === 0) throw new Error('every statement kind has weight 0');
  const kind = fc.oneof(...kinds.map(([k, weight]) => ({ arbitrary: fc.constant(k), weight })));
  return fc.record({ k: kind, a: fc.nat(11), b: fc.nat(5), c: fc.nat(5) });
}

const segArb: fc.Arbitrary<Seg> = fc.record({
  q: fc.nat(EXT_QUERIES.length - 1),
  v: fc.nat(4),
  stmt: fc.nat(2),
  parse: often(3, 1),
  describeS: often(1, 3),
  bind: often(5, 1),
  portal: weighted([[fc.constant(0), 6], [fc.constant(1), 2], [fc.constant(2), 1]]),
  describeP: often(1, 1),
  execs: weighted([[fc.constant(1), 6], [fc.constant(0), 1], [fc.constant(2), 1]]),
  maxRows: weighted([[fc.constant(0), 5], [fc.constant(1), 2], [fc.constant(2), 1]]),
  binary: often(1, 6),
  close: weighted([[fc.constant(0), 6], [fc.constant(1), 1], [fc.constant(2), 1]]),
  sync: often(2, 1),
});

const seg = (fields: Partial<Seg>): Seg => ({
  q: 0,
  v: 0,
  stmt: 0,
  parse: false,
  describeS: false,
  bind: false,
  portal: 0,
  describeP: false,
  execs: 0,
  maxRows: 0,
  binary: false,
  close: 0,
  sync: true,
  ...fields,
});

const NOOP: Stmt = { k: 'noop', a: 0, b: 0, c: 0 };
const simple = (...stmts: Stmt[]): StepSpec => ({ t: 'simple', stmts, joined: false, pause: 0 });
const ext = (...segs: Seg[]): StepSpec => ({ t: 'ext', segs, tail: 'sync', query: NOOP, pause: 0 });
const st = (k: StmtKind, a = 0, b = 0, c = 0): Stmt => ({ k, a, b, c });

/** Steps that belong together, to reach known-delicate paths more often than chance would. */
function comboArb(o: ArbitraryOptions): fc.Arbitrary<StepSpec[]> {
  const stale = fc.record({ star: o.starNamed ? fc.boolean() : fc.constant(false), col: fc.nat(1), stmt: fc.integer({ min: 1, max: 2 }) }).map(({ star, col, stmt }) => {
    const q = star ? STAR_QUERY : RANGE_QUERY;
    return [
      ext(seg({ q, stmt, parse: true, describeS: true })),
      ext(seg({ q, stmt, bind: true, execs: 1 })),
      simple(st('alter', 0, col)),
      ext(seg({ q, stmt, bind: true, describeP: true, execs: 1 })),
    ];
  });
  // asyncpg's copy_records_to_table: Parse/Describe/Flush to introspect, then a simple-query binary COPY.
  const asyncpgCopy = fc.record({ stmt: fc.nat(2), ids: fc.array(fc.integer({ min: 1, max: 12 }), { maxLength: 3 }) }).map(({ stmt, ids }): StepSpec[] => [
    { t: 'ext', segs: [seg({ q: RANGE_QUERY, stmt, parse: true, describeS: true })], tail: 'flush', query: NOOP, pause: 0 },
    { t: 'copyin', ext: false, format: 2, ids, end: 'done', pause: 0 },
  ]);
  const holdCursor = fc.nat(3).map((a): StepSpec[] => [
    simple(st('begin')),
    simple(st('cursor', a === 0 ? 0 : 3)),
    simple(st('commit')),
    simple(st('begin')),
    simple(st('select_t')),
    simple(st('commit')),
  ]);
  // A SET, then statements whose answers depend on it: in separate steps, or sent together in one write.
  const setThenUse = fc.record({ a: fc.nat(12), b: fc.nat(5), c: fc.nat(2), together: fc.boolean() }).map(({ a, b, c, together }) => {
    const stmts = [st('set', a, b, c), st('values', a), st('show', a, 0, c)];
    return together ? [simple(...stmts)] : stmts.map((x) => simple(x));
  });
  return fc.oneof(stale, asyncpgCopy, holdCursor, setThenUse);
}

function stepArb(o: ArbitraryOptions): fc.Arbitrary<StepSpec[]> {
  const stmt = stmtArb(o);
  const simpleStep = fc
    .record({ stmts: fc.array(stmt, { minLength: 1, maxLength: 3 }), joined: often(1, 3), pause: pauseArb })
    .map((s): StepSpec => ({ t: 'simple', ...s }));
  const extStep = fc
    .record({
      segs: fc.array(segArb, { minLength: 1, maxLength: 3 }),
      tail: weighted<'sync' | 'flush' | 'flush+query'>([[fc.constant('sync'), 8], [fc.constant('flush'), 1], [fc.constant('flush+query'), 2]]),
      query: stmt,
      pause: pauseArb,
    })
    .map((s): StepSpec => ({ t: 'ext', ...s }));
  const copyStep = fc
    .record({
      ext: often(1, 3),
      format: fc.nat(2),
      ids: fc.array(fc.integer({ min: 1, max: 12 }), { maxLength: 3 }),
      end: weighted<'done' | 'fail' | 'bad'>([[fc.constant('done'), 6], [fc.constant('fail'), 1], [fc.constant('bad'), 1]]),
      pause: pauseArb,
    })
    .map((s): StepSpec => ({ t: 'copyin', ...s }));
  const syncStep = pauseArb.map((pause): StepSpec => ({ t: 'sync', pause }));
  const w = o.stepWeights;
  return weighted<StepSpec[]>([
    [simpleStep.map((s) => [s]), w.simple],
    [extStep.map((s) => [s]), w.ext],
    [copyStep.map((s) => [s]), w.copyin],
    [syncStep.map((s) => [s]), w.sync],
    [comboArb(o), w.combo],
  ]);
}

const startupArb: fc.Arbitrary<StartupSetting> = fc.record({
  guc: fc.nat(STARTUP_GUCS.length - 1),
  value: fc.nat(4),
  via: weighted<StartupSetting['via']>([[fc.constant('packet'), 3], [fc.constant('options'), 2], [fc.constant('options-long'), 1]]),
  spelling: fc.nat(2),
});

function clientArb(o: ArbitraryOptions): fc.Arbitrary<ClientSpec> {
  return fc.record({
    startup: fc.array(startupArb, { maxLength: o.maxStartup }),
    steps: fc.array(stepArb(o), { maxLength: o.maxSteps }).map((groups) => groups.flat()),
    startAfter: fc.oneof({ withCrossShrink: true }, { arbitrary: fc.constant(null), weight: 3 }, { arbitrary: fc.nat(6), weight: 1 }),
  });
}

/** Conversations printed with formatConversation (fast-check shows counterexamples with it). */
export function conversationArb(options: Partial<ArbitraryOptions> = {}): fc.Arbitrary<Conversation> {
  const o = { ...DEFAULT_ARBITRARY_OPTIONS, ...options };
  return fc
    .record({
      poolSize: fc.integer({ min: o.minPool, max: o.maxPool }),
      clients: fc.array(clientArb(o), { minLength: 1, maxLength: o.maxClients, size: 'max' }),
    })
    .map((conv) => ({ ...conv, [fc.toStringMethod]: () => `\n${formatConversation(conv, o)}\n` }) as Conversation);
}
