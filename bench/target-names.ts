/** The benchmark's targets by name (kept apart from targets.ts so reports load without starting anything). */
export type TargetName = 'direct' | 'pgbouncer' | 'pgmux';
export const TARGET_NAMES: readonly TargetName[] = ['direct', 'pgbouncer', 'pgmux'];
export const TARGET_LABELS: Record<TargetName, string> = { direct: 'Direct Postgres', pgbouncer: 'PgBouncer', pgmux: 'pgmux' };
