/** Renders the settings table for the README from the SETTINGS table, so documentation cannot drift from code. */
import { formatSettingValue, SETTINGS } from './schema.js';

/** Settings accepted now whose behaviour arrives with a later feature; the README says so instead of pretending. */
export const PLANNED_SETTINGS: Readonly<Record<string, string>> = {
};

export function renderSettingsTable(): string {
  const rows = ['| Setting | Env var | Default | Description |', '|---|---|---|---|'];
  for (const s of SETTINGS) {
    const value = formatSettingValue(s, s.default);
    const planned = PLANNED_SETTINGS[s.name];
    const note = planned === undefined ? '' : ` *(accepted; takes effect with the ${planned})*`;
    rows.push(`| \`${s.name}\` | \`${s.name.toUpperCase()}\` | \`${value === '' ? '""' : value}\` | ${s.description.replace(/\|/g, '\\|')}${note} |`);
  }
  return rows.join('\n');
}
