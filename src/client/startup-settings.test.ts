import { describe, expect, it } from 'vitest';
import { overriddenCheckQuery, startupSettings } from './startup-settings.js';

describe('startupSettings', () => {
  // As PostgreSQL's process_startup_options: `options` first, then the other parameters, which win. The order is the
  // order settings are applied at login, so the first bad one is the one PostgreSQL names (fuzzer seed 9 path 19:
  // 42704 for "--nosuch_guc=1" in options, not 22023 for a later statement_timeout=abc).
  it('puts the switches in options first, then the parameters, in packet order', () => {
    const params = new Map([
      ['user', 'u'],
      ['database', 'd'],
      ['statement_timeout', 'abc'],
      ['options', '--nosuch_guc=1 -c work_mem=64kB'],
      ['fz.v', 'x'],
    ]);
    expect([...startupSettings(params, null).settings.keys()]).toEqual(['nosuch_guc', 'work_mem', 'statement_timeout', 'fz.v']);
  });

  it('lets a parameter win over the same setting in options, and moves it after the options', () => {
    const params = new Map([
      ['user', 'u'],
      ['TimeZone', 'UTC'],
      ['options', '-c timezone=Europe/Paris -c search_path=s'],
    ]);
    expect([...startupSettings(params, null).settings]).toEqual([
      ['search_path', 's'],
      ['TimeZone', 'UTC'],
    ]);
  });

  // Fuzzer seed 31 path 7 (weighted run, seed 3): DateStyle=garbage, then DateStyle='ISO, MDY'. PostgreSQL applies
  // both and fails the login on the first (22023); pgmux kept the last only and let the client in.
  it('lists the values PostgreSQL applies and then overrides, in its order, for a check on the server', () => {
    const params = new Map([
      ['user', 'u'],
      ['DateStyle', 'ISO, MDY'],
      ['options', '-c datestyle=German -c work_mem=1MB -c work_mem=2MB'],
    ]);
    const s = startupSettings(params, null, [['DateStyle', 'garbage']]);
    expect(s.overridden).toEqual([
      ['work_mem', '1MB'],
      ['DateStyle', 'German'],
      ['DateStyle', 'garbage'],
    ]);
    expect([...s.settings]).toEqual([
      ['work_mem', '2MB'],
      ['DateStyle', 'ISO, MDY'],
    ]);
    expect(overriddenCheckQuery(s.overridden)).toBe(
      "SELECT pg_catalog.set_config('work_mem', '1MB', true);SELECT pg_catalog.set_config('DateStyle', 'German', true);SELECT pg_catalog.set_config('DateStyle', 'garbage', true);",
    );
    expect(overriddenCheckQuery(startupSettings(new Map([['user', 'u'], ['DateStyle', 'ISO']]), null).overridden)).toBeNull();
    expect(overriddenCheckQuery([['x', "it's"]])).toBe("SELECT pg_catalog.set_config('x', 'it''s', true);");
  });
});
