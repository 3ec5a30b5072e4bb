/**
 * RESET in PostgreSQL returns a setting to the session's reset value, which for a setting the
 * client gave at startup is that startup value. A pooled server's reset values are its own (the
 * defaults, or the startup settings of the client it was opened for), so pgmux follows a lone
 * `RESET name`, `RESET ALL` or `SET name TO DEFAULT` with statements that set the client's
 * startup values again, in the same query: the client gets the RESET's own answer only (the link
 * passes the first result, see Reply.FirstResultOnly), and since PostgreSQL reports a parameter
 * once, with its value at the end of the query, the ParameterStatus it sees is PostgreSQL's too.
 */
import type { OwnStatements } from '../link/request-ledger.js';
import { characters, type Insertion } from '../protocol/error-rewrite.js';
import { canonicalGucName } from '../server/session-params.js';
import { QUOTED_KEYWORDS } from './sql-keywords.js';
import { statementsOf } from './sql-classifier.js';

/** Cheap test before any splitting: most queries contain neither word. */
const CANDIDATE = /reset|default|zone/i;

/**
 * A query rewritten by pgmux: the text to send, which of its results (0-based, one per statement) are pgmux's,
 * and where pgmux's text went (to count error positions in the client's text).
 */
export interface RewrittenQuery {
  sql: string;
  own: OwnStatements;
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
  const insertions: Insertion[] = [];
  let out = '';
  let from = 0;
  let results = 0;
  for (const statement of statements) {
    results++;
    const names = resetNames(statement.text);
    if (names === null) continue;
    let follow = '';
    for (const [name, value] of settingsToRestore(names, startup, serverResetValues)) {
      follow += `;${restoreStatement(name, value)}`;
      ownResults.push(results++);
    }
    if (follow === '') continue;
    // After the statement, before its `;`; the line break ends a trailing `--` comment.
    out += sql.slice(from, statement.end);
    const inserted = `\n${follow}`;
    insertions.push({ at: characters(out) + 1, length: characters(inserted) });
    out += inserted;
    from = statement.end;
  }
  if (ownResults.length === 0) return null;
  return { sql: out + sql.slice(from), own: { results: ownResults, insertions } };
}

/** The startup settings (name, value) a RESET of `names` takes away from the client on this server (its own reset value differs). */
function settingsToRestore(
  names: readonly string[] | 'all',
  startup: ReadonlyMap<string, string>,
  serverResetValues: ReadonlyMap<string, string> | null,
): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const name of names === 'all' ? startup.keys() : names) {
    const value = startup.get(name);
    if (value !== undefined && serverResetValues?.get(name) !== value) out.push([name, value]);
  }
  return out;
}

/**
 * The extended protocol's RESET (a Parse of `RESET ALL`, JDBC's and psycopg's way): one statement per setting to
 * run after it, each returning no rows (their answers are swallowed: StatementRouter.executed). Empty when the
 * RESET takes nothing of the client's away.
 */
export function restoreAfterReset(names: readonly string[] | 'all', startup: ReadonlyMap<string, string>, serverResetValues: ReadonlyMap<string, string> | null): string[] {
  if (startup.size === 0) return [];
  return settingsToRestore(names, startup, serverResetValues).map(([name, value]) => {
    const statement = restoreStatement(name, value);
    // set_config's row would reach the client: the same call, filtered to no rows (its value is never null).
    return statement.startsWith('SELECT ') ? `SELECT FROM ${statement.slice('SELECT '.length)} AS restored WHERE restored IS NULL` : statement;
  });
}

/**
 * Settings whose value is a list of identifiers (GUC_LIST_QUOTE). `SET name TO 'a', 'b'` stores each element
 * through quote_identifier(), so it stores the client's value exactly only when the client wrote each element
 * as quote_identifier() would (`public, "$user"`, not `Public` or `"public"`); otherwise set_config, which
 * stores the value as written.
 */
const IDENTIFIER_LISTS = new Set(['search_path', 'temp_tablespaces', 'local_preload_libraries', 'session_preload_libraries']);

/** Lists of plain words (GUC_LIST_INPUT): always set_config. DateStyle's value is canonical, so SET is exact. */
const WORD_LISTS = new Set(['plpgsql.extra_warnings', 'plpgsql.extra_errors']);

/** A string literal whatever standard_conforming_strings says. */
function literal(value: string): string {
  return `E'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** PostgreSQL's quote_identifier(). */
export function quoteIdentifier(name: string): string {
  if (/^[a-z_][a-z0-9_]*$/.test(name) && !QUOTED_KEYWORDS.has(name)) return name;
  return `"${name.replace(/"/g, '""')}"`;
}

/** The elements of an identifier list as PostgreSQL splits it (SplitIdentifierString), or null if it is not one. */
export function splitIdentifierList(value: string): string[] | null {
  const names: string[] = [];
  let i = 0;
  const space = (): void => {
    while (i < value.length && /\s/.test(value[i])) i++;
  };
  space();
  if (i === value.length) return names;
  for (;;) {
    let name = '';
    if (value[i] === '"') {
      for (i++; ; i++) {
        if (i >= value.length) return null;
        if (value[i] === '"') {
          if (value[i + 1] !== '"') break;
          i++;
        }
        name += value[i];
      }
      i++;
    } else {
      const from = i;
      while (i < value.length && value[i] !== ',' && !/\s/.test(value[i])) i++;
      if (i === from) return null;
      name = value.slice(from, i).replace(/[A-Z]+/g, (m) => m.toLowerCase());
    }
    names.push(name);
    space();
    if (i === value.length) return names;
    if (value[i] !== ',') return null;
    i++;
    space();
  }
}

/**
 * A statement that gives `name` the session value `value`. SET where it stores exactly that value: a SELECT
 * (set_config) takes a snapshot, after which a later `BEGIN ISOLATION LEVEL ...` or `SET TRANSACTION ...` of
 * the same query fails (25001), where after the client's RESET alone it would not.
 */
export function restoreStatement(name: string, value: string): string {
  const key = name.toLowerCase();
  const id = `"${name.replace(/"/g, '""')}"`;
  if (key === 'datestyle') return `SET ${id} TO ${value.split(',').map((v) => literal(v.trim())).join(', ')}`;
  if (IDENTIFIER_LISTS.has(key)) {
    const names = splitIdentifierList(value);
    if (names !== null && names.length > 0 && names.map(quoteIdentifier).join(', ') === value) return `SET ${id} TO ${names.map(literal).join(', ')}`;
  }
  if (IDENTIFIER_LISTS.has(key) || WORD_LISTS.has(key)) return `SELECT pg_catalog.set_config(${literal(name)}, ${literal(value)}, false)`;
  return `SET ${id} TO ${literal(value)}`;
}

/** What a prepared statement's text resets when executed ('all', names), or null if it is not a lone RESET. */
export function preparedResetNames(sql: string): readonly string[] | 'all' | null {
  if (!CANDIDATE.test(sql)) return null;
  const statements = statementsOf(sql);
  return statements.length === 1 ? resetNames(statements[0].text) : null;
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
