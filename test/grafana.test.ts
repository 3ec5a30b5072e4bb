/**
 * docs/grafana/pgmux-dashboard.json cannot rot: it is checked as a Grafana dashboard (ids, grid, rows,
 * datasources, variables), every PromQL expression in it (panel targets, variable queries, annotations) is
 * parsed, and every metric and label it names is looked up on the /metrics of a real pgmux that has served
 * some traffic, so a renamed metric or label, or a dashboard typo, fails here naming it.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { parseExposition, sampleValue, type Exposition, type Family } from './harness/prometheus-text.js';
import { isScalar, parsePromQL, PromQLError, resultLabels, walk, type Node, type Parsed } from './harness/promql.js';
import { APP_ROLE } from './harness/roles.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DASHBOARD_FILE = path.join(ROOT, 'docs', 'grafana', 'pgmux-dashboard.json');

const ROWS = ['Overview', 'Pools', 'Latency', 'Errors & state', 'Process'];
const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };
/** Labels Prometheus adds to every series it scrapes: not on /metrics, but there to select on. */
const TARGET_LABELS = ['instance', 'job'];
/** prom-client exports these only where /proc is (Linux): elsewhere they may be missing from /metrics. */
const LINUX_ONLY = new Set(['process_open_fds', 'process_max_fds']);
/** pgmux metrics the dashboard deliberately leaves out (none today). */
const NOT_ON_DASHBOARD = new Set<string>();
/** Functions whose argument is a range of a counter (or of a histogram's _bucket/_sum/_count). */
const COUNTER_FUNCTIONS = new Set(['rate', 'irate', 'increase', 'resets', 'changes']);
const RATE_FUNCTIONS = new Set(['rate', 'irate', 'increase']);

interface GridPos {
  x: number;
  y: number;
  w: number;
  h: number;
}
interface Datasource {
  type?: string;
  uid?: string;
}
interface Target {
  expr?: string;
  refId?: string;
  legendFormat?: string;
  datasource?: Datasource;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  gridPos: GridPos;
  datasource?: Datasource;
  targets?: Target[];
  panels?: Panel[];
  collapsed?: boolean;
}
interface Variable {
  name: string;
  type: string;
  query?: string | { query?: string };
  definition?: string;
  datasource?: Datasource;
  includeAll?: boolean;
  allValue?: string;
}
interface Annotation {
  name: string;
  builtIn?: number;
  expr?: string;
  datasource?: Datasource;
  titleFormat?: string;
  textFormat?: string;
  tagKeys?: string;
}
interface Dashboard {
  title: string;
  uid: string;
  id: number | null;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
  annotations: { list: Annotation[] };
  time: { from: string; to: string };
}

/** One PromQL expression the dashboard sends to Prometheus. */
interface Query {
  where: string;
  expr: string;
  parsed: Parsed;
  /** Labels the result must carry: named by `{{label}}` in a legend or title, or asked for by label_values(). */
  resultLabels: string[];
  /** A variable's query: only names and labels are checked, not how counters are used. */
  variable: boolean;
}

const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;

/** Every panel, the panels of collapsed rows included, in file order. */
function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

const graphPanels = allPanels(dashboard).filter((p) => p.type !== 'row');

function templateLabels(format: string | undefined): string[] {
  return [...(format ?? '').matchAll(/\{\{\s*([a-zA-Z_]\w*)\s*\}\}/g)].map((m) => m[1]);
}

function variableQuery(v: Variable): string {
  return typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
}

/** The PromQL inside a Prometheus variable query, and the label it lists. */
function unwrapVariableQuery(query: string): { expr: string; label: string | null } {
  const labelValues = /^\s*label_values\(\s*(.+?)\s*,\s*([a-zA-Z_]\w*)\s*\)\s*$/s.exec(query);
  if (labelValues !== null) return { expr: labelValues[1], label: labelValues[2] };
  const result = /^\s*query_result\(\s*(.+)\s*\)\s*$/s.exec(query);
  if (result !== null) return { expr: result[1], label: null };
  // label_values(label) alone, metrics(...), label_names(): not tied to a pgmux metric, so not allowed here.
  throw new Error(`variable query ${JSON.stringify(query)}: use label_values(<pgmux metric selector>, <label>) or query_result(<expr>)`);
}

function collectQueries(d: Dashboard): Query[] {
  const out: Query[] = [];
  const add = (where: string, expr: string, labels: string[], variable: boolean) => {
    let parsed: Parsed;
    try {
      parsed = parsePromQL(expr);
    } catch (err) {
      throw new Error(`${where}: ${(err as Error).message}`);
    }
    out.push({ where, expr, parsed, resultLabels: labels, variable });
  };
  for (const p of allPanels(d)) {
    for (const t of p.targets ?? []) {
      add(`panel ${p.id} "${p.title}" target ${t.refId}`, t.expr ?? '', templateLabels(t.legendFormat), false);
    }
  }
  for (const v of d.templating.list) {
    if (v.type !== 'query') continue;
    for (const query of new Set([variableQuery(v), v.definition ?? variableQuery(v)])) {
      const { expr, label } = unwrapVariableQuery(query);
      add(`variable ${v.name}`, expr, label === null ? [] : [label], true);
    }
  }
  for (const a of d.annotations.list) {
    if (a.builtIn === 1) continue;
    const labels = [...templateLabels(a.titleFormat), ...templateLabels(a.textFormat), ...(a.tagKeys ?? '').split(',').map((k) => k.trim()).filter((k) => k !== '')];
    add(`annotation "${a.name}"`, a.expr ?? '', labels, false);
  }
  return out;
}

function overlaps(a: GridPos, b: GridPos): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

describe('docs/grafana/pgmux-dashboard.json', () => {
  it('is a Grafana dashboard with unique panel ids, a grid without overlaps and the five rows in order', () => {
    expect(dashboard.title).toBe('pgmux');
    expect(dashboard.uid).toMatch(/^[a-zA-Z0-9_-]{1,40}$/);
    expect(dashboard.id).toBeNull(); // an id would make an import overwrite whatever dashboard has it
    expect(Number.isInteger(dashboard.schemaVersion)).toBe(true);
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.schemaVersion).toBeLessThanOrEqual(41);
    expect(dashboard.time.from).toMatch(/^now-/);

    const panels = allPanels(dashboard);
    const ids = panels.map((p) => p.id);
    expect(ids.every((id) => Number.isInteger(id) && id > 0), JSON.stringify(ids)).toBe(true);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i), 'duplicate panel ids').toEqual([]);

    const problems: string[] = [];
    for (const p of panels) {
      const g = p.gridPos;
      if (![g.x, g.y, g.w, g.h].every(Number.isInteger) || g.x < 0 || g.y < 0 || g.w < 1 || g.h < 1 || g.x + g.w > 24) {
        problems.push(`panel ${p.id} "${p.title}": gridPos ${JSON.stringify(g)} is off the 24-column grid`);
      }
      if (p.type === 'row' && (g.w !== 24 || g.h !== 1 || g.x !== 0)) problems.push(`row "${p.title}": should span the grid, one unit high`);
      if (typeof p.title !== 'string' || p.title.trim() === '') problems.push(`panel ${p.id}: no title`);
    }
    // Expanded rows hold their panels at the top level, collapsed rows inside: overlaps only matter among what is shown.
    const shown = dashboard.panels;
    for (let i = 0; i < shown.length; i++) {
      for (let j = i + 1; j < shown.length; j++) {
        if (overlaps(shown[i].gridPos, shown[j].gridPos)) problems.push(`panels ${shown[i].id} "${shown[i].title}" and ${shown[j].id} "${shown[j].title}" overlap`);
      }
    }
    expect(problems).toEqual([]);

    // Rows in order, each with panels below it and above the next row.
    const rows = shown.filter((p) => p.type === 'row');
    expect(rows.map((r) => r.title)).toEqual(ROWS);
    expect(shown[0].type, 'the dashboard starts with a row').toBe('row');
    for (const [i, row] of rows.entries()) {
      const next = rows[i + 1]?.gridPos.y ?? Infinity;
      const inRow = row.collapsed === true ? (row.panels ?? []) : shown.filter((p) => p.type !== 'row' && p.gridPos.y > row.gridPos.y && p.gridPos.y < next);
      expect(inRow.length, `row "${row.title}" has panels`).toBeGreaterThan(0);
      if (row.collapsed !== true) expect(row.panels ?? [], `expanded row "${row.title}" keeps its panels at the top level`).toEqual([]);
    }
  });

  it('gives every panel the Prometheus datasource variable, a description and at least one target with a query', () => {
    expect(graphPanels.length).toBeGreaterThan(20);
    const problems: string[] = [];
    for (const p of graphPanels) {
      const where = `panel ${p.id} "${p.title}"`;
      if (JSON.stringify(p.datasource) !== JSON.stringify(DATASOURCE)) problems.push(`${where}: datasource ${JSON.stringify(p.datasource)}`);
      if ((p.description ?? '').trim() === '') problems.push(`${where}: no description`);
      const targets = p.targets ?? [];
      if (targets.length === 0) problems.push(`${where}: no targets`);
      const refIds = targets.map((t) => t.refId);
      if (new Set(refIds).size !== refIds.length || refIds.some((r) => typeof r !== 'string' || r === '')) problems.push(`${where}: refIds ${JSON.stringify(refIds)}`);
      for (const t of targets) {
        if (typeof t.expr !== 'string' || t.expr.trim() === '') problems.push(`${where} target ${t.refId}: no expr`);
        if (t.datasource !== undefined && JSON.stringify(t.datasource) !== JSON.stringify(DATASOURCE)) problems.push(`${where} target ${t.refId}: datasource ${JSON.stringify(t.datasource)}`);
      }
    }
    for (const a of dashboard.annotations.list) {
      if (a.builtIn !== 1 && JSON.stringify(a.datasource) !== JSON.stringify(DATASOURCE)) problems.push(`annotation "${a.name}": datasource ${JSON.stringify(a.datasource)}`);
    }
    expect(problems).toEqual([]);
  });

  it('has datasource, instance, database and user variables, database and user from label_values(pgmux_pool_size, ...)', () => {
    const vars = dashboard.templating.list;
    expect(vars.map((v) => v.name)).toEqual(['datasource', 'instance', 'database', 'user']);
    const [datasource, , database, user] = vars;
    expect(datasource).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const v of vars.slice(1)) {
      expect(v.type, v.name).toBe('query');
      expect(v.datasource, v.name).toEqual(DATASOURCE);
      expect(v.includeAll, v.name).toBe(true);
    }
    expect(variableQuery(database)).toMatch(/^label_values\(pgmux_pool_size(\{[^}]*\})?, database\)$/);
    expect(variableQuery(user)).toMatch(/^label_values\(pgmux_pool_size(\{[^}]*\})?, user\)$/);
    // "All" must also match the empty database/user of clients still logging in (pgmux_client_connections{state="login"}).
    expect(database.allValue).toBe('.*');
    expect(user.allValue).toBe('.*');
  });

  it('parses every query, each referring only to variables defined before it', () => {
    const queries = collectQueries(dashboard);
    expect(queries.length).toBeGreaterThan(50);
    const names = dashboard.templating.list.map((v) => v.name);
    const problems: string[] = [];
    for (const q of queries) {
      const own = q.variable ? names.indexOf(q.where.replace(/^variable /, '')) : names.length;
      const visible = new Set(names.slice(0, own));
      for (const v of q.parsed.variables) {
        if (!v.startsWith('__') && !visible.has(v)) problems.push(`${q.where}: $${v} is not a variable defined before it`);
      }
    }
    expect(problems).toEqual([]);
  });
});

describe('the PromQL reader the checks rely on', () => {
  const labels = (metric: string): ReadonlySet<string> =>
    new Set(({ x_bucket: ['database', 'user', 'le'], x: ['database', 'user', 'state'], y: ['database', 'class'] } as Record<string, string[]>)[metric] ?? []);
  const selectorsOf = (expr: string) =>
    [...walk(parsePromQL(expr).root)].flatMap(({ node }) => (node.kind === 'selector' ? [`${node.name}${JSON.stringify(node.matchers.map((m) => `${m.label}${m.op}${m.value}`))}`] : []));
  const result = (expr: string) => [...resultLabels(parsePromQL(expr).root, labels)].sort();

  it('finds metric names, matchers and the labels of the result', () => {
    const q = 'histogram_quantile(0.99, sum by (le, database) (rate(x_bucket{database=~"$database", user!=""}[$__rate_interval])))';
    expect(selectorsOf(q)).toEqual(['x_bucket["database=~$database","user!="]']);
    expect([...parsePromQL(q).variables].sort()).toEqual(['__rate_interval', 'database']);
    expect(result(q)).toEqual(['database']);
    expect(result('sum(rate(x[5m])) by (state)')).toEqual(['state']);
    expect(result('sum without (user) (x)')).toEqual(['database', 'state']);
    expect(result('x / on (database) group_left (class) y')).toEqual(['class', 'database', 'state', 'user']);
    expect(result('1 - sum(x) / sum(y)')).toEqual([]);
    expect(result('time() - x')).toEqual(['database', 'state', 'user']);
    expect(result('count by (version) (z)')).toEqual(['version']);
    expect(selectorsOf('max_over_time(rate(x[1m])[5m:1m]) offset 1h or -y^2 > bool 0.5e1')).toEqual(['x[]', 'y[]']);
    expect(selectorsOf('a:recorded:rate5m{job="j"} and ignoring(job) b')).toEqual(['a:recorded:rate5m["job=j"]', 'b[]']);
    expect(isScalar(parsePromQL('scalar(x) * 2').root)).toBe(true);
  });

  it('rejects what is not PromQL, naming the problem', () => {
    expect(() => parsePromQL('histogram_quantle(0.9, x_bucket)')).toThrow(/unknown function histogram_quantle/);
    expect(() => parsePromQL('sum by (le (x)')).toThrow(PromQLError);
    expect(() => parsePromQL('rate(x[5m]')).toThrow(/expected "," or "\)"/);
    expect(() => parsePromQL('x{state=active}')).toThrow(/quoted label value/);
    expect(() => parsePromQL('sum(x) by (a) by (b)')).toThrow(PromQLError);
    expect(() => parsePromQL('x +')).toThrow(/expected an expression/);
  });
});

describe('the dashboard against /metrics of a pgmux that served traffic', () => {
  let px: TestPgmux;
  let exposition: Exposition;
  /** Each sample name on /metrics (x_bucket, not x, for a histogram), with its family. */
  const families = new Map<string, Family>();
  /** Each sample name's label names and the values seen for each. */
  const labelValues = new Map<string, Map<string, Set<string>>>();
  const SMALL = { database: 'small', user: APP_ROLE.name, pool_mode: 'transaction' };

  const connect = async (database: string, password = APP_ROLE.password): Promise<pg.Client> => {
    const client = new pg.Client(px.url(database, APP_ROLE.name, password));
    await client.connect();
    return client;
  };
  const scrape = async (): Promise<Exposition> => {
    const res = await fetch(`${px.metricsUrl}/metrics`);
    expect(res.status).toBe(200);
    return parseExposition(await res.text());
  };

  /** Traffic that gives every labelled pgmux family at least one series. */
  async function makeTraffic(): Promise<void> {
    const app = await connect('app');
    for (let i = 0; i < 5; i++) await app.query('select $1::int as n', [i]);
    await app.query('begin');
    await app.query('select 1');
    await app.query('commit');
    await expect(app.query('select 1/0')).rejects.toThrow(/division by zero/); // pgmux_errors_total{class="22"}
    await app.query({ name: 'grafana_q', text: 'select $1::int + 1 as n', values: [1] }); // prepared: miss
    await app.query({ name: 'grafana_q', text: 'select $1::int + 1 as n', values: [2] }); // prepared: hit (or miss on another server)
    await app.query('listen grafana_channel'); // pgmux_pins_total{reason="listen"}; holds its server until it leaves
    await app.end();

    // A client waiting for the only server connection of `small`: pgmux_client_wait_seconds gets an observation.
    const holder = await connect('small');
    const waiter = await connect('small');
    await holder.query('begin');
    await holder.query('select 1');
    const waited = waiter.query('select 2 as two');
    const deadline = Date.now() + 20_000;
    while (sampleValue(await scrape(), 'pgmux_pool_waiting_clients', SMALL) !== 1) {
      if (Date.now() > deadline) throw new Error('the second client never queued for the server connection of "small"');
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 20));
    await holder.query('commit');
    expect((await waited).rows[0].two).toBe(2);
    await holder.end();
    await waiter.end();

    await expect(connect('app', 'wrong password')).rejects.toThrow(/password authentication failed/); // login failure
  }

  beforeAll(async () => {
    const db = await createTestDatabase('grafana');
    px = await startPgmux({
      metrics: true,
      settings: { default_pool_size: 2, max_client_conn: 50 },
      databases: { app: { dbname: db }, small: { dbname: db, pool_size: 1 } },
      users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
    });
    await makeTraffic();
    exposition = await scrape();
    for (const family of exposition.values()) {
      for (const s of family.samples) {
        families.set(s.name, family);
        let byLabel = labelValues.get(s.name);
        if (byLabel === undefined) labelValues.set(s.name, (byLabel = new Map()));
        for (const [label, value] of Object.entries(s.labels)) {
          let values = byLabel.get(label);
          if (values === undefined) byLabel.set(label, (values = new Set()));
          values.add(value);
        }
      }
    }
  });

  afterAll(async () => {
    await px?.stop();
  });

  /** Labels a series of `metric` can be selected by in Prometheus: its own and the target's. */
  const labelsOf = (metric: string): ReadonlySet<string> => new Set([...(labelValues.get(metric)?.keys() ?? []), ...TARGET_LABELS]);

  /** Why `name` cannot be queried as written, or null if it can. */
  function missing(name: string): string | null {
    if (families.has(name)) return null;
    if (LINUX_ONLY.has(name) && process.platform !== 'linux') return null;
    const family = exposition.get(name);
    if (family === undefined) return `${name} is not on /metrics`;
    if (family.type === 'histogram') return `${name} is a histogram: query ${name}_bucket, ${name}_sum or ${name}_count`;
    if (family.type === 'summary') return `${name} is a summary: query ${name}{quantile=...}, ${name}_sum or ${name}_count`;
    return `${name} is on /metrics but had no series after the test's traffic`;
  }

  function selectors(node: Node): Array<{ name: string | null; node: Extract<Node, { kind: 'selector' }>; ancestors: Node[] }> {
    return [...walk(node)].flatMap(({ node: n, ancestors }) => (n.kind === 'selector' ? [{ name: n.name, node: n, ancestors }] : []));
  }

  it('queries only metrics that are on /metrics, as written', () => {
    const queries = collectQueries(dashboard);
    const problems = new Set<string>();
    for (const q of queries) {
      for (const { name } of selectors(q.parsed.root)) {
        const why = name === null ? 'a selector without a metric name' : missing(name);
        if (why !== null) problems.add(`${q.where}: ${why}`);
      }
    }
    expect([...problems]).toEqual([]);
  });

  it('selects, groups and labels legends only by labels those metrics have, and matches label values that occur', () => {
    const problems = new Set<string>();
    for (const q of collectQueries(dashboard)) {
      const names = selectors(q.parsed.root).map((s) => s.name);
      if (names.some((n) => n === null || missing(n) !== null)) continue; // reported by the test above
      const labelsOfKnown = (metric: string) => (LINUX_ONLY.has(metric) && !families.has(metric) ? new Set(TARGET_LABELS) : labelsOf(metric));
      const resultOf = (n: Node) => resultLabels(n, labelsOfKnown);
      for (const { node } of walk(q.parsed.root)) {
        if (node.kind === 'selector' && node.name !== null) {
          const have = labelsOfKnown(node.name);
          for (const m of node.matchers) {
            if (!have.has(m.label)) problems.add(`${q.where}: ${node.name} has no label ${m.label}`);
            else if (m.op === '=' && !TARGET_LABELS.includes(m.label) && !/\$/.test(m.value) && !labelValues.get(node.name)?.get(m.label)?.has(m.value)) {
              problems.add(`${q.where}: ${node.name} has no series with ${m.label}="${m.value}"`);
            }
          }
        }
        if (node.kind === 'aggregate' && node.grouping !== null) {
          const input = resultOf(node.arg);
          for (const l of node.grouping.labels) if (!input.has(l)) problems.add(`${q.where}: ${node.op} ${node.grouping.without ? 'without' : 'by'} (${l}): no such label in ${JSON.stringify([...input])}`);
        }
        if (node.kind === 'binary' && node.matching !== null) {
          const lhs = resultOf(node.lhs);
          const rhs = resultOf(node.rhs);
          for (const l of node.matching.labels) if (!lhs.has(l) || !rhs.has(l)) problems.add(`${q.where}: ${node.matching.on ? 'on' : 'ignoring'} (${l}): not on both sides`);
          const one = node.matching.group === 'right' ? lhs : rhs;
          for (const l of node.matching.include) if (!one.has(l)) problems.add(`${q.where}: group_${node.matching.group} (${l}): no such label`);
        }
        if (node.kind === 'call' && node.func === 'histogram_quantile' && !resultOf(node.args[1]).has('le')) {
          problems.add(`${q.where}: histogram_quantile over something without an le label`);
        }
      }
      const result = resultOf(q.parsed.root);
      for (const l of q.resultLabels) if (!result.has(l)) problems.add(`${q.where}: {{${l}}} / label ${l} is not a label of the result ${JSON.stringify([...result])}`);
    }
    expect([...problems]).toEqual([]);
  });

  it('takes rates of counters and histogram series only, and quantiles of _bucket only', () => {
    const problems = new Set<string>();
    for (const q of collectQueries(dashboard)) {
      if (q.variable) continue;
      for (const { name, ancestors } of selectors(q.parsed.root)) {
        const family = name === null ? undefined : families.get(name);
        if (name === null || family === undefined) continue;
        const range = ancestors.at(-1);
        const fn = ancestors.at(-2);
        const ratedBy = range?.kind === 'range' && fn?.kind === 'call' ? fn.func : null;
        const cumulative = family.type === 'counter' || family.type === 'histogram' || (family.type === 'summary' && name !== family.name);
        if (cumulative && (ratedBy === null || !COUNTER_FUNCTIONS.has(ratedBy))) problems.add(`${q.where}: ${name} is a ${family.type}: use rate()/increase() of it`);
        if (!cumulative && ratedBy !== null && RATE_FUNCTIONS.has(ratedBy)) problems.add(`${q.where}: ${ratedBy}() of ${name}, a ${family.type}`);
        const quantile = ancestors.some((a) => a.kind === 'call' && a.func === 'histogram_quantile');
        if (name.endsWith('_bucket') && family.type === 'histogram' && !quantile) problems.add(`${q.where}: ${name} outside histogram_quantile()`);
        if (quantile && !name.endsWith('_bucket')) problems.add(`${q.where}: histogram_quantile() of ${name}`);
      }
      if (isScalar(q.parsed.root)) problems.add(`${q.where}: a scalar, not a series`);
    }
    expect([...problems]).toEqual([]);
  });

  it('shows every pgmux metric, and the process CPU, memory and event loop', () => {
    const used = new Set<string>();
    for (const q of collectQueries(dashboard)) for (const { name } of selectors(q.parsed.root)) if (name !== null) used.add(families.get(name)?.name ?? name);
    const pgmux = [...exposition.keys()].filter((n) => n.startsWith('pgmux_'));
    expect(pgmux.length).toBeGreaterThan(20);
    expect(pgmux.filter((n) => !used.has(n) && !NOT_ON_DASHBOARD.has(n)), 'pgmux metrics the dashboard does not show (add a panel, or list them in NOT_ON_DASHBOARD)').toEqual([]);
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_p99_seconds']) expect(used, name).toContain(name);
  });
});
