// The config as it is being assembled from defaults, file, environment and flags.
import { checkConfig } from './checks.js';
import { at, emptyRecord } from './entries.js';
import { SETTINGS, SETTINGS_BY_NAME, type DatabaseConfig, type PgmuxConfig, type SettingValue, type UserConfig } from './schema.js';

export class ConfigDraft {
  private readonly settings = new Map<string, SettingValue>(SETTINGS.map((s) => [s.name, s.default]));
  /** Dotted path → the env var or flag that set it, so later checks can name the right source. */
  private readonly origins = new Map<string, string>();
  databases = emptyRecord<DatabaseConfig>();
  users = emptyRecord<UserConfig>();

  /** Validates and sets a global setting; `key` is what an error names (path, env var or flag). */
  setSetting(name: string, raw: unknown, key: string): void {
    const setting = SETTINGS_BY_NAME.get(name);
    if (setting === undefined) throw new Error(`internal: no setting named ${name}`);
    this.settings.set(name, at(key, () => setting.parse(raw)));
    this.origins.set(name, key);
  }

  /** Records that `paths` were set by `source` (e.g. DATABASE_URL). */
  setOrigin(source: string, ...paths: string[]): void {
    for (const path of paths) this.origins.set(path, source);
  }

  /** Cross-checks and freezes. */
  build(): PgmuxConfig {
    // Safe: the map holds every name in SETTINGS, each value produced by that setting's parser.
    const config = {
      ...(Object.fromEntries(this.settings) as unknown as Omit<PgmuxConfig, 'databases' | 'users'>),
      databases: this.databases,
      users: this.users,
    };
    checkConfig(config, (path) => this.origins.get(path) ?? path);
    return deepFreeze(config);
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
