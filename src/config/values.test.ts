import { describe, expect, it } from 'vitest';
import {
  enumParser,
  formatDuration,
  intParser,
  InvalidValue,
  MAX_DURATION_MS,
  parseBool,
  parseDuration,
  parseNameList,
  show,
  stringParser,
} from './values.js';

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidValue);
    return (err as InvalidValue).message;
  }
  throw new Error('expected InvalidValue');
}

describe('show', () => {
  it('quotes strings, shortens long ones, and names containers', () => {
    expect(show('abc')).toBe('"abc"');
    expect(show(70000)).toBe('70000');
    expect(show(true)).toBe('true');
    expect(show(null)).toBe('nothing');
    expect(show([1])).toBe('a list');
    expect(show({ a: 1 })).toBe('a map');
    expect(show('x'.repeat(100))).toBe(`"${'x'.repeat(57)}..."`);
  });
});

describe('intParser', () => {
  const port = intParser(0, 65535);
  const atLeastOne = intParser(1);

  it('accepts numbers and numeric strings within range', () => {
    expect(port(0)).toBe(0);
    expect(port(65535)).toBe(65535);
    expect(port('6543')).toBe(6543);
    expect(port(' 42 ')).toBe(42);
    expect(atLeastOne('+7')).toBe(7);
  });

  it('says what is allowed and what was given', () => {
    expect(reasonOf(() => port(70000))).toBe('must be an integer between 0 and 65535 (got 70000)');
    expect(reasonOf(() => port(-1))).toBe('must be an integer between 0 and 65535 (got -1)');
    expect(reasonOf(() => atLeastOne('abc'))).toBe('must be an integer >= 1 (got "abc")');
    expect(reasonOf(() => atLeastOne(0))).toBe('must be an integer >= 1 (got 0)');
    expect(reasonOf(() => atLeastOne(1.5))).toBe('must be an integer >= 1 (got 1.5)');
    expect(reasonOf(() => atLeastOne('1.5'))).toBe('must be an integer >= 1 (got "1.5")');
    expect(reasonOf(() => atLeastOne(''))).toBe('must be an integer >= 1 (got "")');
    expect(reasonOf(() => atLeastOne(true))).toBe('must be an integer >= 1 (got true)');
    expect(reasonOf(() => atLeastOne(null))).toBe('must be an integer >= 1 (got nothing)');
    expect(reasonOf(() => atLeastOne('99999999999999999999'))).toMatch(/^must be an integer >= 1/);
  });
});

describe('parseBool', () => {
  it.each([
    [true, true],
    [false, false],
    ['1', true],
    ['0', false],
    ['true', true],
    ['FALSE', false],
    ['yes', true],
    ['No', false],
    ['on', true],
    [' off ', false],
    [1, true],
    [0, false],
  ])('%j → %j', (raw, expected) => {
    expect(parseBool(raw)).toBe(expected);
  });

  it('rejects anything else', () => {
    expect(reasonOf(() => parseBool('maybe'))).toBe(
      'must be true or false (also accepted: yes/no, on/off, 1/0) (got "maybe")',
    );
    expect(reasonOf(() => parseBool(2))).toMatch(/\(got 2\)$/);
  });
});

describe('parseDuration', () => {
  it.each([
    [0, 0],
    [30, 30_000],
    [0.5, 500],
    ['30', 30_000],
    ['1.5', 1_500],
    ['500ms', 500],
    ['30s', 30_000],
    ['5min', 300_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    [' 2 min ', 120_000],
    ['0', 0],
    ['0s', 0],
  ])('%j → %d ms', (raw, ms) => {
    expect(parseDuration(raw)).toBe(ms);
  });

  it('never rounds a positive duration down to 0 (which means disabled)', () => {
    expect(parseDuration('0.1ms')).toBe(1);
    expect(parseDuration(0.0001)).toBe(1);
  });

  it('rejects unknown units, negatives and other types', () => {
    const reason = 'must be a duration such as 500ms, 30s, 5min or 1h, or a number of seconds';
    expect(reasonOf(() => parseDuration('5m'))).toBe(`${reason} (got "5m")`);
    expect(reasonOf(() => parseDuration('5 minutes'))).toBe(`${reason} (got "5 minutes")`);
    expect(reasonOf(() => parseDuration(-1))).toBe(`${reason} (got -1)`);
    expect(reasonOf(() => parseDuration('-1s'))).toBe(`${reason} (got "-1s")`);
    expect(reasonOf(() => parseDuration(''))).toBe(`${reason} (got "")`);
    expect(reasonOf(() => parseDuration(true))).toBe(`${reason} (got true)`);
    expect(reasonOf(() => parseDuration(Number.POSITIVE_INFINITY))).toBe(`${reason} (got Infinity)`);
  });

  it('rejects durations longer than a Node.js timer can wait', () => {
    expect(parseDuration(`${MAX_DURATION_MS}ms`)).toBe(MAX_DURATION_MS);
    expect(reasonOf(() => parseDuration('30d'))).toMatch(/^must be at most 2147483s \(about 24 days\).*\(got "30d"\)$/);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0'],
    [500, '500ms'],
    [1_500, '1500ms'],
    [30_000, '30s'],
    [120_000, '2min'],
    [600_000, '10min'],
    [3_600_000, '1h'],
    [86_400_000, '1d'],
  ])('%d ms → %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('round-trips through parseDuration', () => {
    for (const ms of [0, 1, 999, 1000, 61_000, 3_600_000, 5_400_000]) expect(parseDuration(formatDuration(ms))).toBe(ms);
  });
});

describe('stringParser', () => {
  it('trims, and refuses empty strings unless allowed', () => {
    expect(stringParser()(' host ')).toBe('host');
    expect(reasonOf(() => stringParser()('  '))).toBe('must not be empty');
    expect(stringParser({ allowEmpty: true })('')).toBe('');
  });

  it('refuses non-strings', () => {
    expect(reasonOf(() => stringParser()(5))).toBe('must be a string (got 5)');
  });

  it('applies a transform', () => {
    expect(stringParser({ transform: (s) => s.toUpperCase() })('a')).toBe('A');
  });
});

describe('enumParser', () => {
  const mode = enumParser(['session', 'transaction'] as const, { tx: 'transaction' });

  it('accepts values case-insensitively, and aliases', () => {
    expect(mode('session')).toBe('session');
    expect(mode(' Transaction ')).toBe('transaction');
    expect(mode('tx')).toBe('transaction');
  });

  it('lists the allowed values', () => {
    expect(reasonOf(() => mode('sesion'))).toBe('must be one of "session", "transaction" (got "sesion")');
    expect(reasonOf(() => mode(1))).toBe('must be one of "session", "transaction" (got 1)');
    expect(reasonOf(() => mode('toString'))).toMatch(/^must be one of/);
  });
});

describe('parseNameList', () => {
  it('accepts lists and comma-separated strings, trimmed, without blanks or repeats', () => {
    expect(parseNameList(['a', ' b '])).toEqual(['a', 'b']);
    expect(parseNameList('a, b,,a')).toEqual(['a', 'b']);
    expect(parseNameList('')).toEqual([]);
    expect(parseNameList([])).toEqual([]);
  });

  it('rejects other shapes', () => {
    expect(reasonOf(() => parseNameList(5))).toBe('must be a list of names or a comma-separated string (got 5)');
    expect(reasonOf(() => parseNameList(['a', 1]))).toMatch(/\(got a list\)$/);
  });
});
