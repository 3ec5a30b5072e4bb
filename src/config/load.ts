// loadConfig: defaults < YAML file < environment < command line, validated once into a frozen object.
import { cliKey, parseCli } from './cli.js';
import { applyContainerDatabase, applyPrefixedSettings } from './container-env.js';
import { ConfigDraft } from './draft.js';
import { at, checkUrlPassword, isMap, parseDatabase, parseEntries, parseUser } from './entries.js';
import { ConfigError } from './errors.js';
import { readConfigFile, readPgbouncerIni } from './file.js';
import { formatIniNote, type PgbouncerImport } from './pgbouncer-ini.js';
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
  /** Absolute path of the file read (YAML, or pgbouncer.ini with --pgbouncer-ini), or null when none was. */
  configPath: string | null;
  /** What the operator should be told at startup (settings pgmux does not support, ...); log each one. */
  notices: readonly ConfigNotice[];
}

/** Something about the configuration worth a log line at startup; never contains a secret. */
export interface ConfigNotice {
  readonly level: 'warn' | 'info';
  readonly message: string;
  /** Fields of the structured log line. */
  readonly fields: Readonly<Record<string, unknown>>;
}

/** Loads and validates the whole config; throws ConfigError naming the offending key. */
export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const cli = parseCli(options.argv ?? process.argv.slice(2));
  const cwd = options.cwd ?? process.cwd();
  const draft = new ConfigDraft();
  const notices: ConfigNotice[] = [];
  let configPath: string | null = null;
  if (cli.pgbouncerIni !== undefined) {
    // The PgBouncer file takes the place of the YAML file; environment and flags still apply on top.
    if (cli.configPath !== undefined) throw new ConfigError('--pgbouncer-ini', 'cannot be combined with --config: give one configuration file');
    if (env.PGMUX_CONFIG) throw new ConfigError('PGMUX_CONFIG', 'is set, and --pgbouncer-ini names another configuration file: give one');
    const ini = readPgbouncerIni(cli.pgbouncerIni, cwd);
    applyFile(draft, ini.document, ini.path);
    notices.push(...iniNotices(ini));
    configPath = ini.path;
  } else {
    const file = readConfigFile(cli.configPath, env, cwd);
    if (file !== null) applyFile(draft, file.document, file.path);
    configPath = file?.path ?? null;
  }
  applyEnv(draft, env, notices);
  for (const [name, value] of Object.entries(cli.overrides)) draft.setSetting(name, value, cliKey(name));
  return { config: draft.build(), configPath, notices };
}

function iniNotices(ini: PgbouncerImport): ConfigNotice[] {
  const notices: ConfigNotice[] = [];
  if (ini.unsupported.length > 0) {
    notices.push({
      level: 'warn',
      message: `pgbouncer.ini: ${ini.unsupported.length} setting(s) pgmux does not support have no effect: ${ini.unsupported.map((n) => n.key).join(', ')}`,
      fields: { unsupported: ini.unsupported.map(formatIniNote) },
    });
  }
  if (ini.ignored.length > 0) {
    notices.push({
      level: 'info',
      message: `pgbouncer.ini: ignored as meaningless for pgmux: ${ini.ignored.map((n) => n.key).join(', ')}`,
      fields: { ignored: ini.ignored.map(formatIniNote) },
    });
  }
  return notices;
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

function applyEnv(draft: ConfigDraft, env: NodeJS.ProcessEnv, notices: ConfigNotice[]): void {
  // bitnami/pgbouncer's PGBOUNCER_<SETTING> names first, so pgmux's own names win.
  const unknown = applyPrefixedSettings(draft, env);
  if (unknown.length > 0) {
    notices.push({ level: 'warn', message: `environment: PGBOUNCER_* variables pgmux does not support are ignored: ${unknown.join(', ')}`, fields: { unsupported: unknown } });
  }
  // Only names of settings are looked at: the environment is full of unrelated variables.
  for (const setting of SETTINGS) {
    const name = setting.name.toUpperCase();
    const value = env[name];
    if (value !== undefined) draft.setSetting(setting.name, value, name);
  }
  const url = env.DATABASE_URL;
  if (url !== undefined && url.trim() !== '') applyDatabaseUrl(draft, url);
  // DB_HOST/DB_USER/... (edoburu/pgbouncer) or POSTGRESQL_HOST/... (bitnami/pgbouncer), unless DATABASE_URL is set.
  applyContainerDatabase(draft, env);
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
