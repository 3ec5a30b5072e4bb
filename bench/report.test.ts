import { describe, expect, it } from 'vitest';
import { compare, markdownBody, ratioOf } from './report.js';
import type { BenchResults, ScenarioInfo } from './results.js';
import type { TargetName } from './target-names.js';

const select: ScenarioInfo = { id: 'select-simple-32', title: 'select-only, -M simple, 32 clients', kind: 'pgbench', script: 'select-only' };
const tpcb: ScenarioInfo = { id: 'tpcb-simple-32', title: 'tpcb-like, -M simple, 32 clients', kind: 'pgbench', script: 'tpcb-like' };

function figures(tps: number, cpu: number, p99: number, errors = 0): Record<string, number> {
  return { tps, cpuUsPerTxn: cpu, latencyP99Ms: p99, errors };
}

function results(missing: TargetName[] = []): BenchResults {
  const info = (label: string, t: TargetName, version?: string) => ({ label, available: !missing.includes(t), version, reason: missing.includes(t) ? 'cannot run here' : undefined });
  const perTarget = {
    direct: figures(20_000, 70, 3),
    pgbouncer: figures(15_000, 20, 6, 32),
    pgbouncer125: figures(12_000, 25, 5),
    pgmux: figures(9_000, 50, 7.5),
    floor: figures(18_000, 30, 4),
  };
  return {
    schema: 1,
    startedAt: '2026-12-01T10:00:00.000Z',
    finishedAt: '2026-12-01T10:10:00.000Z',
    quick: false,
    options: { durationS: 10, repeat: 3, scale: 10, only: null, stormClients: 5000, idleClients: 10_000 },
    machine: { cpuModel: 'CPU', cores: 2, memoryGiB: 8, kernel: 'Linux', node: 'v20', postgres: 'postgres (PostgreSQL) 15', pgbench: 'pgbench 15', pgbouncer: '1.18.0', pgbouncer125: '1.25.2', pgmux: '0.1.0', nofile: 65536 },
    settings: {},
    targets: {
      direct: info('Direct Postgres', 'direct'),
      pgbouncer: info('PgBouncer 1.18', 'pgbouncer', '1.18.0'),
      pgbouncer125: info('PgBouncer 1.25', 'pgbouncer125', '1.25.2'),
      pgmux: info('pgmux', 'pgmux', '0.1.0'),
      floor: info('Node floor', 'floor'),
    },
    scenarios: [select, tpcb],
    runs: [],
    medians: { [select.id]: perTarget, [tpcb.id]: perTarget },
  };
}

describe('compare', () => {
  it('divides pgmux by each PgBouncer for TPS, CPU and p99', () => {
    const c = compare(results(), select);
    expect(c.tps).toEqual({ pgbouncer125: 0.75, pgbouncer: 0.6 });
    expect(c.cpuUsPerTxn).toEqual({ pgbouncer125: 2, pgbouncer: 2.5 });
    expect(c.latencyP99Ms).toEqual({ pgbouncer125: 1.5, pgbouncer: 1.25 });
  });

  it('reports pgmux − floor CPU for select-only scenarios only', () => {
    expect(compare(results(), select).pgmuxMinusFloorCpuUs).toBe(20);
    expect(compare(results(), tpcb).pgmuxMinusFloorCpuUs).toBeNull();
  });

  it('has no ratio against a target that could not start, whatever its medians say', () => {
    const c = compare(results(['pgbouncer125', 'floor']), select);
    expect(c.tps).toEqual({ pgbouncer125: null, pgbouncer: 0.6 });
    expect(c.pgmuxMinusFloorCpuUs).toBeNull();
  });

  it('has no ratio for a zero divisor', () => {
    expect(ratioOf(1, 0)).toBeNull();
    expect(ratioOf(undefined, 2)).toBeNull();
  });
});

describe('markdownBody', () => {
  it('puts pgmux ÷ PgBouncer 1.25 and ÷ 1.18 side by side in the TPS, CPU and p99 tables', () => {
    const md = markdownBody(results());
    const headers = md.split('\n').filter((l) => l.startsWith('| Scenario |'));
    expect(headers).toHaveLength(3);
    for (const h of headers) expect(h).toContain('| pgmux ÷ PgBouncer 1.25 | pgmux ÷ PgBouncer 1.18 |');
    const rows = md.split('\n').filter((l) => l.startsWith(`| ${select.title} |`));
    expect(rows[0]).toContain('| 0.75× | 0.60× |');
    expect(rows[1]).toContain('| 2.00× | 2.50× | 20.0 |');
    expect(rows[2]).toContain('| 1.50× | 1.25× |');
    expect(md).toContain('| 15,000 ⚠ |');
  });

  it('says which target is missing and why', () => {
    const md = markdownBody(results(['pgbouncer125']));
    expect(md).toContain('**PgBouncer 1.25 is missing from this run:** cannot run here');
  });
});
