/** The results as Markdown: a pgbench table (TPS, ratios, p99, CPU per transaction, errors) and a pooler table. */
import type { BenchResults } from './results.js';
import { TARGET_NAMES, type TargetName } from './target-names.js';

const DASH = '—';

function int(v: number | null | undefined): string {
  return v === null || v === undefined ? DASH : Math.round(v).toLocaleString('en-US');
}

/** Two significant decimals below 10, one below 100, none above. */
function num(v: number | null | undefined): string {
  if (v === null || v === undefined) return DASH;
  const a = Math.abs(v);
  return a < 10 ? v.toFixed(2) : a < 100 ? v.toFixed(1) : Math.round(v).toLocaleString('en-US');
}

function ratio(a: number | null | undefined, b: number | null | undefined): string {
  if (a === null || a === undefined || b === null || b === undefined || b === 0) return DASH;
  return `${(a / b).toFixed(2)}×`;
}

function triple(values: Array<string>): string {
  return values.join(' / ');
}

function versionText(results: BenchResults): string {
  const m = results.machine;
  const parts = [
    `${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB`,
    m.kernel,
    `Node ${m.node}`,
    m.postgres.replace(/^postgres \(PostgreSQL\) /, 'PostgreSQL '),
    m.pgbouncer === null ? 'PgBouncer: missing' : `PgBouncer ${m.pgbouncer}`,
    m.pgmux === null ? 'pgmux: missing' : `pgmux ${m.pgmux}`,
  ];
  return parts.join(' · ');
}

/** The tables and notes, without a title (shared by latest.md and the README section). */
export function markdownBody(results: BenchResults): string {
  const o = results.options;
  const present = TARGET_NAMES.filter((t) => results.targets[t] !== undefined);
  const has = (t: TargetName): boolean => present.includes(t) && results.targets[t].available;
  const lines: string[] = [];
  lines.push(
    `${versionText(results)}. ${results.startedAt.slice(0, 16).replace('T', ' ')} UTC. ` +
      `Medians of ${o.repeat} run${o.repeat === 1 ? '' : 's'}${results.quick ? ' (quick smoke run: numbers are not meaningful)' : ''}; ` +
      `pgbench ${o.durationS} s per run, \`-j 2\`, scale ${o.scale}; both poolers in transaction mode, pool size 20, ` +
      'SCRAM-SHA-256 client auth from the same verifier, no TLS, connection logging off; targets interleaved per scenario.',
  );
  for (const t of present) {
    const info = results.targets[t];
    if (!info.available) lines.push('', `**${info.label} is missing from this run:** ${info.reason ?? 'unknown reason'}`);
  }

  const pgbench = results.scenarios.filter((s) => s.kind === 'pgbench');
  if (pgbench.length > 0) {
    lines.push(
      '',
      '| Scenario | TPS direct | TPS PgBouncer | TPS pgmux | pgmux ÷ PgBouncer | pgmux ÷ direct | p99 ms (direct / PgBouncer / pgmux) | CPU µs per txn (Postgres¹ / PgBouncer / pgmux) | Errors (direct / PgBouncer / pgmux) |',
      '|---|--:|--:|--:|--:|--:|--:|--:|--:|',
    );
    for (const s of pgbench) {
      const med = results.medians[s.id] ?? {};
      const get = (t: TargetName, key: string): number | null | undefined => (has(t) ? med[t]?.[key] : undefined);
      // A run with errors has a TPS of what got through before clients aborted: flag it.
      const tps = (t: TargetName): string => `${int(get(t, 'tps'))}${(get(t, 'errors') ?? 0) > 0 ? ' ⚠' : ''}`;
      lines.push(
        `| ${s.title} | ${tps('direct')} | ${tps('pgbouncer')} | ${tps('pgmux')} | ` +
          `${ratio(get('pgmux', 'tps'), get('pgbouncer', 'tps'))} | ${ratio(get('pgmux', 'tps'), get('direct', 'tps'))} | ` +
          `${triple(TARGET_NAMES.map((t) => num(get(t, 'latencyP99Ms'))))} | ` +
          `${triple(TARGET_NAMES.map((t) => num(get(t, 'cpuUsPerTxn'))))} | ` +
          `${triple(TARGET_NAMES.map((t) => int(get(t, 'errors'))))} |`,
      );
    }
    lines.push(
      '',
      '¹ For direct Postgres, the CPU time of all Postgres processes per transaction; for the poolers, the pooler process ' +
        'alone (Postgres does the same work behind either). Errors are failed transactions plus aborted clients ' +
        '(PgBouncer 1.18 has no `max_prepared_statements`, so `-M prepared` fails through it); ⚠ marks a TPS counted ' +
        'over a run in which clients failed.',
    );
  }

  const storm = results.scenarios.find((s) => s.kind === 'storm');
  const idle = results.scenarios.find((s) => s.kind === 'idle');
  if (storm !== undefined || idle !== undefined) {
    lines.push('', '| Poolers | PgBouncer | pgmux | pgmux ÷ PgBouncer |', '|---|--:|--:|--:|');
    const row = (label: string, id: string, key: string, scale: number, fmt: (v: number | null | undefined) => string, withRatio = true): void => {
      const med = results.medians[id] ?? {};
      const v = (t: TargetName): number | null | undefined => {
        const x = has(t) ? med[t]?.[key] : undefined;
        return x === null || x === undefined ? x : x / scale;
      };
      lines.push(`| ${label} | ${fmt(v('pgbouncer'))} | ${fmt(v('pgmux'))} | ${withRatio ? ratio(v('pgmux'), v('pgbouncer')) : ''} |`);
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
        lines.push(`- \`${r.scenario}\` via ${results.targets[r.target].label}: ${e.replaceAll('|', '\\|')}`);
      }
    }
  }
  return `${lines.join('\n')}\n`;
}

export function markdownReport(results: BenchResults, chartFile: string): string {
  return `# pgmux benchmark\n\n![pgmux, PgBouncer and direct Postgres compared](${chartFile})\n\n${markdownBody(results)}`;
}
