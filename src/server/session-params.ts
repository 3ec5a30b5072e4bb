/**
 * Names and rules for the session parameters pgmux keeps in step between a client and whichever
 * server connection serves it. No dependencies, so every layer can use it.
 */

/**
 * Reported GUCs a client may change and pgmux keeps in step across server connections. Other
 * reported ones (server_version, is_superuser, ...) are facts about the server, not settings.
 * `session_authorization` is reported too, and follows the client like a setting.
 */
export const SYNCED_PARAMETERS: ReadonlySet<string> = new Set([
  'application_name',
  'client_encoding',
  'DateStyle',
  'default_transaction_read_only',
  'IntervalStyle',
  'search_path',
  'session_authorization',
  'standard_conforming_strings',
  'TimeZone',
]);

/**
 * The current role (SET ROLE). Not reported and not in pg_settings, and RESET ALL leaves it
 * alone, so pgmux asks for it with current_setting('role') and keeps it as a parameter of its
 * own; every client starts with NONE (its login role).
 */
export const ROLE = 'role';
export const NO_ROLE = 'none';
export const SESSION_AUTHORIZATION = 'session_authorization';

/** GUC names whose canonical spelling is not all lower case (as pg_settings and ParameterStatus spell them). */
const MIXED_CASE: ReadonlyMap<string, string> = new Map([
  ['datestyle', 'DateStyle'],
  ['intervalstyle', 'IntervalStyle'],
  ['timezone', 'TimeZone'],
]);

/**
 * PostgreSQL compares GUC names case-insensitively; pgmux keys every parameter map by the
 * canonical spelling, so `timezone` from libpq's PGTZ and `TimeZone` from a ParameterStatus are
 * one parameter.
 */
export function canonicalGucName(name: string): string {
  const lower = name.toLowerCase();
  return MIXED_CASE.get(lower) ?? lower;
}

/** Whether a ParameterStatus for `name` should update what the client expects. */
export function tracksParameter(params: ReadonlyMap<string, string>, name: string): boolean {
  return SYNCED_PARAMETERS.has(name) || params.has(name);
}

/**
 * Startup parameters a new server connection may be opened with (see Pool.openServer): reported
 * ones, so the pool knows every server's value and can set it back for other clients. Opening a
 * server with a client's own values makes RESET on it return to them, as PostgreSQL does.
 */
export function opensServerWith(name: string): boolean {
  return SYNCED_PARAMETERS.has(name) && name !== 'application_name' && name !== SESSION_AUTHORIZATION;
}

/** Identifies a set of startup settings (equal sets, equal keys; '' for none). */
export function startupKeyOf(settings: ReadonlyMap<string, string>): string {
  let key = '';
  for (const [name, value] of [...settings].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) key += `${name.length}:${name}${value.length}:${value}`;
  return key;
}
