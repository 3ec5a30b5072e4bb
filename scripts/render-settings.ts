/** Rewrites the settings table in README.md between its markers. */
import { readFileSync, writeFileSync } from 'node:fs';
import { renderSettingsTable } from '../src/config/settings-table.js';

const file = new URL('../README.md', import.meta.url);
const readme = readFileSync(file, 'utf8');
const next = readme.replace(/<!-- settings:start -->[\s\S]*<!-- settings:end -->/, `<!-- settings:start -->\n${renderSettingsTable()}\n<!-- settings:end -->`);
writeFileSync(file, next);
