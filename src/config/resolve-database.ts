// Which database entry serves the name a client asked for: its own entry, else the wildcard "*".
import { ADMIN_DATABASES } from './checks.js';
import type { DatabaseConfig, PgmuxConfig } from './schema.js';

/**
 * The entry named "*" (PgBouncer's fallback database) serves every database name that has no entry of its own,
 * connecting to the upstream database of the same name unless the entry sets `dbname` itself.
 */
export const WILDCARD_DATABASE = '*';

/**
 * The database entry for `name`, or undefined when there is none (the client gets 3D000). A wildcard match is a
 * fresh object with `dbname` filled in; an exact match is the configured (frozen) entry itself. The names of the
 * admin console and "*" itself never match the wildcard.
 */
export function resolveDatabase(config: Pick<PgmuxConfig, 'databases'>, name: string): DatabaseConfig | undefined {
  if (name === WILDCARD_DATABASE) return undefined;
  if (Object.hasOwn(config.databases, name)) return config.databases[name];
  if (!Object.hasOwn(config.databases, WILDCARD_DATABASE) || name === '' || ADMIN_DATABASES.includes(name)) return undefined;
  const wildcard = config.databases[WILDCARD_DATABASE];
  // A wildcard entry without its own dbname got the entry name ("*") as dbname when it was parsed.
  return wildcard.dbname === WILDCARD_DATABASE ? { ...wildcard, dbname: name } : wildcard;
}
