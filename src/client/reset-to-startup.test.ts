import { describe, expect, it } from 'vitest';
import { queryWithStartupValues } from './reset-to-startup.js';

const startup = new Map([
  ['TimeZone', 'America/Los_Angeles'],
  ['DateStyle', 'Postgres, MDY'],
  ['statement_timeout', '5s'],
]);

describe('queryWithStartupValues', () => {
  it('follows a lone RESET of a startup setting with its startup value, in any spelling', () => {
    for (const sql of ['RESET TimeZone', 'reset timezone;', 'RESET "TimeZone"', 'reset time zone', 'SET timezone TO DEFAULT', 'set session TimeZone = default', 'SET TIME ZONE LOCAL', 'set timezone=default']) {
      const out = queryWithStartupValues(sql, startup, null);
      expect(out?.sql, sql).toMatch(/\n;SELECT pg_catalog\.set_config\('TimeZone', 'America\/Los_Angeles', false\);?$/);
      expect(out?.ownResults, sql).toEqual([1]);
    }
  });

  it('follows RESET ALL with every startup value the server does not reset to itself', () => {
    const out = (queryWithStartupValues('RESET ALL', startup, new Map([['TimeZone', 'America/Los_Angeles']])) as { sql: string }).sql;
    expect(out.startsWith('RESET ALL\n')).toBe(true);
    expect(out).toContain("set_config('DateStyle', 'Postgres, MDY', false)");
    expect(out).toContain("set_config('statement_timeout', '5s', false)");
    expect(out).not.toContain('TimeZone');
  });

  it('leaves alone what is not a lone reset of a startup setting', () => {
    for (const sql of ['RESET search_path', 'SET LOCAL timezone TO DEFAULT', 'RESET ROLE', 'RESET SESSION AUTHORIZATION', "SET timezone = 'UTC'", 'select default_value from t', 'RESET']) {
      expect(queryWithStartupValues(sql, startup, null), sql).toBeNull();
    }
    expect(queryWithStartupValues('RESET TimeZone', new Map(), null)).toBeNull();
    expect(queryWithStartupValues('RESET TimeZone', startup, new Map([['TimeZone', 'America/Los_Angeles']]))).toBeNull();
  });

  it('quotes values', () => {
    expect(queryWithStartupValues('RESET search_path', new Map([['search_path', "a, \"b'c\""]]), null)?.sql).toContain(`'a, "b''c"'`);
  });

  it('places the follow-up right after each RESET in a query of several statements, counting results', () => {
    const out = queryWithStartupValues("SET TimeZone = 'Asia/Tokyo'; RESET TimeZone; show TimeZone; reset datestyle -- why", startup, null);
    expect(out).toEqual({
      sql: "SET TimeZone = 'Asia/Tokyo'; RESET TimeZone\n;SELECT pg_catalog.set_config('TimeZone', 'America/Los_Angeles', false); show TimeZone; reset datestyle -- why\n;SELECT pg_catalog.set_config('DateStyle', 'Postgres, MDY', false)",
      ownResults: [2, 5],
    });
  });
});
