/**
 * Environment variables of the widely used PgBouncer container images, so a compose file or Kubernetes manifest
 * written for them can point at pgmux unchanged. pgmux's own names (DATABASE_URL, POOL_MODE, ...: every setting
 * under its upper-case name) are handled in load.ts; this module adds:
 *
 * - edoburu/pgbouncer: DB_HOST, DB_PORT (5432), DB_NAME (default "*": every database name, each to the same-named
 *   upstream database), DB_USER, DB_PASSWORD. They define one database and its user, as DATABASE_URL does, and
 *   take effect only when DB_HOST is set (DB_USER and friends are common names in unrelated environments).
 *   DATABASE_URL wins over them, as in that image. Unlike that image, DB_USER does not become auth_user: set
 *   AUTH_USER for that.
 * - bitnami/pgbouncer: PGBOUNCER_<SETTING> for any pgmux setting (PGBOUNCER_POOL_MODE...), PGBOUNCER_PORT and
 *   PGBOUNCER_BIND_ADDRESS for listen_port/listen_addr; and, when POSTGRESQL_HOST is set, the database
 *   PGBOUNCER_DATABASE (default "postgres") on POSTGRESQL_HOST:POSTGRESQL_PORT, database POSTGRESQL_DATABASE
 *   (default "postgres"), user POSTGRESQL_USERNAME (default "postgres") with POSTGRESQL_PASSWORD, forced as the
 *   upstream user when PGBOUNCER_SET_DATABASE_USER=yes. The image's defaults for settings (port 6432, session
 *   mode) are not adopted: pgmux's apply unless the variable is set.
 * A pgmux name (POOL_MODE) wins over the prefixed one (PGBOUNCER_POOL_MODE).
 */
import { ConfigError } from './errors.js';
import { SETTINGS_BY_NAME, type SettingName } from './schema.js';
import { intParser, parseBool } from './values.js';
import { at, checkUrlPassword } from './entries.js';
import type { ConfigDraft } from './draft.js';
import { WILDCARD_DATABASE } from './resolve-database.js';

/** bitnami names that are not PGBOUNCER_ + a pgmux setting name. */
const BITNAMI_ALIASES: Readonly<Record<string, SettingName>> = {
  PGBOUNCER_PORT: 'listen_port',
  PGBOUNCER_BIND_ADDRESS: 'listen_addr',
};

/** PGBOUNCER_* variables this module reads itself (not settings). */
const BITNAMI_DATABASE_VARS = ['PGBOUNCER_DATABASE', 'PGBOUNCER_SET_DATABASE_USER'];

/**
 * Global settings from PGBOUNCER_* variables; call before the unprefixed names are applied so those win. Returns
 * the PGBOUNCER_* variables pgmux does not understand (reported at startup, not silently dropped).
 */
export function applyPrefixedSettings(draft: ConfigDraft, env: NodeJS.ProcessEnv): string[] {
  const unknown: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('PGBOUNCER_') || value === undefined) continue;
    const setting = BITNAMI_ALIASES[name] ?? name.slice('PGBOUNCER_'.length).toLowerCase();
    if (SETTINGS_BY_NAME.has(setting)) {
      if (env[setting.toUpperCase()] === undefined) draft.problems.attempt(() => draft.setSetting(setting, value, name));
    } else if (!BITNAMI_DATABASE_VARS.includes(name)) {
      unknown.push(name);
    }
  }
  return unknown.sort();
}

const EDOBURU_VARS = ['DB_HOST', 'DB_PORT', 'DB_NAME', 'DB_USER', 'DB_PASSWORD'];
const BITNAMI_VARS = ['POSTGRESQL_HOST', 'POSTGRESQL_PORT', 'POSTGRESQL_DATABASE', 'POSTGRESQL_USERNAME', 'POSTGRESQL_PASSWORD', ...BITNAMI_DATABASE_VARS];

/** Every variable of this module's: known names, never "did you mean" material. */
export const CONTAINER_VARIABLES: readonly string[] = [...EDOBURU_VARS, ...BITNAMI_VARS, ...Object.keys(BITNAMI_ALIASES)];

/** The DB_* or POSTGRESQL_* variables applyContainerDatabase takes a database from (names only, for the startup log). */
export function containerVariablesRead(env: NodeJS.ProcessEnv): string[] {
  if (nonEmpty(env.DATABASE_URL) !== undefined) return [];
  const vars = nonEmpty(env.DB_HOST) !== undefined ? EDOBURU_VARS : nonEmpty(env.POSTGRESQL_HOST) !== undefined ? BITNAMI_VARS : [];
  return vars.filter((name) => env[name] !== undefined);
}

/**
 * The database and user of DB_* (edoburu) or POSTGRESQL_* (bitnami). Call after the file and DATABASE_URL
 * handling: DATABASE_URL, when set, makes these variables inert.
 */
export function applyContainerDatabase(draft: ConfigDraft, env: NodeJS.ProcessEnv): void {
  if (nonEmpty(env.DATABASE_URL) !== undefined) return;
  if (nonEmpty(env.DB_HOST) !== undefined) {
    defineDatabase(draft, {
      name: nonEmpty(env.DB_NAME) ?? WILDCARD_DATABASE,
      host: ['DB_HOST', env.DB_HOST as string],
      port: ['DB_PORT', nonEmpty(env.DB_PORT)],
      dbname: undefined,
      user: ['DB_USER', nonEmpty(env.DB_USER)],
      password: ['DB_PASSWORD', nonEmpty(env.DB_PASSWORD)],
      forceUser: false,
    });
  } else if (nonEmpty(env.POSTGRESQL_HOST) !== undefined) {
    defineDatabase(draft, {
      name: nonEmpty(env.PGBOUNCER_DATABASE) ?? 'postgres',
      host: ['POSTGRESQL_HOST', env.POSTGRESQL_HOST as string],
      port: ['POSTGRESQL_PORT', nonEmpty(env.POSTGRESQL_PORT)],
      dbname: nonEmpty(env.POSTGRESQL_DATABASE) ?? 'postgres',
      user: ['POSTGRESQL_USERNAME', nonEmpty(env.POSTGRESQL_USERNAME) ?? 'postgres'],
      password: ['POSTGRESQL_PASSWORD', nonEmpty(env.POSTGRESQL_PASSWORD)],
      forceUser: at('PGBOUNCER_SET_DATABASE_USER', () => parseBool(nonEmpty(env.PGBOUNCER_SET_DATABASE_USER) ?? 'no')),
    });
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

interface DatabaseVars {
  /** Name clients connect to. */
  name: string;
  host: [string, string];
  port: [string, string | undefined];
  /** Upstream database name; undefined: the entry name (or, for "*", the name the client asked for). */
  dbname: string | undefined;
  user: [string, string | undefined];
  password: [string, string | undefined];
  /** Log in upstream as this user whoever the client is. */
  forceUser: boolean;
}

function defineDatabase(draft: ConfigDraft, v: DatabaseVars): void {
  const path = `databases.${v.name}`;
  const [portVar, port] = v.port;
  const [userVar, user] = v.user;
  const [passwordVar, password] = v.password;
  if (password !== undefined) checkUrlPassword(password, passwordVar);
  if (password !== undefined && user === undefined) {
    throw new ConfigError(passwordVar, `needs ${userVar} as well: the password belongs to that user`);
  }
  const entry = {
    ...draft.databases[v.name],
    host: v.host[1],
    port: port === undefined ? 5432 : at(portVar, () => intParser(1, 65535)(port)),
    dbname: v.dbname ?? v.name,
    ...(v.forceUser && user !== undefined ? { user, ...(password === undefined ? {} : { password }) } : {}),
  };
  draft.databases[v.name] = entry;
  draft.setOrigin(v.host[0], path, `${path}.host`);
  draft.setOrigin(portVar, `${path}.port`);
  if (v.forceUser) draft.setOrigin(passwordVar, `${path}.password`);
  if (user === undefined) return;
  draft.users[user] = { ...draft.users[user], ...(password === undefined ? {} : { password }) };
  // Without a password, the "password is required" check names the variable to set.
  draft.setOrigin(passwordVar, `users.${user}`, `users.${user}.password`);
}
