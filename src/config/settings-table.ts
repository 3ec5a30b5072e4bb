/** Renders the settings table for the README from the SETTINGS table, so documentation cannot drift from code. */
import { formatSettingValue, SETTINGS } from './schema.js';

export function renderSettingsTable(): string {
  const rows = ['| Setting | Env var | Default | Description |', '|---|---|---|---|'];
  for (const s of SETTINGS) {
    const value = formatSettingValue(s, s.default);
    rows.push(`| \`${s.name}\` | \`${s.name.toUpperCase()}\` | \`${value === '' ? '""' : value}\` | ${s.description.replace(/\|/g, '\\|')} |`);
  }
  return rows.join('\n');
}
