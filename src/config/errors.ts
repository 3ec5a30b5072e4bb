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

/**
 * Several configuration problems found in one load, reported together so that a file is fixed in one round, not one
 * error per restart. `key` and `reason` are the first problem's; `errors` holds them all, in the order found.
 */
export class ConfigErrors extends ConfigError {
  readonly errors: readonly ConfigError[];

  constructor(errors: readonly ConfigError[]) {
    super(errors[0].key, errors[0].reason);
    this.name = 'ConfigErrors';
    this.errors = errors;
    this.message = `${errors.length} problems:\n${errors.map((e) => `  ${e.message}`).join('\n')}`;
  }
}

/** Collects the ConfigErrors of independent steps, to throw them all at once. */
export class ConfigProblems {
  private readonly found: ConfigError[] = [];

  /** Runs `step`; a ConfigError it throws is kept (and undefined returned), anything else goes on up. */
  attempt<T>(step: () => T): T | undefined {
    try {
      return step();
    } catch (err) {
      if (err instanceof ConfigErrors) this.found.push(...err.errors);
      else if (err instanceof ConfigError) this.found.push(err);
      else throw err;
      return undefined;
    }
  }

  get count(): number {
    return this.found.length;
  }

  /** Throws what was collected: the one error as it is, several as a ConfigErrors. */
  throwIfAny(): void {
    if (this.found.length === 1) throw this.found[0];
    if (this.found.length > 1) throw new ConfigErrors([...this.found]);
  }
}
