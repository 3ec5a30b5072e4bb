/** Command-line options of `npm run bench` (bench/run.ts). */
import { TARGET_NAMES, type TargetName } from './target-names.js';

/** A bad command line: printed without a stack trace. */
export class UsageError extends Error {}

export interface BenchOptions {
  durationS: number;
  repeat: number;
  scale: number;
  only: string | undefined;
  targets: TargetName[];
  stormClients: number;
  idleClients: number;
  warmupS: number;
  quick: boolean;
  /** Base name of the result files; default `latest` for a full run, else `quick` / `partial` under tmp/. */
  out: string | undefined;
  readme: boolean;
  help: boolean;
}

export const USAGE = `Usage: npm run bench -- [options]

Starts PostgreSQL, PgBouncer 1.18 (Debian's), PgBouncer 1.25 (../shared/bin/pgbouncer-1.25), pgmux (built from
this repo) and the floor (a bare Node.js forwarder, bench/floor-forwarder.ts), runs pgbench scenarios against each
and a connection storm and an idle-memory test against the poolers, and writes bench/results/latest.{json,md,svg}
(and updates README.md's Performance section) after a full run; other runs write to bench/results/tmp/ unless
--out names a file.

  --duration S        seconds per pgbench run (default 10)
  --repeat N          repeat every scenario N times and report medians (default 3)
  --only LIST         comma-separated scenario ids or prefixes: select, select-prepared, select-simple-32,
                      tpcb, connect, storm, idle
  --targets LIST      subset of ${TARGET_NAMES.join(',')} (default all; pgbouncer is
                      Debian's 1.18, pgbouncer125 the 1.25 build, floor the bare forwarder)
  --scale N           pgbench -i scale factor (default 10)
  --storm-clients N   clients in the connection storm (default 5000)
  --idle-clients N    idle clients for the memory test (default 10000)
  --quick             smoke run: 3 s runs, 1 repeat, scale 1, 1000 storm / 2000 idle clients
                      (explicit options still win); results go to bench/results/tmp/quick.*
  --out NAME          write bench/results/NAME.{json,md,svg}
  --no-readme         do not update README.md after a full run
  -h, --help          this text
`;

function positiveInt(flag: string, value: string | undefined): number {
  const n = Number(value);
  if (value === undefined || !Number.isInteger(n) || n < 1) throw new UsageError(`${flag} needs a positive integer (got ${value ?? 'nothing'})`);
  return n;
}

export function parseOptions(argv: readonly string[]): BenchOptions {
  const explicit: Partial<BenchOptions> = {};
  let quick = false;
  let readme = true;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--duration':
        explicit.durationS = positiveInt(flag, value());
        break;
      case '--repeat':
        explicit.repeat = positiveInt(flag, value());
        break;
      case '--scale':
        explicit.scale = positiveInt(flag, value());
        break;
      case '--storm-clients':
        explicit.stormClients = positiveInt(flag, value());
        break;
      case '--idle-clients':
        explicit.idleClients = positiveInt(flag, value());
        break;
      case '--only':
        explicit.only = value();
        break;
      case '--out':
        explicit.out = value();
        if (explicit.out === undefined || !/^[\w.-]+$/.test(explicit.out)) throw new UsageError('--out needs a plain file name');
        break;
      case '--targets': {
        const list = (value() ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
        for (const t of list) if (!TARGET_NAMES.includes(t as TargetName)) throw new UsageError(`--targets: unknown target ${t} (use ${TARGET_NAMES.join(',')})`);
        if (list.length === 0) throw new UsageError('--targets needs at least one target');
        explicit.targets = list as TargetName[];
        break;
      }
      case '--quick':
        quick = true;
        break;
      case '--no-readme':
        readme = false;
        break;
      case '-h':
      case '--help':
        help = true;
        break;
      default:
        throw new UsageError(`unknown option ${arg}\n\n${USAGE}`);
    }
  }
  const defaults = quick
    ? { durationS: 3, repeat: 1, scale: 1, stormClients: 1000, idleClients: 2000, warmupS: 1 }
    : { durationS: 10, repeat: 3, scale: 10, stormClients: 5000, idleClients: 10_000, warmupS: 3 };
  return {
    ...defaults,
    only: undefined,
    targets: [...TARGET_NAMES],
    out: undefined,
    ...explicit,
    quick,
    readme,
    help,
  };
}
