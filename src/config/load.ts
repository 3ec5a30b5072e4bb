// loadConfig: defaults < YAML file < environment < command line, validated once into a frozen object.
import { cliKey, parseCli } from './cli.js';
import { applyContainerDatabase, applyPrefixedSettings, containerVariablesRead } from './container-env.js';
import { envTypos } from './env-typos.js';
import { ConfigDraft } from './draft.js';
import { at, checkUrlPassword, isMap, parseDatabase, parseEntries, parseUser } from './entries.js';
import { ConfigError } from './errors.js';
import { DEFAULT_CONFIG_FILE, readConfigFile, readPgbouncerIni } from './file.js';
import { formatIniNote, type PgbouncerImport } from './pgbouncer-ini.js';
import { DATABASE_FIELDS, SETTINGS, SETTINGS_BY_NAME, USER_FIELDS, type PgmuxConfig } from './schema.js';
import { didYouMean } from './suggest.js';
import { parsePostgresUrl, type PostgresUrl } from './url.js';
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
  /** Where the configuration came from, by name only (log it at startup: describeSources). */
  sources: ConfigSources;
}

/** The file and the names of the environment variables and flags the configuration was read from; no values. */
export interface ConfigSources {
  readonly file: string | null;
  readonly env: readonly string[];
  readonly flags: readonly string[];
}

/** One line for the startup log: which file, variables and flags, or that there were none. */
export function describeSources(sources: ConfigSources): string {
  const file = sources.file === null ? `no config file (${DEFAULT_CONFIG_FILE} does not exist; --config or PGMUX_CONFIG names one)` : `file ${sources.file}`;
  const env = sources.env.length === 0 ? 'no environment variables' : `environment ${sources.env.join(', ')}`;
  const flags = sources.flags.length === 0 ? '' : `, flags ${sources.flags.join(', ')}`;
  return `configuration read from ${file}, ${env}${flags}`;
}

/** Something about the configuration worth a log line at startup; never contains a secret. */
export interface ConfigNotice {
  readonly level: 'warn' | 'info';
  readonly message: string;
  /** Fields of the structured log line. */
  readonly fields: Readonly<Record<string, unknown>>;
}

/**
 * Loads and validates the whole config; throws ConfigError naming the offending key, or ConfigErrors with every
 * problem of the file, environment and flags when there are several.
 */
export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const cli = parseCli(options.argv ?? process.argv.slice(2));
  const cwd = options.cwd ?? process.cwd();
  const draft = new ConfigDraft();
  const notices: ConfigNotice[] = [];
  const envRead: string[] = [];
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
    if (cli.configPath === undefined && env.PGMUX_CONFIG) envRead.push('PGMUX_CONFIG');
  }
  envRead.push(...applyEnv(draft, env, notices));
  for (const [name, value] of Object.entries(cli.overrides)) draft.problems.attempt(() => draft.setSetting(name, value, cliKey(name)));
  const config = draft.build();
  const flags = [
    ...(cli.configPath === undefined ? [] : ['--config']),
    ...(cli.pgbouncerIni === undefined ? [] : ['--pgbouncer-ini']),
    ...Object.keys(cli.overrides).map(cliKey),
  ];
  return { config, configPath, notices, sources: { file: configPath, env: envRead, flags } };
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
  // Each key on its own: every problem of the file is reported in one go.
  for (const [key, value] of Object.entries(document)) {
    draft.problems.attempt(() => {
      if (key === 'databases') draft.databases = parseEntries(value, key, parseDatabase);
      else if (key === 'users') draft.users = parseEntries(value, key, (_name, raw, entryPath) => parseUser(raw, entryPath));
      else if (SETTINGS_BY_NAME.has(key)) draft.setSetting(key, value, key);
      else throw new ConfigError(key, `is not a known setting${unknownKeyHint(key)}`);
    });
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

/** Applies the environment; returns the names of the variables that configured something (no values). */
function applyEnv(draft: ConfigDraft, env: NodeJS.ProcessEnv, notices: ConfigNotice[]): string[] {
  const read: string[] = [];
  // bitnami/pgbouncer's PGBOUNCER_<SETTING> names first, so pgmux's own names win.
  const unknown = applyPrefixedSettings(draft, env);
  if (unknown.length > 0) {
    notices.push({ level: 'warn', message: `environment: PGBOUNCER_* variables pgmux does not support are ignored: ${unknown.join(', ')}`, fields: { unsupported: unknown } });
  }
  read.push(...Object.keys(env).filter((name) => name.startsWith('PGBOUNCER_') && !unknown.includes(name) && env[name] !== undefined).sort());
  // Only names of settings are looked at: the environment is full of unrelated variables.
  for (const setting of SETTINGS) {
    const name = setting.name.toUpperCase();
    const value = env[name];
    if (value === undefined) continue;
    draft.problems.attempt(() => draft.setSetting(setting.name, value, name));
    read.push(name);
  }
  const url = env.DATABASE_URL;
  if (url !== undefined && url.trim() !== '') {
    draft.problems.attempt(() => applyDatabaseUrl(draft, url, env, notices));
    read.push('DATABASE_URL');
  }
  // DB_HOST/DB_USER/... (edoburu/pgbouncer) or POSTGRESQL_HOST/... (bitnami/pgbouncer), unless DATABASE_URL is set.
  draft.problems.attempt(() => applyContainerDatabase(draft, env));
  read.push(...containerVariablesRead(env));
  const typos = envTypos(env);
  if (typos.length > 0) {
    const list = typos.map((t) => `${t.name} (did you mean ${t.suggestion}?)`).join(', ');
    notices.push({ level: 'warn', message: `environment: not a pgmux variable, ignored: ${list}`, fields: { ignored: typos.map((t) => t.name), suggestions: typos.map((t) => t.suggestion) } });
  }
  return read;
}

/**
 * DATABASE_URL defines a database named after the URL's database, and a user with the URL's credentials so that
 * clients log in to pgmux as they would to the server (as PgBouncer container images do). It replaces where the
 * database points, and the user's password, but keeps other keys the file gave those entries. Its query parameters
 * (sslmode, connect_timeout...) set the global settings they map to (url-params.ts).
 */
function applyDatabaseUrl(draft: ConfigDraft, url: string, env: NodeJS.ProcessEnv, notices: ConfigNotice[]): void {
  const KEY = 'DATABASE_URL';
  const parts = at(KEY, () => parsePostgresUrl(url));
  const name = parts.dbname ?? 'postgres';
  const path = `databases.${name}`;
  draft.databases[name] = {
    ...draft.databases[name],
    host: parts.host ?? '127.0.0.1',
    port: parts.port ?? 5432,
    dbname: name,
    ...(parts.application_name === undefined ? {} : { application_name: parts.application_name }),
    ...(parts.options === undefined ? {} : { options: parts.options }),
  };
  draft.setOrigin(KEY, path, `${path}.host`, `${path}.port`, `${path}.dbname`);
  applyUrlSettings(draft, parts, env);
  if (parts.settings !== undefined) {
    // Said at startup, so that what TLS towards the server is in effect, and why, is never a guess.
    const applied = parts.settings.map((s) => `${s.setting}=${s.setting === 'server_connect_timeout' ? `${s.value}ms` : s.value} (${s.from})`);
    notices.push({ level: 'info', message: `DATABASE_URL: its parameters set ${applied.join(', ')}`, fields: { settings: applied } });
  }
  if (parts.user === undefined) return;

  const user = { ...draft.users[parts.user] };
  if (parts.password !== undefined) {
    checkUrlPassword(parts.password, KEY);
    user.password = parts.password;
  }
  draft.users[parts.user] = user;
  draft.setOrigin(KEY, `users.${parts.user}`, `users.${parts.user}.password`);
}

/**
 * The URL's sslmode & co. win over the file, as the environment does; a variable naming the same setting
 * (SERVER_TLS_SSLMODE) with another value is a contradiction, refused rather than settled by a rule nobody remembers.
 */
function applyUrlSettings(draft: ConfigDraft, parts: PostgresUrl, env: NodeJS.ProcessEnv): void {
  for (const { setting, value, from } of parts.settings ?? []) {
    const variable = [setting.toUpperCase(), `PGBOUNCER_${setting.toUpperCase()}`].find((name) => env[name] !== undefined);
    if (variable !== undefined && draft.get(setting) !== value) {
      throw new ConfigError('DATABASE_URL', `has ${from}, and ${variable} sets ${setting} to something else: give one`);
    }
    draft.setSetting(setting, SETTINGS_BY_NAME.get(setting)?.kind === 'duration' ? `${value}ms` : value, `DATABASE_URL (${from})`);
  }
}
