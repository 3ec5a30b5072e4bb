// The configuration module's public API.
export { cliKey, HELP_TEXT, parseCli, type CliOptions } from './cli.js';
export { ConfigError, ConfigErrors } from './errors.js';
export { DEFAULT_CONFIG_FILE } from './file.js';
export { describeSources, loadConfig, type ConfigNotice, type ConfigSources, type LoadedConfig, type LoadOptions } from './load.js';
export { runImportCommand } from './import-command.js';
export { formatIniNote, parsePgbouncerIni, type IniNote, type PgbouncerImport } from './pgbouncer-ini.js';
export { passwordKind, type PasswordKind } from './password.js';
export {
  AUTH_TYPES,
  DATABASE_FIELDS,
  formatSettingValue,
  LOG_LEVELS,
  POOL_MODES,
  TLS_MODES,
  type TlsMode,
  SETTINGS,
  SETTINGS_BY_NAME,
  USER_FIELDS,
  type AuthType,
  type DatabaseConfig,
  type GlobalSettings,
  type LogLevel,
  type PgmuxConfig,
  type PoolMode,
  type Setting,
  type SettingName,
  type UserConfig,
} from './schema.js';
export { resolveDatabase, WILDCARD_DATABASE } from './resolve-database.js';
export { formatDuration, MAX_DURATION_MS } from './values.js';
