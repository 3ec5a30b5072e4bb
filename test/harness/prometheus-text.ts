/**
 * A strict parser of the Prometheus text exposition format (version 0.0.4), for tests.
 *
 * Written here rather than taken from npm: the candidate there (parse-prometheus-text-format) has
 * had no release in years and is lenient by design, reading whatever an exporter emits; a test
 * needs the opposite, to fail on anything a Prometheus server could reject or misread. Checked: line syntax,
 * metric and label name characters, label value escapes, numbers, one HELP and one TYPE per family
 * given before its samples, samples of a family contiguous, no duplicate series, counters not
 * negative, histograms with cumulative buckets, a +Inf bucket equal to _count, and _sum/_count.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  /** The sample's own name (e.g. `x_bucket` for histogram `x`). */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: MetricType;
  help: string;
  samples: Sample[];
}

export type Exposition = Map<string, Family>;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set<MetricType>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

export class ExpositionError extends Error {
  constructor(line: number, text: string, reason: string) {
    super(`line ${line}: ${reason}: ${JSON.stringify(text)}`);
  }
}

/** As Go's strconv.ParseFloat reads it (which is what Prometheus uses): NaN and Inf in any case. */
function parseValue(text: string): number | null {
  if (/^nan$/i.test(text)) return NaN;
  if (/^\+?inf(inity)?$/i.test(text)) return Infinity;
  if (/^-inf(inity)?$/i.test(text)) return -Infinity;
  if (!/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(text)) return null;
  return Number(text);
}

/** The family a sample name belongs to, given the families declared so far. */
function familyOf(name: string, families: Exposition): Family | undefined {
  const direct = families.get(name);
  if (direct !== undefined) return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const family = families.get(name.slice(0, -suffix.length));
    if (family !== undefined && (family.type === 'histogram' || (family.type === 'summary' && suffix !== '_bucket'))) return family;
  }
  return undefined;
}

export function parseExposition(text: string): Exposition {
  if (!text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const families: Exposition = new Map();
  const finished = new Set<string>();
  const seriesSeen = new Set<string>();
  let current: Family | null = null;
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((line, index) => {
    const n = index + 1;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (m === null) return; // a comment
      const [, kind, name, rest] = m;
      if (!METRIC_NAME.test(name)) throw new ExpositionError(n, line, 'bad metric name');
      let family = families.get(name);
      if (family === undefined) {
        if (current !== null) finished.add(current.name);
        family = { name, type: 'untyped', help: '', samples: [] };
        families.set(name, family);
        current = family;
      } else if (family !== current || family.samples.length > 0) {
        throw new ExpositionError(n, line, `${kind} for ${name} after its samples or away from its family`);
      }
      if (kind === 'TYPE') {
        if (!TYPES.has(rest as MetricType)) throw new ExpositionError(n, line, 'unknown type');
        if (family.type !== 'untyped') throw new ExpositionError(n, line, 'second TYPE line');
        family.type = rest as MetricType;
      } else {
        if (family.help !== '') throw new ExpositionError(n, line, 'second HELP line');
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ''))) throw new ExpositionError(n, line, 'bad escape in HELP');
        family.help = rest;
      }
      return;
    }
    const sample = parseSample(line, n);
    let family = familyOf(sample.name, families);
    if (family === undefined) {
      // A sample without TYPE: an untyped family of its own.
      if (current !== null) finished.add(current.name);
      family = { name: sample.name, type: 'untyped', help: '', samples: [] };
      families.set(sample.name, family);
      current = family;
    }
    if (family !== current || finished.has(family.name)) throw new ExpositionError(n, line, `sample of ${family.name} away from its family`);
    const key = `${sample.name}{${Object.entries(sample.labels).sort().map(([k, v]) => `${k}=${v}`).join(',')}}`;
    if (seriesSeen.has(key)) throw new ExpositionError(n, line, 'duplicate series');
    seriesSeen.add(key);
    if (family.type === 'counter' && !(sample.value >= 0)) throw new ExpositionError(n, line, 'negative or NaN counter');
    if (family.type === 'histogram' && sample.name.endsWith('_bucket') && sample.labels.le === undefined) throw new ExpositionError(n, line, 'bucket without le');
    family.samples.push(sample);
  });
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;
}

function parseSample(line: string, n: number): Sample {
  let i = 0;
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
  if (nameMatch === null) throw new ExpositionError(n, line, 'bad metric name');
  const name = nameMatch[0];
  i = name.length;
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    while (line[i] !== '}') {
      const ln = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i));
      if (ln === null) throw new ExpositionError(n, line, `bad label name at ${i}`);
      i += ln[0].length;
      if (line[i] !== '=' || line[i + 1] !== '"') throw new ExpositionError(n, line, `expected =" at ${i}`);
      i += 2;
      let value = '';
      for (;;) {
        const c = line[i];
        if (c === undefined) throw new ExpositionError(n, line, 'unterminated label value');
        if (c === '"') break;
        if (c === '\\') {
          const e = line[i + 1];
          if (e === '\\') value += '\\';
          else if (e === '"') value += '"';
          else if (e === 'n') value += '\n';
          else throw new ExpositionError(n, line, `bad escape \\${e}`);
          i += 2;
          continue;
        }
        value += c;
        i++;
      }
      i++;
      if (!LABEL_NAME.test(ln[0]) || ln[0].startsWith('__')) throw new ExpositionError(n, line, 'reserved label name');
      if (Object.hasOwn(labels, ln[0])) throw new ExpositionError(n, line, `label ${ln[0]} twice`);
      labels[ln[0]] = value;
      if (line[i] === ',') i++;
      else if (line[i] !== '}') throw new ExpositionError(n, line, `expected , or } at ${i}`);
    }
    i++;
  }
  if (line[i] !== ' ') throw new ExpositionError(n, line, 'expected a space before the value');
  const parts = line.slice(i + 1).split(' ');
  if (parts.length < 1 || parts.length > 2) throw new ExpositionError(n, line, 'expected value [timestamp]');
  const value = parseValue(parts[0]);
  if (value === null) throw new ExpositionError(n, line, 'bad value');
  if (parts.length === 2 && !/^-?\d+$/.test(parts[1])) throw new ExpositionError(n, line, 'bad timestamp');
  return { name, labels, value };
}

function checkHistogram(family: Family): void {
  const groups = new Map<string, { buckets: Array<[number, number]>; sum?: number; count?: number }>();
  for (const s of family.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    let g = groups.get(key);
    if (g === undefined) groups.set(key, (g = { buckets: [] }));
    if (s.name === `${family.name}_bucket`) {
      const bound = parseValue(le);
      if (bound === null) throw new Error(`${family.name}: bad le ${JSON.stringify(le)}`);
      g.buckets.push([bound, s.value]);
    } else if (s.name === `${family.name}_sum`) g.sum = s.value;
    else if (s.name === `${family.name}_count`) g.count = s.value;
    else throw new Error(`${family.name}: unexpected sample ${s.name}`);
  }
  for (const [key, g] of groups) {
    if (g.sum === undefined || g.count === undefined) throw new Error(`${family.name} ${key}: missing _sum or _count`);
    const sorted = [...g.buckets].sort((a, b) => a[0] - b[0]);
    if (sorted.length === 0 || sorted[sorted.length - 1][0] !== Infinity) throw new Error(`${family.name} ${key}: no +Inf bucket`);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i][1] < sorted[i - 1][1]) throw new Error(`${family.name} ${key}: buckets not cumulative at le=${sorted[i][0]}`);
    }
    if (sorted[sorted.length - 1][1] !== g.count) throw new Error(`${family.name} ${key}: +Inf bucket ${sorted[sorted.length - 1][1]} != count ${g.count}`);
  }
}

/** The value of one series (labels must match exactly the given ones, and be all of the series' labels). */
export function sampleValue(exp: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const family = familyOf(name, exp);
  if (family === undefined) return undefined;
  const want = Object.entries(labels).sort();
  for (const s of family.samples) {
    if (s.name !== name) continue;
    const have = Object.entries(s.labels).sort();
    if (have.length === want.length && have.every(([k, v], i) => want[i][0] === k && want[i][1] === v)) return s.value;
  }
  return undefined;
}

/** Sum over the series of `name` whose labels include `match`. */
export function sampleSum(exp: Exposition, name: string, match: Record<string, string> = {}): number {
  const family = familyOf(name, exp);
  if (family === undefined) return 0;
  let total = 0;
  for (const s of family.samples) {
    if (s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)) total += s.value;
  }
  return total;
}
