/**
 * From plans to bytes: frame specs to messages (SQL, names, values), the setup that puts a session in each state,
 * the probe that ends each case, startup packets and their mutations, SCRAM and md5 answers.
 *
 * Every SQL text here answers the same on any backend of the database at any time (no time, no pids, no random,
 * no shared rows read), so a direct connection's answer can be compared with pgmux's byte for byte.
 */
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { PROTOCOL_V3 } from '../harness/wire.js';
import * as M from './frames.js';
import { applyMutation } from './mutations.js';
import type { FrameSpec, FuzzFrame, NameRef, PoolMode, PortalRef, SessionState, StartupConversation } from './plans.js';

/** The table COPY and INSERT write to (never read by the fuzzer: its contents depend on every client's timing). */
export const FUZZ_TABLE = 'fz';

/**
 * SQL a named Parse may carry: each one parses and analyses on any backend, so it never fails at Parse. (A named
 * Parse from a client holding no server is answered by pgmux in transaction mode and prepared at first use: an
 * error at Parse would surface later, a documented difference; see docs/architecture.md.)
 */
export const PARSE_SQL: readonly string[] = [
  'select 1',
  "select 'x'::text as v",
  'select $1::int as n',
  'select n from generate_series(1, 3) n',
  'select 1/0',
  'BEGIN',
  'COMMIT',
  `copy ${FUZZ_TABLE} from stdin`,
  'copy (select n from generate_series(1, 3) n) to stdout',
  `insert into ${FUZZ_TABLE} values (3)`,
  '',
  'select pg_sleep(0.005)',
];

/** SQL a simple Query may carry: the above, and texts that fail at parse, several statements, pgmux's intercepts. */
export const QUERY_SQL: readonly string[] = [
  ...PARSE_SQL,
  'ROLLBACK',
  'select 1; select 2',
  'select 1; select 1/0; select 3',
  'BEGIN; select 1/0',
  'selec 1',
  'select $1',
  'savepoint sp1',
  'rollback to sp1',
  'deallocate nosuch_stmt',
  ';',
  '   ',
];

/**
 * Parameter type lists of Parse: none, int4, text, two. (No 0, "unspecified": for a parameter the SQL does not use,
 * PostgreSQL fails the Parse, 42P18, which a deferred named Parse would report only at first use.)
 */
export const TYPE_LISTS: ReadonlyArray<readonly number[]> = [[], [23], [25], [23, 25]];
const int4 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
/** Bind parameter formats, values and result formats. */
export const PARAM_FORMATS: ReadonlyArray<readonly number[]> = [[], [0], [1], [0, 1]];
export const VALUE_LISTS: ReadonlyArray<readonly M.Value[]> = [[], [Buffer.from('7')], [null], [int4(7)], [Buffer.from('x')], [Buffer.from('1'), Buffer.from('2')]];
export const RESULT_FORMATS: ReadonlyArray<readonly number[]> = [[], [0], [1], [1, 1]];
/** FunctionCall targets: int4pl(int4, int4), int4abs(int4), textlen(text). Stable OIDs of pg_proc. */
export const FUNCTIONS: readonly number[] = [177, 1397, 1257];
export const FUNCTION_ARGS: ReadonlyArray<{ formats: readonly number[]; values: readonly M.Value[] }> = [
  { formats: [], values: [Buffer.from('2'), Buffer.from('3')] },
  { formats: [1], values: [int4(-4)] },
  { formats: [0], values: [Buffer.from('abc')] },
  { formats: [], values: [] },
  { formats: [0, 1], values: [null, int4(1)] },
];
export const COPY_DATA: readonly string[] = ['1\n', '2\n3\n', 'x\n', '\\.\n', '', '1\t2\n'];

/** Statement names of a case: in transaction mode each case has its own (see arbitraries.ts), in session mode they are shared. */
export function statementName(ref: NameRef, mode: PoolMode, caseNo: number): string {
  switch (ref) {
    case 0:
      return '';
    case 1:
      return mode === 'transaction' ? `a${caseNo}` : 's1';
    case 2:
      return mode === 'transaction' ? `b${caseNo}` : 's2';
    case 3:
      return 'nosuch_stmt';
  }
}

function portalName(ref: NameRef | PortalRef): string {
  return ref === 0 ? '' : 'p1';
}

export function buildFrame(spec: FrameSpec, mode: PoolMode, caseNo: number): M.Frame {
  const at = <T>(list: readonly T[], i: number): T => list[Math.abs(i) % list.length];
  switch (spec.t) {
    case 'Q':
      return M.Q(at(QUERY_SQL, spec.sql));
    case 'Qraw':
      return M.frame('Q', [{ k: 'str', v: Buffer.from(spec.text.filter((b) => b !== 0)), nul: true }]);
    case 'P': {
      // A Parse never takes the name that stands for "never prepared"; in transaction mode it gets a third name of
      // its case (a name Parsed twice in one conversation meets a documented difference).
      const name = spec.name === 3 ? (mode === 'transaction' ? `c${caseNo}` : 's3') : statementName(spec.name, mode, caseNo);
      return M.P(name, at(PARSE_SQL, spec.sql), at(TYPE_LISTS, spec.types));
    }
    case 'B':
      return M.B(portalName(spec.portal), statementName(spec.stmt, mode, caseNo), at(PARAM_FORMATS, spec.pf), at(VALUE_LISTS, spec.vals), at(RESULT_FORMATS, spec.rf));
    case 'E':
      return M.E(portalName(spec.portal), spec.rows);
    case 'D':
    case 'C': {
      const name = spec.kind === 'S' ? statementName(spec.name as NameRef, mode, caseNo) : portalName(spec.name);
      return spec.t === 'D' ? M.D(spec.kind, name) : M.C(spec.kind, name);
    }
    case 'S':
      return M.S();
    case 'H':
      return M.H();
    case 'F': {
      const args = at(FUNCTION_ARGS, spec.args);
      return M.F(at(FUNCTIONS, spec.fn), args.formats, args.values, spec.rf);
    }
    case 'd':
      return M.CopyData(at(COPY_DATA, spec.data));
    case 'c':
      return M.CopyDone();
    case 'f':
      return M.CopyFail('fuzz copy fail');
    case 'p':
      return M.PasswordMessage('not-now');
    case 'unknown':
      return { code: spec.code & 0xff, fields: [{ k: 'bytes', v: Buffer.from(spec.body) }], mutation: 'unknown-type' };
  }
}

export function renderFrame(f: FuzzFrame, mode: PoolMode, caseNo: number): M.Frame {
  let frame = buildFrame(f.spec, mode, caseNo);
  for (const m of f.mutations) frame = applyMutation(frame, m);
  return frame;
}

/** Frames that put a logged-in session in `state` (sent in the same write as the fuzzed frames that follow). */
export function setupFrames(state: SessionState): M.Frame[] {
  switch (state) {
    case 'idle':
      return [];
    case 'transaction':
      return [M.Q('BEGIN')];
    case 'failed':
      return [M.Q('BEGIN'), M.Q('select 1/0')];
    case 'running':
      return [M.Q('select pg_sleep(0.02)')];
    case 'batch':
      return [M.P('', 'select $1::int as n', [23]), M.B('', '', [0], [Buffer.from('7')], [0]), M.D('P', ''), M.E('', 0)];
    case 'copy-in':
      return [M.Q(`copy ${FUZZ_TABLE} from stdin`), M.CopyData('1\n')];
    case 'copy-in-ext':
      return [M.P('', `copy ${FUZZ_TABLE} from stdin`), M.B('', '', [], [], []), M.E('', 0), M.CopyData('2\n')];
    case 'copy-out':
      return [M.Q('copy (select n from generate_series(1, 300) n) to stdout')];
  }
}

/** The value the probe of case `caseNo` returns: seeing its row and the ReadyForQuery after it ends the case. */
export const probeValue = (caseNo: number): string => `probe-${caseNo}`;

/**
 * What ends every case: a CopyFail (ends a COPY IN left open; ignored outside COPY), Sync (ends a batch), ROLLBACK
 * (ends a transaction), then a query whose row marks the end of the answer.
 */
export function probeFrames(caseNo: number): M.Frame[] {
  return [M.CopyFail('fuzz probe'), M.S(), M.Q('ROLLBACK'), M.Q(`select '${probeValue(caseNo)}' as probe`)];
}

/** The admin console's probe: Sync (ends an extended batch it refused), then SHOW VERSION. */
export function adminProbeFrames(): M.Frame[] {
  return [M.S(), M.Q('SHOW VERSION')];
}

// ---- startup packets ----

const SSL_CODE = 80877103;
const GSS_CODE = 80877104;

export function gssEncRequest(): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32BE(8, 0);
  b.writeInt32BE(GSS_CODE, 4);
  return b;
}

export function sslRequestPacket(): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32BE(8, 0);
  b.writeInt32BE(SSL_CODE, 4);
  return b;
}

/** Renders a startup conversation's packet (after any GSSENCRequest), with its mutation. */
export function startupBytes(c: StartupConversation): Buffer {
  const params = c.params.slice();
  const mut = c.mutation;
  if (mut?.m === 'manyParams') for (let i = 0; i < mut.n; i++) params.push([`fz.p${i}`, `v${i}`]);
  if (mut?.m === 'hugeValue') params.push(['application_name', 'x'.repeat(mut.size)]);
  const parts: Buffer[] = [];
  for (const [name, value] of params) parts.push(Buffer.from(`${name}\0`), Buffer.from(`${value}\0`));
  let body = Buffer.concat([...parts, Buffer.from([0])]);
  if (mut?.m === 'dropFinalZero') body = body.subarray(0, body.length - 1);
  if (mut?.m === 'dropZero') {
    const zeros: number[] = [];
    body.forEach((b, i) => {
      if (b === 0) zeros.push(i);
    });
    const at = zeros[Math.abs(mut.pick) % zeros.length];
    body = Buffer.concat([body.subarray(0, at), body.subarray(at + 1)]);
  }
  if (mut?.m === 'append') body = Buffer.concat([body, Buffer.from(mut.bytes)]);
  const packet = Buffer.alloc(8 + body.length);
  packet.writeInt32BE(packet.length, 0);
  packet.writeInt32BE(c.version | 0, 4);
  body.copy(packet, 8);
  if (mut?.m === 'flip' && packet.length > 0) packet[Math.abs(mut.at) % packet.length] = mut.byte & 0xff;
  if (mut?.m === 'lengthDelta') packet.writeInt32BE(packet.length + mut.delta, 0);
  if (mut?.m === 'length') packet.writeInt32BE(mut.value | 0, 0);
  if (mut?.m === 'cut') return packet.subarray(0, Math.abs(mut.at) % packet.length);
  return packet;
}

export const V3 = PROTOCOL_V3;

// ---- SCRAM and md5, the client's side (independent of src/auth) ----

export interface ScramFinal {
  /** client-final-message without proof ("c=...,r=..."). */
  withoutProof: string;
  proof: Buffer;
}

/** The proof for client-final-message, as RFC 5802 computes it. */
export function scramProof(password: string, clientFirstBare: string, serverFirst: string, withoutProof: string): Buffer {
  const attrs = new Map(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)] as const));
  const salt = Buffer.from(attrs.get('s') ?? '', 'base64');
  const iterations = Number(attrs.get('i'));
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const signature = createHmac('sha256', storedKey).update(`${clientFirstBare},${serverFirst},${withoutProof}`).digest();
  const proof = Buffer.alloc(32);
  for (let i = 0; i < 32; i++) proof[i] = clientKey[i] ^ signature[i];
  return proof;
}

/** tls-server-end-point channel binding data for a certificate signed with SHA-256 (the test certificates). */
export function serverEndPoint(certificateDer: Buffer): Buffer {
  return createHash('sha256').update(certificateDer).digest();
}

/** md5 password response: "md5" + md5(md5(password + user) + salt). */
export function md5Response(user: string, password: string, salt: Buffer): string {
  const inner = createHash('md5').update(password + user).digest('hex');
  return `md5${createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex')}`;
}
