// Database and user entries: the maps under `databases:` and `users:`.
import { ConfigError, ConfigProblems } from './errors.js';
import { parsePassword } from './password.js';
import { DATABASE_FIELDS, USER_FIELDS, type DatabaseConfig, type Field, type UserConfig } from './schema.js';
import { didYouMean } from './suggest.js';
import { InvalidValue, show } from './values.js';

export function isMap(raw: unknown): raw is Record<string, unknown> {
  return typeof raw === 'object' && raw !== null && !Array.isArray(raw);
}

/** Runs a parser, turning its InvalidValue into a ConfigError for `key`. */
export function at<T>(key: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof InvalidValue) throw new ConfigError(key, err.message);
    throw err;
  }
}

/** A record without a prototype, so a client asking for database "constructor" finds nothing. */
export function emptyRecord<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

function parseFields<C>(
  table: { readonly [K in keyof C]-?: Field<NonNullable<C[K]>> },
  raw: unknown,
  path: string,
  what: string,
): Partial<C> {
  // An entry with nothing under it (`app:`) takes every default.
  if (raw === null || raw === undefined) return {};
  if (!isMap(raw)) {
    // A string is not repeated: `app: secret` under users: (or a URL with its password under databases:) is a
    // secret written in the wrong place, and this message reaches logs.
    const got = typeof raw === 'string' ? `a string; put it under ${what === 'user' ? 'password:' : 'url:'} if that is what it is` : show(raw);
    throw new ConfigError(path, `must be a map of ${what} settings (got ${got})`);
  }
  const known = Object.keys(table);
  const out: Record<string, unknown> = {};
  const problems = new ConfigProblems();
  for (const [key, value] of Object.entries(raw)) {
    problems.attempt(() => {
      if (!Object.hasOwn(table, key)) {
        const hint = didYouMean(key, known) || ` (allowed: ${known.join(', ')})`;
        throw new ConfigError(`${path}.${key}`, `is not a known ${what} setting${hint}`);
      }
      const field: Field<unknown> = table[key as keyof C];
      out[key] = at(`${path}.${key}`, () => field.parse(value));
    });
  }
  problems.throwIfAny();
  // Safe: every key was checked against the table and its value produced by that field's parser.
  return out as Partial<C>;
}

/** A database entry: defaults, then what `url` gives, then the explicit keys. */
export function parseDatabase(name: string, raw: unknown, path: string): DatabaseConfig {
  const { url, ...fields } = parseFields(DATABASE_FIELDS, raw, path, 'database');
  const { settings, ...target } = url ?? {};
  if (target.password !== undefined) checkUrlPassword(target.password, `${path}.url`);
  // TLS and the connect timeout are global in pgmux: one database's URL must not change them for all the others.
  const [first] = settings ?? [];
  if (first !== undefined) {
    throw new ConfigError(
      `${path}.url`,
      `has ${first.from}, which pgmux sets for all databases at once: set ${first.setting} at the top level instead (only DATABASE_URL's parameters set it)`,
    );
  }
  return { host: '127.0.0.1', port: 5432, dbname: name, ...target, ...fields };
}

/** A password taken from a URL must still be readable as one of the three forms (see password.ts). */
export function checkUrlPassword(password: string, key: string): void {
  at(key, () => {
    try {
      parsePassword(password);
    } catch (err) {
      if (err instanceof InvalidValue) throw new InvalidValue(`its password ${err.message}`);
      throw err;
    }
  });
}

export function parseUser(raw: unknown, path: string): UserConfig {
  return parseFields(USER_FIELDS, raw, path, 'user');
}

/** A `databases:` or `users:` map; each key must be a non-empty name. */
export function parseEntries<T>(
  raw: unknown,
  path: string,
  parseEntry: (name: string, raw: unknown, path: string) => T,
): Record<string, T> {
  const out = emptyRecord<T>();
  if (raw === null || raw === undefined) return out;
  if (!isMap(raw)) throw new ConfigError(path, `must be a map from names to entries (got ${show(raw)})`);
  const problems = new ConfigProblems();
  for (const [name, entry] of Object.entries(raw)) {
    problems.attempt(() => {
      if (name.trim() === '') throw new ConfigError(path, 'must not contain an empty name');
      out[name] = parseEntry(name, entry, `${path}.${name}`);
    });
  }
  problems.throwIfAny();
  return out;
}
