import { describe, expect, it } from 'vitest';
import { parsePostgresUrl } from './url.js';
import { InvalidValue } from './values.js';

function reasonOf(raw: unknown): string {
  try {
    parsePostgresUrl(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidValue);
    return (err as Error).message;
  }
  throw new Error('expected InvalidValue');
}

describe('parsePostgresUrl', () => {
  it('parses every part', () => {
    expect(parsePostgresUrl('postgres://app:secret@db.internal:5433/appdb')).toEqual({
      host: 'db.internal',
      port: 5433,
      dbname: 'appdb',
      user: 'app',
      password: 'secret',
    });
  });

  it('accepts postgresql:// and interprets query parameters', () => {
    expect(parsePostgresUrl('postgresql://u@h/d?sslmode=require&application_name=x')).toEqual({
      host: 'h',
      dbname: 'd',
      user: 'u',
      application_name: 'x',
      settings: [{ setting: 'server_tls_sslmode', value: 'require', from: 'sslmode=require' }],
    });
  });

  it('decodes parameters as libpq does (%-escapes; a plus sign stays one) and refuses one given twice', () => {
    expect(parsePostgresUrl('postgres://h/d?options=-c%20search_path%3Dapp%2Cpublic&application_name=a+b')).toEqual({
      host: 'h',
      dbname: 'd',
      options: '-c search_path=app,public',
      application_name: 'a+b',
    });
    expect(reasonOf('postgres://h/d?sslmode=require&sslmode=disable')).toBe('has parameter sslmode twice');
    expect(reasonOf('postgres://h/d?sslmode')).toMatch(/name=value/);
  });

  it('percent-decodes the user, password and database name', () => {
    expect(parsePostgresUrl('postgres://us%40er:p%3Ass%2Fw%25rd@h/my%20db')).toEqual({
      host: 'h',
      dbname: 'my db',
      user: 'us@er',
      password: 'p:ss/w%rd',
    });
  });

  it('strips the brackets of an IPv6 address', () => {
    expect(parsePostgresUrl('postgres://[::1]:5432/d')).toEqual({ host: '::1', port: 5432, dbname: 'd' });
  });

  it('leaves absent parts out', () => {
    expect(parsePostgresUrl('postgres://')).toEqual({});
    expect(parsePostgresUrl('postgres://h')).toEqual({ host: 'h' });
  });

  it('rejects other schemes, bad ports and several hosts, never repeating the URL', () => {
    expect(reasonOf('mysql://u:secret@h/d')).toMatch(/scheme must be postgres:\/\/ or postgresql:\/\//);
    expect(reasonOf('postgres://u:secret@h:70000/d')).toMatch(/could not be parsed/);
    expect(reasonOf('postgres://u:secret@h:0/d')).toBe('must have a port between 1 and 65535 (got 0)');
    expect(reasonOf('postgres://u:secret@a,b/d')).toMatch(/single host/);
    expect(reasonOf('postgres://u:secret@h/a/b')).toMatch(/just the database name/);
    expect(reasonOf('postgres://u:sec%zzret@h/d')).toMatch(/password has a malformed %-escape/);
    expect(reasonOf(42)).toMatch(/^must be a URL like/);
    for (const bad of ['mysql://u:secret@h/d', 'postgres://u:secret@h:70000/d', 'postgres://u:sec%zzret@h/d']) {
      expect(reasonOf(bad)).not.toContain('secret');
    }
  });
});
