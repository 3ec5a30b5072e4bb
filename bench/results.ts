/** The shape of a benchmark's results: every run as measured, and per scenario and target the medians. */
import type { MachineInfo } from './machine.js';
import { median } from './stats.js';
import type { TargetName } from './target-names.js';

/** What one measurement produced. Metric names are per scenario kind (see report.ts for the ones shown). */
export interface Measured {
  metrics: Record<string, number>;
  errors: number;
  errorSamples: string[];
}

export interface RunRecord extends Measured {
  scenario: string;
  target: TargetName;
  repeat: number;
  startedAt: string;
}

export interface TargetInfo {
  label: string;
  available: boolean;
  version?: string;
  /** Why it is missing. */
  reason?: string;
}

export interface ScenarioInfo {
  id: string;
  title: string;
  kind: 'pgbench' | 'storm' | 'idle';
  /** pgbench scenarios: the built-in script (absent in results written before it was recorded). */
  script?: 'select-only' | 'tpcb-like';
}

/** Medians across repeats; `null` where no run produced the number. */
export type Medians = Record<string, Partial<Record<TargetName, Record<string, number | null>>>>;

export interface BenchResults {
  schema: 1;
  startedAt: string;
  finishedAt: string;
  quick: boolean;
  options: { durationS: number; repeat: number; scale: number; only: string | null; stormClients: number; idleClients: number };
  machine: MachineInfo;
  settings: Record<string, string | number>;
  targets: Record<TargetName, TargetInfo>;
  scenarios: ScenarioInfo[];
  runs: RunRecord[];
  medians: Medians;
}

export function computeMedians(scenarios: readonly ScenarioInfo[], runs: readonly RunRecord[]): Medians {
  const out: Medians = {};
  for (const scenario of scenarios) {
    const byTarget: Partial<Record<TargetName, Record<string, number | null>>> = {};
    for (const run of runs) {
      if (run.scenario !== scenario.id) continue;
      byTarget[run.target] ??= {};
    }
    for (const target of Object.keys(byTarget) as TargetName[]) {
      const mine = runs.filter((r) => r.scenario === scenario.id && r.target === target);
      const keys = new Set(mine.flatMap((r) => [...Object.keys(r.metrics), 'errors']));
      const values: Record<string, number | null> = {};
      for (const key of keys) {
        const m = median(mine.map((r) => (key === 'errors' ? r.errors : r.metrics[key])));
        values[key] = Number.isFinite(m) ? m : null;
      }
      byTarget[target] = values;
    }
    out[scenario.id] = byTarget;
  }
  return out;
}

/** JSON text with NaN and infinities written as null (JSON has no NaN). */
export function toJson(results: BenchResults): string {
  return `${JSON.stringify(results, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? null : value), 2)}\n`;
}
