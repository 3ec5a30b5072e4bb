/** The benchmark's targets by name (kept apart from targets.ts so reports load without starting anything). */
export type TargetName = 'direct' | 'pgbouncer' | 'pgbouncer125' | 'pgmux' | 'floor';

/** Report and chart order. `pgbouncer` is Debian's package (1.18 on Debian 12); `pgbouncer125` the 1.25.2 build. */
export const TARGET_NAMES: readonly TargetName[] = ['direct', 'pgbouncer', 'pgbouncer125', 'pgmux', 'floor'];

/** Labels for logs; results carry their own (with the version a PgBouncer actually reported, see targetLabel). */
export const TARGET_LABELS: Record<TargetName, string> = {
  direct: 'Direct Postgres',
  pgbouncer: 'PgBouncer (Debian)',
  pgbouncer125: 'PgBouncer 1.25',
  pgmux: 'pgmux',
  floor: 'Node floor',
};

/** The poolers: the targets the connection storm and idle-memory tests run against. */
export const POOLER_NAMES: readonly TargetName[] = ['pgbouncer', 'pgbouncer125', 'pgmux'];

/**
 * Whether a target takes part in a scenario kind. Direct Postgres cannot hold thousands of connections, and the
 * floor opens one server connection per client (it does not pool), so both run the pgbench scenarios only.
 */
export function runsScenario(target: TargetName, kind: 'pgbench' | 'storm' | 'idle'): boolean {
  return kind === 'pgbench' || POOLER_NAMES.includes(target);
}

/** The label a run records: a PgBouncer is named by the major.minor version it reported (`PgBouncer 1.18`). */
export function targetLabel(target: TargetName, version: string | undefined): string {
  const minor = version === undefined ? null : /^\d+\.\d+/.exec(version)?.[0];
  return target.startsWith('pgbouncer') && minor !== null && minor !== undefined ? `PgBouncer ${minor}` : TARGET_LABELS[target];
}
