/**
 * A configuration problem, found while loading. `key` says where: a dotted path into the config file
 * (`databases.app.port`), an environment variable (`DEFAULT_POOL_SIZE`) or a command-line flag (`--listen-port`).
 * `reason` says what is allowed and what was given. Neither ever contains a password.
 */
export class ConfigError extends Error {
  readonly key: string;
  readonly reason: string;

  constructor(key: string, reason: string) {
    super(`${key}: ${reason}`);
    this.name = 'ConfigError';
    this.key = key;
    this.reason = reason;
  }
}
