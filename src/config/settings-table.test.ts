import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderSettingsTable } from './settings-table.js';

describe('README settings table', () => {
  it('matches the SETTINGS table (regenerate with `npm run docs:settings`)', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const start = readme.indexOf('<!-- settings:start -->');
    const end = readme.indexOf('<!-- settings:end -->');
    expect(start).toBeGreaterThan(0);
    expect(readme.slice(start + '<!-- settings:start -->'.length, end).trim()).toBe(renderSettingsTable());
  });
});
