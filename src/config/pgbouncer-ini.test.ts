import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { runImportCommand } from './import-command.js';
import { loadConfig } from './load.js';
import { parseConnectionString, parsePgbouncerIni, PGBOUNCER_SETTINGS, type IniReadOptions } from './pgbouncer-ini.js';
import { resolveDatabase } from './resolve-database.js';
import { SETTINGS_BY_NAME } from './schema.js';

function ini(text: string, options: IniReadOptions = {}) {
  return parsePgbouncerIni(text, 'pgbouncer.ini', options);
}

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

const MAIN = '[pgbouncer]\n';

describe('pgbouncer.ini syntax', () => {
  it('reads sections, comments and values as PgBouncer does', () => {
    const r = ini(
      [
        '; a comment',
        '# another',
        '   [pgbouncer]   ; trailing comment after a header',
        'listen_port=7000',
        '  default_pool_size   =   7   ',
        'server_reset_query = DISCARD ALL',
        'auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename=$1',
        '',
      ].join('\n'),
    );
    expect(r.document).toMatchObject({
      listen_port: 7000,
      default_pool_size: 7,
      server_reset_query: 'DISCARD ALL',
      auth_query: 'SELECT usename, passwd FROM pg_shadow WHERE usename=$1',
    });
    expect(r.files).toEqual(['pgbouncer.ini']);
  });

  it('does not treat ; or # later in a line as a comment (the value is then invalid, as in PgBouncer)', () => {
    const err = errorOf(() => ini(`${MAIN}listen_port = 6432 ; the port\n`));
    expect(err.message).toBe('pgbouncer.ini:2: listen_port: must be an integer between 0 and 65535 (got "6432 ; the port")');
    expect(ini(`${MAIN}server_check_query = select 1 # x\n`).document.server_check_query).toBe('select 1 # x');
  });

  it('accepts CRLF line endings and a byte-order mark', () => {
    const r = ini(`\ufeff[pgbouncer]\r\nlisten_port = 7001\r\n[databases]\r\napp = host=h port=5433\r\n`);
    expect(r.document.listen_port).toBe(7001);
    expect(r.document.databases).toEqual({ app: { host: 'h', port: 5433 } });
  });

  it('keeps the last of repeated keys', () => {
    expect(ini(`${MAIN}listen_port = 1\nlisten_port = 2\n`).document.listen_port).toBe(2);
  });

  it('quotes database and user names: "..." with "" for a quote, and \'...\'', () => {
    const r = ini(
      [
        '[databases]',
        '"my db" = host=a',
        '"say ""hi""" = host=b',
        "'with.dots and space' = host=c",
        'plain_name-1.x = host=d',
        '[users]',
        '"user@example.com" = pool_mode=session',
        MAIN,
      ].join('\n'),
    );
    expect(Object.keys(r.document.databases as object)).toEqual(['my db', 'say "hi"', 'with.dots and space', 'plain_name-1.x']);
    expect(r.document.users).toEqual({ 'user@example.com': { pool_mode: 'session' } });
  });

  it('takes any quoted name as a plain key, "__proto__" included', () => {
    const { config } = loadFromText(`${MAIN}auth_type = trust\n[databases]\n"__proto__" = host=h\n"constructor" = host=i\n`);
    expect(Object.keys(config.databases)).toEqual(['__proto__', 'constructor']);
    expect(resolveDatabase(config, '__proto__')).toMatchObject({ host: 'h', dbname: '__proto__' });
  });

  it('refuses an unquoted name with other characters, naming file and line', () => {
    expect(errorOf(() => ini(`${MAIN}[databases]\nmy db = host=a\n`)).message).toMatch(/^pgbouncer\.ini:3: syntax error: expected "=" after my .*must be quoted/);
    expect(errorOf(() => ini(`${MAIN}[databases]\n"open = host=a\n`)).message).toBe('pgbouncer.ini:3: syntax error: unterminated quoted name');
    expect(errorOf(() => ini(`${MAIN}= 1\n`)).message).toMatch(/^pgbouncer\.ini:2: syntax error: expected a name/);
  });

  it('refuses what PgBouncer refuses: no [pgbouncer] section, unknown sections, keys outside a section, unknown settings', () => {
    expect(errorOf(() => ini('[databases]\napp = host=a\n')).message).toBe('pgbouncer.ini: has no [pgbouncer] section (PgBouncer refuses such a file too)');
    expect(errorOf(() => ini(`${MAIN}[database]\n`)).message).toMatch(/^pgbouncer\.ini:2: unknown section \[database\]/);
    expect(errorOf(() => ini(`listen_port = 1\n${MAIN}`)).message).toMatch(/^pgbouncer\.ini:1: listen_port: is outside any section/);
    expect(errorOf(() => ini(`${MAIN}listen_prot = 1\n`)).message).toBe('pgbouncer.ini:2: listen_prot: is not a PgBouncer setting (unknown parameter; PgBouncer refuses it too)');
    expect(errorOf(() => ini('[pgbouncer] listen_port = 1\n')).message).toMatch(/^pgbouncer\.ini:1: syntax error: unexpected text after \[pgbouncer\]/);
  });
});

describe('connection strings ([databases], [users])', () => {
  const fail = (reason: string) => new ConfigError('x', reason);

  it('splits key=value pairs; single quotes allow spaces, with \'\' for a quote', () => {
    expect(parseConnectionString("host=a port = 5 connect_query='SELECT ''it''''s'', 1'  dbname=b", fail)).toEqual([
      ['host', 'a'],
      ['port', '5'],
      ['connect_query', "SELECT 'it''s', 1"],
      ['dbname', 'b'],
    ]);
    expect(parseConnectionString('', fail)).toEqual([]);
    expect(parseConnectionString("password='p w='", fail)).toEqual([['password', 'p w=']]);
  });

  it('refuses an unterminated quote, an empty value and a key without "=", without repeating the value', () => {
    const secret = 'Sup3r$ecret';
    const messages = [
      `host=a password='${secret}`,
      "password=''",
      `host=a ${secret}`,
    ].map((text) => errorOf(() => ini(`${MAIN}[databases]\napp = ${text}\n`)).message);
    expect(messages[0]).toBe('pgbouncer.ini:3: databases.app: syntax error in the connection string: unterminated quoted value for password');
    expect(messages[1]).toBe('pgbouncer.ini:3: databases.app: syntax error in the connection string: empty value for password');
    expect(messages[2]).toBe("pgbouncer.ini:3: databases.app: syntax error in the connection string: expected key=value (quote a value that contains spaces: key='a b')");
    for (const m of messages) expect(m).not.toContain(secret);
  });

  it('maps every database parameter pgmux has; reserve_pool is reserve_pool_size', () => {
    const r = ini(
      `${MAIN}[databases]\napp = host=db.internal port=5433 dbname=appdb user=svc password=s3cret auth_user=lookup pool_size=5 min_pool_size=1 reserve_pool=2 max_db_connections=9 pool_mode=transaction connect_query='SET a = 1'\n`,
    );
    expect(r.document.databases).toEqual({
      app: {
        host: 'db.internal',
        port: 5433,
        dbname: 'appdb',
        user: 'svc',
        password: 's3cret',
        auth_user: 'lookup',
        pool_size: 5,
        min_pool_size: 1,
        reserve_pool_size: 2,
        max_db_connections: 9,
        pool_mode: 'transaction',
        connect_query: 'SET a = 1',
      },
    });
    expect(r.unsupported).toEqual([]);
  });

  it('reports the parameters pgmux does not support, and refuses unknown ones with file, line and key', () => {
    const r = ini(`${MAIN}[databases]\napp = host=h client_encoding=UTF8 timezone=UTC application_name=x auth_dbname=d\n`);
    expect(r.unsupported.map((n) => [n.key, n.line])).toEqual([
      ['databases.app.client_encoding', 3],
      ['databases.app.timezone', 3],
      ['databases.app.auth_dbname', 3],
    ]);
    expect(r.document.databases).toEqual({ app: { host: 'h', application_name: 'x' } });
    expect(errorOf(() => ini(`${MAIN}[databases]\napp = host=h sslmode=require\n`)).message).toBe(
      'pgbouncer.ini:3: databases.app.sslmode: is not a PgBouncer connection parameter (unrecognized; PgBouncer refuses it too)',
    );
    expect(errorOf(() => ini(`${MAIN}[databases]\napp = host=h port=0x\n`)).message).toBe('pgbouncer.ini:3: databases.app.port: must be an integer between 1 and 65535 (got "0x")');
  });

  it('connects over TCP where PgBouncer would use a Unix socket, and says so; refuses host lists', () => {
    const r = ini(`${MAIN}[databases]\nfoodb =\nsock = host=/var/run/postgresql dbname=x\n`);
    expect(r.document.databases).toEqual({ foodb: { host: '127.0.0.1' }, sock: { host: '127.0.0.1', dbname: 'x' } });
    expect(r.unsupported.map((n) => n.key)).toEqual(['databases.foodb.host', 'databases.sock.host']);
    expect(r.unsupported[1].reason).toMatch(/Unix socket/);
    expect(errorOf(() => ini(`${MAIN}[databases]\napp = host=a,b\n`)).message).toBe('pgbouncer.ini:3: databases.app.host: lists several hosts; pgmux connects to one host per database');
  });

  it('drops a password given without user (PgBouncer does not use it either), and refuses the admin names', () => {
    const r = ini(`${MAIN}[databases]\napp = host=h password=x\n`);
    expect(r.document.databases).toEqual({ app: { host: 'h' } });
    expect(r.ignored.map((n) => n.key)).toEqual(['databases.app.password']);
    expect(errorOf(() => ini(`${MAIN}[databases]\npgbouncer = host=h\n`)).message).toBe('pgbouncer.ini:3: databases.pgbouncer: the name is reserved for the admin console');
  });

  it('maps [users] pool_mode, pool_size, max_user_connections, and reports the rest', () => {
    const r = ini(`${MAIN}[users]\nbob = pool_mode=statement pool_size=3 max_user_connections=4 reserve_pool_size=1 query_timeout=5\n`);
    expect(r.document.users).toEqual({ bob: { pool_mode: 'statement', pool_size: 3, max_user_connections: 4 } });
    expect(r.unsupported.map((n) => n.key)).toEqual(['users.bob.pool_mode', 'users.bob.reserve_pool_size', 'users.bob.query_timeout']);
    expect(errorOf(() => ini(`${MAIN}[users]\nbob = password=x\n`)).message).toBe('pgbouncer.ini:3: users.bob.password: is not a PgBouncer user parameter (unrecognized; PgBouncer refuses it too)');
  });
});

describe('the "*" wildcard database', () => {
  it('keeps the fallback entry; a client database name resolves to the same-named upstream database', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pgmux-ini-'));
    writeFileSync(path.join(dir, 'pgbouncer.ini'), `[databases]\n* = host=wild.internal port=6000 pool_size=4\nfixed = host=other\n${MAIN}auth_type = trust\n`);
    const { config } = loadConfig({ argv: ['--pgbouncer-ini', 'pgbouncer.ini'], env: {}, cwd: dir });
    expect(resolveDatabase(config, 'sales')).toMatchObject({ host: 'wild.internal', port: 6000, dbname: 'sales', pool_size: 4 });
    expect(resolveDatabase(config, 'fixed')).toMatchObject({ host: 'other', dbname: 'fixed' });
    // The admin console's names and "*" itself are never routed upstream.
    expect(resolveDatabase(config, 'pgbouncer')).toBeUndefined();
    expect(resolveDatabase(config, '*')).toBeUndefined();
  });

  it('sends every name to one database when the wildcard sets dbname', () => {
    const r = ini(`${MAIN}[databases]\n* = host=h dbname=shared\n`);
    expect(r.document.databases).toEqual({ '*': { host: 'h', dbname: 'shared' } });
  });
});

describe('[pgbouncer] settings', () => {
  it('reads durations as (fractional) seconds and writes them with a unit', () => {
    const r = ini(`${MAIN}reserve_pool_timeout = 0.5\nquery_wait_timeout = 120\nserver_check_delay = 1e1\nclient_login_timeout = .25\nserver_idle_timeout = 0\n`);
    expect(r.document).toMatchObject({
      reserve_pool_timeout: '500ms',
      query_wait_timeout: '2min',
      server_check_delay: '10s',
      client_login_timeout: '250ms',
      server_idle_timeout: '0',
    });
    expect(errorOf(() => ini(`${MAIN}query_wait_timeout = 30s\n`)).message).toBe(
      'pgbouncer.ini:2: query_wait_timeout: must be a number of seconds, as in PgBouncer (e.g. 30 or 0.5) (got "30s")',
    );
    expect(errorOf(() => ini(`${MAIN}query_wait_timeout = -1\n`)).message).toMatch(/^pgbouncer\.ini:2: query_wait_timeout: must be a number of seconds/);
  });

  it('translates a 0 that means something else in PgBouncer', () => {
    const r = ini(`${MAIN}server_lifetime = 0\nserver_connect_timeout = 0\nreserve_pool_timeout = 0\n`);
    const { config } = loadFromText(`${MAIN}server_lifetime = 0\nserver_connect_timeout = 0\nreserve_pool_timeout = 0\n`);
    expect(r.document.server_lifetime).toBe('1ms'); // used once
    expect(config.server_lifetime).toBe(1);
    expect(config.server_connect_timeout).toBe(2 ** 31 - 1); // no timeout
    expect(config.reserve_pool_timeout).toBe(2 ** 31 - 1); // reserve pool off
  });

  it('reads 0/1 booleans and comma-separated lists', () => {
    const r = ini(`${MAIN}server_reset_query_always = 1\ntcp_keepalive = 0\nadmin_users = postgres, ops ,root\nstats_users =\n`);
    expect(r.document).toMatchObject({ server_reset_query_always: true, tcp_keepalive: false, admin_users: ['postgres', 'ops', 'root'], stats_users: [] });
  });

  it("writes PgBouncer's defaults where they differ from pgmux's, unless the file sets them", () => {
    expect(ini(MAIN).document).toEqual({
      listen_port: 6432,
      pool_mode: 'session',
      max_client_conn: 100,
      auth_type: 'md5',
      client_tls_sslmode: 'disable',
      unix_socket_dir: '/tmp',
      databases: {},
      users: {},
    });
    expect(ini(`${MAIN}pool_mode = transaction\nlisten_port = 6543\n`).document).toMatchObject({ pool_mode: 'transaction', listen_port: 6543 });
  });

  it('maps listen_addr, auth_type, verbose and server_check_query <empty>', () => {
    expect(ini(`${MAIN}listen_addr = *\n`).document.listen_addr).toBe('0.0.0.0');
    expect(errorOf(() => ini(`${MAIN}listen_addr = 10.0.0.1,10.0.0.2\n`)).message).toMatch(/^pgbouncer\.ini:2: listen_addr: lists several addresses/);
    expect(ini(`${MAIN}listen_addr =\n`).ignored.map((n) => n.key)).toEqual(['listen_addr']);
    expect(ini(`${MAIN}auth_type = scram-sha-256\n`).document.auth_type).toBe('scram-sha-256');
    for (const bad of ['hba', 'pam', 'any', 'ldap']) {
      expect(errorOf(() => ini(`${MAIN}auth_type = ${bad}\n`)).message).toBe(`pgbouncer.ini:2: auth_type: ${bad} is not supported by pgmux (supported: cert, md5, scram-sha-256, plain, trust)`);
    }
    expect(ini(`${MAIN}auth_type = trust\n`).unsupported.map((n) => n.key)).toEqual(['auth_type']);
    expect(ini(`${MAIN}verbose = 1\n`).document.log_level).toBe('debug');
    expect(ini(`${MAIN}verbose = 3\n`).document.log_level).toBe('trace');
    expect(ini(`${MAIN}verbose = 0\n`).document.log_level).toBeUndefined();
    const empty = ini(`${MAIN}server_check_query = <empty>\n`);
    expect(empty.document.server_check_query).toBeUndefined();
    expect(empty.ignored.map((n) => n.key)).toEqual(['server_check_query']);
  });

  it('reports unsupported settings by name with file, line and reason, and meaningless ones as ignored', () => {
    const r = ini(
      [
        MAIN.trim(),
        'logfile = /var/log/pgbouncer/pgbouncer.log',
        'pidfile = /var/run/pgbouncer/pgbouncer.pid',
        'unix_socket_dir = /tmp',
        'user = postgres',
        'ignore_startup_parameters = extra_float_digits',
        'server_round_robin = 1',
        'client_tls_ciphers = fast',
        'pool_mode = statement',
        '[peers]',
        '1 = host=/tmp/pgbouncer1',
      ].join('\n'),
    );
    expect(r.ignored.map((n) => n.key)).toEqual(['logfile', 'pidfile', 'user', 'ignore_startup_parameters']);
    expect(r.document.unix_socket_dir).toBe('/tmp');
    expect(r.unsupported.map((n) => `${n.key}@${n.line}`)).toEqual(['server_round_robin@7', 'client_tls_ciphers@8', 'pool_mode@9', 'peers.1@11']);
    for (const note of [...r.ignored, ...r.unsupported]) {
      expect(note.file).toBe('pgbouncer.ini');
      expect(note.reason.length).toBeGreaterThan(5);
    }
    expect(r.document.pool_mode).toBe('statement');
  });

  it('covers every pgmux global setting whose name PgBouncer shares, and only valid targets', () => {
    for (const [name, rule] of PGBOUNCER_SETTINGS) {
      if (rule.kind === 'setting') expect(SETTINGS_BY_NAME.has(rule.to ?? name), name).toBe(true);
    }
    const pgbouncerNames = ['listen_addr', 'listen_port', 'pool_mode', 'auth_type', 'server_check_query', 'admin_users', 'stats_period', 'max_prepared_statements'];
    for (const name of pgbouncerNames) expect(PGBOUNCER_SETTINGS.has(name), name).toBe(true);
  });
});

describe('%include', () => {
  function tree(files: Record<string, string>): string {
    const dir = mkdtempSync(path.join(tmpdir(), 'pgmux-ini-'));
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      writeFileSync(path.join(dir, name), text);
    }
    return dir;
  }

  it('reads included files in place, relative to the including file, then the working directory', () => {
    const dir = tree({
      'etc/pgbouncer.ini': `${MAIN}auth_file = /etc/pgbouncer/userlist.txt\nlisten_port = 1\n%include conf.d/pool.ini\n[pgbouncer]\nmax_client_conn = 50\n`,
      // No header: still in [pgbouncer], the includer's section. It ends in [users], which the includer sees next.
      'etc/conf.d/pool.ini': 'listen_port = 2\nmax_client_conn = 10\n%include ../../cwd-relative.ini\n[databases]\napp = host=h\n',
      'cwd-relative.ini': '[users]\nbob = pool_size=2\n',
      'other/only-in-cwd.ini': '[pgbouncer]\ndefault_pool_size = 3\n',
    });
    const { config, notices } = loadConfig({ argv: ['--pgbouncer-ini', 'etc/pgbouncer.ini'], env: {}, cwd: dir });
    expect(config.listen_port).toBe(2); // the include came after listen_port = 1
    expect(config.max_client_conn).toBe(50); // ...and before max_client_conn = 50
    expect(config.databases.app.host).toBe('h');
    expect(config.users.bob.pool_size).toBe(2);
    expect(notices).toEqual([]);

    // Not next to the including file: PgBouncer's rule, the working directory.
    writeFileSync(path.join(dir, 'etc', 'b.ini'), `${MAIN}%include other/only-in-cwd.ini\n`);
    expect(loadConfig({ argv: ['--pgbouncer-ini', 'etc/b.ini'], env: {}, cwd: dir }).config.default_pool_size).toBe(3);
  });

  it('names the including file and line when an include is missing, and stops at 10 levels', () => {
    const dir = tree({ 'a.ini': `${MAIN}\n%include missing.ini\n`, 'loop.ini': `${MAIN}%include loop.ini\n` });
    const missing = errorOf(() => loadConfig({ argv: ['--pgbouncer-ini', 'a.ini'], env: {}, cwd: dir }));
    expect(missing.message).toMatch(new RegExp(`^${path.join(dir, 'a.ini').replace(/[.]/g, '\\.')}:3: cannot %include missing\\.ini: not found`));
    expect(errorOf(() => loadConfig({ argv: ['--pgbouncer-ini', 'loop.ini'], env: {}, cwd: dir })).message).toMatch(/%include nested more than 10 deep/);
    expect(errorOf(() => ini(`${MAIN}%include x.ini\n`)).message).toBe('pgbouncer.ini:2: cannot %include x.ini: no file access here');
  });

  it('errors inside an included file name that file and its line', () => {
    const dir = tree({ 'main.ini': `${MAIN}%include sub.ini\n`, 'sub.ini': '\n\nlisten_port = abc\n' });
    const err = errorOf(() => loadConfig({ argv: ['--pgbouncer-ini', 'main.ini'], env: {}, cwd: dir }));
    expect(err.message).toMatch(/sub\.ini:3: listen_port: must be an integer/);
  });
});

function loadFromText(text: string, env: NodeJS.ProcessEnv = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgmux-ini-'));
  writeFileSync(path.join(dir, 'pgbouncer.ini'), text);
  return loadConfig({ argv: ['--pgbouncer-ini', 'pgbouncer.ini'], env, cwd: dir });
}

describe('--pgbouncer-ini and pgmux import', () => {
  const SAMPLE = [
    '[databases]',
    'app = host=db.internal port=5433 dbname=appdb pool_size=5',
    '* = host=db.internal',
    '[users]',
    'bob = pool_mode=transaction',
    '[pgbouncer]',
    'listen_addr = *',
    'auth_file = /etc/pgbouncer/userlist.txt',
    'logfile = /var/log/pgbouncer.log',
    'server_round_robin = 1',
    'query_wait_timeout = 2.5',
    '',
  ].join('\n');

  it('loads like a YAML file, with the environment and flags on top, and notices for what has no effect', () => {
    const { config, notices, configPath } = loadFromText(SAMPLE, { POOL_MODE: 'transaction' });
    expect(configPath).toMatch(/pgbouncer\.ini$/);
    expect(config).toMatchObject({ listen_addr: '0.0.0.0', listen_port: 6432, pool_mode: 'transaction', auth_type: 'md5', query_wait_timeout: 2500 });
    expect(notices.map((n) => n.level)).toEqual(['warn', 'info']);
    expect(notices[0].message).toBe('pgbouncer.ini: 1 setting(s) pgmux does not support have no effect: server_round_robin');
    expect(notices[0].fields.unsupported).toEqual([expect.stringMatching(/^server_round_robin \(.*pgbouncer\.ini:10\): /)]);
    expect(notices[1].message).toBe('pgbouncer.ini: ignored as meaningless for pgmux: logfile');
  });

  it('refuses --config together with --pgbouncer-ini, and PGMUX_CONFIG with it', () => {
    expect(errorOf(() => loadConfig({ argv: ['--pgbouncer-ini', 'a.ini', '--config', 'b.yaml'], env: {} })).key).toBe('--pgbouncer-ini');
    expect(errorOf(() => loadConfig({ argv: ['--pgbouncer-ini', 'a.ini'], env: { PGMUX_CONFIG: 'b.yaml' } })).key).toBe('PGMUX_CONFIG');
    expect(errorOf(() => loadConfig({ argv: ['--pgbouncer-ini', '/nonexistent/pgbouncer.ini'], env: {} })).message).toBe('--pgbouncer-ini: file not found: /nonexistent/pgbouncer.ini');
  });

  it('pgmux import writes YAML that loads to the same configuration, listing what it did not carry over', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pgmux-import-'));
    writeFileSync(path.join(dir, 'pgbouncer.ini'), SAMPLE);
    let stdout = '';
    let stderr = '';
    const io = { stdout: (t: string) => (stdout += t), stderr: (t: string) => (stderr += t), cwd: dir };
    expect(runImportCommand(['pgbouncer.ini', '-o', 'pgmux.yaml'], io)).toBe(0);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/converted 1 file\(s\), 2 database\(s\), 1 user\(s\)/);
    expect(stderr).toMatch(/not supported by pgmux \(no effect\): 1\n {2}server_round_robin \(.*pgbouncer\.ini:10\): /);
    expect(stderr).toMatch(/ignored \(meaningless for pgmux\): 1\n {2}logfile /);

    const fromIni = loadConfig({ argv: ['--pgbouncer-ini', 'pgbouncer.ini'], env: {}, cwd: dir }).config;
    const fromYaml = loadConfig({ argv: ['--config', 'pgmux.yaml'], env: {}, cwd: dir }).config;
    expect(fromYaml).toEqual(fromIni);

    // To stdout without -o, with the notes as comments at the top.
    stdout = '';
    expect(runImportCommand(['pgbouncer.ini'], io)).toBe(0);
    expect(stdout).toMatch(/^# pgmux configuration converted by `pgmux import`/);
    expect(stdout).toMatch(/^# {3}server_round_robin /m);
    expect((parse(stdout) as { databases: object }).databases).toHaveProperty('*');
  });

  it('pgmux import exits 2 with the file, line and key of a bad value', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pgmux-import-'));
    writeFileSync(path.join(dir, 'bad.ini'), `${MAIN}default_pool_size = lots\n`);
    let stderr = '';
    const io = { stdout: () => undefined, stderr: (t: string) => (stderr += t), cwd: dir };
    expect(runImportCommand(['bad.ini'], io)).toBe(2);
    expect(stderr).toBe(`pgmux import: ${path.join(dir, 'bad.ini')}:2: default_pool_size: must be an integer >= 1 (got "lots")\n`);
    stderr = '';
    expect(runImportCommand([], io)).toBe(2);
    expect(stderr).toMatch(/^pgmux import: which pgbouncer\.ini\?\n\nUsage: pgmux import/);
    expect(runImportCommand(['a.ini', 'b.ini'], io)).toBe(2);
  });
});
