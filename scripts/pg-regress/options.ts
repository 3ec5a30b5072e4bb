/** Command-line options of `npm run test:pg-regress`. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const MODES = ['direct', 'session', 'transaction'] as const;
export type Mode = (typeof MODES)[number];
export const SCHEDULES = ['serial', 'parallel'] as const;
export type Schedule = (typeof SCHEDULES)[number];

export interface RunSpec {
  readonly mode: Mode;
  readonly schedule: Schedule;
}

export interface Options {
  readonly runs: readonly RunSpec[];
  readonly ci: boolean;
  /** The pgmux checkout to build and run (default: this repository). */
  readonly pgmuxDir: string;
  readonly build: boolean;
  /** Names the pgmux build in the report and artifacts (default: the checkout's directory name). */
  readonly label: string;
  /** Pool size per mode (default_pool_size). */
  readonly poolSize: Readonly<Record<Exclude<Mode, 'direct'>, number>>;
  readonly timeLimitMs: number;
  readonly stuckAfterMs: number;
  readonly busyLimitMs: number;
  readonly watchIntervalMs: number;
  readonly pgMajor: string | undefined;
  readonly cacheDir: string;
  readonly artifactsDir: string;
  readonly expectedFailures: string;
  readonly diffLines: number;
  readonly keep: boolean;
  readonly verbose: boolean;
  readonly help: boolean;
}

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export const HELP = `Usage: npm run test:pg-regress -- [options]

Runs PostgreSQL's own regression suite (pg_regress, the installed server's version) directly and through
pgmux, each run against a fresh throwaway cluster, and prints "N passed, M failed" per run.

  --mode M[,M...]       direct, session, transaction or all (default: all)
  --schedule S[,S...]   serial, parallel or both (default: serial)
  --ci                  session and transaction with the serial schedule, compared with the expected-failures
                        list: fails on a failure not on the list and on a listed test that passes
  --pgmux-dir DIR       pgmux checkout to build and run (default: this repository)
  --no-build            do not run npm run build in the pgmux checkout first
  --label NAME          names that build in the report and artifacts (default: its directory name)
  --pool-size N         default_pool_size in transaction mode (default 5: clients share servers)
  --session-pool-size N default_pool_size in session mode (default 40: every client holds one)
  --time-limit T        per run, e.g. 20min, 900s (default 20min); pg_regress is then killed
  --stuck-after T       the watchdog cancels a query active this long (default 15s) while it waits for
                        something that makes no progress (a lock of an idle session, a prepared transaction)
  --busy-limit T        ... and this long when it is working or waits for a running query (default 60s)
  --watch-interval T    how often the watchdog looks (default 3s)
  --pg-major N          PostgreSQL major version (default: the highest installed, else 15)
  --cache-dir DIR       sources and built libraries (default .cache/pg-regress)
  --artifacts-dir DIR   logs and diffs of each run (default .tmp/pg-regress)
  --expected-failures F (default scripts/pg-regress/expected-failures.json)
  --diff-lines N        differing lines shown per failing test (default 6)
  --keep                keep each run's temp dir (cluster, output)
  --verbose             echo pg_regress's output
  -h, --help
`;

export class UsageError extends Error {}

/** `20min`, `90s`, `1500ms`, `1h`; a bare number means seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m|h)?$/.exec(text.trim());
  if (m === null) throw new UsageError(`not a duration: ${text} (e.g. 20min, 90s)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const factor = unit === 'ms' ? 1 : unit === 's' || unit === 'sec' ? 1_000 : unit === 'h' ? 3_600_000 : 60_000;
  return Math.round(n * factor);
}

function parseList<T extends string>(text: string, allowed: readonly T[], all: string, what: string): T[] {
  const out: T[] = [];
  for (const part of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    if (part === all) out.push(...allowed);
    else if ((allowed as readonly string[]).includes(part)) out.push(part as T);
    else throw new UsageError(`unknown ${what} "${part}" (one of ${allowed.join(', ')}, ${all})`);
  }
  return [...new Set(out)];
}

function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`${flag} needs a positive integer, got ${text}`);
  return n;
}

export function parseOptions(argv: readonly string[]): Options {
  let modes: Mode[] | undefined;
  let schedules: Schedule[] | undefined;
  let ci = false;
  let pgmuxDir = REPO_ROOT;
  let build = true;
  let label: string | undefined;
  let txPool = 5;
  let sessionPool = 40;
  let timeLimitMs = parseDuration('20min');
  let stuckAfterMs = parseDuration('15s');
  let busyLimitMs = parseDuration('60s');
  let watchIntervalMs = parseDuration('3s');
  let pgMajor: string | undefined;
  let cacheDir = path.join(REPO_ROOT, '.cache', 'pg-regress');
  let artifactsDir = path.join(REPO_ROOT, '.tmp', 'pg-regress');
  let expectedFailures = path.join(REPO_ROOT, 'scripts', 'pg-regress', 'expected-failures.json');
  let diffLines = 6;
  let keep = false;
  let verbose = false;
  let help = false;

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const value = (): string => {
      if (eq !== -1) return arg.slice(eq + 1);
      const next = argv[++i];
      if (next === undefined) throw new UsageError(`${flag} needs a value`);
      return next;
    };
    switch (flag) {
      case '--mode':
        modes = [...(modes ?? []), ...parseList(value(), MODES, 'all', 'mode')];
        break;
      case '--schedule':
        schedules = [...(schedules ?? []), ...parseList(value(), SCHEDULES, 'both', 'schedule')];
        break;
      case '--ci':
        ci = true;
        break;
      case '--pgmux-dir':
        pgmuxDir = path.resolve(value());
        break;
      case '--no-build':
        build = false;
        break;
      case '--label':
        label = value();
        break;
      case '--pool-size':
        txPool = positiveInt(value(), flag);
        break;
      case '--session-pool-size':
        sessionPool = positiveInt(value(), flag);
        break;
      case '--time-limit':
        timeLimitMs = parseDuration(value());
        break;
      case '--stuck-after':
        stuckAfterMs = parseDuration(value());
        break;
      case '--busy-limit':
        busyLimitMs = parseDuration(value());
        break;
      case '--watch-interval':
        watchIntervalMs = parseDuration(value());
        break;
      case '--pg-major':
        pgMajor = String(positiveInt(value(), flag));
        break;
      case '--cache-dir':
        cacheDir = path.resolve(value());
        break;
      case '--artifacts-dir':
        artifactsDir = path.resolve(value());
        break;
      case '--expected-failures':
        expectedFailures = path.resolve(value());
        break;
      case '--diff-lines':
        diffLines = positiveInt(value(), flag);
        break;
      case '--keep':
        keep = true;
        break;
      case '--verbose':
        verbose = true;
        break;
      case '-h':
      case '--help':
        help = true;
        break;
      default:
        throw new UsageError(`unknown option ${arg} (see --help)`);
    }
  }
  if (ci && (modes !== undefined || schedules !== undefined)) {
    throw new UsageError('--ci chooses its runs itself (session and transaction, serial schedule); drop --mode/--schedule');
  }
  const runModes: readonly Mode[] = ci ? ['session', 'transaction'] : (modes ?? MODES);
  const runSchedules: readonly Schedule[] = ci ? ['serial'] : (schedules ?? ['serial']);
  const runs = runModes.flatMap((mode) => runSchedules.map((schedule) => ({ mode, schedule })));
  return {
    runs,
    ci,
    pgmuxDir,
    build,
    label: label ?? path.basename(pgmuxDir),
    poolSize: { session: sessionPool, transaction: txPool },
    timeLimitMs,
    stuckAfterMs,
    busyLimitMs: Math.max(busyLimitMs, stuckAfterMs),
    watchIntervalMs,
    pgMajor,
    cacheDir,
    artifactsDir,
    expectedFailures,
    diffLines,
    keep,
    verbose,
    help,
  };
}
