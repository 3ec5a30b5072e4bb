/**
 * What the protocol fuzzer runs, as data: a conversation is one client connection in one starting situation
 * (startup, SSLRequest, mid-SCRAM, mid-md5, logged in to a pool in some state, the admin console), with the
 * frames it sends. The arbitraries in arbitraries.ts generate these; runner.ts renders and runs them.
 */
import type { Mutation } from './mutations.js';

/** Where the client is when the fuzzed frames arrive (after login). */
export const SESSION_STATES = ['idle', 'transaction', 'failed', 'running', 'batch', 'copy-in', 'copy-in-ext', 'copy-out'] as const;
export type SessionState = (typeof SESSION_STATES)[number];

export type PoolMode = 'transaction' | 'session';

/** A statement name: '' (unnamed), one of two names, or one never prepared. */
export type NameRef = 0 | 1 | 2 | 3;
/** A portal: '' or p1. */
export type PortalRef = 0 | 1;

/** How a frame is built before any mutation. */
export type FrameSpec =
  | { t: 'Q'; sql: number }
  | { t: 'Qraw'; text: number[] }
  | { t: 'P'; name: NameRef; sql: number; types: number }
  | { t: 'B'; portal: PortalRef; stmt: NameRef; pf: number; vals: number; rf: number }
  | { t: 'E'; portal: PortalRef; rows: number }
  | { t: 'D' | 'C'; kind: 'S' | 'P'; name: NameRef | PortalRef }
  | { t: 'S' }
  | { t: 'H' }
  | { t: 'F'; fn: number; args: number; rf: number }
  | { t: 'd'; data: number }
  | { t: 'c' }
  | { t: 'f' }
  | { t: 'p' }
  | { t: 'unknown'; code: number; body: number[] };

export interface FuzzFrame {
  spec: FrameSpec;
  /** At most one mutation per frame in transaction mode (see arbitraries.ts), up to two in session mode. */
  mutations: Mutation[];
}

/**
 * Where a case's bytes are split into separate writes: not at all, at a few places (fractions of the length), or
 * after every byte (short cases only).
 */
export type CutPlan = { c: 'none' } | { c: 'at'; fractions: number[] } | { c: 'bytes' } | { c: 'offset'; at: number };

export interface SessionCase {
  state: SessionState;
  frames: FuzzFrame[];
  cuts: CutPlan;
}

export interface SessionConversation {
  kind: 'session';
  mode: PoolMode;
  tls: boolean;
  cases: SessionCase[];
}

/** A startup packet as parts, then what is done to it. */
export interface StartupConversation {
  kind: 'startup';
  version: number;
  /** Parameters as written (name, value); `user`/`database` among them or not. */
  params: Array<[string, string]>;
  mutation: StartupMutation | null;
  /** A GSSENCRequest first (answered 'N' both ways). */
  gssFirst: boolean;
  /** A Query pipelined right behind the packet. */
  pipelined: boolean;
  tls: boolean;
  cuts: CutPlan;
}

export type StartupMutation =
  | { m: 'lengthDelta'; delta: number }
  | { m: 'length'; value: number }
  | { m: 'dropFinalZero' }
  | { m: 'dropZero'; pick: number }
  | { m: 'cut'; at: number }
  | { m: 'append'; bytes: number[] }
  | { m: 'manyParams'; n: number }
  | { m: 'hugeValue'; size: number }
  | { m: 'flip'; at: number; byte: number };

/** SSLRequest, then garbage: in the same packet (before the answer), or after 'S' instead of a TLS handshake. */
export interface SslConversation {
  kind: 'ssl';
  variant: 'same-packet' | 'after-answer' | 'second-request' | 'cancel-inside' | 'direct-garbage';
  garbage: number[];
  cuts: CutPlan;
}

export const SCRAM_MUTATIONS = [
  'none',
  'mech-unknown',
  'mech-plus-unoffered',
  'mech-empty',
  'inner-length',
  'first-oversized',
  'first-huge-frame',
  'first-truncated',
  'gs2-y',
  'gs2-p-wrong-type',
  'gs2-garbage',
  'gs2-authzid',
  'gs2-missing',
  'nonce-missing',
  'nonce-empty',
  'nonce-unprintable',
  'first-extension-m',
  'first-extra-attr',
  'first-frame',
  'final-nonce-wrong',
  'final-nonce-client-only',
  'final-proof-bad-base64',
  'final-proof-short',
  'final-proof-wrong',
  'final-proof-missing',
  'final-proof-not-last',
  'final-cbind-wrong',
  'final-cbind-garbage',
  'final-extension',
  'final-oversized',
  'final-truncated',
  'final-empty',
  'final-frame',
  'wrong-type-first',
  'wrong-type-final',
  'extra-before-continue',
  'terminate-mid',
  'plus-binding-wrong',
  'plus',
] as const;
export type ScramMutation = (typeof SCRAM_MUTATIONS)[number];

export const MD5_MUTATIONS = [
  'none',
  'wrong-hash',
  'uppercase',
  'no-zero',
  'extra-after-zero',
  'empty',
  'cleartext',
  'oversized',
  'huge-frame',
  'wrong-type',
  'sasl-initial',
  'frame',
  'terminate',
] as const;
export type Md5Mutation = (typeof MD5_MUTATIONS)[number];

export interface AuthConversation {
  kind: 'auth';
  method: 'scram' | 'md5';
  tls: boolean;
  mutation: ScramMutation | Md5Mutation;
  /** Parameters of the mutation (which byte, how much, which frame mutation). */
  n: number;
  frameMutation: Mutation | null;
  cuts: CutPlan;
}

/** An admin console command as parts: `${verb}${sep}${arg}${tail}`. */
export interface AdminCommand {
  verb: string;
  arg: string;
  sep: string;
  tail: string;
}

export interface AdminCase {
  frames: Array<{ command: AdminCommand } | FuzzFrame>;
  cuts: CutPlan;
}

export interface AdminConversation {
  kind: 'admin';
  role: 'admin' | 'stats';
  cases: AdminCase[];
}

export type Conversation = SessionConversation | StartupConversation | SslConversation | AuthConversation | AdminConversation;

/** A batch of conversations run at once (what one fast-check run is). */
export interface Batch {
  conversations: Conversation[];
}
