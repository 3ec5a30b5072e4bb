import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, describeSources, loadConfig, type LoadedConfig } from './load.js';
import { ConfigErrors } from './errors.js';
import { SETTINGS, type PgmuxConfig } from './schema.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pgmux-config-'));
  dirs.push(dir);
  return dir;
}

function writeFile(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

interface Sources {
  yaml?: string;
  env?: Record<string, string>;
  argv?: string[];
}

/** Loads with nothing from the real process: a YAML file (if given) passed with --config, env and flags. */
function loadFrom({ yaml, env = {}, argv = [] }: Sources): LoadedConfig {
  const cwd = tempDir();
  const configArgs = yaml === undefined ? [] : ['--config', writeFile(cwd, 'pgmux.yaml', yaml)];
  return loadConfig({ argv: [...configArgs, ...argv], env, cwd });
}

function load(sources: Sources): PgmuxConfig {
  return loadFrom(sources).config;
}

function errorOf(sources: Sources): ConfigError {
  try {
    loadFrom(sources);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const error = err as ConfigError;
    expect(error.message).toBe(`${error.key}: ${error.reason}`);
    return error;
  }
  throw new Error('expected a ConfigError');
}

const KEY32 = Buffer.alloc(32, 9).toString('base64');
const SCRAM = `SCRAM-SHA-256$4096:${Buffer.alloc(16, 1).toString('base64')}$${KEY32}:${KEY32}`;
const MD5 = `md5${'a'.repeat(32)}`;

describe('defaults', () => {
  it('uses the built-in defaults when nothing is configured', () => {
    const { config, configPath } = loadFrom({});
    expect(configPath).toBeNull();
    expect(config).toEqual({
      listen_addr: '127.0.0.1',
      listen_port: 6543,
      unix_socket_dir: 'auto',
      unix_socket_mode: '0777',
      unix_socket_group: '',
      pool_mode: 'transaction',
      default_pool_size: 20,
      min_pool_size: 0,
      reserve_pool_size: 0,
      reserve_pool_timeout: 5_000,
      max_client_conn: 5000,
      max_db_connections: 0,
      max_user_connections: 0,
      query_wait_timeout: 120_000,
      query_wait_notify: 5_000,
      max_queued_clients_per_pool: 0,
      max_server_logins_per_pool: 5,
      server_connect_rate: 100,
      client_login_slice: 1,
      max_client_logins_in_progress: 100,
      server_idle_timeout: 600_000,
      server_lifetime: 3_600_000,
      server_connect_timeout: 15_000,
      server_login_retry: 15_000,
      server_login_retry_min: 100,
      client_idle_timeout: 0,
      client_login_timeout: 60_000,
      idle_transaction_timeout: 0,
      query_timeout: 0,
      shutdown_timeout: 30_000,
      server_reset_query: 'DISCARD ALL',
      server_reset_query_always: false,
      server_check_query: 'select 1',
      server_check_delay: 30_000,
      auth_type: 'scram-sha-256',
      auth_file: '',
      auth_user: '',
      auth_query: 'SELECT usename, passwd FROM pg_shadow WHERE usename=$1',
      auth_query_cache_ttl: 30_000,
      auth_plain_without_tls: false,
      client_tls_sslmode: 'prefer',
      client_tls_cert_file: '',
      client_tls_key_file: '',
      client_tls_ca_file: '',
      server_tls_sslmode: 'prefer',
      server_tls_ca_file: '',
      server_tls_cert_file: '',
      server_tls_key_file: '',
      admin_users: [],
      stats_users: [],
      session_state_listen: 'pin',
      session_state_advisory_lock: 'pin',
      session_state_temp_table: 'pin',
      session_state_cursor_with_hold: 'pin',
      session_state_prepare: 'pin',
      max_prepared_statements: 200,
      tcp_keepalive: true,
      tcp_keepidle: 60_000,
      log_connections: true,
      log_disconnections: true,
      log_level: 'info',
      application_name_add_host: false,
      stats_period: 60_000,
      metrics_port: 9127,
      metrics_addr: '127.0.0.1',
      databases: {},
      users: {},
    });
  });

  it('has a value for every setting in the table', () => {
    const config = load({});
    for (const setting of SETTINGS) expect(config[setting.name], setting.name).toEqual(setting.default);
  });
});

describe('finding the config file', () => {
  it('reads config/pgmux.yaml under cwd when it exists', () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'config'));
    const path = writeFile(join(cwd, 'config'), 'pgmux.yaml', 'listen_port: 7000\n');
    const { config, configPath } = loadConfig({ argv: [], env: {}, cwd });
    expect(configPath).toBe(path);
    expect(config.listen_port).toBe(7000);
  });

  it('does without a default file that does not exist', () => {
    expect(loadConfig({ argv: [], env: {}, cwd: tempDir() }).configPath).toBeNull();
  });

  it('uses PGMUX_CONFIG, resolved against cwd', () => {
    const cwd = tempDir();
    writeFile(cwd, 'custom.yaml', 'listen_port: 7001\n');
    const { config, configPath } = loadConfig({ argv: [], env: { PGMUX_CONFIG: 'custom.yaml' }, cwd });
    expect(configPath).toBe(join(cwd, 'custom.yaml'));
    expect(config.listen_port).toBe(7001);
  });

  it('prefers --config (or -c) to PGMUX_CONFIG, and PGMUX_CONFIG to the default file', () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'config'));
    writeFile(join(cwd, 'config'), 'pgmux.yaml', 'listen_port: 7000\n');
    writeFile(cwd, 'env.yaml', 'listen_port: 7001\n');
    writeFile(cwd, 'flag.yaml', 'listen_port: 7002\n');
    const env = { PGMUX_CONFIG: 'env.yaml' };
    expect(loadConfig({ argv: [], env, cwd }).config.listen_port).toBe(7001);
    expect(loadConfig({ argv: ['--config', 'flag.yaml'], env, cwd }).config.listen_port).toBe(7002);
    expect(loadConfig({ argv: ['-c', 'flag.yaml'], env, cwd }).config.listen_port).toBe(7002);
    expect(loadConfig({ argv: ['--config=flag.yaml'], env: {}, cwd }).config.listen_port).toBe(7002);
  });

  it('refuses a file that was asked for but does not exist', () => {
    const cwd = tempDir();
    const flag = (() => {
      try {
        loadConfig({ argv: ['--config', 'nope.yaml'], env: {}, cwd });
      } catch (err) {
        return err;
      }
      return null;
    })();
    expect(flag).toBeInstanceOf(ConfigError);
    expect((flag as ConfigError).message).toBe(`--config: file not found: ${join(cwd, 'nope.yaml')}`);
    expect(() => loadConfig({ argv: [], env: { PGMUX_CONFIG: 'nope.yaml' }, cwd })).toThrow(
      `PGMUX_CONFIG: file not found: ${join(cwd, 'nope.yaml')}`,
    );
  });

  it('refuses a config path that cannot be read', () => {
    const cwd = tempDir();
    expect(() => loadConfig({ argv: ['--config', cwd], env: {}, cwd })).toThrow(/^--config: cannot read .* \(EISDIR\)$/);
    expect(() => loadConfig({ argv: ['--config='], env: {}, cwd })).toThrow('--config: must name a file (got "")');
  });

  it('treats an empty file, or one with only comments, as no settings', () => {
    expect(load({ yaml: '' }).listen_port).toBe(6543);
    expect(load({ yaml: '# nothing here\n' }).listen_port).toBe(6543);
  });

  it('reports invalid YAML with the file, line and column, but not the line itself', () => {
    const err = errorOf({ yaml: 'listen_port: 1\nusers:\n  app:\n    password: "hunter2\n' });
    expect(err.key).toMatch(/pgmux\.yaml$/);
    expect(err.reason).toMatch(/^is not valid YAML: .* at line \d+, column \d+$/);
    expect(err.message).not.toContain('hunter2');
  });

  it('refuses duplicate keys', () => {
    expect(errorOf({ yaml: 'listen_port: 1\nlisten_port: 2\n' }).reason).toMatch(/^is not valid YAML: Map keys must be unique at line 2/);
  });

  it('refuses a file that is not a map', () => {
    const err = errorOf({ yaml: '- listen_port\n' });
    expect(err.key).toMatch(/pgmux\.yaml$/);
    expect(err.reason).toBe('must contain a map of settings at the top level (got a list)');
  });
});

describe('YAML settings', () => {
  it('reads every kind of global setting', () => {
    const config = load({
      yaml: `
listen_addr: "*"
listen_port: 0
pool_mode: session
default_pool_size: 10
min_pool_size: 2
server_idle_timeout: 30
server_lifetime: 1h
query_wait_timeout: 500ms
client_idle_timeout: 5min
server_connect_timeout: 2.5
tcp_keepalive: false
log_connections: "off"
application_name_add_host: yes
auth_type: md5
admin_users: [admin, ops]
stats_users: monitor, grafana
server_reset_query: ""
log_level: debug
metrics_port: 0
metrics_addr: "*"
`,
    });
    expect(config).toMatchObject({
      listen_addr: '0.0.0.0',
      listen_port: 0,
      pool_mode: 'session',
      default_pool_size: 10,
      min_pool_size: 2,
      server_idle_timeout: 30_000,
      server_lifetime: 3_600_000,
      query_wait_timeout: 500,
      client_idle_timeout: 300_000,
      server_connect_timeout: 2_500,
      tcp_keepalive: false,
      log_connections: false,
      application_name_add_host: true,
      auth_type: 'md5',
      admin_users: ['admin', 'ops'],
      stats_users: ['monitor', 'grafana'],
      server_reset_query: '',
      log_level: 'debug',
      metrics_port: 0,
      metrics_addr: '0.0.0.0',
    });
  });

  it('accepts "statement" pool mode and "password" as a synonym of plain', () => {
    expect(load({ yaml: 'pool_mode: statement\nauth_type: password\n' })).toMatchObject({
      pool_mode: 'statement',
      auth_type: 'plain',
    });
  });

  it('reads databases with defaults: host 127.0.0.1, port 5432, dbname = the key, optional fields absent', () => {
    const { databases } = load({ yaml: 'databases:\n  app: {}\n  other:\n' });
    expect(databases.app).toEqual({ host: '127.0.0.1', port: 5432, dbname: 'app' });
    expect(databases.other).toEqual({ host: '127.0.0.1', port: 5432, dbname: 'other' });
    expect(Object.keys(databases.app)).toEqual(['host', 'port', 'dbname']);
  });

  it('reads every database field', () => {
    const { databases } = load({
      yaml: `
databases:
  app:
    host: db.internal
    port: 5433
    dbname: app_prod
    user: pooler
    password: secret
    pool_size: 50
    min_pool_size: 5
    reserve_pool_size: 3
    max_db_connections: 100
    pool_mode: session
    connect_query: SET search_path = app
`,
    });
    expect(databases.app).toEqual({
      host: 'db.internal',
      port: 5433,
      dbname: 'app_prod',
      user: 'pooler',
      password: 'secret',
      pool_size: 50,
      min_pool_size: 5,
      reserve_pool_size: 3,
      max_db_connections: 100,
      pool_mode: 'session',
      connect_query: 'SET search_path = app',
    });
  });

  it('fills a database from url, percent-decoded, with explicit keys winning', () => {
    const { databases } = load({
      yaml: `
databases:
  a:
    url: postgres://us%40er:p%40ss@db.internal:5433/real_db?application_name=batch
  b:
    url: postgresql://u:pw@h1/x
    host: h2
    dbname: y
    pool_size: 3
`,
    });
    expect(databases.a).toEqual({ host: 'db.internal', port: 5433, dbname: 'real_db', user: 'us@er', password: 'p@ss', application_name: 'batch' });
    expect(databases.b).toEqual({ host: 'h2', port: 5432, dbname: 'y', user: 'u', password: 'pw', pool_size: 3 });
  });

  it('reads users with every password form and their options', () => {
    const { users } = load({
      yaml: `
auth_type: md5
users:
  plain: { password: secret }
  hashed: { password: ${MD5} }
  scram: { password: "${SCRAM}", pool_mode: session, pool_size: 4, max_user_connections: 8 }
`,
    });
    expect(users).toEqual({
      plain: { password: 'secret' },
      hashed: { password: MD5 },
      scram: { password: SCRAM, pool_mode: 'session', pool_size: 4, max_user_connections: 8 },
    });
  });

  it('accepts empty databases: and users: sections', () => {
    expect(load({ yaml: 'databases:\nusers:\n' })).toMatchObject({ databases: {}, users: {} });
  });

  it('keeps names such as "constructor" and "__proto__" as plain entries', () => {
    const { databases } = load({ yaml: 'databases:\n  __proto__: {}\n  app: {}\n' });
    expect(Object.keys(databases)).toEqual(['__proto__', 'app']);
    expect(databases.constructor).toBeUndefined();
    expect(databases.toString).toBeUndefined();
    expect(Object.hasOwn(databases, '__proto__')).toBe(true);
  });
});

describe('environment', () => {
  it('reads global settings under their upper-case names', () => {
    const config = load({
      env: {
        LISTEN_ADDR: '*',
        LISTEN_PORT: '6000',
        POOL_MODE: 'session',
        DEFAULT_POOL_SIZE: '7',
        MAX_CLIENT_CONN: '100',
        SERVER_IDLE_TIMEOUT: '45',
        QUERY_WAIT_TIMEOUT: '2min',
        ADMIN_USERS: 'a,b',
        TCP_KEEPALIVE: 'no',
        LOG_DISCONNECTIONS: '0',
        SERVER_RESET_QUERY_ALWAYS: 'on',
        AUTH_TYPE: 'trust',
        LOG_LEVEL: 'warn',
      },
    });
    expect(config).toMatchObject({
      listen_addr: '0.0.0.0',
      listen_port: 6000,
      pool_mode: 'session',
      default_pool_size: 7,
      max_client_conn: 100,
      server_idle_timeout: 45_000,
      query_wait_timeout: 120_000,
      admin_users: ['a', 'b'],
      tcp_keepalive: false,
      log_disconnections: false,
      server_reset_query_always: true,
      auth_type: 'trust',
      log_level: 'warn',
    });
  });

  it('ignores variables that are not setting names, and lower-case names', () => {
    const config = load({ env: { PATH: '/bin', PORT: 'x', HOST: 'y', listen_port: '1', POOL_SIZE: 'z' } });
    expect(config.listen_port).toBe(6543);
  });

  it('names the variable when its value is invalid', () => {
    expect(errorOf({ env: { DEFAULT_POOL_SIZE: 'abc' } }).message).toBe(
      'DEFAULT_POOL_SIZE: must be an integer >= 1 (got "abc")',
    );
    expect(errorOf({ env: { LISTEN_PORT: '' } }).message).toBe(
      'LISTEN_PORT: must be an integer between 0 and 65535 (got "")',
    );
    expect(errorOf({ env: { TCP_KEEPALIVE: 'maybe' } }).key).toBe('TCP_KEEPALIVE');
    expect(errorOf({ env: { SERVER_LIFETIME: '1 hour' } }).key).toBe('SERVER_LIFETIME');
  });
});

describe('DATABASE_URL', () => {
  it('defines a database named after the URL, and a user with its credentials', () => {
    const config = load({ env: { DATABASE_URL: 'postgres://app:s%3Acret@db.internal:5433/appdb?sslmode=require' } });
    expect(config.databases).toEqual({ appdb: { host: 'db.internal', port: 5433, dbname: 'appdb' } });
    expect(config.users).toEqual({ app: { password: 's:cret' } });
  });

  it('defaults the database to "postgres", the host to 127.0.0.1 and the port to 5432', () => {
    expect(load({ env: { DATABASE_URL: 'postgresql://u:p@h' } }).databases).toEqual({
      postgres: { host: 'h', port: 5432, dbname: 'postgres' },
    });
    expect(load({ env: { DATABASE_URL: 'postgres:///' } }).databases).toEqual({
      postgres: { host: '127.0.0.1', port: 5432, dbname: 'postgres' },
    });
  });

  it('defines only the database when the URL has no user', () => {
    const config = load({ env: { DATABASE_URL: 'postgres://h/d' } });
    expect(config.databases).toEqual({ d: { host: 'h', port: 5432, dbname: 'd' } });
    expect(config.users).toEqual({});
  });

  it('adds to the databases and users of the file, replacing where the database points and the password', () => {
    const config = load({
      yaml: `
databases:
  app: { host: old, port: 1, dbname: old, pool_size: 9 }
  other: {}
users:
  app: { password: old, pool_mode: session }
  other: { password: x }
`,
      env: { DATABASE_URL: 'postgres://app:new@newhost/app' },
    });
    expect(config.databases).toEqual({
      app: { host: 'newhost', port: 5432, dbname: 'app', pool_size: 9 },
      other: { host: '127.0.0.1', port: 5432, dbname: 'other' },
    });
    expect(config.users).toEqual({ app: { password: 'new', pool_mode: 'session' }, other: { password: 'x' } });
  });

  it('is ignored when empty', () => {
    expect(load({ env: { DATABASE_URL: '' } }).databases).toEqual({});
  });

  it('names DATABASE_URL when it is invalid, without repeating it', () => {
    for (const url of ['mysql://u:hunter2@h/d', 'postgres://u:hunter2@h:99999/d', 'postgres://u:hunter2@a,b/d']) {
      const err = errorOf({ env: { DATABASE_URL: url } });
      expect(err.key).toBe('DATABASE_URL');
      expect(err.message).not.toContain('hunter2');
    }
    expect(errorOf({ env: { DATABASE_URL: 'postgres://u:md5abc@h/d' } }).reason).toMatch(/^its password must be an md5 hash/);
  });

  it('names DATABASE_URL in checks that concern what it defined', () => {
    expect(errorOf({ env: { DATABASE_URL: 'postgres://u@h/d' } }).message).toBe(
      'DATABASE_URL: a password for user "u" is required with auth_type scram-sha-256: give it in the URL (postgres://user:password@host/db), or let auth_file or auth_user/auth_query supply it, or use auth_type trust or cert',
    );
    expect(load({ env: { DATABASE_URL: 'postgres://u@h/d', AUTH_TYPE: 'trust' } }).users).toEqual({ u: {} });
    expect(errorOf({ env: { DATABASE_URL: 'postgres://u:p@h/pgbouncer' } }).key).toBe('DATABASE_URL');
  });
});

describe('command line', () => {
  it('overrides settings with dedicated flags and --set', () => {
    const config = load({
      argv: [
        '--listen-addr', '*',
        '-p', '7100',
        '--pool-mode=session',
        '--default-pool-size', '3',
        '--max-client-conn', '10',
        '--log-level', 'error',
        '--set', 'server_lifetime=90min',
        '--set', 'admin_users=root,ops',
      ],
    });
    expect(config).toMatchObject({
      listen_addr: '0.0.0.0',
      listen_port: 7100,
      pool_mode: 'session',
      default_pool_size: 3,
      max_client_conn: 10,
      log_level: 'error',
      server_lifetime: 5_400_000,
      admin_users: ['root', 'ops'],
    });
  });

  it('names the flag when a value is invalid', () => {
    expect(errorOf({ argv: ['--listen-port', '70000'] }).message).toBe(
      '--listen-port: must be an integer between 0 and 65535 (got "70000")',
    );
    expect(errorOf({ argv: ['-p', 'x'] }).key).toBe('--listen-port');
    expect(errorOf({ argv: ['--set', 'server_lifetime=soon'] }).key).toBe('--set server_lifetime');
    expect(errorOf({ argv: ['--pool-mode', 'sesion'] }).message).toBe(
      '--pool-mode: must be one of "session", "transaction", "statement" (got "sesion")',
    );
  });

  it('names an unknown flag', () => {
    expect(errorOf({ argv: ['--pool-size', '3'] }).key).toBe('--pool-size');
  });

  it('ignores --help and --version (the caller acts on them)', () => {
    expect(load({ argv: ['--help', '--version'] }).listen_port).toBe(6543);
  });
});

describe('precedence: defaults < file < environment < flags', () => {
  const yaml = 'listen_port: 7001\npool_mode: session\nserver_lifetime: 10\n';

  it('lets each source override the ones before it', () => {
    expect(load({}).listen_port).toBe(6543);
    expect(load({ yaml }).listen_port).toBe(7001);
    expect(load({ yaml, env: { LISTEN_PORT: '7002' } }).listen_port).toBe(7002);
    expect(load({ yaml, env: { LISTEN_PORT: '7002' }, argv: ['-p', '7003'] }).listen_port).toBe(7003);
    expect(load({ yaml, argv: ['--set', 'listen_port=7004'] }).listen_port).toBe(7004);
  });

  it('overrides setting by setting, keeping what later sources leave alone', () => {
    const config = load({ yaml, env: { POOL_MODE: 'transaction' }, argv: ['--log-level', 'debug'] });
    expect(config).toMatchObject({ listen_port: 7001, pool_mode: 'transaction', server_lifetime: 10_000, log_level: 'debug' });
  });

  it('validates each source even when a later one overrides it', () => {
    expect(errorOf({ yaml: 'listen_port: nope\n', argv: ['-p', '1'] }).key).toBe('listen_port');
    expect(errorOf({ env: { LISTEN_PORT: 'nope' }, argv: ['-p', '1'] }).key).toBe('LISTEN_PORT');
  });
});

describe('validation names the key', () => {
  it.each([
    ['listen_port: 70000', 'listen_port: must be an integer between 0 and 65535 (got 70000)'],
    ['listen_addr: ""', 'listen_addr: must not be empty'],
    ['pool_mode: sesion', 'pool_mode: must be one of "session", "transaction", "statement" (got "sesion")'],
    ['default_pool_size: 0', 'default_pool_size: must be an integer >= 1 (got 0)'],
    ['min_pool_size: -1', 'min_pool_size: must be an integer >= 0 (got -1)'],
    ['reserve_pool_size: 1.5', 'reserve_pool_size: must be an integer >= 0 (got 1.5)'],
    ['max_client_conn: many', 'max_client_conn: must be an integer >= 1 (got "many")'],
    ['max_db_connections: -1', 'max_db_connections: must be an integer >= 0 (got -1)'],
    ['max_user_connections: [1]', 'max_user_connections: must be an integer >= 0 (got a list)'],
    ['query_wait_timeout: 5m', 'query_wait_timeout: must be a duration such as 500ms, 30s, 5min or 1h, or a number of seconds (got "5m")'],
    ['server_idle_timeout: -5', 'server_idle_timeout: must be a duration such as 500ms, 30s, 5min or 1h, or a number of seconds (got -5)'],
    ['reserve_pool_timeout: true', 'reserve_pool_timeout: must be a duration such as 500ms, 30s, 5min or 1h, or a number of seconds (got true)'],
    ['server_reset_query: 1', 'server_reset_query: must be a string (got 1)'],
    ['server_reset_query_always: sometimes', 'server_reset_query_always: must be true or false (also accepted: yes/no, on/off, 1/0) (got "sometimes")'],
    ['auth_type: kerberos', 'auth_type: must be one of "scram-sha-256", "md5", "plain", "trust", "cert" (got "kerberos")'],
    ['auth_type: cert', 'client_tls_ca_file: is needed to check client certificates (client_tls_sslmode prefer, auth_type cert)'],
    ['client_tls_sslmode: require', 'client_tls_sslmode: is require, which needs client_tls_cert_file and client_tls_key_file'],
    ['client_tls_cert_file: /x.pem', 'client_tls_key_file: must be set too: a TLS certificate needs its key and the key its certificate'],
    ['server_tls_sslmode: sometimes', 'server_tls_sslmode: must be one of "disable", "allow", "prefer", "require", "verify-ca", "verify-full" (got "sometimes")'],
    ['admin_users: {a: 1}', 'admin_users: must be a list of names or a comma-separated string (got a map)'],
    ['log_level: verbose', 'log_level: must be one of "trace", "debug", "info", "warn", "error", "fatal" (got "verbose")'],
    ['metrics_port: 65536', 'metrics_port: must be an integer between 0 and 65535 (got 65536)'],
    ['listen_port:', 'listen_port: must be an integer between 0 and 65535 (got nothing)'],
  ])('%s', (yaml, message) => {
    expect(errorOf({ yaml }).message).toBe(message);
  });

  it('refuses unknown top-level keys, suggesting the closest', () => {
    expect(errorOf({ yaml: 'listen_prot: 1' }).message).toBe('listen_prot: is not a known setting; did you mean "listen_port"?');
    expect(errorOf({ yaml: 'database: {}' }).message).toBe('database: is not a known setting; did you mean "databases"?');
    expect(errorOf({ yaml: 'LISTEN_PORT: 1' }).reason).toBe('is not a known setting; did you mean "listen_port"?');
    expect(errorOf({ yaml: 'frobnicate: 1' }).message).toBe('frobnicate: is not a known setting');
  });

  it('explains keys that belong elsewhere', () => {
    expect(errorOf({ yaml: 'host: h' }).reason).toBe('is not a known setting; host belongs inside an entry under databases: or users:');
    expect(errorOf({ yaml: 'pgbouncer: {}' }).reason).toMatch(/global settings go at the top level/);
  });

  it.each([
    ['databases: [a]', 'databases: must be a map from names to entries (got a list)'],
    ['databases: {app: 5}', 'databases.app: must be a map of database settings (got 5)'],
    ['databases: {app: {hots: h}}', 'databases.app.hots: is not a known database setting; did you mean "host"?'],
    ['databases: {app: {zzz: h}}', 'databases.app.zzz: is not a known database setting (allowed: url, host, port, dbname, user, password, pool_size, min_pool_size, reserve_pool_size, max_db_connections, pool_mode, connect_query, application_name, options, auth_type, auth_user)'],
    ['databases: {app: {host: ""}}', 'databases.app.host: must not be empty'],
    ['databases: {app: {host: 5}}', 'databases.app.host: must be a string (got 5)'],
    ['databases: {app: {port: 70000}}', 'databases.app.port: must be an integer between 1 and 65535 (got 70000)'],
    ['databases: {app: {port: 0}}', 'databases.app.port: must be an integer between 1 and 65535 (got 0)'],
    ['databases: {app: {dbname: ""}}', 'databases.app.dbname: must not be empty'],
    ['databases: {app: {pool_size: 0}}', 'databases.app.pool_size: must be an integer >= 1 (got 0)'],
    ['databases: {app: {min_pool_size: -1}}', 'databases.app.min_pool_size: must be an integer >= 0 (got -1)'],
    ['databases: {app: {reserve_pool_size: x}}', 'databases.app.reserve_pool_size: must be an integer >= 0 (got "x")'],
    ['databases: {app: {max_db_connections: -2}}', 'databases.app.max_db_connections: must be an integer >= 0 (got -2)'],
    ['databases: {app: {pool_mode: bogus}}', 'databases.app.pool_mode: must be one of "session", "transaction", "statement" (got "bogus")'],
    ['databases: {app: {connect_query: ""}}', 'databases.app.connect_query: must not be empty'],
    ['databases: {app: {url: "http://h/d"}}', 'databases.app.url: must be a URL like postgres://user:password@host:5432/dbname (the scheme must be postgres:// or postgresql://)'],
    ['databases: {app: {url: "postgres://h:0/d"}}', 'databases.app.url: must have a port between 1 and 65535 (got 0)'],
    ['users: [a]', 'users: must be a map from names to entries (got a list)'],
    ['users: {app: secret}', 'users.app: must be a map of user settings (got a string; put it under password: if that is what it is)'],
    ['databases: {app: "postgres://u:pw@h/d"}', 'databases.app: must be a map of database settings (got a string; put it under url: if that is what it is)'],
    ['users: {app: {pasword: x}}', 'users.app.pasword: is not a known user setting; did you mean "password"?'],
    ['users: {app: {password: ""}}', 'users.app.password: must not be empty'],
    ['users: {app: {password: md5abc}}', 'users.app.password: must be an md5 hash of the form "md5" followed by 32 hex digits (got 3 digits)'],
    ['users: {app: {password: x, pool_mode: none}}', 'users.app.pool_mode: must be one of "session", "transaction", "statement" (got "none")'],
    ['users: {app: {password: x, pool_size: 0}}', 'users.app.pool_size: must be an integer >= 1 (got 0)'],
    ['users: {app: {password: x, max_user_connections: -1}}', 'users.app.max_user_connections: must be an integer >= 0 (got -1)'],
  ])('%s', (yaml, message) => {
    expect(errorOf({ yaml }).message).toBe(message);
  });

  it('never repeats a password in a message', () => {
    const badScram = `SCRAM-SHA-256$4096:c2FsdA==$${KEY32}`;
    const err = errorOf({ yaml: `users: {app: {password: "${badScram}"}}` });
    expect(err.key).toBe('users.app.password');
    expect(err.message).not.toContain(KEY32);
    expect(errorOf({ yaml: 'users: {app: {password: 12345678}}' }).message).not.toContain('12345678');
  });
});

describe('cross-field checks', () => {
  it('keeps min_pool_size within default_pool_size', () => {
    expect(errorOf({ yaml: 'default_pool_size: 5\nmin_pool_size: 6' }).message).toBe(
      'min_pool_size: must not exceed default_pool_size (5) (got 6)',
    );
    expect(errorOf({ env: { MIN_POOL_SIZE: '30' } }).message).toBe(
      'MIN_POOL_SIZE: must not exceed default_pool_size (20) (got 30)',
    );
    expect(load({ yaml: 'default_pool_size: 5\nmin_pool_size: 5' }).min_pool_size).toBe(5);
  });

  it('keeps each database minimum within its pool size', () => {
    expect(errorOf({ yaml: 'databases: {app: {pool_size: 2, min_pool_size: 3}}' }).message).toBe(
      'databases.app.min_pool_size: must not exceed the pool size (2) (got 3)',
    );
    expect(errorOf({ yaml: 'databases: {app: {min_pool_size: 21}}' }).message).toBe(
      'databases.app.min_pool_size: must not exceed the pool size (20) (got 21)',
    );
    expect(errorOf({ yaml: 'min_pool_size: 4\ndatabases: {app: {pool_size: 3}}' }).message).toBe(
      'databases.app.pool_size: must be at least min_pool_size (4) (got 3)',
    );
  });

  it('keeps the metrics port apart from the listen port', () => {
    expect(errorOf({ yaml: 'listen_port: 9000\nmetrics_port: 9000' }).message).toBe(
      'metrics_port: must differ from listen_port (both are 9000); 0 turns the metrics endpoint off',
    );
    expect(load({ yaml: 'listen_port: 0\nmetrics_port: 0' }).metrics_port).toBe(0);
  });

  it('reserves the admin console database names', () => {
    expect(errorOf({ yaml: 'databases: {pgbouncer: {}}' }).key).toBe('databases.pgbouncer');
    expect(errorOf({ yaml: 'databases: {pgmux: {}}' }).reason).toMatch(/reserved for the admin console/);
    expect(load({ yaml: 'databases: {admin: {dbname: pgbouncer}}' }).databases.admin.dbname).toBe('pgbouncer');
  });

  it('requires a forced password to come with a forced user, in a form that can log in', () => {
    expect(errorOf({ yaml: 'databases: {app: {password: x}}' }).message).toBe(
      'databases.app.password: needs user as well: a forced password goes with a forced user',
    );
    expect(errorOf({ yaml: `databases: {app: {user: u, password: "${SCRAM}"}}` }).key).toBe('databases.app.password');
    expect(load({ yaml: `databases: {app: {user: u, password: ${MD5}}}` }).databases.app.password).toBe(MD5);
  });

  it('requires user passwords unless auth_type is trust', () => {
    expect(errorOf({ yaml: 'users: {app: {pool_mode: session}}' }).message).toBe(
      'users.app.password: is required with auth_type scram-sha-256: give it, or let auth_file or auth_user/auth_query supply it, or use auth_type trust or cert',
    );
    expect(errorOf({ yaml: 'auth_type: plain\nusers: {app:}' }).key).toBe('users.app.password');
    expect(load({ yaml: 'auth_type: trust\nusers: {app:}' }).users.app).toEqual({});
    expect(load({ yaml: 'auth_file: /etc/pgmux/userlist.txt\nusers: {app: {pool_size: 3}}' }).users.app).toEqual({ pool_size: 3 });
    expect(load({ yaml: 'auth_user: pgmux_auth\nusers: {app:}' }).users.app).toEqual({});
  });

  it('refuses md5 hashes with SCRAM authentication, and accepts the other pairings', () => {
    expect(errorOf({ yaml: `users: {app: {password: ${MD5}}}` }).reason).toMatch(/^is an md5 hash, which cannot answer SCRAM/);
    expect(load({ yaml: `users: {app: {password: "${SCRAM}"}}` }).users.app.password).toBe(SCRAM);
    expect(load({ yaml: `auth_type: md5\nusers: {app: {password: "${SCRAM}"}}` }).users.app.password).toBe(SCRAM);
    expect(load({ yaml: `auth_type: plain\nusers: {app: {password: ${MD5}}}` }).users.app.password).toBe(MD5);
    // A later source may fix what an earlier one would have made invalid.
    expect(load({ yaml: `users: {app: {password: ${MD5}}}`, env: { AUTH_TYPE: 'md5' } }).auth_type).toBe('md5');
  });
});

describe('the result', () => {
  const config = load({
    yaml: 'admin_users: [a]\ndatabases: {app: {}}\nusers: {app: {password: x}}\n',
  });

  it('is deeply frozen', () => {
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.databases)).toBe(true);
    expect(Object.isFrozen(config.databases.app)).toBe(true);
    expect(Object.isFrozen(config.users)).toBe(true);
    expect(Object.isFrozen(config.users.app)).toBe(true);
    expect(Object.isFrozen(config.admin_users)).toBe(true);
    expect(() => {
      (config as { listen_port: number }).listen_port = 1;
    }).toThrow(TypeError);
    expect(() => {
      (config.admin_users as string[]).push('b');
    }).toThrow(TypeError);
  });

  it('is a fresh object on each load', () => {
    const again = load({ yaml: 'databases: {app: {}}' });
    expect(again.databases).not.toBe(config.databases);
  });
});

describe('the example config', () => {
  const repo = fileURLToPath(new URL('../..', import.meta.url));

  it('is not read implicitly: a checkout has no config/pgmux.yaml', () => {
    expect(loadConfig({ argv: [], env: {}, cwd: repo }).configPath).toBeNull();
  });

  it('loads when named, with database app at 127.0.0.1:5432 and user app', () => {
    const { config, configPath } = loadConfig({ argv: ['--config', 'config/pgmux.example.yaml'], env: {}, cwd: repo });
    expect(configPath).toBe(join(repo, 'config', 'pgmux.example.yaml'));
    expect(config.databases).toEqual({ app: { host: '127.0.0.1', port: 5432, dbname: 'app' } });
    expect(Object.keys(config.users)).toEqual(['app']);
    expect(config.listen_port).toBe(6543);
  });
});

describe('DATABASE_URL parameters', () => {
  const URL = 'postgres://app:pw@db:5432/appdb';

  it('set the server TLS settings, so sslmode=require is never plaintext', () => {
    const config = load({ env: { DATABASE_URL: `${URL}?sslmode=require` } });
    expect(config.server_tls_sslmode).toBe('require');
    const full = load({ env: { DATABASE_URL: `${URL}?sslmode=verify-full&sslrootcert=/etc/ca.pem&sslcert=/c.pem&sslkey=/k.pem` } });
    expect([full.server_tls_sslmode, full.server_tls_ca_file, full.server_tls_cert_file, full.server_tls_key_file]).toEqual(['verify-full', '/etc/ca.pem', '/c.pem', '/k.pem']);
  });

  it('win over the file, as the environment does, and lose to flags', () => {
    const yaml = 'server_tls_sslmode: disable\n';
    expect(load({ yaml, env: { DATABASE_URL: `${URL}?sslmode=require` } }).server_tls_sslmode).toBe('require');
    expect(load({ yaml, env: { DATABASE_URL: `${URL}?sslmode=require` }, argv: ['--set', 'server_tls_sslmode=verify-full'] }).server_tls_sslmode).toBe('verify-full');
  });

  it('refuse a variable that sets the same setting to another value', () => {
    const err = errorOf({ env: { DATABASE_URL: `${URL}?sslmode=require`, SERVER_TLS_SSLMODE: 'disable' } });
    expect(err.message).toBe('DATABASE_URL: has sslmode=require, and SERVER_TLS_SSLMODE sets server_tls_sslmode to something else: give one');
    expect(load({ env: { DATABASE_URL: `${URL}?sslmode=require`, SERVER_TLS_SSLMODE: 'require' } }).server_tls_sslmode).toBe('require');
  });

  it('set server_connect_timeout and the database\'s startup parameters', () => {
    const config = load({ env: { DATABASE_URL: `${URL}?connect_timeout=7&application_name=web&options=-c%20search_path%3Dapp` } });
    expect(config.server_connect_timeout).toBe(7_000);
    expect(config.databases.appdb).toEqual({ host: 'db', port: 5432, dbname: 'appdb', application_name: 'web', options: '-c search_path=app' });
  });

  it('name an unknown parameter with a suggestion, never repeating the URL', () => {
    const err = errorOf({ env: { DATABASE_URL: 'postgres://app:hunter2@db/appdb?sslmdoe=require' } });
    expect(err.key).toBe('DATABASE_URL');
    expect(err.reason).toMatch(/^has parameter sslmdoe, which is not a libpq connection parameter; did you mean "sslmode"\?/);
    expect(err.message).not.toContain('hunter2');
  });

  it('in a database entry\'s url: application_name and options apply to it; TLS and timeouts must be set globally', () => {
    const err = errorOf({ yaml: 'databases:\n  app:\n    url: postgres://h/app?sslmode=require\n' });
    expect(err.message).toBe(
      'databases.app.url: has sslmode=require, which pgmux sets for all databases at once: set server_tls_sslmode at the top level instead (only DATABASE_URL\'s parameters set it)',
    );
    expect(load({ yaml: 'databases:\n  app:\n    url: postgres://h/app?options=-c%20work_mem%3D64MB\n' }).databases.app.options).toBe('-c work_mem=64MB');
  });
});

describe('all problems at once', () => {
  it('reports every bad key of a file together, in file order', () => {
    const yaml = ['listen_port: abc', 'pool_mdoe: session', 'databases:', '  a: {port: 0}', '  b: {hots: h, pool_size: -1}', 'users:', '  u: {pool_size: x}', ''].join('\n');
    let error: unknown;
    try {
      loadFrom({ yaml });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigErrors);
    const errors = (error as ConfigErrors).errors;
    expect(errors.map((e) => e.key)).toEqual(['listen_port', 'pool_mdoe', 'databases.a.port', 'databases.b.hots', 'databases.b.pool_size', 'users.u.pool_size']);
    expect((error as ConfigErrors).key).toBe('listen_port');
    expect((error as Error).message).toMatch(/^6 problems:\n {2}listen_port: must be an integer/);
    expect((error as Error).message).toContain('\n  pool_mdoe: is not a known setting; did you mean "pool_mode"?');
  });

  it('adds the environment\'s and the flags\' problems to the file\'s', () => {
    try {
      loadFrom({ yaml: 'listen_port: abc\n', env: { POOL_MODE: 'sesion' }, argv: ['--set', 'server_lifetime=forever'] });
      throw new Error('expected an error');
    } catch (err) {
      expect((err as ConfigErrors).errors.map((e) => e.key)).toEqual(['listen_port', 'POOL_MODE', '--set server_lifetime']);
    }
  });

  it('reports every failed cross-check together, once the values themselves are valid', () => {
    try {
      loadFrom({ yaml: 'min_pool_size: 30\ndatabases: {pgmux: {}}\nusers: {a: {}, b: {}}\n' });
      throw new Error('expected an error');
    } catch (err) {
      expect((err as ConfigErrors).errors.map((e) => e.key)).toEqual(['min_pool_size', 'databases.pgmux', 'users.a.password', 'users.b.password']);
    }
  });

  it('throws a single problem as a plain ConfigError', () => {
    const err = errorOf({ yaml: 'listen_port: abc\n' });
    expect(err).not.toBeInstanceOf(ConfigErrors);
  });
});

describe('environment typos', () => {
  it('warns about an upper-case variable one or two edits from a pgmux variable, naming the right one', () => {
    const { notices, config } = loadFrom({ env: { DEFAULT_POOLSIZE: '5', DATABSE_URL: 'postgres://x', LOGLEVEL: 'debug' } });
    expect(config.default_pool_size).toBe(20);
    expect(notices).toEqual([
      {
        level: 'warn',
        message: 'environment: not a pgmux variable, ignored: DATABSE_URL (did you mean DATABASE_URL?), DEFAULT_POOLSIZE (did you mean DEFAULT_POOL_SIZE?), LOGLEVEL (did you mean LOG_LEVEL?)',
        fields: { ignored: ['DATABSE_URL', 'DEFAULT_POOLSIZE', 'LOGLEVEL'], suggestions: ['DATABASE_URL', 'DEFAULT_POOL_SIZE', 'LOG_LEVEL'] },
      },
    ]);
  });

  it('stays silent in a normal environment (this process\'s, and a typical container\'s)', () => {
    const typical = {
      PATH: '/usr/bin', HOME: '/root', PWD: '/app', OLDPWD: '/', USER: 'node', LOGNAME: 'node', SHELL: '/bin/sh', TERM: 'xterm',
      LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', TZ: 'UTC', HOSTNAME: 'pgmux-7d9f', SHLVL: '1', NODE_ENV: 'production', NODE_VERSION: '20.19.0',
      NODE_OPTIONS: '--max-old-space-size=256', YARN_VERSION: '1.22', PGHOST: 'db', PGPORT: '5432', PGUSER: 'app', PGDATABASE: 'app',
      PGPASSWORD: 'x', PGSSLMODE: 'require', KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443', KUBERNETES_PORT: 'tcp://10.0.0.1:443',
      POSTGRES_USER: 'app', POSTGRES_PASSWORD: 'x', POSTGRES_DB: 'app', CI: 'true', GITHUB_ACTIONS: 'true', DEBUG: '', EDITOR: 'vi', TMPDIR: '/tmp',
      npm_config_cache: '/tmp', npm_lifecycle_event: 'start', DB_HOST: 'db', DB_USER: 'app', DB_PASSWORD: 'app-pass', PGBOUNCER_POOL_MODE: 'session',
    };
    expect(loadFrom({ env: typical }).notices).toEqual([]);
    // The test runner's own environment: nothing in it is a pgmux typo.
    const own = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PGMUX') && name !== 'DATABASE_URL'));
    expect(loadConfig({ argv: [], env: own, cwd: tempDir() }).notices).toEqual([]);
  });
});

describe('configuration sources', () => {
  it('names the file, the variables and the flags read, never their values', () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'config'));
    const file = writeFile(join(cwd, 'config'), 'pgmux.yaml', 'listen_port: 7000\n');
    const env = { DATABASE_URL: 'postgres://app:secret@db/app', POOL_MODE: 'session', HOME: '/root', DB_HOST: 'ignored' };
    const { sources } = loadConfig({ argv: ['--listen-port=7001', '--set', 'server_lifetime=5min'], env, cwd });
    expect(sources).toEqual({ file, env: ['POOL_MODE', 'DATABASE_URL'], flags: ['--listen-port', '--set server_lifetime'] });
    const line = describeSources(sources);
    expect(line).toBe(`configuration read from file ${file}, environment POOL_MODE, DATABASE_URL, flags --listen-port, --set server_lifetime`);
    expect(line).not.toContain('7001');
    expect(line).not.toContain('secret');
  });

  it('says when no file and no variable was read', () => {
    const { sources } = loadConfig({ argv: [], env: { HOME: '/root' }, cwd: tempDir() });
    expect(describeSources(sources)).toBe(
      'configuration read from no config file (config/pgmux.yaml does not exist; --config or PGMUX_CONFIG names one), no environment variables',
    );
  });

  it('names PGMUX_CONFIG, DB_* and PGBOUNCER_* variables when they are what configured pgmux', () => {
    const cwd = tempDir();
    writeFile(cwd, 'c.yaml', '');
    const env = { PGMUX_CONFIG: 'c.yaml', DB_HOST: 'db', DB_USER: 'u', DB_PASSWORD: 'p', PGBOUNCER_POOL_MODE: 'session', PGBOUNCER_NOPE: 'x' };
    expect(loadConfig({ argv: [], env, cwd }).sources.env).toEqual(['PGMUX_CONFIG', 'PGBOUNCER_POOL_MODE', 'DB_HOST', 'DB_USER', 'DB_PASSWORD']);
  });
});
