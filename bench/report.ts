/**
 * The results as Markdown. pgbench scenarios get three tables, one per figure (TPS, CPU µs per transaction, p99
 * latency), each with every target's median and pgmux ÷ PgBouncer 1.25 and pgmux ÷ PgBouncer 1.18 side by side;
 * the CPU table adds pgmux − floor for the select-only scenarios. The storm and idle-memory tests get one pooler
 * table. Columns appear for the targets a run asked for; a target that could not start shows dashes and a note.
 */
import type { BenchResults, ScenarioInfo } from './results.js';
import { POOLER_NAMES, TARGET_NAMES, type TargetName } from './target-names.js';

const DASH = '—';

type Value = number | null | undefined;

function int(v: Value): string {
  return v === null || v === undefined ? DASH : Math.round(v).toLocaleString('en-US');
}

/** Two significant decimals below 10, one below 100, none above. */
function num(v: Value): string {
  if (v === null || v === undefined) return DASH;
  const a = Math.abs(v);
  return a < 10 ? v.toFixed(2) : a < 100 ? v.toFixed(1) : Math.round(v).toLocaleString('en-US');
}

/** a ÷ b; null when either is missing or b is 0. */
export function ratioOf(a: Value, b: Value): number | null {
  if (a === null || a === undefined || b === null || b === undefined || b === 0) return null;
  return a / b;
}

function times(r: number | null): string {
  return r === null ? DASH : `${r.toFixed(2)}×`;
}

/** Whether pgmux − floor is reported: the select-only scenarios (the -C one too). Older results lack `script`. */
export function isSelectOnly(s: ScenarioInfo): boolean {
  return s.kind === 'pgbench' && (s.script !== undefined ? s.script === 'select-only' : s.id.includes('select'));
}

/** pgmux against both PgBouncers for one pgbench figure. */
export interface VsPgbouncer {
  pgbouncer125: number | null;
  pgbouncer: number | null;
}

/** What a pgbench scenario's row compares, from the medians: pgmux ÷ each PgBouncer, and pgmux − floor CPU. */
export interface Comparison {
  tps: VsPgbouncer;
  cpuUsPerTxn: VsPgbouncer;
  latencyP99Ms: VsPgbouncer;
  /** pgmux's CPU µs per transaction minus the floor's: null unless select-only and both were measured. */
  pgmuxMinusFloorCpuUs: number | null;
}

/** A target's median of `key` in a scenario; undefined when the target did not run or could not start. */
function medianOf(results: BenchResults, scenario: string, target: TargetName, key: string): Value {
  const info = results.targets[target];
  if (info === undefined || !info.available) return undefined;
  return results.medians[scenario]?.[target]?.[key];
}

export function compare(results: BenchResults, scenario: ScenarioInfo): Comparison {
  const get = (t: TargetName, key: string): Value => medianOf(results, scenario.id, t, key);
  const vs = (key: string): VsPgbouncer => ({
    pgbouncer125: ratioOf(get('pgmux', key), get('pgbouncer125', key)),
    pgbouncer: ratioOf(get('pgmux', key), get('pgbouncer', key)),
  });
  const pgmuxCpu = get('pgmux', 'cpuUsPerTxn');
  const floorCpu = get('floor', 'cpuUsPerTxn');
  const both = pgmuxCpu !== null && pgmuxCpu !== undefined && floorCpu !== null && floorCpu !== undefined;
  return {
    tps: vs('tps'),
    cpuUsPerTxn: vs('cpuUsPerTxn'),
    latencyP99Ms: vs('latencyP99Ms'),
    pgmuxMinusFloorCpuUs: isSelectOnly(scenario) && both ? pgmuxCpu - floorCpu : null,
  };
}

function versionText(results: BenchResults): string {
  const m = results.machine;
  const parts = [
    `${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB`,
    m.kernel,
    `Node ${m.node}`,
    m.postgres.replace(/^postgres \(PostgreSQL\) /, 'PostgreSQL '),
  ];
  // The versions of the targets this run asked for (results from before a target existed lack its key).
  const versions: Array<[TargetName, string | null | undefined, string]> = [
    ['pgbouncer', m.pgbouncer, 'PgBouncer (Debian)'],
    ['pgbouncer125', m.pgbouncer125, 'PgBouncer 1.25'],
    ['pgmux', m.pgmux, 'pgmux'],
  ];
  for (const [t, version, name] of versions) {
    if (results.targets[t] === undefined || version === undefined) continue;
    parts.push(version === null ? `${name}: missing` : `${t === 'pgmux' ? 'pgmux' : 'PgBouncer'} ${version}`);
  }
  return parts.join(' · ');
}

/** `lo to hi` of the finite values, formatted; null when there are none. */
function range(values: Value[]): string | null {
  const finite = values.filter((v): v is number => v !== null && v !== undefined && Number.isFinite(v));
  if (finite.length === 0) return null;
  const lo = Math.min(...finite);
  const hi = Math.max(...finite);
  return lo === hi ? num(lo) : `${num(lo)} to ${num(hi)}`;
}

/** Whether a target is a PgBouncer older than 1.21 (no protocol-level prepared statements). */
function beforePreparedStatementsIn(results: BenchResults, t: TargetName): boolean {
  const m = /^(\d+)\.(\d+)/.exec(results.targets[t]?.version ?? '');
  return t.startsWith('pgbouncer') && m !== null && (Number(m[1]) < 1 || (Number(m[1]) === 1 && Number(m[2]) < 21));
}

/** The tables and notes, without a title (shared by latest.md and the README section). */
export function markdownBody(results: BenchResults): string {
  const o = results.options;
  /** Targets this run asked for (columns); `has` those that started. */
  const present = TARGET_NAMES.filter((t) => results.targets[t] !== undefined);
  const has = (t: TargetName): boolean => present.includes(t) && results.targets[t].available;
  const label = (t: TargetName): string => results.targets[t].label;
  const beforePreparedStatements = (t: TargetName): boolean => beforePreparedStatementsIn(results, t);
  const pgbouncers = (['pgbouncer125', 'pgbouncer'] as const).filter((t) => present.includes(t) && present.includes('pgmux'));
  const lines: string[] = [];
  lines.push(
    `${versionText(results)}. ${results.startedAt.slice(0, 16).replace('T', ' ')} UTC. ` +
      `Medians of ${o.repeat} run${o.repeat === 1 ? '' : 's'}${results.quick ? ' (quick smoke run: numbers are not meaningful)' : ''}; ` +
      `pgbench ${o.durationS} s per run, \`-j 2\`, scale ${o.scale}; the poolers in transaction mode, pool size 20, ` +
      `SCRAM-SHA-256 client auth from the same verifier${present.includes('pgbouncer125') ? ' (PgBouncer 1.25 with `max_prepared_statements = 200`)' : ''}, no TLS, ` +
      'connection logging off; targets interleaved per scenario.',
  );
  for (const t of present) {
    const info = results.targets[t];
    if (!info.available) lines.push('', `**${info.label} is missing from this run:** ${info.reason ?? 'unknown reason'}`);
  }

  const pgbench = results.scenarios.filter((s) => s.kind === 'pgbench');
  if (pgbench.length > 0) {
    const get = (s: ScenarioInfo, t: TargetName, key: string): Value => medianOf(results, s.id, t, key);
    const withFloor = present.includes('floor');
    const withDirect = present.includes('direct') && present.includes('pgmux');
    const header = (first: string, fig: (t: TargetName) => string, extra: string[]): string[] => {
      const cols = [first, ...present.map(fig), ...pgbouncers.map((t) => `pgmux ÷ ${label(t)}`), ...extra];
      return [`| ${cols.join(' | ')} |`, `|---|${cols.slice(1).map(() => '--:|').join('')}`];
    };
    const ratios = (v: VsPgbouncer): string[] => pgbouncers.map((t) => times(v[t]));
    const comparisons = new Map(pgbench.map((s) => [s.id, compare(results, s)]));

    // A run with errors has a TPS of what got through before clients aborted: flag it.
    const tps = (s: ScenarioInfo, t: TargetName): string => `${int(get(s, t, 'tps'))}${(get(s, t, 'errors') ?? 0) > 0 ? ' ⚠' : ''}`;
    lines.push('', '**Throughput**, transactions per second (higher is better):', '');
    lines.push(...header('Scenario', (t) => label(t), [...(withDirect ? ['pgmux ÷ direct'] : []), 'Errors³']));
    for (const s of pgbench) {
      const c = comparisons.get(s.id) as Comparison;
      const cells = [
        s.title,
        ...present.map((t) => tps(s, t)),
        ...ratios(c.tps),
        ...(withDirect ? [times(ratioOf(get(s, 'pgmux', 'tps'), get(s, 'direct', 'tps')))] : []),
        present.map((t) => int(get(s, t, 'errors'))).join(' / '),
      ];
      lines.push(`| ${cells.join(' | ')} |`);
    }

    lines.push('', `**CPU per transaction**, µs (lower is better): each target's own process${present.includes('direct') ? '; for direct Postgres, all of Postgres¹' : ''}:`, '');
    lines.push(...header('Scenario', (t) => (t === 'direct' ? 'Postgres¹' : t === 'floor' ? `${label(t)}²` : label(t)), withFloor && present.includes('pgmux') ? ['pgmux − floor²'] : []));
    for (const s of pgbench) {
      const c = comparisons.get(s.id) as Comparison;
      const cells = [s.title, ...present.map((t) => num(get(s, t, 'cpuUsPerTxn'))), ...ratios(c.cpuUsPerTxn)];
      if (withFloor && present.includes('pgmux')) cells.push(num(c.pgmuxMinusFloorCpuUs));
      lines.push(`| ${cells.join(' | ')} |`);
    }
    const selectOnly = pgbench.filter((s) => isSelectOnly(s) && !s.id.startsWith('connect'));
    const floorRange = range(selectOnly.map((s) => get(s, 'floor', 'cpuUsPerTxn')));
    const ownRange = range(selectOnly.map((s) => comparisons.get(s.id)?.pgmuxMinusFloorCpuUs));
    if (floorRange !== null && ownRange !== null) {
      lines.push('', `Select-only without \`-C\`: the floor spends ${floorRange} µs of CPU per transaction; pgmux − floor, what pgmux's own code costs, is ${ownRange} µs.`);
    }

    lines.push('', '**p99 latency**, ms (lower is better):', '');
    lines.push(...header('Scenario', (t) => label(t), []));
    for (const s of pgbench) {
      const c = comparisons.get(s.id) as Comparison;
      lines.push(`| ${[s.title, ...present.map((t) => num(get(s, t, 'latencyP99Ms'))), ...ratios(c.latencyP99Ms)].join(' | ')} |`);
    }

    if (pgbouncers.length > 0) {
      lines.push('', 'pgmux ÷ PgBouncer is pgmux\'s figure divided by that PgBouncer\'s: above 1 is better for TPS, worse for CPU and p99.');
    }
    if (present.includes('direct')) {
      lines.push(
        '',
        '¹ For direct Postgres, the CPU time of all Postgres processes per transaction; for the poolers and the floor, their own ' +
          'process alone (Postgres does the same work behind each).',
      );
    }
    if (withFloor) {
      lines.push(
        '',
        '² The floor is a bare Node.js forwarder (bench/floor-forwarder.ts), run like pgmux: server connections logged in ahead ' +
          'of need (trust, for a role of its own), each client\'s startup answered with its server\'s login response and no password, ' +
          'one server connection per client for the client\'s lifetime (no pooling: at 400 clients it holds 400, as direct Postgres ' +
          'does), bytes copied both ways with one write per read. Its CPU per transaction is the least any Node.js pooler spends ' +
          'on the same traffic, so pgmux − floor is what pgmux\'s own code costs (select-only scenarios; with `-C` it includes ' +
          'pgmux\'s SCRAM login per transaction, which the floor skips).',
      );
    }
    lines.push(
      '',
      `³ Failed transactions plus aborted clients, per target in column order (${present.map(label).join(' / ')}); ` +
        '⚠ marks a TPS counted over a run in which clients failed.' +
        (present.some(beforePreparedStatements) ? ' PgBouncer before 1.21 has no `max_prepared_statements`, so `-M prepared` fails through it.' : ''),
    );
  }

  const storm = results.scenarios.find((s) => s.kind === 'storm');
  const idle = results.scenarios.find((s) => s.kind === 'idle');
  const poolers = POOLER_NAMES.filter((t) => present.includes(t));
  if ((storm !== undefined || idle !== undefined) && poolers.length > 0) {
    const cols = ['Poolers', ...poolers.map(label), ...pgbouncers.map((t) => `pgmux ÷ ${label(t)}`)];
    lines.push('', `| ${cols.join(' | ')} |`, `|---|${cols.slice(1).map(() => '--:|').join('')}`);
    const row = (text: string, id: string, key: string, scale: number, fmt: (v: Value) => string, withRatio = true): void => {
      const v = (t: TargetName): Value => {
        const x = has(t) ? results.medians[id]?.[t]?.[key] : undefined;
        return x === null || x === undefined ? x : x / scale;
      };
      const cells = [text, ...poolers.map((t) => fmt(v(t))), ...pgbouncers.map((t) => (withRatio ? times(ratioOf(v('pgmux'), v(t))) : ''))];
      lines.push(`| ${cells.join(' | ')} |`);
    };
    if (storm !== undefined) {
      const n = o.stormClients.toLocaleString('en-US');
      row(`Storm: ${n} clients at once, seconds until all served`, storm.id, 'wallMs', 1000, num);
      row('Storm: failed clients', storm.id, 'failed', 1, int, false);
      row('Storm: p99 per client, connect to answer (ms)', storm.id, 'p99Ms', 1, num);
      row('Storm: pooler CPU per client (µs)', storm.id, 'poolerCpuUsPerClient', 1, int);
    }
    if (idle !== undefined) {
      const n = o.idleClients.toLocaleString('en-US');
      row('Idle: pooler RSS before (MiB)', idle.id, 'rssBeforeBytes', 2 ** 20, num);
      row(`Idle: pooler RSS with ${n} idle clients (MiB)`, idle.id, 'rssAfterBytes', 2 ** 20, num);
      row('Idle: memory per idle client (KiB)', idle.id, 'bytesPerClient', 1024, num);
      row('Idle: clients that failed to connect', idle.id, 'failed', 1, int, false);
      row('Idle: pooler CPU per SCRAM login (µs)', idle.id, 'poolerCpuUsPerLogin', 1, int);
    }
  }

  const samples = results.runs.filter((r) => r.errorSamples.length > 0);
  if (samples.length > 0) {
    const seen = new Set<string>();
    lines.push('', 'Errors seen:');
    for (const r of samples) {
      for (const e of r.errorSamples) {
        const key = `${r.scenario}/${r.target}: ${e}`;
        if (seen.has(key) || seen.size >= 12) continue;
        seen.add(key);
        lines.push(`- \`${r.scenario}\` via ${results.targets[r.target]?.label ?? r.target}: ${e.replaceAll('|', '\\|')}`);
      }
    }
  }
  return `${lines.join('\n')}\n`;
}

export function markdownReport(results: BenchResults, chartFile: string): string {
  return `# pgmux benchmark\n\n![pgmux, PgBouncer and direct Postgres compared](${chartFile})\n\n${markdownBody(results)}`;
}
