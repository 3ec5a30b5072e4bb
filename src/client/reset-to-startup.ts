/**
 * RESET in PostgreSQL returns a setting to the session's reset value, which for a setting the
 * client gave at startup is that startup value. A pooled server's reset values are its own (the
 * defaults, or the startup settings of the client it was opened for), so pgmux follows a lone
 * `RESET name`, `RESET ALL` or `SET name TO DEFAULT` with statements that set the client's
 * startup values again, in the same query: the client gets the RESET's own answer only (the link
 * passes the first result, see Reply.FirstResultOnly), and since PostgreSQL reports a parameter
 * once, with its value at the end of the query, the ParameterStatus it sees is PostgreSQL's too.
 */
import { canonicalGucName } from '../server/session-params.js';
import { statementsOf } from './sql-classifier.js';

/** Cheap test before any splitting: most queries contain neither word. */
const CANDIDATE = /reset|default|zone/i;

/** A query rewritten by pgmux: the text to send, and which of its results (0-based, one per statement) are pgmux's. */
export interface RewrittenQuery {
  sql: string;
  ownResults: number[];
}

/**
 * The query to send instead of `sql`, or null to send it as it is. `startup` holds the client's
 * startup settings; `serverResetValues` what the server itself resets to for the settings it was
 * opened with (others reset to the server's defaults, never to the client's values).
 */
export function queryWithStartupValues(sql: string, startup: ReadonlyMap<string, string>, serverResetValues: ReadonlyMap<string, string> | null): RewrittenQuery | null {
  if (startup.size === 0 || !CANDIDATE.test(sql)) return null;
  const statements = statementsOf(sql);
  const ownResults: number[] = [];
  let out = '';
  let from = 0;
  let results = 0;
  for (const statement of statements) {
    results++;
    const names = resetNames(statement.text);
    if (names === null) continue;
    let follow = '';
    for (const name of names === 'all' ? startup.keys() : names) {
      const value = startup.get(name);
      if (value === undefined || serverResetValues?.get(name) === value) continue;
      follow += `;SELECT pg_catalog.set_config('${name.replace(/'/g, "''")}', '${value.replace(/'/g, "''")}', false)`;
      ownResults.push(results++);
    }
    if (follow === '') continue;
    // After the statement, before its `;`; the line break ends a trailing `--` comment.
    out += `${sql.slice(from, statement.end)}\n${follow}`;
    from = statement.end;
  }
  if (ownResults.length === 0) return null;
  return { sql: out + sql.slice(from), ownResults };
}

/** The settings a lone statement resets, 'all', or null when it is not a reset. */
function resetNames(statement: string): string[] | 'all' | null {
  const words = statement.split(/\s+/);
  const w = (i: number): string => (words[i] ?? '').toLowerCase();
  if (w(0) === 'reset') {
    if (words.length === 2 && w(1) === 'all') return 'all';
    if (words.length === 3 && w(1) === 'time' && w(2) === 'zone') return ['TimeZone'];
    if (words.length === 2 && w(1) !== 'role' && w(1) !== 'session') return [gucName(words[1])];
    return null;
  }
  if (w(0) !== 'set') return null;
  let i = w(1) === 'session' ? 2 : 1;
  if (w(i) === 'local') return null;
  if (w(i) === 'time' && w(i + 1) === 'zone') return words.length === i + 3 && (w(i + 2) === 'default' || w(i + 2) === 'local') ? ['TimeZone'] : null;
  const name = words[i];
  i++;
  if (name === undefined || name.includes('=')) {
    // SET name=DEFAULT written without spaces
    const m = /^([^=]+)=(default)$/i.exec(name ?? '');
    return m !== null && words.length === i ? [gucName(m[1])] : null;
  }
  if (w(i) === '=' || w(i) === 'to') return words.length === i + 2 && w(i + 1) === 'default' ? [gucName(name)] : null;
  if (w(i) === '=default') return words.length === i + 1 ? [gucName(name)] : null;
  return null;
}

function gucName(word: string): string {
  return canonicalGucName(word.startsWith('"') && word.endsWith('"') ? word.slice(1, -1) : word);
}
