/**
 * The protocol fuzzer's oracles. For each case, what pgmux answered (`got`) against what PostgreSQL answered
 * to the same bytes on a direct connection (`want`), where there is one:
 *
 * - logged-in sessions: exactly PostgreSQL's answer (messages compared as test/harness/wire-client.ts normalise()s
 *   them, the close included); or a refusal — a prefix of PostgreSQL's answer, then ErrorResponse 08P01, then the
 *   close — where PostgreSQL too found a protocol violation in those bytes (reported 08P01 or closed);
 * - startup: the same outcome class (logged in and the same probe answer / refused with the same SQLSTATE / closed
 *   / still waiting for more bytes); or pgmux refused with 08P01 what PostgreSQL refused or is still reading;
 * - SCRAM and md5: logged in both ways, or refused both ways with pgmux saying 08P01, 28P01 or 28000 (over TLS,
 *   where there is no direct run: logged in exactly when nothing was mutated, else refused with one of those);
 * - SSLRequest then garbage: refused with 08P01, or the TLS handshake failed and the connection closed; what
 *   comes inside TLS as PostgreSQL answers it after 'N';
 * - the admin console: every command answered and the probe too, or refused with 08P01 and closed.
 * Everywhere: no answer within the time limit is a hang, and XX000 (pgmux's internal error) is a bug.
 */
import type { AuthConversation, SslConversation } from './plans.js';

export interface Outcome {
  /** Normalised messages (harness normalise()). */
  messages: string[];
  /** SQLSTATEs of the ErrorResponses among them. */
  codes: string[];
  closed: boolean;
  timedOut: boolean;
  /** A login phase (startup, auth): `messages` are the probe's answer when logged in, else the errors. */
  login?: boolean;
  loggedIn?: boolean;
  trace?: string;
}

export type Verdict =
  | { kind: 'pass' | 'refused' | 'known' | 'skipped'; reason?: string; report: string; signature?: string }
  | { kind: 'fail'; reason: string; report: string; signature?: string };

/** A line with its values blanked, for telling kinds of failure apart. */
export function shape(line: string): string {
  return line.replace(/"[^"]*"/g, '"…"').replace(/\b\d+\b/g, 'N').slice(0, 80);
}

/** The first line where two answers differ (shaped), for a failure's signature. */
export function firstDifference(got: readonly string[], want: readonly string[]): string {
  for (let i = 0; i < Math.max(got.length, want.length); i++) {
    if (got[i] !== want[i]) return `${shape(got[i] ?? '(end)')} / ${shape(want[i] ?? '(end)')}`;
  }
  return '(same messages)';
}

const pass = (kind: 'pass' | 'refused' = 'pass'): Verdict => ({ kind, report: '' });
const fail = (reason: string, got: Outcome, want: Outcome | null, note = ''): Verdict => ({
  kind: 'fail',
  reason,
  signature: `${reason} ${want === null ? shape(got.messages[got.messages.length - 1] ?? '') : firstDifference(got.messages, want.messages)}`,
  report:
    `${reason}${note === '' ? '' : `: ${note}`}\n` +
    `through pgmux (closed=${got.closed}, timedOut=${got.timedOut}):\n  ${got.messages.join('\n  ')}\n` +
    (want === null ? '' : `directly (closed=${want.closed}, timedOut=${want.timedOut}):\n  ${want.messages.join('\n  ')}`),
});

const isProtocolError = (line: string): boolean => /^E \S+ 08P01 /.test(line);

function samePrefix(prefix: readonly string[], of: readonly string[]): boolean {
  if (prefix.length > of.length) return false;
  for (let i = 0; i < prefix.length; i++) if (prefix[i] !== of[i]) return false;
  return true;
}

function equal(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && samePrefix(a, b);
}

/** pgmux sent more XX000 errors than PostgreSQL did (PostgreSQL raises some itself: "cache lookup failed for type 104"). */
function pgmuxInternalError(got: Outcome, want: Outcome | null): boolean {
  const count = (o: Outcome | null) => (o === null ? 0 : o.codes.filter((c) => c === 'XX000').length);
  return count(got) > count(want);
}

export function judgeSession(got: Outcome, want: Outcome): Verdict {
  if (want.timedOut) return fail('direct-timeout', got, want, 'PostgreSQL did not answer the case: the fuzzer built something it cannot run');
  if (pgmuxInternalError(got, want)) return fail('internal-error', got, want);
  if (got.timedOut) return fail('hang', got, want, 'no answer to the probe, and no close');
  if (got.closed === want.closed && equal(got.messages, want.messages)) return pass();
  // The refusal may be more than one ErrorResponse 08P01: PostgreSQL's own answer to a request sent in the middle of
  // COPY IN is an ERROR ("unexpected message type ... during COPY from stdin") and a FATAL ("protocol synchronization
  // was lost"), which pgmux gives in transaction mode without knowing whether the COPY failed on its data first.
  let refusal = got.messages.length;
  while (refusal > 0 && isProtocolError(got.messages[refusal - 1])) refusal--;
  if (got.closed && refusal < got.messages.length && samePrefix(got.messages.slice(0, refusal), want.messages)) {
    // Where PostgreSQL took every message without any error, a refusal is pgmux failing a valid stream. (Where it
    // reported an error, it may have skipped the message pgmux refused: it does not read what it skips to Sync.)
    if (want.closed || want.codes.length > 0) return pass('refused');
    return fail('refused-valid', got, want, 'pgmux refused with 08P01 what PostgreSQL took without any error');
  }
  if (got.closed && !want.closed) return fail('closed', got, want, 'pgmux closed the connection where PostgreSQL kept it');
  return fail('mismatch', got, want);
}

/** What a login attempt came to: logged in, refused with a SQLSTATE, closed silently, or still waiting. */
function loginClass(o: Outcome): string {
  if (o.loggedIn === true) return 'ok';
  if (o.codes.length > 0) return `error:${o.codes[0]}`;
  if (o.closed) return 'closed';
  return o.timedOut ? 'waiting' : 'other';
}

/**
 * @param replication the client asked for a replication connection: pgmux refuses those with 0A000 (it pools
 * ordinary sessions), wherever PostgreSQL refuses it too (for its own reasons: pg_hba.conf, the value).
 */
export function judgeStartup(got: Outcome, want: Outcome, replication = false, gssInsideTls = false): Verdict {
  if (pgmuxInternalError(got, want)) return fail('internal-error', got, want);
  // A GSSENCRequest inside TLS: PostgreSQL, done with encryption, reads it as a startup packet of protocol 1234.5680
  // and refuses it (ProcessStartupPacket); the direct run, in plaintext, cannot show that (PostgreSQL built with
  // GSSAPI answers 'G' there and waits for a GSSAPI handshake).
  if (gssInsideTls) {
    const refused = got.closed && got.messages.length === 1 && /^E FATAL\/FATAL 0A000 unsupported frontend protocol 1234\.5680: server supports 3\.0 to 3\.0$/.test(got.messages[0]);
    return refused ? pass('refused') : fail('startup-mismatch', got, want, 'a GSSENCRequest inside TLS, not refused as PostgreSQL refuses it');
  }
  const g = loginClass(got);
  const w = loginClass(want);
  if (g === 'ok' && w === 'ok') {
    if (got.timedOut) return fail('hang', got, want, 'logged in, then no answer to the probe');
    return equal(got.messages, want.messages) ? pass() : fail('mismatch', got, want, 'the probe after login was answered differently');
  }
  if (g === w) return pass(g === 'ok' ? 'pass' : 'refused');
  // pgmux refuses as a protocol violation what PostgreSQL refused too, or is still waiting on (it cannot be valid
  // before it is complete: PostgreSQL reads a packet's declared length first).
  if (g === 'error:08P01' && got.closed && w !== 'ok') return pass('refused');
  if (replication && g === 'error:0A000' && w.startsWith('error:')) return pass('refused');
  // Where PostgreSQL asks for a password (it then waits for it, or refuses what came in its place: 08P01, 28P01), and
  // pgmux refuses, with the state's proper code and saying why, for a reason of its own that no password can mend,
  // then closes: a user it has no password for, whom it cannot log in upstream as (28000; the fuzzer's pgmux trusts
  // its clients, and a mutated user name is such a user), or a database it does not serve (3D000; PostgreSQL checks
  // the database only after authentication), or a replication connection (pgmux serves none; PostgreSQL checks the
  // role's REPLICATION attribute after authentication). A startup conversation never answers a password request, so no client
  // that could log in is refused.
  const asked = ['waiting', 'error:08P01', 'error:28P01'].includes(w);
  const own = /^E FATAL\/FATAL (28000 .* but pgmux has no password for it|3D000 database ".*" does not exist in pgmux|0A000 replication connections are not supported through pgmux)$/s.test(got.messages[0] ?? '');
  if (asked && own && got.closed && got.messages.length === 1) return pass('refused');
  // Two startup settings that fail (a bad value 22023, an unknown name 42704, not settable 42501 / 55P02): PostgreSQL
  // names the first in its order (the options, then the parameters); pgmux opens the server with the reported ones
  // (DateStyle, TimeZone ...) and sets the others after, so it may name another. Either way the client is refused
  // with a setting's proper code and closed (where only one fails, the same one is named: the order is the same).
  const settingCode = (k: string): boolean => ['error:22023', 'error:42704', 'error:42501', 'error:55P02'].includes(k);
  if (settingCode(g) && settingCode(w) && got.closed && want.closed && got.messages.length === 1) return pass('refused');
  return fail(g === 'waiting' ? 'hang' : 'startup-mismatch', got, want, `pgmux ${g}, PostgreSQL ${w}`);
}

/** SQLSTATEs with which a refused login may end. */
const AUTH_CODES = new Set(['08P01', '28P01', '28000']);
/**
 * Mutations after which a correct server must still let the client in (PostgreSQL ignores what they add; an empty
 * client nonce it accepts: is_scram_printable("") is true, and the server's half of the nonce keeps it fresh).
 */
const BENIGN_SCRAM = new Set(['none', 'plus', 'first-extra-attr', 'final-extension', 'nonce-empty']);

export function judgeAuth(c: AuthConversation, got: Outcome, want: Outcome | null): Verdict {
  if (pgmuxInternalError(got, want)) return fail('internal-error', got, want);
  const g = loginClass(got);
  const refusedWell = g === 'closed' || (g.startsWith('error:') && AUTH_CODES.has(g.slice(6)) && got.closed);
  if (want !== null) {
    const w = loginClass(want);
    if (g === 'ok' && w === 'ok') return equal(got.messages, want.messages) ? pass() : fail('mismatch', got, want, 'the probe after login');
    if (g === 'ok') return fail('auth-accepted', got, want, `pgmux let in a client PostgreSQL refused (${w})`);
    if (w === 'ok') return fail('auth-refused-valid', got, want, `pgmux refused (${g}) a login PostgreSQL accepts`);
    if (g === 'waiting' && w === 'waiting') return pass('refused');
    if (g === 'closed' && w !== 'closed') return fail('auth-silent-close', got, want, 'pgmux closed without an error where PostgreSQL reported one');
    if (refusedWell) return pass('refused');
    return fail(g === 'waiting' ? 'hang' : 'auth-mismatch', got, want, `pgmux ${g}, PostgreSQL ${w}`);
  }
  // Over TLS the frame mutations are not applied (runner.ts): those conversations are correct logins.
  const unmutated = c.mutation === 'none' || c.mutation === 'first-frame' || c.mutation === 'final-frame' || c.mutation === 'frame';
  // 'mech-plus-unoffered' names SCRAM-SHA-256-PLUS only where it was not offered (runner.ts): where it was (pgmux
  // over TLS), the client makes a correct SCRAM-SHA-256 login (flag 'n', it does not bind), which must be let in.
  const plusOffered = c.mutation === 'mech-plus-unoffered' && /^offered (.*,)?SCRAM-SHA-256-PLUS(,|$)/m.test(got.trace ?? '');
  const mustPass = unmutated || plusOffered || (c.method === 'scram' && c.mutation === 'plus');
  const mayPass = c.method === 'scram' && BENIGN_SCRAM.has(c.mutation);
  if (g === 'ok') return mustPass || mayPass ? pass() : fail('auth-accepted', got, null, `pgmux let in a client after ${c.mutation}`);
  if (mustPass) return fail('auth-refused-valid', got, null, `pgmux refused (${g}) a correct login`);
  if (g.startsWith('error:') && AUTH_CODES.has(g.slice(6)) && got.closed) return pass('refused');
  return fail(g === 'waiting' ? 'hang' : 'auth-mismatch', got, null, `pgmux ${g}`);
}

export interface SslObservation {
  /** pgmux's one-byte answer to the SSLRequest, when it was read. */
  answer: string;
  handshake: string;
  /** Everything received after that. */
  received: Buffer;
  closed: boolean;
  timedOut: boolean;
}

export function judgeSsl(variant: SslConversation['variant'], o: SslObservation, direct: Outcome | null): Verdict {
  const none: Outcome = { messages: [`received ${o.received.subarray(0, 64).toString('hex')}`], codes: [], closed: o.closed, timedOut: o.timedOut };
  if ((o.timedOut || !o.closed) && variant !== 'after-answer' && variant !== 'direct-garbage') return fail('hang', none, direct, `variant ${variant}: the connection stayed open`);
  switch (variant) {
    case 'same-packet': {
      // An ErrorResponse 08P01 ("received unencrypted data after SSL request"), perhaps after a one-byte answer.
      const text = o.received.toString('latin1');
      const error = text.indexOf('E');
      if (error >= 0 && text.slice(error).includes('C08P01\0')) return pass('refused');
      return fail('ssl-garbage', none, direct, 'no 08P01 for bytes sent behind an SSLRequest');
    }
    case 'after-answer':
    case 'direct-garbage':
      // The garbage is a broken TLS handshake: the connection closes (a TLS alert may come first), or TLS waits
      // for the rest of a record the garbage announced (client_login_timeout ends that).
      return pass('refused');
    case 'second-request':
    case 'cancel-inside': {
      if (direct === null) return pass();
      // Inside TLS, pgmux answers as PostgreSQL answers the same packet after refusing SSL.
      const codes = /C([0-9A-Z]{5})\0/.exec(o.received.toString('latin1'));
      const got: Outcome = { ...none, codes: codes === null ? [] : [codes[1]] };
      if (direct.codes[0] === got.codes[0] || (got.codes[0] === '08P01' && direct.codes.length > 0)) return pass('refused');
      return fail('ssl-mismatch', got, direct, `inside TLS pgmux said ${got.codes[0] ?? 'nothing'}, PostgreSQL ${direct.codes[0] ?? 'nothing'}`);
    }
  }
}

/**
 * @param terminated the conversation's Terminate was sent and only the close is expected
 * @param sentTerminate the case's own frames hold a Terminate: a close without an error is the answer to it
 */
export function judgeAdmin(got: Outcome, terminated = false, sentTerminate = false): Verdict {
  if (got.codes.includes('XX000')) return fail('internal-error', got, null);
  if (got.timedOut) return fail('hang', got, null, terminated ? 'no close after Terminate' : 'the probe (SHOW VERSION) was not answered');
  if (terminated) return got.messages.length === 0 ? pass() : fail('admin-after-terminate', got, null, 'messages after Terminate');
  if (got.closed && sentTerminate) return pass('refused');
  if (got.closed) {
    const last = got.messages[got.messages.length - 1] ?? '';
    return isProtocolError(last) ? pass('refused') : fail('admin-closed', got, null, 'closed without a protocol error');
  }
  if (got.codes.includes('unparseable')) return fail('admin-garbled', got, null);
  return pass();
}
