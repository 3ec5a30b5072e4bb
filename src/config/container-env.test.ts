// The environment variables of the common PgBouncer container images (edoburu/pgbouncer, bitnami/pgbouncer).
import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { loadConfig } from './load.js';
import { resolveDatabase } from './resolve-database.js';

/** Loads from the environment alone (no file: the cwd has none). */
function fromEnv(env: NodeJS.ProcessEnv) {
  return loadConfig({ argv: [], env, cwd: '/nonexistent-dir-for-pgmux-tests' });
}

function errorOf(env: NodeJS.ProcessEnv): ConfigError {
  try {
    fromEnv(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('variables both images and pgmux share (the setting under its upper-case name)', () => {
  it('POOL_MODE, MAX_CLIENT_CONN, DEFAULT_POOL_SIZE, AUTH_TYPE, ADMIN_USERS, LISTEN_PORT, LISTEN_ADDR', () => {
    const { config } = fromEnv({
      POOL_MODE: 'session',
      MAX_CLIENT_CONN: '400',
      DEFAULT_POOL_SIZE: '15',
      AUTH_TYPE: 'md5',
      ADMIN_USERS: 'postgres,ops',
      LISTEN_PORT: '5432',
      LISTEN_ADDR: '0.0.0.0',
    });
    expect(config).toMatchObject({
      pool_mode: 'session',
      max_client_conn: 400,
      default_pool_size: 15,
      auth_type: 'md5',
      admin_users: ['postgres', 'ops'],
      listen_port: 5432,
      listen_addr: '0.0.0.0',
    });
  });

  it('names the variable in errors', () => {
    expect(errorOf({ MAX_CLIENT_CONN: 'many' }).message).toBe('MAX_CLIENT_CONN: must be an integer >= 1 (got "many")');
    expect(errorOf({ AUTH_TYPE: 'hba' }).key).toBe('AUTH_TYPE');
  });
});

describe('edoburu/pgbouncer: DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD', () => {
  it('without DB_NAME, defines the "*" database: any name, to the same-named upstream database', () => {
    const { config } = fromEnv({ DB_HOST: 'db.internal', DB_USER: 'app', DB_PASSWORD: 'secret' });
    expect(config.databases).toEqual({ '*': { host: 'db.internal', port: 5432, dbname: '*' } });
    expect(config.users).toEqual({ app: { password: 'secret' } });
    expect(resolveDatabase(config, 'orders')).toEqual({ host: 'db.internal', port: 5432, dbname: 'orders' });
  });

  it('with DB_NAME and DB_PORT, defines that one database', () => {
    const { config } = fromEnv({ DB_HOST: 'db', DB_PORT: '6000', DB_NAME: 'appdb', DB_USER: 'app', DB_PASSWORD: 'secret' });
    expect(config.databases).toEqual({ appdb: { host: 'db', port: 6000, dbname: 'appdb' } });
    expect(resolveDatabase(config, 'other')).toBeUndefined();
  });

  it('names the variable to fix', () => {
    expect(errorOf({ DB_HOST: 'db', DB_PORT: 'x', DB_USER: 'a', DB_PASSWORD: 'b' }).message).toBe('DB_PORT: must be an integer between 1 and 65535 (got "x")');
    expect(errorOf({ DB_HOST: 'db', DB_PASSWORD: 'b' }).message).toBe('DB_PASSWORD: needs DB_USER as well: the password belongs to that user');
    // A user without a password has nothing to log in with (scram-sha-256).
    expect(errorOf({ DB_HOST: 'db', DB_USER: 'a' }).key).toBe('DB_PASSWORD');
    expect(errorOf({ DB_HOST: 'db', DB_NAME: 'pgbouncer', DB_USER: 'a', DB_PASSWORD: 'b' }).key).toBe('DB_HOST');
  });

  it('is inert without DB_HOST, and DATABASE_URL wins over it', () => {
    expect(fromEnv({ DB_USER: 'a', DB_PASSWORD: 'b', DB_NAME: 'x' }).config.databases).toEqual({});
    const { config } = fromEnv({ DATABASE_URL: 'postgres://u:p@h1:5433/one', DB_HOST: 'h2', DB_USER: 'a', DB_PASSWORD: 'b' });
    expect(Object.keys(config.databases)).toEqual(['one']);
    expect(Object.keys(config.users)).toEqual(['u']);
  });

  it('works with AUTH_TYPE=md5 and the other settings, as in the image', () => {
    const { config } = fromEnv({ DB_HOST: 'db', DB_USER: 'app', DB_PASSWORD: 'secret', AUTH_TYPE: 'md5', POOL_MODE: 'transaction', MAX_CLIENT_CONN: '1000' });
    expect(config).toMatchObject({ auth_type: 'md5', pool_mode: 'transaction', max_client_conn: 1000 });
  });
});

describe('bitnami/pgbouncer: PGBOUNCER_* and POSTGRESQL_*', () => {
  it('PGBOUNCER_<SETTING>, PGBOUNCER_PORT and PGBOUNCER_BIND_ADDRESS set settings; pgmux names win', () => {
    const { config, notices } = fromEnv({
      PGBOUNCER_PORT: '6432',
      PGBOUNCER_BIND_ADDRESS: '0.0.0.0',
      PGBOUNCER_POOL_MODE: 'session',
      PGBOUNCER_DEFAULT_POOL_SIZE: '7',
      PGBOUNCER_MAX_CLIENT_CONN: '120',
      DEFAULT_POOL_SIZE: '9',
    });
    expect(config).toMatchObject({ listen_port: 6432, listen_addr: '0.0.0.0', pool_mode: 'session', default_pool_size: 9, max_client_conn: 120 });
    expect(notices).toEqual([]);
    expect(errorOf({ PGBOUNCER_PORT: 'x' }).key).toBe('PGBOUNCER_PORT');
  });

  it('reports PGBOUNCER_* variables pgmux does not support', () => {
    const { notices } = fromEnv({ PGBOUNCER_CLIENT_TLS_CIPHERS: 'fast', PGBOUNCER_EXTRA_ARGS: '--verbose' });
    expect(notices).toEqual([
      {
        level: 'warn',
        message: 'environment: PGBOUNCER_* variables pgmux does not support are ignored: PGBOUNCER_CLIENT_TLS_CIPHERS, PGBOUNCER_EXTRA_ARGS',
        fields: { unsupported: ['PGBOUNCER_CLIENT_TLS_CIPHERS', 'PGBOUNCER_EXTRA_ARGS'] },
      },
    ]);
  });

  it('POSTGRESQL_HOST defines the database PGBOUNCER_DATABASE and the user, with the image defaults', () => {
    const { config } = fromEnv({ POSTGRESQL_HOST: 'postgresql', POSTGRESQL_PASSWORD: 'pw' });
    expect(config.databases).toEqual({ postgres: { host: 'postgresql', port: 5432, dbname: 'postgres' } });
    expect(config.users).toEqual({ postgres: { password: 'pw' } });

    const named = fromEnv({
      POSTGRESQL_HOST: 'pg',
      POSTGRESQL_PORT: '5433',
      POSTGRESQL_DATABASE: 'app_prod',
      POSTGRESQL_USERNAME: 'app',
      POSTGRESQL_PASSWORD: 'pw',
      PGBOUNCER_DATABASE: 'app',
      PGBOUNCER_SET_DATABASE_USER: 'yes',
    }).config;
    expect(named.databases).toEqual({ app: { host: 'pg', port: 5433, dbname: 'app_prod', user: 'app', password: 'pw' } });
    expect(named.users).toEqual({ app: { password: 'pw' } });
    expect(errorOf({ POSTGRESQL_HOST: 'pg' }).key).toBe('POSTGRESQL_PASSWORD');
  });
});
