import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './load.js';
import { resolveDatabase } from './resolve-database.js';
import type { DatabaseConfig } from './schema.js';

function databases(entries: Record<string, DatabaseConfig>): { databases: Record<string, DatabaseConfig> } {
  return { databases: Object.assign(Object.create(null) as Record<string, DatabaseConfig>, entries) };
}

describe('resolveDatabase', () => {
  const exact: DatabaseConfig = { host: 'a', port: 5432, dbname: 'app_prod' };
  const wildcard: DatabaseConfig = { host: 'w', port: 6000, dbname: '*', pool_size: 3 };

  it('prefers the entry of that name', () => {
    expect(resolveDatabase(databases({ app: exact, '*': wildcard }), 'app')).toBe(exact);
  });

  it('falls back to "*", connecting to the database of the name asked for', () => {
    expect(resolveDatabase(databases({ app: exact, '*': wildcard }), 'sales')).toEqual({ host: 'w', port: 6000, dbname: 'sales', pool_size: 3 });
  });

  it('keeps the dbname a wildcard entry sets', () => {
    const shared = { ...wildcard, dbname: 'shared' };
    expect(resolveDatabase(databases({ '*': shared }), 'x')).toBe(shared);
  });

  it('finds nothing without a wildcard, for "*" itself, the admin names, the empty name, or Object members', () => {
    expect(resolveDatabase(databases({ app: exact }), 'sales')).toBeUndefined();
    const config = databases({ '*': wildcard });
    for (const name of ['*', 'pgbouncer', 'pgmux', '']) expect(resolveDatabase(config, name), name).toBeUndefined();
    expect(resolveDatabase(databases({ app: exact }), 'constructor')).toBeUndefined();
    expect(resolveDatabase(databases({ '*': wildcard }), 'constructor')).toMatchObject({ dbname: 'constructor' });
  });

  it('reads a "*" entry from YAML (quoted: a bare * is YAML alias syntax)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pgmux-wildcard-'));
    writeFileSync(path.join(dir, 'pgmux.yaml'), 'auth_type: trust\ndatabases:\n  "*":\n    host: 10.0.0.5\n');
    const { config } = loadConfig({ argv: ['--config', 'pgmux.yaml'], env: {}, cwd: dir });
    expect(resolveDatabase(config, 'anything')).toEqual({ host: '10.0.0.5', port: 5432, dbname: 'anything' });
  });
});
