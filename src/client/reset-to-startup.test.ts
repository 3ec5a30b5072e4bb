import { describe, expect, it } from 'vitest';
import { preparedResetNames, queryWithStartupValues, quoteIdentifier, restoreAfterReset, restoreStatement, splitIdentifierList } from './reset-to-startup.js';

const startup = new Map([
  ['TimeZone', 'America/Los_Angeles'],
  ['DateStyle', 'Postgres, MDY'],
  ['statement_timeout', '5s'],
]);

describe('queryWithStartupValues', () => {
  it('follows a lone RESET of a startup setting with its startup value, in any spelling', () => {
    for (const sql of ['RESET TimeZone', 'reset timezone;', 'RESET "TimeZone"', 'reset time zone', 'SET timezone TO DEFAULT', 'set session TimeZone = default', 'SET TIME ZONE LOCAL', 'set timezone=default']) {
      const out = queryWithStartupValues(sql, startup, null);
      expect(out?.sql, sql).toMatch(/\n;SET "TimeZone" TO E'America\/Los_Angeles';?$/);
      expect(out?.own.results, sql).toEqual([1]);
    }
  });

  it('follows RESET ALL with every startup value the server does not reset to itself', () => {
    const out = (queryWithStartupValues('RESET ALL', startup, new Map([['TimeZone', 'America/Los_Angeles']])) as { sql: string }).sql;
    expect(out.startsWith('RESET ALL\n')).toBe(true);
    expect(out).toContain(`SET "DateStyle" TO E'Postgres', E'MDY'`);
    expect(out).toContain(`SET "statement_timeout" TO E'5s'`);
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
    expect(queryWithStartupValues('RESET search_path', new Map([['search_path', "a, \"b'c\""]]), null)?.sql).toContain(`SET "search_path" TO E'a', E'b''c'`);
    expect(queryWithStartupValues('RESET application_name', new Map([['application_name', "it's a \\ b"]]), null)?.sql).toContain(`SET "application_name" TO E'it''s a \\\\ b'`);
  });

  it('places the follow-up right after each RESET in a query of several statements, counting results', () => {
    const out = queryWithStartupValues("SET TimeZone = 'Asia/Tokyo'; RESET TimeZone; show TimeZone; reset datestyle -- why", startup, null);
    const sql = "SET TimeZone = 'Asia/Tokyo'; RESET TimeZone; show TimeZone; reset datestyle -- why";
    expect(out?.sql).toBe(
      "SET TimeZone = 'Asia/Tokyo'; RESET TimeZone\n;SET \"TimeZone\" TO E'America/Los_Angeles'; show TimeZone; reset datestyle -- why\n;SET \"DateStyle\" TO E'Postgres', E'MDY'",
    );
    expect(out?.own.results).toEqual([2, 5]);
    // Cutting out each insertion (1-based positions, last first) gives back the client's text.
    let text = out?.sql ?? '';
    for (const ins of [...(out?.own.insertions ?? [])].reverse()) text = text.slice(0, ins.at - 1) + text.slice(ins.at - 1 + ins.length);
    expect(text).toBe(sql);
  });
});

describe('restoreStatement: SET where it stores exactly the startup value', () => {
  it('uses SET for plain settings and DateStyle, with literals that survive standard_conforming_strings=off', () => {
    expect(restoreStatement('TimeZone', 'America/Los_Angeles')).toBe(`SET "TimeZone" TO E'America/Los_Angeles'`);
    expect(restoreStatement('DateStyle', 'Postgres, MDY')).toBe(`SET "DateStyle" TO E'Postgres', E'MDY'`);
    expect(restoreStatement('application_name', "a'b\\c")).toBe(`SET "application_name" TO E'a''b\\\\c'`);
  });

  it('uses SET for an identifier list written as quote_identifier() writes it, set_config otherwise', () => {
    expect(restoreStatement('search_path', '"$user", public')).toBe(`SET "search_path" TO E'$user', E'public'`);
    expect(restoreStatement('search_path', 'pg_catalog, public')).toBe(`SET "search_path" TO E'pg_catalog', E'public'`);
    for (const value of ['Public', '"public"', 'a,b', 'user, public', '', 'a, "b\'c']) {
      expect(restoreStatement('search_path', value), value).toMatch(/^SELECT pg_catalog\.set_config\(E'search_path', /);
    }
  });

  it('splits and quotes identifier lists as PostgreSQL does', () => {
    expect(splitIdentifierList(' a , "B ,""c" ,D')).toEqual(['a', 'B ,"c', 'd']);
    expect(splitIdentifierList('')).toEqual([]);
    expect(splitIdentifierList('a,,b')).toBeNull();
    expect(splitIdentifierList('"open')).toBeNull();
    expect(['public', '$user', 'User', 'user', 'a b', 'x"y', '1a'].map(quoteIdentifier)).toEqual(['public', '"$user"', '"User"', '"user"', '"a b"', '"x""y"', '"1a"']);
  });
});

describe('the extended protocol: a prepared RESET', () => {
  const startup = new Map([
    ['TimeZone', 'Asia/Tokyo'],
    ['search_path', 'Public, app'],
    ['statement_timeout', '20s'],
  ]);

  it('knows a lone RESET (and SET ... TO DEFAULT) from anything else', () => {
    expect(preparedResetNames('reset all')).toBe('all');
    expect(preparedResetNames('RESET ALL;')).toBe('all');
    expect(preparedResetNames('reset timezone')).toEqual(['TimeZone']);
    expect(preparedResetNames('set search_path to default')).toEqual(['search_path']);
    expect(preparedResetNames('set search_path to app')).toBeNull();
    expect(preparedResetNames('select 1')).toBeNull();
    expect(preparedResetNames("select 'reset all'")).toBeNull();
  });

  it('gives one statement per setting taken away, none returning rows', () => {
    expect(restoreAfterReset('all', startup, null)).toEqual([
      "SET \"TimeZone\" TO E'Asia/Tokyo'",
      "SELECT FROM pg_catalog.set_config(E'search_path', E'Public, app', false) AS restored WHERE restored IS NULL",
      "SET \"statement_timeout\" TO E'20s'",
    ]);
    // What the server itself resets to is not repeated; names the client never set are not touched.
    expect(restoreAfterReset('all', startup, new Map([['TimeZone', 'Asia/Tokyo']]))).toHaveLength(2);
    expect(restoreAfterReset(['work_mem'], startup, null)).toEqual([]);
    expect(restoreAfterReset('all', new Map(), null)).toEqual([]);
  });
});
