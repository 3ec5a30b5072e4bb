// The config as it is being assembled from defaults, file, environment and flags.
import { checkConfig } from './checks.js';
import { at, emptyRecord } from './entries.js';
import { ConfigProblems } from './errors.js';
import { SETTINGS, SETTINGS_BY_NAME, type DatabaseConfig, type PgmuxConfig, type SettingValue, type UserConfig } from './schema.js';

export class ConfigDraft {
  private readonly settings = new Map<string, SettingValue>(SETTINGS.map((s) => [s.name, s.default]));
  /** Dotted path → the env var or flag that set it, so later checks can name the right source. */
  private readonly origins = new Map<string, string>();
  databases = emptyRecord<DatabaseConfig>();
  users = emptyRecord<UserConfig>();
  /** Problems of independent keys, collected so that build() reports them all at once. */
  readonly problems = new ConfigProblems();

  /** Validates and sets a global setting; `key` is what an error names (path, env var or flag). */
  setSetting(name: string, raw: unknown, key: string): void {
    const setting = SETTINGS_BY_NAME.get(name);
    if (setting === undefined) throw new Error(`internal: no setting named ${name}`);
    this.settings.set(name, at(key, () => setting.parse(raw)));
    this.origins.set(name, key);
  }

  /** The value a setting has so far. */
  get(name: string): SettingValue | undefined {
    return this.settings.get(name);
  }

  /** The env var or flag (or config path) that set `path` last, if anything did. */
  originOf(path: string): string | undefined {
    return this.origins.get(path);
  }

  /** Records that `paths` were set by `source` (e.g. DATABASE_URL). */
  setOrigin(source: string, ...paths: string[]): void {
    for (const path of paths) this.origins.set(path, source);
  }

  /**
   * Cross-checks and freezes. Throws every problem collected so far; the cross-checks run only without them (a value
   * that failed to parse would stand at its default there, and cross-checks of it would mislead).
   */
  build(): PgmuxConfig {
    this.problems.throwIfAny();
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
