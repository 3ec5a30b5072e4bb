/**
 * Before the tests: do the startup parameters pg_regress's psql sends (PGTZ, PGDATESTYLE, PGOPTIONS'
 * intervalstyle, PGAPPNAME) arrive? Asked on three consecutive connections, because a pooler may get the first
 * one right and lose them once a server is reused. A mismatch is reported, not fatal: the tests show its effects.
 */
import { psql, regressEnv, type PsqlTarget } from './psql.js';

const EXPECTED: ReadonlyArray<readonly [string, string]> = [
  ['TimeZone', 'America/Los_Angeles'],
  ['DateStyle', 'Postgres, MDY'],
  ['IntervalStyle', 'postgres_verbose'],
  ['application_name', 'pg_regress/startup-check'],
];

export interface StartupCheck {
  /** One line per connection and setting that differed, e.g. "connection 2: TimeZone = Etc/UTC (expected ...)". */
  readonly mismatches: string[];
}

export async function checkStartupParameters(target: PsqlTarget, db = 'postgres', connections = 3): Promise<StartupCheck> {
  const mismatches: string[] = [];
  for (let n = 1; n <= connections; n++) {
    const res = await psql(
      target,
      db,
      EXPECTED.map(([name]) => `SHOW ${name}`),
      regressEnv(target.home, 'pg_regress/startup-check'),
    );
    if (res.code !== 0) {
      mismatches.push(`connection ${n}: psql failed: ${res.output.trim().split('\n')[0] ?? ''}`);
      continue;
    }
    const got = res.output.split('\n');
    EXPECTED.forEach(([name, want], i) => {
      if (got[i] !== want) mismatches.push(`connection ${n}: ${name} = ${got[i] ?? '(nothing)'} (expected ${want})`);
    });
  }
  return { mismatches };
}
