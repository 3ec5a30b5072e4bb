/**
 * Runs pgbench against one target and turns its output and per-transaction log (`-l`) into numbers: TPS, mean and
 * p99 latency, failed transactions and aborted clients. A run that fails (PgBouncer 1.18 with `-M prepared`) is
 * measured like any other: its errors are counted, not thrown.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { cleanEnv, runCommand } from './proc.js';
import { percentileSorted } from './stats.js';

export type Protocol = 'simple' | 'extended' | 'prepared';

export interface PgbenchSpec {
  script: 'select-only' | 'tpcb-like';
  protocol: Protocol;
  clients: number;
  /** `-C`: a new connection for every transaction. */
  connectPerTransaction: boolean;
}

export interface PgbenchConnection {
  binDir: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export interface PgbenchResult {
  exitCode: number | null;
  tps: number;
  transactions: number;
  failed: number;
  aborted: number;
  /** failed transactions + aborted clients. */
  errors: number;
  errorSamples: string[];
  latencyMeanMs: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  /** pgbench's "initial connection time" (ms); NaN with -C. */
  connectMs: number;
}

function pgEnv(password: string): NodeJS.ProcessEnv {
  // TLS and GSS negotiation off: every target gets the same plain-TCP login.
  return cleanEnv({ PGPASSWORD: password, PGSSLMODE: 'disable', PGGSSENCMODE: 'disable', PGCONNECT_TIMEOUT: '30' });
}

/** `pgbench -i` at `scale` straight to Postgres, then VACUUM ANALYZE (what pgbench -n skips later). */
export async function initPgbench(conn: PgbenchConnection, scale: number): Promise<void> {
  const result = await runCommand(
    path.join(conn.binDir, 'pgbench'),
    ['-i', '-q', '-s', String(scale), '-h', '127.0.0.1', '-p', String(conn.port), '-U', conn.user, conn.database],
    { env: pgEnv(conn.password), timeoutMs: 600_000 },
  );
  if (result.code !== 0) throw new Error(`pgbench -i failed (exit ${result.code}):\n${result.stderr.trim()}`);
}

function number(output: string, re: RegExp): number {
  const m = re.exec(output);
  return m === null ? Number.NaN : Number(m[1]);
}

/**
 * The distinct error messages in pgbench's stderr with how often each occurred, e.g.
 * `31 × ERROR:  prepared statement "P_0" does not exist`. Two threads may interleave their lines, so only the
 * text from the last ERROR:/FATAL:/error: marker on a line is kept.
 */
function errorSamples(stderr: string, limit = 5): string[] {
  const counts = new Map<string, number>();
  for (const line of stderr.split('\n')) {
    if (line.includes('Run was aborted')) continue;
    const at = Math.max(line.lastIndexOf('ERROR:'), line.lastIndexOf('FATAL:'));
    const generic = line.lastIndexOf('error:');
    const message = at >= 0 ? line.slice(at) : generic >= 0 ? line.slice(generic + 6) : '';
    const key = message.replace(/\s+/g, ' ').trim();
    if (key !== '') counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].slice(0, limit).map(([message, n]) => `${n} × ${message}`);
}

/** Latencies (µs) of completed transactions from pgbench's per-transaction logs `<prefix>.<pid>[.<thread>]`. */
async function readLatencies(dir: string, prefix: string): Promise<Float64Array> {
  const files = (await fsp.readdir(dir)).filter((f) => f.startsWith(`${prefix}.`));
  const parts: Float64Array[] = [];
  for (const file of files) {
    const text = await fsp.readFile(path.join(dir, file), 'latin1');
    const values = new Float64Array(text.length / 16 + 16);
    let n = 0;
    let lineStart = 0;
    while (lineStart < text.length) {
      let lineEnd = text.indexOf('\n', lineStart);
      if (lineEnd < 0) lineEnd = text.length;
      // Fields: client_id transaction_no time script_no time_epoch time_us; `time` is "failed"/"skipped" for those.
      const s1 = text.indexOf(' ', lineStart);
      const s2 = s1 < 0 ? -1 : text.indexOf(' ', s1 + 1);
      const s3 = s2 < 0 ? -1 : text.indexOf(' ', s2 + 1);
      if (s3 > 0 && s3 < lineEnd) {
        const value = Number(text.slice(s2 + 1, s3));
        if (Number.isFinite(value)) values[n++] = value;
      }
      lineStart = lineEnd + 1;
    }
    parts.push(values.subarray(0, n));
    await fsp.rm(path.join(dir, file), { force: true });
  }
  const all = new Float64Array(parts.reduce((sum, p) => sum + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    all.set(p, offset);
    offset += p.length;
  }
  return all.sort();
}

let runCounter = 0;

/**
 * pgbench's `-T` clock starts before its clients have connected, and 400 SCRAM logins straight to Postgres take
 * seconds on 2 cores: each run gets one extra second per 100 clients so the measured part stays near `-T`.
 * (pgbench reports TPS without the initial connection time either way.)
 */
export function connectAllowanceS(clients: number): number {
  return Math.floor(clients / 100);
}

/** One timed pgbench run; `logDir` receives the per-transaction logs (read and deleted here). */
export async function runPgbench(conn: PgbenchConnection, spec: PgbenchSpec, durationS: number, logDir: string): Promise<PgbenchResult> {
  const prefix = `pgbench_${process.pid}_${++runCounter}`;
  const args = [
    '-h', '127.0.0.1', '-p', String(conn.port), '-U', conn.user,
    '-n', '-b', spec.script, '-M', spec.protocol,
    '-c', String(spec.clients), '-j', String(Math.min(2, spec.clients)), '-T', String(durationS + connectAllowanceS(spec.clients)),
    ...(spec.connectPerTransaction ? ['-C'] : []),
    '-l', `--log-prefix=${path.join(logDir, prefix)}`,
    conn.database,
  ];
  const result = await runCommand(path.join(conn.binDir, 'pgbench'), args, { env: pgEnv(conn.password), timeoutMs: (durationS + 180) * 1000 });
  const output = `${result.stdout}\n${result.stderr}`;
  const latencies = await readLatencies(logDir, prefix);
  const aborted = (result.stderr.match(/client \d+ (?:script \d+ )?aborted/g) ?? []).length;
  const failed = number(output, /number of failed transactions: (\d+)/) || 0;
  const transactions = number(output, /number of transactions actually processed: (\d+)/);
  // A run that exits non-zero or completes nothing without saying which clients failed is one error.
  const unexplained = (result.code !== 0 || !(transactions > 0)) && failed + aborted === 0 ? 1 : 0;
  let sum = 0;
  for (const v of latencies) sum += v;
  const ms = (us: number): number => us / 1000;
  return {
    exitCode: result.code,
    tps: number(output, /tps = ([\d.]+)/) || 0,
    transactions: Number.isNaN(transactions) ? latencies.length : transactions,
    failed,
    aborted,
    errors: failed + aborted + unexplained,
    errorSamples: errorSamples(result.stderr).concat(
      unexplained === 1 ? [`no transaction completed (exit ${result.code}): ${result.stderr.trim().split('\n').slice(-1)[0] ?? ''}`] : [],
    ),
    latencyMeanMs: latencies.length === 0 ? Number.NaN : ms(sum / latencies.length),
    latencyP50Ms: ms(percentileSorted(latencies, 50)),
    latencyP99Ms: ms(percentileSorted(latencies, 99)),
    connectMs: number(output, /initial connection time = ([\d.]+) ms/),
  };
}
