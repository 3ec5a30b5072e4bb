/**
 * fast-check arbitraries for the protocol fuzzer's plans (plans.ts).
 *
 * Transaction mode has documented differences from a direct connection (docs/architecture.md, "Known
 * differences"); what is generated there steers clear of them, so that any difference found is a bug:
 * - a named Parse is answered by pgmux when the client holds no server and prepared at first use, so its SQL is
 *   always one that parses (PARSE_SQL), and its mutations are only those that break the message's format (which
 *   pgmux must refuse as PostgreSQL does) — never a changed byte or type OID that would make a well-formed Parse
 *   fail at Parse time;
 * - each case has its own statement names (a0, b0 in case 0 ...), and a named statement is never Closed (a Close
 *   of a statement, then its reuse after an error in one pipeline, is a documented difference).
 * Session mode forwards everything: there the names are shared between cases and everything may be mutated.
 */
import fc from 'fast-check';
import { ABSURD_COUNTS, ABSURD_FORMATS, ABSURD_VALUE_LENGTHS, type Mutation } from './mutations.js';
import { FRONTEND_TYPES } from './frames.js';
import {
  MD5_MUTATIONS,
  SCRAM_MUTATIONS,
  SESSION_STATES,
  type AdminCase,
  type AdminCommand,
  type AdminConversation,
  type AuthConversation,
  type Batch,
  type Conversation,
  type CutPlan,
  type FrameSpec,
  type FuzzFrame,
  type NameRef,
  type PoolMode,
  type PortalRef,
  type SessionCase,
  type SessionConversation,
  type SslConversation,
  type StartupConversation,
  type StartupMutation,
} from './plans.js';
import { V3 } from './render.js';

const small = fc.integer({ min: 0, max: 1000 });
const byte = fc.integer({ min: 0, max: 255 });
const bytes = (min: number, max: number): fc.Arbitrary<number[]> => fc.array(byte, { minLength: min, maxLength: max });
const nameRef: fc.Arbitrary<NameRef> = fc.constantFrom<NameRef>(0, 1, 2, 3);
const portalRef: fc.Arbitrary<PortalRef> = fc.constantFrom<PortalRef>(0, 1);

const unknownType = byte.filter((b) => !FRONTEND_TYPES.includes(b));

function frameSpec(mode: PoolMode): fc.Arbitrary<FrameSpec> {
  // In transaction mode a named statement is never Closed (see the header): Close S aims at '' or a name never prepared.
  const closeName: fc.Arbitrary<NameRef> = mode === 'transaction' ? fc.constantFrom<NameRef>(0, 3) : nameRef;
  return fc.oneof(
    { weight: 3, arbitrary: fc.record({ t: fc.constant('Q' as const), sql: small }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('Qraw' as const), text: bytes(0, 40) }) },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('P' as const), name: nameRef, sql: small, types: small }) },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('B' as const), portal: portalRef, stmt: nameRef, pf: small, vals: small, rf: small }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('E' as const), portal: portalRef, rows: fc.constantFrom(0, 1, 2, -1) }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('D' as const), kind: fc.constantFrom('S' as const, 'P' as const), name: nameRef }) },
    {
      weight: 2,
      arbitrary: fc
        .record({ kind: fc.constantFrom('S' as const, 'P' as const), s: closeName, p: portalRef })
        .map(({ kind, s, p }): FrameSpec => ({ t: 'C', kind, name: kind === 'S' ? s : p })),
    },
    { weight: 3, arbitrary: fc.constant<FrameSpec>({ t: 'S' }) },
    { weight: 1, arbitrary: fc.constant<FrameSpec>({ t: 'H' }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('F' as const), fn: small, args: small, rf: fc.constantFrom(0, 1) }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('d' as const), data: small }) },
    { weight: 1, arbitrary: fc.constant<FrameSpec>({ t: 'c' }) },
    { weight: 1, arbitrary: fc.constant<FrameSpec>({ t: 'f' }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('unknown' as const), code: unknownType, body: bytes(0, 12) }) },
  );
}

const pick = fc.integer({ min: 0, max: 1 << 16 });

/** Mutations that only break a message's format (see the header: what a named Parse may get in transaction mode). */
const formatBreaking: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ m: fc.constant('dropNul' as const), pick }),
  fc.record({ m: fc.constant('cut' as const), at: pick, keepLength: fc.boolean() }),
  fc.record({ m: fc.constant('lengthDelta' as const), delta: fc.constantFrom(-3, -2, -1, 1, 2, 3, 7, 64) }),
  fc.record({ m: fc.constant('lengthAbsurd' as const), pick }),
  fc.record({ m: fc.constant('count' as const), pick, value: fc.constantFrom(...ABSURD_COUNTS) }),
  fc.record({ m: fc.constant('append' as const), bytes: bytes(1, 16) }),
  fc.record({ m: fc.constant('type' as const), code: fc.oneof(fc.constantFrom(...FRONTEND_TYPES), byte) }),
);

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 7, arbitrary: formatBreaking },
  { weight: 1, arbitrary: fc.record({ m: fc.constant('format' as const), pick, value: fc.constantFrom(...ABSURD_FORMATS) }) },
  { weight: 1, arbitrary: fc.record({ m: fc.constant('valueLength' as const), pick, value: fc.constantFrom(...ABSURD_VALUE_LENGTHS) }) },
  { weight: 1, arbitrary: fc.record({ m: fc.constant('flip' as const), at: pick, byte }) },
);

function fuzzFrame(mode: PoolMode): fc.Arbitrary<FuzzFrame> {
  return frameSpec(mode).chain((spec) => {
    const namedParse = spec.t === 'P' && (spec.name === 1 || spec.name === 2);
    const one = mode === 'transaction' && namedParse ? formatBreaking : mutation;
    const max = mode === 'transaction' ? 1 : 2;
    return fc.oneof(
      { weight: 6, arbitrary: fc.constant<Mutation[]>([]) },
      { weight: 4, arbitrary: fc.array(one, { minLength: 1, maxLength: max }) },
    ).map((mutations) => ({ spec, mutations }));
  });
}

export const cutPlan: fc.Arbitrary<CutPlan> = fc.oneof(
  { weight: 5, arbitrary: fc.constant<CutPlan>({ c: 'none' }) },
  { weight: 4, arbitrary: fc.record({ c: fc.constant('at' as const), fractions: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 4 }) }) },
  { weight: 1, arbitrary: fc.constant<CutPlan>({ c: 'bytes' }) },
);

function sessionCase(mode: PoolMode): fc.Arbitrary<SessionCase> {
  return fc.record({
    state: fc.constantFrom(...SESSION_STATES),
    frames: fc.array(fuzzFrame(mode), { minLength: 1, maxLength: 8 }),
    cuts: cutPlan,
  });
}

export function sessionConversation(options: { tls?: boolean } = {}): fc.Arbitrary<SessionConversation> {
  return fc
    .record({
      mode: fc.oneof({ weight: 3, arbitrary: fc.constant<PoolMode>('transaction') }, { weight: 1, arbitrary: fc.constant<PoolMode>('session') }),
      tls: options.tls === undefined ? fc.oneof({ weight: 9, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }) : fc.constant(options.tls),
    })
    .chain(({ mode, tls }) => fc.array(sessionCase(mode), { minLength: 1, maxLength: 6 }).map((cases): SessionConversation => ({ kind: 'session', mode, tls, cases })));
}

// ---- startup ----

/** The database placeholder: replaced by the fuzz database's name when rendered. */
export const DB = '$db';

const startupExtra: fc.Arbitrary<Array<[string, string]>> = fc.array(
  fc.oneof(
    fc.constantFrom<[string, string]>(
      ['application_name', 'fuzz'],
      ['application_name', ''],
      ['client_encoding', 'UTF8'],
      ['client_encoding', 'LATIN1'],
      ['client_encoding', 'no-such-encoding'],
      ['DateStyle', 'ISO, MDY'],
      ['DateStyle', 'garbage'],
      ['options', '-c search_path=public'],
      ['options', '--nosuch_guc=1'],
      ['options', '-c statement_timeout=5s -c lock_timeout=1s'],
      ['fz.custom', 'x'],
      ['nosuch_guc', '1'],
      ['_pq_.fuzz_option', '1'],
      ['replication', 'false'],
      ['replication', 'off'],
      ['replication', 'no'],
      ['replication', '0'],
      ['replication', 'database'],
      ['replication', 'true'],
      ['replication', 'garbage'],
      ['user', 'pgmux_trust'],
      ['search_path', 'public'],
      ['statement_timeout', 'abc'],
    ),
    fc.tuple(fc.constantFrom('application_name', 'fz.v'), fc.string({ unit: 'grapheme-ascii', maxLength: 30 }).map((s) => s.replace(/\0/g, ''))),
  ),
  { maxLength: 4 },
);

const startupMutation: fc.Arbitrary<StartupMutation> = fc.oneof(
  fc.record({ m: fc.constant('lengthDelta' as const), delta: fc.constantFrom(-9, -3, -2, -1, 1, 2, 3, 40) }),
  fc.record({ m: fc.constant('length' as const), value: fc.constantFrom(-1, 0, 4, 7, 8, 10001, 1 << 20, 0x7fffffff, -2147483648, 10000) }),
  fc.record({ m: fc.constant('dropFinalZero' as const) }),
  fc.record({ m: fc.constant('dropZero' as const), pick }),
  fc.record({ m: fc.constant('cut' as const), at: pick }),
  fc.record({ m: fc.constant('append' as const), bytes: bytes(1, 12) }),
  fc.record({ m: fc.constant('manyParams' as const), n: fc.constantFrom(50, 400, 1200) }),
  fc.record({ m: fc.constant('hugeValue' as const), size: fc.constantFrom(2000, 9800, 12000, 70000) }),
  fc.record({ m: fc.constant('flip' as const), at: pick, byte }),
);

const version = fc.oneof(
  { weight: 12, arbitrary: fc.constant(V3) },
  { weight: 1, arbitrary: fc.constantFrom(V3 + 1, V3 + 2, V3 + 0xffff) },
  { weight: 1, arbitrary: fc.constantFrom(2 << 16, 4 << 16, 1 << 16, 0, -1) },
  { weight: 1, arbitrary: fc.constantFrom(80877102, 80877103, 80877104, 80877105) },
  { weight: 1, arbitrary: fc.integer() },
);

export const startupConversation: fc.Arbitrary<StartupConversation> = fc
  .record({
    version,
    base: fc.constantFrom<Array<[string, string]>>(
      [['user', 'pgmux_trust'], ['database', DB]],
      [['database', DB], ['user', 'pgmux_trust']],
      [['user', 'pgmux_trust']],
      [['database', DB]],
      [['user', ''], ['database', DB]],
      [['user', 'pgmux_trust'], ['database', 'nosuch_db']],
      [['user', 'pgmux_trust'], ['database', '']],
    ),
    extra: startupExtra,
    mutation: fc.option(startupMutation, { freq: 2 }),
    gssFirst: fc.oneof({ weight: 9, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    pipelined: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    tls: fc.oneof({ weight: 6, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    cuts: cutPlan,
  })
  .map(({ base, extra, ...rest }): StartupConversation => ({ kind: 'startup', params: [...base, ...extra], ...rest }));

export const sslConversation: fc.Arbitrary<SslConversation> = fc.record({
  kind: fc.constant('ssl' as const),
  variant: fc.constantFrom('same-packet' as const, 'after-answer' as const, 'second-request' as const, 'cancel-inside' as const, 'direct-garbage' as const),
  garbage: bytes(1, 64),
  cuts: cutPlan,
});

export const authConversation: fc.Arbitrary<AuthConversation> = fc
  .record({
    method: fc.oneof({ weight: 3, arbitrary: fc.constant('scram' as const) }, { weight: 2, arbitrary: fc.constant('md5' as const) }),
    tls: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    scram: fc.constantFrom(...SCRAM_MUTATIONS),
    md5: fc.constantFrom(...MD5_MUTATIONS),
    n: fc.integer({ min: 0, max: 1 << 20 }),
    frameMutation: fc.option(mutation, { freq: 2 }),
    cuts: cutPlan,
  })
  .map(({ method, tls, scram, md5, n, frameMutation, cuts }): AuthConversation => ({
    kind: 'auth',
    method,
    tls,
    mutation: method === 'scram' ? scram : md5,
    n,
    frameMutation,
    cuts,
  }));

// ---- admin console ----

const ADMIN_VERBS = ['SHOW', 'SET', 'KILL_CLIENT', 'PAUSE', 'RESUME', 'ENABLE', 'DISABLE', 'RECONNECT', 'KILL', 'WAIT_CLOSE', 'RELOAD', 'SUSPEND', 'SHUTDOWN', 'SELECT', 'show', 'sHoW', '"show"', 'frobnicate', ''];
const SHOW_WHAT = ['pools', 'stats', 'stats_totals', 'stats_averages', 'totals', 'clients', 'servers', 'databases', 'users', 'config', 'lists', 'version', 'state', 'help', 'client_encoding', 'timezone', 'nosuch'];
/** Commands that act when given no argument (or a real database): only ever sent with garbage by an admin. */
const ACTING = new Set(['PAUSE', 'RESUME', 'ENABLE', 'DISABLE', 'RECONNECT', 'KILL', 'WAIT_CLOSE', 'RELOAD', 'SHUTDOWN', 'KILL_CLIENT', 'SET']);

const adminArg = fc.oneof(
  fc.constantFrom(...SHOW_WHAT),
  fc.string({ unit: 'grapheme-ascii', maxLength: 24 }),
  fc.string({ unit: 'grapheme', maxLength: 8 }),
  fc.constantFrom('"quoted name"', '"unterminated', "'str'", "'", '""', '-1', '0', '1.5', '1e309', '0x10', '99999999999999999999', 'nosuch_db', '*', 'wait_for_clients', '= 1', 'to', "max_client_conn = 'abc'", 'nosuch = 1'),
);

export const adminCommand: fc.Arbitrary<AdminCommand> = fc.record({
  verb: fc.constantFrom(...ADMIN_VERBS),
  arg: adminArg,
  sep: fc.constantFrom(' ', '  ', '\t', '', '\n'),
  tail: fc.constantFrom('', ';', ' ;', ';;', ' extra', ';select 1', '\0trailing'),
});

/** An admin may not send what would act on pgmux (the bystanders would see it); garbage arguments only. */
export function safeForAdmin(c: AdminCommand, databases: readonly string[]): boolean {
  const verb = c.verb.replace(/"/g, '').toUpperCase();
  if (!ACTING.has(verb)) return true;
  const arg = c.arg.trim().replace(/^"|"$/g, '').replace(/;+$/, '').trim();
  if (arg === '' || arg === '*') return false;
  if (databases.some((d) => d.toLowerCase() === arg.toLowerCase())) return false;
  if (verb === 'KILL_CLIENT' && Number.isSafeInteger(Number(arg)) && Number(arg) > 0) return false;
  if (verb === 'SHUTDOWN' && /wait_for/i.test(arg)) return false;
  if (verb === 'SET') return /^nosuch|^[^a-z_]/i.test(arg);
  return true;
}

export function adminText(c: AdminCommand): string {
  return `${c.verb}${c.sep}${c.arg}${c.tail}`.replace(/\0.*$/s, '');
}

function adminCase(role: 'admin' | 'stats'): fc.Arbitrary<AdminCase> {
  const item = fc.oneof(
    { weight: 5, arbitrary: (role === 'admin' ? adminCommand.filter((c) => safeForAdmin(c, [])) : adminCommand).map((command) => ({ command })) },
    { weight: 2, arbitrary: fuzzFrame('session') },
  );
  return fc.record({ frames: fc.array(item, { minLength: 1, maxLength: 6 }), cuts: cutPlan });
}

export const adminConversation: fc.Arbitrary<AdminConversation> = fc
  .constantFrom<'admin' | 'stats'>('admin', 'stats')
  .chain((role) => fc.array(adminCase(role), { minLength: 1, maxLength: 4 }).map((cases): AdminConversation => ({ kind: 'admin', role, cases })));

// ---- batches ----

export interface Weights {
  session: number;
  startup: number;
  ssl: number;
  auth: number;
  admin: number;
}

export const DEFAULT_WEIGHTS: Weights = { session: 12, startup: 3, ssl: 1, auth: 2, admin: 2 };

export function conversation(weights: Weights = DEFAULT_WEIGHTS): fc.Arbitrary<Conversation> {
  const arbs: Array<{ weight: number; arbitrary: fc.Arbitrary<Conversation> }> = [
    { weight: weights.session, arbitrary: sessionConversation() },
    { weight: weights.startup, arbitrary: startupConversation },
    { weight: weights.ssl, arbitrary: sslConversation },
    { weight: weights.auth, arbitrary: authConversation },
    { weight: weights.admin, arbitrary: adminConversation },
  ];
  return fc.oneof(...arbs.filter((a) => a.weight > 0));
}

export function batch(size: number, weights: Weights = DEFAULT_WEIGHTS): fc.Arbitrary<Batch> {
  return fc.array(conversation(weights), { minLength: 1, maxLength: size }).map((conversations) => ({ conversations }));
}
