/**
 * Security checks (issue 11): a wrong password and an unknown user look the same, for SCRAM-SHA-256 and md5.
 *
 * - On the wire: the same authentication requests, a server-first-message of the same shape (nonce length,
 *   a 16-byte salt, 4096 iterations), the same ErrorResponse fields (S, V, C = 28P01, M) apart from the user
 *   name in M, and those fields as PostgreSQL itself sends them for the same cases.
 * - In their salts: a user name gets the same salt at every attempt and from another pgmux process started
 *   with the same configuration (a real user's stored verifier does too, so a salt that changed would give
 *   an unknown user away), different names get different salts, and two users with one password do not
 *   share a salt (which would say that their passwords are equal).
 * - In time: how long pgmux takes to answer each step (startup → challenge, client-first → server-first,
 *   client-final or md5 response → error), over many interleaved logins of each kind.
 *
 * The timing bound, stated once: for each step, the two kinds of login count as distinguishable only if their
 * medians differ by more than TIMING_TOLERANCE_MS *and* a two-sided Mann-Whitney U test (normal approximation,
 * tie-corrected) rejects "same distribution" at p < 0.001 (|z| > 3.29). Either alone is not robust on a shared
 * 2-core machine: many samples make a 20 µs scheduling artefact "significant", and a median moves by a
 * fraction of a millisecond when the other test worker is busy. As a check that the bound can fail, the same
 * samples with one PBKDF2 of 4096 iterations (what a real SCRAM verification of a plaintext password costs,
 * measured here) added to one side must be flagged.
 */
import { createHash, pbkdf2Sync, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeLogin, type ProbeResult } from './harness/auth-probe.js';
import { createTestDatabase, pgInfo } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { logLines, startPgmuxProcess } from './harness/pgmux-process.js';
import { freePort } from './harness/postgres.js';
import { waitForOutput, type ChildProc } from './harness/process.js';
import { APP_ROLE, MD5_ROLE } from './harness/roles.js';

/** See the file comment. */
const TIMING_TOLERANCE_MS = 0.25;
const Z_CRITICAL = 3.29;
const ROUNDS = 60;
const WARMUP = 5;

/** Two users with one password (pgmux only: no Postgres role needed to be refused). */
const TWIN_PASSWORD = `twin-${randomBytes(6).toString('hex')}`;
const TWINS = ['sec_twin_a', 'sec_twin_b'];
/** A user whose stored password is a SCRAM verifier (taken from pg_authid). */
let verifierUser: { name: string; verifier: string };

let db: string;
let px: TestPgmux;
let proc: ChildProc | undefined;
let procPort = 0;

beforeAll(async () => {
  db = await createTestDatabase('secoracle');
  const info = pgInfo();
  const admin = new pg.Client({ host: info.host, port: info.port, user: info.superuser, password: info.password, database: 'postgres' });
  await admin.connect();
  const verifier = (await admin.query<{ p: string }>('SELECT rolpassword AS p FROM pg_authid WHERE rolname = $1', [APP_ROLE.name])).rows[0].p;
  await admin.end();
  verifierUser = { name: 'sec_verifier_user', verifier };
  const port = await freePort();
  px = await startPgmux({
    settings: { listen_port: port, log_connections: false, log_disconnections: false, default_pool_size: 1 },
    databases: { app: { dbname: db }, md5db: { dbname: db, auth_type: 'md5' } },
    users: {
      [APP_ROLE.name]: { password: APP_ROLE.password },
      [MD5_ROLE.name]: { auth_type: 'md5', password: `md5${md5(`${MD5_ROLE.password}${MD5_ROLE.name}`)}` },
      [verifierUser.name]: { password: verifierUser.verifier },
      [TWINS[0]]: { password: TWIN_PASSWORD },
      [TWINS[1]]: { password: TWIN_PASSWORD },
    },
  });
  // The same configuration file in a process of its own (what a restart, or a second replica, is).
  procPort = await freePort();
  const copy = `${px.configFile}.process.yaml`;
  writeFileSync(copy, readFileSync(px.configFile, 'utf8').replace(`listen_port: ${port}`, `listen_port: ${procPort}`));
  proc = startPgmuxProcess({ args: ['--config', copy] });
  await waitForOutput(proc, 'pgmux listening', 30_000);
  expect(logLines(proc.stdout()).find((l) => l.msg === 'pgmux listening')?.port).toBe(procPort);
});

afterAll(async () => {
  await proc?.stop('SIGKILL');
  await px?.stop();
});

function md5(text: string): string {
  return createHash('md5').update(text).digest('hex');
}

async function probe(port: number, user: string, database: string, password: string | null = null): Promise<ProbeResult> {
  const r = await probeLogin(port, { user, database }, password);
  r.conn.destroy();
  return r;
}

/** The error's wire fields with the user name replaced, to compare a refusal of one user with another's. */
function errorShape(r: ProbeResult, user: string): Record<string, string> {
  const fields = { ...(r.error ?? {}) };
  if (fields.M !== undefined) fields.M = fields.M.replaceAll(`"${user}"`, '"<user>"');
  return fields;
}

/** What PostgreSQL itself sends (fields S, V, C, M; file/line/routine are its source locations). */
async function postgresRefusal(user: string, password: string): Promise<Record<string, string>> {
  const info = pgInfo();
  const r = await probe(info.port, user, db, password);
  const { S, V, C, M } = errorShape(r, user);
  return { S, V, C, M };
}

function serverFirstShape(r: ProbeResult): string {
  // r=<client nonce><server nonce>,s=<salt>,i=<iterations>: lengths and counts, not values.
  const attrs = new Map((r.serverFirst ?? '').split(',').map((kv) => [kv[0], kv.slice(2)] as const));
  return `r:${attrs.get('r')?.length} s:${r.salt?.length} i:${r.iterations}`;
}

describe('on the wire: a wrong password and an unknown user', () => {
  it('SCRAM: the same exchange and the same 28P01 as each other and as PostgreSQL', async () => {
    const unknown = `nobody_${randomBytes(4).toString('hex')}`;
    for (const known of [APP_ROLE.name, verifierUser.name]) {
      const wrong = await probe(px.port, known, 'app', `not-${known}`);
      const missing = await probe(px.port, unknown, 'app', 'whatever');
      expect(wrong.requests).toEqual([10, 11]);
      expect(missing.requests).toEqual(wrong.requests);
      expect(missing.mechanisms).toEqual(wrong.mechanisms);
      expect(serverFirstShape(missing)).toBe(serverFirstShape(wrong));
      expect(serverFirstShape(wrong)).toBe('r:48 s:16 i:4096');
      expect(errorShape(wrong, known)).toEqual({ S: 'FATAL', V: 'FATAL', C: '28P01', M: 'password authentication failed for user "<user>"' });
      expect(errorShape(missing, unknown)).toEqual(errorShape(wrong, known));
    }
    // PostgreSQL (scram-sha-256 in pg_hba for these): the same fields for both cases.
    const pgWrong = await postgresRefusal(APP_ROLE.name, 'not-the-password');
    const pgMissing = await postgresRefusal(unknown, 'whatever');
    expect(pgMissing).toEqual(pgWrong);
    const ours = errorShape(await probe(px.port, unknown, 'app', 'whatever'), unknown);
    expect({ S: ours.S, V: ours.V, C: ours.C, M: ours.M }).toEqual(pgWrong);
  });

  it('md5: the same md5 challenge and the same 28P01 as each other and as PostgreSQL', async () => {
    const unknown = `nobody_${randomBytes(4).toString('hex')}`;
    const wrong = await probe(px.port, MD5_ROLE.name, 'md5db', 'not-the-password');
    const missing = await probe(px.port, unknown, 'md5db', 'whatever');
    expect(wrong.requests).toEqual([5]);
    expect(missing.requests).toEqual([5]);
    expect(errorShape(missing, unknown)).toEqual(errorShape(wrong, MD5_ROLE.name));
    // PostgreSQL with md5 in pg_hba for pgmux_md5.
    const pgWrong = await postgresRefusal(MD5_ROLE.name, 'not-the-password');
    const { S, V, C, M } = errorShape(wrong, MD5_ROLE.name);
    expect({ S, V, C, M }).toEqual(pgWrong);
  });

  it('salts: stable per user name, across processes with one configuration, never shared by two users', async () => {
    const unknown = `nobody_${randomBytes(4).toString('hex')}`;
    const salt = async (port: number, user: string): Promise<string> => (await probe(port, user, 'app')).salt?.toString('base64') ?? '';
    const names = [unknown, `${unknown}_2`, APP_ROLE.name, TWINS[0], TWINS[1], verifierUser.name];
    const here = await Promise.all(names.map((n) => salt(px.port, n)));
    const again = await Promise.all(names.map((n) => salt(px.port, n)));
    const elsewhere = await Promise.all(names.map((n) => salt(procPort, n)));
    expect(again).toEqual(here);
    expect(elsewhere).toEqual(here);
    expect(new Set(here).size).toBe(names.length); // every name its own salt, the twins included
    for (const s of here) expect(Buffer.from(s, 'base64')).toHaveLength(16);
  });
});

// ---------------------------------------------------------------------------------------------
// Timing

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Two-sided Mann-Whitney U, normal approximation with tie correction: the z score. */
function mannWhitneyZ(a: readonly number[], b: readonly number[]): number {
  const all = [...a.map((v) => ({ v, g: 0 })), ...b.map((v) => ({ v, g: 1 }))].sort((x, y) => x.v - y.v);
  const ranks = new Array<number>(all.length);
  let tieTerm = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j + 1 < all.length && all[j + 1].v === all[i].v) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[k] = rank;
    const t = j - i + 1;
    tieTerm += t ** 3 - t;
    i = j + 1;
  }
  const n1 = a.length;
  const n2 = b.length;
  const r1 = all.reduce((sum, x, i) => (x.g === 0 ? sum + ranks[i] : sum), 0);
  const u = r1 - (n1 * (n1 + 1)) / 2;
  const n = n1 + n2;
  const sigma = Math.sqrt(((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1))));
  return sigma === 0 ? 0 : (u - (n1 * n2) / 2) / sigma;
}

interface Verdict {
  step: string;
  medianA: number;
  medianB: number;
  z: number;
  distinguishable: boolean;
}

function compare(step: string, a: readonly number[], b: readonly number[]): Verdict {
  const medianA = median(a);
  const medianB = median(b);
  const z = mannWhitneyZ(a, b);
  return { step, medianA, medianB, z, distinguishable: Math.abs(medianA - medianB) > TIMING_TOLERANCE_MS && Math.abs(z) > Z_CRITICAL };
}

const fmt = (v: Verdict): string => `${v.step}: ${v.medianA.toFixed(3)} vs ${v.medianB.toFixed(3)} ms (z ${v.z.toFixed(2)})`;

/** Interleaved logins of both kinds (random order in each round); per step, the milliseconds of each kind. */
async function timeLogins(kindA: () => Promise<ProbeResult>, kindB: () => Promise<ProbeResult>): Promise<Record<string, [number[], number[]]>> {
  const steps: Record<string, [number[], number[]]> = {};
  for (let round = 0; round < WARMUP + ROUNDS; round++) {
    const aFirst = Math.random() < 0.5;
    let ra: ProbeResult;
    let rb: ProbeResult;
    if (aFirst) {
      ra = await kindA();
      rb = await kindB();
    } else {
      rb = await kindB();
      ra = await kindA();
    }
    expect(ra.error?.C).toBe('28P01');
    expect(rb.error?.C).toBe('28P01');
    if (round < WARMUP) continue;
    for (const step of ['challenge', 'first', 'final'] as const) {
      const x = ra.ms[step];
      const y = rb.ms[step];
      if (x === undefined || y === undefined) continue;
      steps[step] ??= [[], []];
      steps[step][0].push(x);
      steps[step][1].push(y);
    }
  }
  return steps;
}

/** One PBKDF2 of 4096 iterations here, in ms (median of 9). */
function pbkdf2Cost(): number {
  const runs: number[] = [];
  for (let i = 0; i < 9; i++) {
    const t = performance.now();
    pbkdf2Sync('x', randomBytes(16), 4096, 32, 'sha256');
    runs.push(performance.now() - t);
  }
  return median(runs);
}

describe('in time: a wrong password and an unknown user', () => {
  const cases: Array<[string, string, string]> = [
    ['SCRAM, plaintext password in users:', APP_ROLE.name, 'app'],
    ['SCRAM, SCRAM verifier in users:', 'sec_verifier_user', 'app'],
    ['md5, md5 hash in users:', MD5_ROLE.name, 'md5db'],
  ];
  it.each(cases)('%s: no step differs beyond the bound', async (_label, known, database) => {
    const unknown = `nobody_${randomBytes(4).toString('hex')}`;
    let verdicts: Verdict[] = [];
    let controls: Verdict[] = [];
    let cost = 0;
    // A second measurement only if the first was too noisy to have seen a PBKDF2 (the other worker busy).
    for (let attempt = 0; attempt < 2; attempt++) {
      const steps = await timeLogins(
        () => probe(px.port, known, database),
        () => probe(px.port, unknown, database),
      );
      cost = pbkdf2Cost();
      verdicts = Object.entries(steps).map(([step, [a, b]]) => compare(step, a, b));
      // The bound can fail: the same samples with a PBKDF2's cost on the known user's side are flagged.
      controls = Object.entries(steps).map(([step, [a, b]]) => compare(`${step}+pbkdf2`, a.map((x) => x + cost), b));
      if (controls.every((c) => c.distinguishable)) break;
    }
    console.log(`${_label} (${ROUNDS} each; PBKDF2-4096 = ${cost.toFixed(3)} ms): ${verdicts.map(fmt).join('; ')}`);
    expect(verdicts.map((v) => v.step).sort()).toEqual(database === 'md5db' ? ['challenge', 'final'] : ['challenge', 'final', 'first']);
    for (const control of controls) expect(control.distinguishable, fmt(control)).toBe(true);
    for (const v of verdicts) expect(v.distinguishable, fmt(v)).toBe(false);
  }, 60_000);
});
