// Parsers for setting values. Each takes a raw value as it comes from YAML (number, boolean, string, list...) or
// from the environment / command line (always a string), and returns the validated value or throws InvalidValue
// with a reason that says what is allowed and what was given. The caller adds the key.

/** A value was rejected; `message` is the reason, without the key. */
export class InvalidValue extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'InvalidValue';
  }
}

/** Shows a raw value inside a reason: strings quoted (and shortened), other scalars bare. */
export function show(raw: unknown): string {
  if (typeof raw === 'string') return JSON.stringify(raw.length > 60 ? `${raw.slice(0, 57)}...` : raw);
  if (raw === null || raw === undefined) return 'nothing';
  if (Array.isArray(raw)) return 'a list';
  if (typeof raw === 'object') return 'a map';
  return String(raw);
}

export type Parser<T> = (raw: unknown) => T;

export function intParser(min: number, max?: number): Parser<number> {
  const rule = max === undefined ? `an integer >= ${min}` : `an integer between ${min} and ${max}`;
  return (raw) => {
    let n = Number.NaN;
    if (typeof raw === 'number') n = raw;
    else if (typeof raw === 'string' && /^\s*[+-]?\d+\s*$/.test(raw)) n = Number(raw);
    if (!Number.isSafeInteger(n) || n < min || (max !== undefined && n > max)) {
      throw new InvalidValue(`must be ${rule} (got ${show(raw)})`);
    }
    return n;
  };
}

const TRUE_WORDS = new Set(['1', 'true', 'yes', 'on']);
const FALSE_WORDS = new Set(['0', 'false', 'no', 'off']);

export const parseBool: Parser<boolean> = (raw) => {
  if (typeof raw === 'boolean') return raw;
  const word = typeof raw === 'number' || typeof raw === 'string' ? String(raw).trim().toLowerCase() : null;
  if (word !== null && TRUE_WORDS.has(word)) return true;
  if (word !== null && FALSE_WORDS.has(word)) return false;
  throw new InvalidValue(`must be true or false (also accepted: yes/no, on/off, 1/0) (got ${show(raw)})`);
};

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/** Longest delay `setTimeout` honours; a longer one silently fires after 1 ms. */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/**
 * Durations are stored in milliseconds. A bare number means seconds, as in PgBouncer; a string may carry one of
 * PostgreSQL's units (ms, s, min, h, d). "m" is refused on purpose: it reads as minutes to some and ms to others.
 */
export const parseDuration: Parser<number> = (raw) => {
  let ms = Number.NaN;
  if (typeof raw === 'number' && Number.isFinite(raw) && raw >= 0) {
    ms = raw * 1_000;
  } else if (typeof raw === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|h|d)?\s*$/.exec(raw);
    if (m) ms = Number(m[1]) * UNIT_MS[m[2] ?? 's'];
  }
  if (Number.isNaN(ms)) {
    throw new InvalidValue(
      `must be a duration such as 500ms, 30s, 5min or 1h, or a number of seconds (got ${show(raw)})`,
    );
  }
  // Round to whole milliseconds, but never turn a tiny positive duration into 0, which means "disabled".
  const rounded = ms > 0 ? Math.max(1, Math.round(ms)) : 0;
  if (rounded > MAX_DURATION_MS) {
    throw new InvalidValue(`must be at most 2147483s (about 24 days), the longest timer Node.js supports (got ${show(raw)})`);
  }
  return rounded;
};

/** Renders milliseconds in the largest unit that divides them exactly: 0, 500ms, 30s, 5min, 1h. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  for (const unit of ['d', 'h', 'min', 's'] as const) {
    if (ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}

export interface StringRules {
  /** Whether "" is a meaningful value (e.g. an empty server_reset_query disables the reset). */
  readonly allowEmpty?: boolean;
  /** Applied after validation, e.g. "*" → "0.0.0.0". */
  readonly transform?: (value: string) => string;
}

export function stringParser(rules: StringRules = {}): Parser<string> {
  return (raw) => {
    if (typeof raw !== 'string') throw new InvalidValue(`must be a string (got ${show(raw)})`);
    const value = raw.trim();
    if (value === '' && !rules.allowEmpty) throw new InvalidValue('must not be empty');
    return rules.transform ? rules.transform(value) : value;
  };
}

/** Case-insensitive choice among `values`; `aliases` maps accepted synonyms onto one of them. */
export function enumParser<V extends string>(
  values: readonly V[],
  aliases: Readonly<Record<string, V>> = {},
): Parser<V> {
  const allowed = values.map((v) => JSON.stringify(v)).join(', ');
  return (raw) => {
    if (typeof raw === 'string') {
      const word = raw.trim().toLowerCase();
      const value = values.find((v) => v === word) ?? (Object.hasOwn(aliases, word) ? aliases[word] : undefined);
      if (value !== undefined) return value;
    }
    throw new InvalidValue(`must be one of ${allowed} (got ${show(raw)})`);
  };
}

/** A YAML list of names, or a comma-separated string (the form used in the environment and on the command line). */
export const parseNameList: Parser<readonly string[]> = (raw) => {
  let items: unknown[] | null = null;
  if (typeof raw === 'string') items = raw.split(',');
  else if (Array.isArray(raw)) items = raw;
  if (items === null || !items.every((item): item is string => typeof item === 'string')) {
    throw new InvalidValue(`must be a list of names or a comma-separated string (got ${show(raw)})`);
  }
  const names = items.map((item) => item.trim()).filter((item) => item !== '');
  return [...new Set(names)];
};
