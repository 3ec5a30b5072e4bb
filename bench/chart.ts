/**
 * The results as an SVG chart, written by hand (no chart library): pgbench throughput of every target side by side
 * per scenario, normalised to direct Postgres = 1.0, and below it the connection storm and idle memory of the
 * poolers. Self-contained (no fonts, scripts or links), so GitHub renders it in the README as an image.
 */
import type { BenchResults } from './results.js';
import { POOLER_NAMES, TARGET_NAMES, type TargetName } from './target-names.js';

const COLORS: Record<TargetName, string> = { direct: '#8c8c8c', pgbouncer: '#4e79a7', pgbouncer125: '#76b7b2', pgmux: '#e8742a', floor: '#b07aa1' };
const FONT = 'font-family="-apple-system, BlinkMacSystemFont, Segoe UI, Helvetica, Arial, sans-serif"';
const TEXT = '#24292f';
const MUTED = '#57606a';
const GRID = '#d0d7de';
const ERROR = '#cf222e';
/** A white outline behind bar labels, so grid and reference lines do not run through them. */
const HALO = 'stroke="#ffffff" stroke-width="3" paint-order="stroke"';

interface Bar {
  target: TargetName;
  /** Bar height in axis units; null draws "n/a". */
  value: number | null;
  /** Text above the bar. */
  label: string;
  /** Errors during the run: marked in red above the label. */
  errors: number;
}

interface Group {
  lines: string[];
  bars: Bar[];
}

interface Panel {
  x: number;
  y: number;
  width: number;
  height: number;
  title: string;
  groups: Group[];
  yMax: number;
  yStep: number;
  yFormat: (v: number) => string;
  /** A dashed reference line (direct Postgres = 1.0); the label is its tooltip. */
  reference?: { value: number; label: string };
}

function esc(s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(s)}</text>`;
}

/** A round axis maximum and step for values up to `max`. */
export function niceAxis(max: number, minimum: number): { yMax: number; yStep: number } {
  const top = Math.max(max, minimum) * 1.1;
  const rough = top / 5;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough) ?? 10 * magnitude;
  return { yMax: Math.ceil(top / step) * step, yStep: step };
}

function panel(p: Panel): string {
  const out: string[] = [];
  const top = p.y + 28;
  const bottom = p.y + p.height - 34;
  const left = p.x + 44;
  const right = p.x + p.width - 8;
  const plotHeight = bottom - top;
  const yOf = (v: number): number => bottom - (Math.min(v, p.yMax) / p.yMax) * plotHeight;

  out.push(text(p.x, p.y + 12, p.title, `font-size="13" font-weight="600" fill="${TEXT}"`));
  for (let v = 0; v <= p.yMax + 1e-9; v += p.yStep) {
    const y = yOf(v);
    out.push(`<line x1="${left}" y1="${y.toFixed(1)}" x2="${right}" y2="${y.toFixed(1)}" stroke="${GRID}" stroke-width="1"/>`);
    out.push(text(left - 6, y + 4, p.yFormat(v), `font-size="10" fill="${MUTED}" text-anchor="end"`));
  }
  if (p.reference !== undefined) {
    const y = yOf(p.reference.value);
    out.push(`<line x1="${left}" y1="${y.toFixed(1)}" x2="${right}" y2="${y.toFixed(1)}" stroke="${MUTED}" stroke-width="1" stroke-dasharray="4 3"><title>${esc(p.reference.label)}</title></line>`);
  }

  const groupWidth = (right - left) / Math.max(1, p.groups.length);
  p.groups.forEach((group, gi) => {
    const gx = left + gi * groupWidth;
    const barWidth = Math.min(34, (groupWidth - 16) / Math.max(1, group.bars.length));
    const start = gx + (groupWidth - barWidth * group.bars.length) / 2;
    group.bars.forEach((bar, bi) => {
      const x = start + bi * barWidth;
      const cx = x + barWidth / 2;
      if (bar.value === null || !Number.isFinite(bar.value)) {
        out.push(text(cx, bottom - 4, 'n/a', `font-size="9" fill="${MUTED}" text-anchor="middle"`));
        return;
      }
      const y = yOf(bar.value);
      out.push(`<rect x="${(x + 1).toFixed(1)}" y="${y.toFixed(1)}" width="${(barWidth - 2).toFixed(1)}" height="${(bottom - y).toFixed(1)}" fill="${COLORS[bar.target]}"><title>${esc(`${bar.target}: ${bar.label}`)}</title></rect>`);
      out.push(text(cx, y - 4, bar.label, `font-size="9.5" fill="${TEXT}" text-anchor="middle" ${HALO}`));
      if (bar.errors > 0) out.push(text(cx, y - 15, `${bar.errors} err`, `font-size="9" font-weight="600" fill="${ERROR}" text-anchor="middle" ${HALO}`));
    });
    group.lines.forEach((line, li) => {
      out.push(text(gx + groupWidth / 2, bottom + 14 + li * 12, line, `font-size="10.5" fill="${TEXT}" text-anchor="middle"`));
    });
  });
  out.push(`<line x1="${left}" y1="${bottom}" x2="${right}" y2="${bottom}" stroke="${MUTED}" stroke-width="1"/>`);
  return out.join('\n');
}

/** Two-line axis labels for a pgbench scenario id. */
function scenarioLines(id: string): string[] {
  const select = /^select-(\w+)-(\d+)$/.exec(id);
  if (select !== null) return [`select, ${select[1]}`, `${select[2]} clients`];
  if (id.startsWith('tpcb')) return ['tpcb-like', `${/(\d+)$/.exec(id)?.[1] ?? ''} clients`];
  if (id.startsWith('connect')) return ['connect (-C)', `${/(\d+)$/.exec(id)?.[1] ?? ''} clients`];
  return [id];
}

export function renderChart(results: BenchResults): string {
  const width = 960;
  const present = TARGET_NAMES.filter((t) => results.targets[t] !== undefined);
  const pgbench = results.scenarios.filter((s) => s.kind === 'pgbench');
  const storm = results.scenarios.find((s) => s.kind === 'storm');
  const idle = results.scenarios.find((s) => s.kind === 'idle');
  const poolers = present.filter((t) => POOLER_NAMES.includes(t));
  const parts: string[] = [];
  let y = 0;

  parts.push(text(0, 18, 'pgmux benchmark', `font-size="17" font-weight="700" fill="${TEXT}"`));
  const m = results.machine;
  const when = results.startedAt.slice(0, 10);
  const pgVersion = /(\d+\.\d+)/.exec(m.postgres)?.[1] ?? m.postgres;
  const runs = `median of ${results.options.repeat} run${results.options.repeat === 1 ? '' : 's'} × ${results.options.durationS} s`;
  const subtitle = `${m.cpuModel}, ${m.cores} cores · Node ${m.node} · PostgreSQL ${pgVersion} · ${when} · ${runs}${results.quick ? ' · quick smoke run' : ''}`;
  parts.push(text(0, 36, subtitle, `font-size="11" fill="${MUTED}"`));
  let lx = 0;
  for (const t of present) {
    const info = results.targets[t];
    // PgBouncer labels already name the version (major.minor): show the full one instead. The floor's is Node's.
    const name = t.startsWith('pgbouncer') && info.version !== undefined ? `PgBouncer ${info.version}` : info.label;
    const label = `${name}${info.version !== undefined && t === 'pgmux' ? ` ${info.version}` : ''}${info.available ? '' : ' (missing)'}`;
    parts.push(`<rect x="${lx}" y="46" width="12" height="12" fill="${COLORS[t]}"/>`);
    parts.push(text(lx + 17, 56.5, label, `font-size="12" fill="${TEXT}"`));
    lx += 30 + label.length * 6.6;
  }
  y = 70;

  if (pgbench.length > 0) {
    const groups: Group[] = pgbench.map((s) => {
      const med = results.medians[s.id] ?? {};
      const direct = med.direct?.tps ?? null;
      return {
        lines: scenarioLines(s.id),
        bars: present.map((t) => {
          const tps = med[t]?.tps ?? null;
          const value = tps === null || direct === null || direct === 0 ? null : tps / direct;
          return { target: t, value, label: value === null ? '' : value.toFixed(2), errors: med[t]?.errors ?? 0 };
        }),
      };
    });
    const max = Math.max(...groups.flatMap((g) => g.bars.map((b) => b.value ?? 0)));
    const axis = niceAxis(max, 1.2);
    parts.push(
      panel({
        x: 0, y, width, height: 300,
        title: 'pgbench throughput relative to direct Postgres (TPS ÷ direct TPS; dashed line: direct = 1.0; higher is better)',
        groups, ...axis, yFormat: (v) => v.toFixed(1), reference: { value: 1, label: 'direct = 1.0' },
      }),
    );
    y += 310;
  }

  const small: Panel[] = [];
  const half = (width - 40) / 2;
  if (storm !== undefined && poolers.length > 0) {
    const med = results.medians[storm.id] ?? {};
    const bars: Bar[] = poolers.map((t) => {
      const ms = med[t]?.wallMs ?? null;
      return { target: t, value: ms === null ? null : ms / 1000, label: ms === null ? '' : `${(ms / 1000).toFixed(2)} s`, errors: med[t]?.failed ?? 0 };
    });
    const axis = niceAxis(Math.max(...bars.map((b) => b.value ?? 0)), 0.5);
    small.push({
      x: 0, y, width: half, height: 210,
      title: `Storm: seconds until ${results.options.stormClients.toLocaleString('en-US')} clients served (lower is better)`,
      groups: [{ lines: [''], bars }], ...axis, yFormat: (v) => v.toFixed(axis.yStep < 1 ? 1 : 0),
    });
  }
  if (idle !== undefined && poolers.length > 0) {
    const med = results.medians[idle.id] ?? {};
    const bars: Bar[] = poolers.map((t) => {
      const b = med[t]?.bytesPerClient ?? null;
      return { target: t, value: b === null ? null : b / 1024, label: b === null ? '' : `${(b / 1024).toFixed(1)} KiB`, errors: med[t]?.failed ?? 0 };
    });
    const axis = niceAxis(Math.max(...bars.map((b) => b.value ?? 0)), 1);
    small.push({
      x: small.length === 0 ? 0 : half + 40, y, width: half, height: 210,
      title: `Idle memory per client, KiB (${results.options.idleClients.toLocaleString('en-US')} clients, lower is better)`,
      groups: [{ lines: [''], bars }], ...axis, yFormat: (v) => v.toFixed(axis.yStep < 1 ? 1 : 0),
    });
  }
  for (const p of small) parts.push(panel(p));
  if (small.length > 0) y += 215;

  const height = Math.max(y, 80);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="-10 -6 ${width + 20} ${height + 12}" ${FONT}>`,
    `<rect x="-10" y="-6" width="${width + 20}" height="${height + 12}" fill="#ffffff"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
