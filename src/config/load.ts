// loadConfig: defaults < YAML file < environment < command line, validated once into a frozen object.
import { cliKey, parseCli } from './cli.js';
import { ConfigDraft } from './draft.js';
import { at, checkUrlPassword, isMap, parseDatabase, parseEntries, parseUser } from './entries.js';
import { ConfigError } from './errors.js';
import { readConfigFile } from './file.js';
import { DATABASE_FIELDS, SETTINGS, SETTINGS_BY_NAME, USER_FIELDS, type PgmuxConfig } from './schema.js';
import { didYouMean } from './suggest.js';
import { parsePostgresUrl } from './url.js';
import { show } from './values.js';

export { ConfigError } from './errors.js';

export interface LoadOptions {
  /** Arguments after the script name; default `process.argv.slice(2)`. */
  argv?: readonly string[];
  /** Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Where relative config paths are resolved; default `process.cwd()`. */
  cwd?: string;
}

export interface LoadedConfig {
  config: PgmuxConfig;
  /** Absolute path of the file read, or null when none was. */
  configPath: string | null;
}

/** Loads and validates the whole config; throws ConfigError naming the offending key. */
export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const cli = parseCli(options.argv ?? process.argv.slice(2));
  const file = readConfigFile(cli.configPath, env, options.cwd ?? process.cwd());

  const draft = new ConfigDraft();
  if (file !== null) applyFile(draft, file.document, file.path);
  applyEnv(draft, env);
  for (const [name, value] of Object.entries(cli.overrides)) draft.setSetting(name, value, cliKey(name));
  return { config: draft.build(), configPath: file?.path ?? null };
}

const TOP_LEVEL_KEYS = [...SETTINGS_BY_NAME.keys(), 'databases', 'users'];

function applyFile(draft: ConfigDraft, document: unknown, path: string): void {
  if (document === null || document === undefined) return; // an empty file (or only comments)
  if (!isMap(document)) throw new ConfigError(path, `must contain a map of settings at the top level (got ${show(document)})`);
  for (const [key, value] of Object.entries(document)) {
    if (key === 'databases') draft.databases = parseEntries(value, key, parseDatabase);
    else if (key === 'users') draft.users = parseEntries(value, key, (_name, raw, entryPath) => parseUser(raw, entryPath));
    else if (SETTINGS_BY_NAME.has(key)) draft.setSetting(key, value, key);
    else throw new ConfigError(key, `is not a known setting${unknownKeyHint(key)}`);
  }
}

function unknownKeyHint(key: string): string {
  const suggestion = didYouMean(key, TOP_LEVEL_KEYS);
  if (suggestion !== '') return suggestion;
  if (Object.hasOwn(DATABASE_FIELDS, key) || Object.hasOwn(USER_FIELDS, key)) {
    return `; ${key} belongs inside an entry under databases: or users:`;
  }
  if (key === 'pgbouncer' || key === 'pgmux') return '; global settings go at the top level, not under a section';
  return '';
}

function applyEnv(draft: ConfigDraft, env: NodeJS.ProcessEnv): void {
  // Only names of settings are looked at: the environment is full of unrelated variables.
  for (const setting of SETTINGS) {
    const name = setting.name.toUpperCase();
    const value = env[name];
    if (value !== undefined) draft.setSetting(setting.name, value, name);
  }
  const url = env.DATABASE_URL;
  if (url !== undefined && url.trim() !== '') applyDatabaseUrl(draft, url);
}

/**
 * DATABASE_URL defines a database named after the URL's database, and a user with the URL's credentials so that
 * clients log in to pgmux as they would to the server (as PgBouncer container images do). It replaces where the
 * database points, and the user's password, but keeps other keys the file gave those entries.
 */
function applyDatabaseUrl(draft: ConfigDraft, url: string): void {
  const KEY = 'DATABASE_URL';
  const parts = at(KEY, () => parsePostgresUrl(url));
  const name = parts.dbname ?? 'postgres';
  const path = `databases.${name}`;
  draft.databases[name] = {
    ...draft.databases[name],
    host: parts.host ?? '127.0.0.1',
    port: parts.port ?? 5432,
    dbname: name,
  };
  draft.setOrigin(KEY, path, `${path}.host`, `${path}.port`, `${path}.dbname`);
  if (parts.user === undefined) return;

  const user = { ...draft.users[parts.user] };
  if (parts.password !== undefined) {
    checkUrlPassword(parts.password, KEY);
    user.password = parts.password;
  }
  draft.users[parts.user] = user;
  draft.setOrigin(KEY, `users.${parts.user}`, `users.${parts.user}.password`);
}
