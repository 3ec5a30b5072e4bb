/**
 * What the benchmark measures. Scenario ids are stable (they key the JSON results and `--only`); titles are for
 * people. pgbench scenarios run against every target; the storm and idle-memory tests only through the poolers
 * (Postgres cannot hold thousands of connections).
 */
import { UsageError } from './options.js';
import type { PgbenchSpec } from './pgbench.js';

export type Scenario =
  | ({ kind: 'pgbench'; id: string; title: string } & PgbenchSpec)
  | { kind: 'storm'; id: string; title: string; clients: number }
  | { kind: 'idle'; id: string; title: string; clients: number };

export interface ScenarioSizes {
  stormClients: number;
  idleClients: number;
}

const fmt = (n: number): string => n.toLocaleString('en-US');

export function allScenarios(sizes: ScenarioSizes): Scenario[] {
  const list: Scenario[] = [];
  for (const clients of [32, 400]) {
    for (const protocol of ['simple', 'extended', 'prepared'] as const) {
      list.push({
        kind: 'pgbench',
        id: `select-${protocol}-${clients}`,
        title: `select-only, -M ${protocol}, ${clients} clients`,
        script: 'select-only',
        protocol,
        clients,
        connectPerTransaction: false,
      });
    }
  }
  list.push(
    { kind: 'pgbench', id: 'tpcb-simple-32', title: 'tpcb-like, -M simple, 32 clients', script: 'tpcb-like', protocol: 'simple', clients: 32, connectPerTransaction: false },
    { kind: 'pgbench', id: 'connect-select-32', title: 'connect per transaction (-C), select-only, 32 clients', script: 'select-only', protocol: 'simple', clients: 32, connectPerTransaction: true },
    { kind: 'storm', id: 'storm', title: `connection storm: ${fmt(sizes.stormClients)} clients at once, SELECT 1 each`, clients: sizes.stormClients },
    { kind: 'idle', id: 'idle-memory', title: `idle memory: ${fmt(sizes.idleClients)} authenticated idle clients`, clients: sizes.idleClients },
  );
  return list;
}

/**
 * The scenarios `--only` asks for: a comma-separated list of ids or id prefixes (`select`, `select-prepared`,
 * `storm`, `idle`). Throws listing the ids when an item matches nothing.
 */
export function selectScenarios(all: readonly Scenario[], only: string | undefined): Scenario[] {
  if (only === undefined || only === '') return [...all];
  const items = only.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const chosen = new Set<Scenario>();
  for (const item of items) {
    const matches = all.filter((s) => s.id === item || s.id.startsWith(item) || s.kind === item);
    if (matches.length === 0) throw new UsageError(`--only ${item}: no such scenario; ids: ${all.map((s) => s.id).join(', ')}`);
    for (const m of matches) chosen.add(m);
  }
  return all.filter((s) => chosen.has(s));
}
