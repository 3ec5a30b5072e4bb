import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DATABASE_FIELDS, formatSettingValue, SETTINGS, SETTINGS_BY_NAME, USER_FIELDS } from './schema.js';

describe('SETTINGS', () => {
  it('has unique lower-case names, descriptions, and defaults its own parser accepts', () => {
    expect(SETTINGS_BY_NAME.size).toBe(SETTINGS.length);
    for (const setting of SETTINGS) {
      expect(setting.name).toMatch(/^[a-z][a-z0-9_]*$/);
      expect(setting.description.length).toBeGreaterThan(10);
      // The default must survive a round trip through its written form, as the README and SHOW CONFIG show it.
      const written = formatSettingValue(setting, setting.default);
      expect(setting.parse(written), setting.name).toEqual(setting.default);
    }
  });

  it('lists the values of enum settings', () => {
    expect(SETTINGS_BY_NAME.get('pool_mode')?.values).toEqual(['session', 'transaction', 'statement']);
    expect(SETTINGS_BY_NAME.get('auth_type')?.values).toEqual(['scram-sha-256', 'md5', 'plain', 'trust', 'cert']);
  });

  it('keeps durations in milliseconds', () => {
    expect(SETTINGS_BY_NAME.get('query_wait_timeout')?.default).toBe(120_000);
    expect(SETTINGS_BY_NAME.get('server_lifetime')?.default).toBe(3_600_000);
  });

  it('are all documented in the example config', () => {
    const example = readFileSync(new URL('../../config/pgmux.example.yaml', import.meta.url), 'utf8');
    for (const setting of SETTINGS) expect(example, setting.name).toMatch(new RegExp(`^#? ?${setting.name}:`, 'm'));
  });
});

describe('formatSettingValue', () => {
  it('writes durations with a unit and lists comma-separated', () => {
    const get = (name: string) => {
      const setting = SETTINGS_BY_NAME.get(name);
      if (setting === undefined) throw new Error(name);
      return setting;
    };
    expect(formatSettingValue(get('server_idle_timeout'), 600_000)).toBe('10min');
    expect(formatSettingValue(get('client_idle_timeout'), 0)).toBe('0');
    expect(formatSettingValue(get('admin_users'), ['a', 'b'])).toBe('a,b');
    expect(formatSettingValue(get('listen_port'), 6543)).toBe('6543');
    expect(formatSettingValue(get('tcp_keepalive'), true)).toBe('true');
  });
});

describe('field tables', () => {
  it('name each field after its key and describe it', () => {
    for (const [key, field] of [...Object.entries(DATABASE_FIELDS), ...Object.entries(USER_FIELDS)]) {
      expect(field.name).toBe(key);
      expect(field.description).not.toBe('');
    }
  });
});
