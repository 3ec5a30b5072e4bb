/**
 * PgBouncer's pgbouncer.ini, read the way PgBouncer reads it and turned into a pgmux configuration document (what
 * a YAML file would hold), plus the settings pgmux does not support and the ones that mean nothing to it.
 *
 * Syntax, as in PgBouncer (libusual's cfparser.c and PgBouncer's loader.c):
 * - `[section]` headers; `key = value` lines; lines starting with `;` or `#` are comments, and those characters are
 *   not special later in a line (`listen_port = 6432 ; x` is a bad port, as in PgBouncer).
 * - A key is made of letters, digits and `_ . - *`; other names are quoted: `"my db"` (SQL identifier quoting, `""`
 *   for a quote) or `'my db'`. The value runs to the end of the line, trailing white space removed.
 * - `%include file` reads another file there. PgBouncer resolves a relative name against its working directory;
 *   pgmux tries the including file's directory first, then the working directory, so both layouts work. As in
 *   PgBouncer, the current section carries into the included file, and the included file's last section back.
 * - In [databases] and [users] the value is a list of `key=value` pairs separated by spaces; a value containing
 *   spaces is single-quoted, with `''` for a quote (`connect_query='SELECT 1'`). Empty values are errors.
 * - Durations are seconds, possibly fractional (`reserve_pool_timeout = 0.5`); booleans are 0 or 1.
 *
 * Differences in behaviour are resolved towards PgBouncer: where a PgBouncer default differs from pgmux's
 * (`listen_port` 6432, `pool_mode` session, `auth_type` md5, `max_client_conn` 100, `client_tls_sslmode` disable, `unix_socket_dir` /tmp)
 * the document states PgBouncer's, and a 0 that means something else in PgBouncer is translated (ZERO_MEANS).
 *
 * Stricter than PgBouncer: integers must be integers (PgBouncer's atoi() reads "12abc" as 12), and a section
 * header must be alone on its line. Errors name the file, the line and the key; they never repeat a value
 * from a connection string, which may hold a password.
 *
 * The module does no I/O of its own: `%include` reads through the `readFile` it is given.
 */
import path from 'node:path';
import { ADMIN_DATABASES } from './checks.js';
import { emptyRecord } from './entries.js';
import { ConfigError } from './errors.js';
import { parsePassword } from './password.js';
import { DATABASE_FIELDS, SETTINGS_BY_NAME, USER_FIELDS, type SettingName } from './schema.js';
import { formatDuration, intParser, InvalidValue, MAX_DURATION_MS, show } from './values.js';

/** A PgBouncer setting that pgmux reports rather than applies. */
export interface IniNote {
  /** The PgBouncer key: `server_round_robin`, `databases.app.client_encoding`, `users.bob.reserve_pool_size`. */
  readonly key: string;
  readonly file: string;
  readonly line: number;
  readonly reason: string;
}

export interface PgbouncerImport {
  /** The equivalent pgmux configuration: global settings, `databases`, `users`; every value already validated. */
  readonly document: Record<string, unknown>;
  /** PgBouncer settings pgmux does not implement, or implements differently (they have no effect). */
  readonly unsupported: readonly IniNote[];
  /** PgBouncer settings that mean nothing for pgmux (log files, Unix sockets, ...), with the reason. */
  readonly ignored: readonly IniNote[];
  /** Every file read, the main one first. */
  readonly files: readonly string[];
}

export interface IniReadOptions {
  /** Reads an included file (absolute path); throws a Node.js error (ENOENT...) when it cannot. */
  readonly readFile?: (absolutePath: string) => string;
  /** Second place a relative `%include` is looked for (PgBouncer's rule); default: none. */
  readonly cwd?: string;
}

// ---- The mapping table: every PgBouncer setting, and what pgmux does with it ------------------------------------

type Rule =
  /** The pgmux setting of the same name (or `to`); the value is converted from PgBouncer's syntax. */
  | { readonly kind: 'setting'; readonly to?: SettingName }
  /** Handled by a function below (needs more than a conversion). */
  | { readonly kind: 'special' }
  | { readonly kind: 'ignored'; readonly reason: string }
  | { readonly kind: 'unsupported'; readonly reason: string };

const setting: Rule = { kind: 'setting' };
const special: Rule = { kind: 'special' };
const ignored = (reason: string): Rule => ({ kind: 'ignored', reason });
const unsupported = (reason: string): Rule => ({ kind: 'unsupported', reason });

const LOGS_TO_STDOUT = 'pgmux writes JSON log lines to stdout; redirect it or let the service manager collect it';
const DNS = 'pgmux resolves host names through the operating system for every new server connection';
const NODE_TLS = 'pgmux uses Node.js TLS defaults (TLS 1.2 and later, OpenSSL default ciphers and curves)';
const NOT_IMPLEMENTED = 'not implemented by pgmux';

/** [pgbouncer] settings of PgBouncer 1.25, by name. A name not listed here is an error, as in PgBouncer. */
// prettier-ignore
export const PGBOUNCER_SETTINGS: ReadonlyMap<string, Rule> = new Map<string, Rule>([
  // Same meaning in pgmux.
  ['listen_port', setting], ['pool_mode', setting], ['max_client_conn', setting], ['default_pool_size', setting],
  ['min_pool_size', setting], ['reserve_pool_size', setting], ['reserve_pool_timeout', setting],
  ['max_db_connections', setting], ['max_user_connections', setting], ['application_name_add_host', setting],
  ['stats_period', setting], ['max_prepared_statements', setting], ['auth_file', setting], ['auth_user', setting],
  ['auth_query', setting], ['log_connections', setting], ['log_disconnections', setting], ['admin_users', setting],
  ['stats_users', setting], ['server_reset_query', setting], ['server_reset_query_always', setting],
  ['server_check_delay', setting], ['server_lifetime', setting], ['server_idle_timeout', setting],
  ['server_connect_timeout', setting], ['server_login_retry', setting], ['client_login_timeout', setting],
  ['query_timeout', setting], ['query_wait_timeout', setting], ['client_idle_timeout', setting],
  ['idle_transaction_timeout', setting], ['tcp_keepalive', setting], ['tcp_keepidle', setting], ['client_tls_sslmode', setting],
  ['client_tls_key_file', setting], ['client_tls_cert_file', setting], ['client_tls_ca_file', setting],
  ['server_tls_sslmode', setting], ['server_tls_ca_file', setting], ['server_tls_key_file', setting],
  ['server_tls_cert_file', setting], ['unix_socket_dir', setting], ['unix_socket_mode', setting], ['unix_socket_group', setting],
  // Converted by a function below.
  ['listen_addr', special], ['auth_type', special], ['server_check_query', special], ['verbose', special],
  // Meaningless for pgmux.
  ['logfile', ignored(LOGS_TO_STDOUT)],
  ['syslog', ignored(LOGS_TO_STDOUT)], ['syslog_ident', ignored(LOGS_TO_STDOUT)], ['syslog_facility', ignored(LOGS_TO_STDOUT)],
  ['pidfile', ignored('pgmux runs in the foreground and writes no PID file')],
  ['user', ignored('pgmux does not switch to another OS user; start it as the user it should run as')],
  ['conffile', ignored('pgmux reads the file named on its command line')],
  ['service_name', ignored('Windows service name')], ['job_name', ignored('Windows service name')],
  ['ignore_startup_parameters', ignored('pgmux accepts every startup parameter and applies it on the server connection')],
  ['track_extra_parameters', ignored('pgmux tracks every parameter the server reports and replays SET on the next server connection')],
  ['autodb_idle_timeout', ignored('pools of the "*" database are kept; their idle server connections still close after server_idle_timeout')],
  ['pool_idle_timeout', ignored('an idle pool holds no server connections after server_idle_timeout; pgmux keeps the (empty) pool')],
  ['dns_max_ttl', ignored(DNS)], ['dns_nxdomain_ttl', ignored(DNS)], ['dns_zone_check_period', ignored(DNS)], ['resolv_conf', ignored(DNS)],
  ['pkt_buf', ignored('buffer tuning of PgBouncer\'s event loop; pgmux forwards what arrives, with backpressure')],
  ['sbuf_loopcnt', ignored('buffer tuning of PgBouncer\'s event loop; pgmux forwards what arrives, with backpressure')],
  ['listen_backlog', ignored('pgmux listens with a backlog of 4096')],
  // Not supported (reported at startup).
  ['server_round_robin', unsupported('pgmux has no round-robin server selection')],
  ['peer_id', unsupported('peering (forwarding cancel requests between poolers) is not implemented')],
  ['so_reuseport', unsupported(NOT_IMPLEMENTED)],
  ['disable_pqexec', unsupported('pgmux forwards simple-query messages')],
  ['max_packet_size', unsupported(NOT_IMPLEMENTED)],
  ['tcp_defer_accept', unsupported(NOT_IMPLEMENTED)], ['tcp_socket_buffer', unsupported(NOT_IMPLEMENTED)],
  ['tcp_keepcnt', unsupported('Node.js cannot set TCP_KEEPCNT; the OS default applies (net.ipv4.tcp_keepalive_probes)')],
  ['tcp_keepintvl', unsupported('Node.js cannot set TCP_KEEPINTVL; the OS default applies (net.ipv4.tcp_keepalive_intvl)')],
  ['tcp_user_timeout', unsupported('Node.js cannot set TCP_USER_TIMEOUT; use query_timeout to bound a request on a connection that stopped answering')],
  ['client_tls_protocols', unsupported(NODE_TLS)], ['client_tls_ciphers', unsupported(NODE_TLS)],
  ['client_tls13_ciphers', unsupported(NODE_TLS)], ['client_tls_ecdhcurve', unsupported(NODE_TLS)],
  ['client_tls_dheparams', unsupported(NODE_TLS)], ['server_tls_protocols', unsupported(NODE_TLS)],
  ['server_tls_ciphers', unsupported(NODE_TLS)], ['server_tls13_ciphers', unsupported(NODE_TLS)],
  ['auth_hba_file', unsupported('auth_type hba is not supported')], ['auth_ident_file', unsupported('auth_type hba is not supported')],
  ['auth_ldap_options', unsupported('auth_type ldap is not supported')],
  ['auth_dbname', unsupported('pgmux runs auth_query in the database the client asked for')],
  ['scram_iterations', unsupported(NOT_IMPLEMENTED)],
  ['log_pooler_errors', unsupported(NOT_IMPLEMENTED)],
  ['log_stats', unsupported('pgmux does not log periodic statistics; use SHOW STATS or the Prometheus endpoint')],
  ['cancel_wait_timeout', unsupported(NOT_IMPLEMENTED)], ['suspend_timeout', unsupported('online restart (-R) is not implemented')],
  ['server_fast_close', unsupported(NOT_IMPLEMENTED)], ['transaction_timeout', unsupported(NOT_IMPLEMENTED)],
  ['query_wait_notify', unsupported(NOT_IMPLEMENTED)], ['login_notify_message', unsupported(NOT_IMPLEMENTED)],
  ['max_db_client_connections', unsupported('only max_client_conn limits client connections')],
  ['max_user_client_connections', unsupported('only max_client_conn limits client connections')],
]);

/** PgBouncer defaults that differ from pgmux's; written into the document unless the file sets them. */
// prettier-ignore
export const PGBOUNCER_DEFAULTS: Readonly<Partial<Record<SettingName, string>>> = {
  listen_port: '6432', pool_mode: 'session', auth_type: 'md5', max_client_conn: '100', client_tls_sslmode: 'disable', unix_socket_dir: '/tmp',
};

/** Durations where PgBouncer's 0 means something other than pgmux's 0: the value pgmux needs instead (ms). */
const ZERO_MEANS: Readonly<Partial<Record<SettingName, { readonly ms: number; readonly why: string }>>> = {
  // PgBouncer: use a server connection once. pgmux: closed when released if older than 1 ms, i.e. after one use.
  server_lifetime: { ms: 1, why: 'use each server connection once' },
  // PgBouncer: no timeout. pgmux has no "off" for it: the longest timer instead.
  server_connect_timeout: { ms: MAX_DURATION_MS, why: 'no connect timeout' },
  // PgBouncer: reserve pool disabled. pgmux: a client that waited 0 ms may use it; the longest timer instead.
  reserve_pool_timeout: { ms: MAX_DURATION_MS, why: 'reserve pool disabled' },
};

/** Connection-string keys in [databases]: the pgmux database field, or a note. */
// prettier-ignore
const DATABASE_PARAMS: ReadonlyMap<string, Rule & { readonly field?: string }> = new Map<string, Rule & { readonly field?: string }>([
  ['dbname', setting], ['host', special], ['port', setting], ['user', setting], ['password', special],
  ['auth_user', setting], ['pool_size', setting], ['min_pool_size', setting], ['max_db_connections', setting],
  ['reserve_pool', { kind: 'setting', field: 'reserve_pool_size' }], ['reserve_pool_size', setting],
  ['pool_mode', setting], ['connect_query', setting],
  ['client_encoding', unsupported('use the database entry\'s options (-c name=value), ALTER DATABASE ... SET, or connect_query')],
  ['datestyle', unsupported('use the database entry\'s options (-c name=value), ALTER DATABASE ... SET, or connect_query')],
  ['timezone', unsupported('use the database entry\'s options (-c name=value), ALTER DATABASE ... SET, or connect_query')],
  ['application_name', setting],
  ['auth_dbname', unsupported('pgmux runs auth_query in the database the client asked for')],
  ['auth_query', unsupported('only the global auth_query is supported')],
  ['max_db_client_connections', unsupported('only max_client_conn limits client connections')],
  ['server_lifetime', unsupported('only the global server_lifetime is supported')],
  ['query_wait_timeout', unsupported('only the global query_wait_timeout is supported')],
  ['load_balance_hosts', unsupported('pgmux connects to one host per database')],
  ['target_session_attrs', unsupported(NOT_IMPLEMENTED)],
]);

/** Keys in [users]. */
// prettier-ignore
const USER_PARAMS: ReadonlyMap<string, Rule> = new Map<string, Rule>([
  ['pool_mode', setting], ['pool_size', setting], ['max_user_connections', setting],
  ['reserve_pool_size', unsupported('only per-database and global reserve_pool_size are supported')],
  ['max_user_client_connections', unsupported('only max_client_conn limits client connections')],
  ['query_timeout', unsupported('only the global query_timeout is supported')],
  ['query_wait_timeout', unsupported('only the global query_wait_timeout is supported')],
  ['idle_transaction_timeout', unsupported('only the global idle_transaction_timeout is supported')],
  ['transaction_timeout', unsupported(NOT_IMPLEMENTED)],
  ['client_idle_timeout', unsupported('only the global client_idle_timeout is supported')],
]);

const STATEMENT_MODE = 'pool_mode statement is served as transaction mode (multi-statement transactions are not refused)';

// ---- Reading -------------------------------------------------------------------------------------------------------

const MAX_INCLUDE_DEPTH = 10; // libusual's MAX_INCLUDE

interface Line {
  readonly file: string;
  readonly line: number;
}

class Reader {
  readonly settings = new Map<string, { value: string; at: Line }>();
  readonly databases = new Map<string, { value: string; at: Line }>();
  readonly users = new Map<string, { value: string; at: Line }>();
  readonly peers: { name: string; at: Line }[] = [];
  readonly files: string[] = [];
  sawMainSection = false;
  /** The current section; as in PgBouncer it carries into an included file and back out of it. */
  private section: string | null = null;

  constructor(private readonly options: IniReadOptions) {}

  read(text: string, file: string, depth: number): void {
    this.files.push(file);
    const lines = (text.startsWith('\ufeff') ? text.slice(1) : text).split('\n');
    for (let i = 0; i < lines.length; i++) {
      const at: Line = { file, line: i + 1 };
      const raw = lines[i].replace(/^\s+/, '');
      if (raw === '' || raw[0] === '#' || raw[0] === ';') continue;
      if (/^%include[ \t]/.test(raw)) {
        this.include(raw.slice(8).trim(), at, depth);
        continue;
      }
      if (raw[0] === '[') {
        const close = raw.indexOf(']');
        if (close < 0) throw syntax(at, 'a section header needs a closing "]"');
        const rest = raw.slice(close + 1).trim();
        if (rest !== '' && rest[0] !== ';' && rest[0] !== '#') throw syntax(at, `unexpected text after [${raw.slice(1, close)}]`);
        const section = raw.slice(1, close);
        if (!['pgbouncer', 'databases', 'users', 'peers'].includes(section)) {
          throw new ConfigError(where(at), `unknown section [${section}] (PgBouncer knows [pgbouncer], [databases], [users] and [peers])`);
        }
        if (section === 'pgbouncer') this.sawMainSection = true;
        this.section = section;
        continue;
      }
      const { key, value } = splitKeyValue(raw, at);
      switch (this.section) {
        case null:
          throw new ConfigError(where(at, key), 'is outside any section (start the file with [pgbouncer] or [databases])');
        case 'pgbouncer':
          this.settings.set(key, { value, at });
          break;
        case 'databases':
          this.databases.set(key, { value, at });
          break;
        case 'users':
          this.users.set(key, { value, at });
          break;
        default:
          this.peers.push({ name: key, at });
      }
    }
  }

  private include(name: string, at: Line, depth: number): void {
    if (depth >= MAX_INCLUDE_DEPTH) throw new ConfigError(where(at), `%include nested more than ${MAX_INCLUDE_DEPTH} deep`);
    const readFile = this.options.readFile;
    if (readFile === undefined) throw new ConfigError(where(at), `cannot %include ${name}: no file access here`);
    const candidates = path.isAbsolute(name) ? [name] : [path.resolve(path.dirname(at.file), name)];
    if (!path.isAbsolute(name) && this.options.cwd !== undefined) candidates.push(path.resolve(this.options.cwd, name));
    let lastCode = 'ENOENT';
    for (const candidate of candidates) {
      let text: string;
      try {
        text = readFile(candidate);
      } catch (err) {
        lastCode = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        if (lastCode === 'ENOENT') continue;
        throw new ConfigError(where(at), `cannot %include ${candidate} (${lastCode})`);
      }
      this.read(text, candidate, depth + 1);
      return;
    }
    throw new ConfigError(where(at), `cannot %include ${name}: not found (looked in ${[...new Set(candidates)].join(', ')})`);
  }
}

function where(at: Line, key?: string): string {
  return key === undefined ? `${at.file}:${at.line}` : `${at.file}:${at.line}: ${key}`;
}

function syntax(at: Line, reason: string): ConfigError {
  return new ConfigError(where(at), `syntax error: ${reason}`);
}

const KEY_CHAR = /[A-Za-z0-9_.*-]/;

/** `key = value` as cfparser reads it: bare or quoted key, blanks, "=", blanks, the rest of the line trimmed. */
function splitKeyValue(line: string, at: Line): { key: string; value: string } {
  let pos = 0;
  let key = '';
  const quote = line[0];
  if (quote === '"' || quote === "'") {
    pos = 1;
    for (;;) {
      const end = line.indexOf(quote, pos);
      if (end < 0) throw syntax(at, `unterminated quoted name`);
      key += line.slice(pos, end);
      pos = end + 1;
      // SQL identifier quoting: "" inside a double-quoted name is one quote.
      if (quote === '"' && line[pos] === '"') {
        key += '"';
        pos++;
        continue;
      }
      break;
    }
    if (key === '') throw syntax(at, 'empty quoted name');
  } else {
    while (pos < line.length && KEY_CHAR.test(line[pos])) pos++;
    key = line.slice(0, pos);
  }
  while (line[pos] === ' ' || line[pos] === '\t') pos++;
  if (key === '' || line[pos] !== '=') {
    const what = key === '' ? 'expected a name' : `expected "=" after ${key}`;
    throw syntax(at, `${what} (names other than letters, digits and _.-* must be quoted: "my db" = ...)`);
  }
  return { key, value: line.slice(pos + 1).trim() };
}

/** `key=value key='quoted value'` pairs, as PgBouncer's cstr_get_pair() reads them; values never appear in errors. */
export function parseConnectionString(text: string, onError: (reason: string) => ConfigError): [string, string][] {
  const pairs: [string, string][] = [];
  let pos = 0;
  const skipSpace = (): void => {
    while (pos < text.length && /\s/.test(text[pos])) pos++;
  };
  for (;;) {
    skipSpace();
    if (pos >= text.length) return pairs;
    const keyStart = pos;
    while (pos < text.length && text[pos] !== '=' && !/\s/.test(text[pos])) pos++;
    const key = text.slice(keyStart, pos);
    skipSpace();
    // The would-be key is not repeated: it may be part of an unquoted password.
    if (text[pos] !== '=' || key === '') throw onError(`syntax error in the connection string: expected key=value (quote a value that contains spaces: key='a b')`);
    pos++;
    skipSpace();
    let value = '';
    if (text[pos] === "'") {
      pos++;
      for (;;) {
        if (pos >= text.length) throw onError(`syntax error in the connection string: unterminated quoted value for ${key}`);
        if (text[pos] === "'") {
          if (text[pos + 1] !== "'") break;
          pos++;
        }
        value += text[pos++];
      }
      pos++; // closing quote
    } else {
      const start = pos;
      while (pos < text.length && !/\s/.test(text[pos])) pos++;
      value = text.slice(start, pos);
    }
    if (value === '') throw onError(`syntax error in the connection string: empty value for ${key}`);
    pairs.push([key, value]);
  }
}

// ---- Converting -----------------------------------------------------------------------------------------------------

class Converter {
  readonly settings: Record<string, unknown> = {};
  // Prototype-less: a database or user may be called "__proto__".
  readonly databases = emptyRecord<Record<string, unknown>>();
  readonly users = emptyRecord<Record<string, unknown>>();
  private readonly unsupportedNotes = new Map<string, IniNote>();
  private readonly ignoredNotes = new Map<string, IniNote>();

  unsupported(key: string, at: Line, reason: string): void {
    this.unsupportedNotes.delete(key); // the last occurrence wins, as the value does
    this.unsupportedNotes.set(key, { key, file: at.file, line: at.line, reason });
  }

  ignored(key: string, at: Line, reason: string): void {
    this.ignoredNotes.delete(key);
    this.ignoredNotes.set(key, { key, file: at.file, line: at.line, reason });
  }

  get notes(): { unsupported: IniNote[]; ignored: IniNote[] } {
    return { unsupported: [...this.unsupportedNotes.values()], ignored: [...this.ignoredNotes.values()] };
  }

  /** Validates a [pgbouncer] value with the pgmux setting's own parser, from PgBouncer's syntax. */
  setSetting(name: SettingName, value: string, at: Line, key: string = name): void {
    const s = SETTINGS_BY_NAME.get(name);
    if (s === undefined) throw new Error(`internal: no setting named ${name}`);
    this.settings[name] = atLine(at, key, () => {
      if (s.kind !== 'duration') return s.parse(value);
      const seconds = parseSeconds(value);
      const zero = ZERO_MEANS[name];
      if (seconds === 0 && zero !== undefined) return formatDuration(zero.ms);
      return formatDuration(s.parse(seconds) as number);
    });
    if (name === 'pool_mode' && this.settings[name] === 'statement') this.unsupported(key, at, STATEMENT_MODE);
  }

  pgbouncerSetting(key: string, value: string, at: Line): void {
    const rule = PGBOUNCER_SETTINGS.get(key);
    if (rule === undefined) {
      throw new ConfigError(where(at, key), 'is not a PgBouncer setting (unknown parameter; PgBouncer refuses it too)');
    }
    switch (rule.kind) {
      case 'setting':
        return this.setSetting((rule.to ?? key) as SettingName, value, at, key);
      case 'ignored':
        return this.ignored(key, at, rule.reason);
      case 'unsupported':
        return this.unsupported(key, at, rule.reason);
      case 'special':
        return this.specialSetting(key, value, at);
    }
  }

  private specialSetting(key: string, value: string, at: Line): void {
    switch (key) {
      case 'listen_addr':
        if (value === '') {
          this.ignored(key, at, 'empty: PgBouncer would accept Unix-socket connections only; pgmux listens on 127.0.0.1');
          return;
        }
        if (value.includes(',')) {
          throw new ConfigError(where(at, key), 'lists several addresses; pgmux listens on one address (use * for all interfaces)');
        }
        return this.setSetting('listen_addr', value, at);
      case 'auth_type':
        if (['any', 'hba', 'pam', 'ldap'].includes(value.toLowerCase())) {
          throw new ConfigError(where(at, key), `${value} is not supported by pgmux (supported: cert, md5, scram-sha-256, plain, trust)`);
        }
        this.setSetting('auth_type', value, at);
        if (this.settings.auth_type === 'trust') {
          this.unsupported(key, at, 'trust: PgBouncer admits only users listed in auth_file; pgmux admits any user name');
        }
        return;
      case 'server_check_query':
        // PgBouncer 1.22+: "<empty>" sends an empty query. A do-nothing query has the same effect.
        if (value === '<empty>') {
          this.ignored(key, at, '<empty> (an empty query) is served as pgmux\'s select 1');
          return;
        }
        return this.setSetting('server_check_query', value, at);
      case 'verbose': {
        const level = atLine(at, key, () => intParser(0)(value));
        if (level > 0) this.settings.log_level = level === 1 ? 'debug' : 'trace';
        return;
      }
    }
  }

  database(name: string, connstr: string, at: Line): void {
    const path = `databases.${name}`;
    if (ADMIN_DATABASES.includes(name)) {
      throw new ConfigError(where(at, path), `the name is reserved for the admin console`);
    }
    const entry: Record<string, unknown> = {};
    let user: string | undefined;
    let password: string | undefined;
    let host: string | undefined;
    for (const [param, value] of parseConnectionString(connstr, (reason) => new ConfigError(where(at, path), reason))) {
      const key = `${path}.${param}`;
      const rule = DATABASE_PARAMS.get(param);
      if (rule === undefined) {
        throw new ConfigError(where(at, key), `is not a PgBouncer connection parameter (unrecognized; PgBouncer refuses it too)`);
      }
      if (rule.kind === 'unsupported' || rule.kind === 'ignored') {
        this.unsupported(key, at, rule.reason);
        continue;
      }
      if (param === 'host') host = value;
      else if (param === 'password') password = atLine(at, key, () => parsePassword(value));
      else {
        const field = rule.field ?? param;
        const parsed = atLine(at, key, () => (DATABASE_FIELDS as Record<string, { parse: (raw: unknown) => unknown }>)[field].parse(value));
        if (param === 'user') user = parsed as string;
        entry[field] = parsed;
        if (field === 'pool_mode' && parsed === 'statement') this.unsupported(key, at, STATEMENT_MODE);
      }
    }
    if (password !== undefined) {
      if (user === undefined) this.ignored(`${path}.password`, at, 'a password without user is not used (by PgBouncer either)');
      else entry.password = password;
    }
    this.databases[name] = { host: this.hostOf(host, at, path), ...entry };
  }

  /** PgBouncer's host: a name or address, a Unix socket directory (also when unset), or a list. */
  private hostOf(host: string | undefined, at: Line, path: string): string {
    const key = `${path}.host`;
    if (host === undefined || host.startsWith('/') || host.startsWith('@')) {
      const what = host === undefined ? 'not set' : `${host} is a Unix socket`;
      this.unsupported(key, at, `${what}: PgBouncer would use a Unix socket; pgmux connects to 127.0.0.1 over TCP`);
      return '127.0.0.1';
    }
    if (host.includes(',')) {
      throw new ConfigError(where(at, key), 'lists several hosts; pgmux connects to one host per database');
    }
    return atLine(at, key, () => DATABASE_FIELDS.host.parse(host));
  }

  user(name: string, params: string, at: Line): void {
    const path = `users.${name}`;
    const entry: Record<string, unknown> = {};
    for (const [param, value] of parseConnectionString(params, (reason) => new ConfigError(where(at, path), reason))) {
      const key = `${path}.${param}`;
      const rule = USER_PARAMS.get(param);
      if (rule === undefined) throw new ConfigError(where(at, key), 'is not a PgBouncer user parameter (unrecognized; PgBouncer refuses it too)');
      if (rule.kind === 'unsupported' || rule.kind === 'ignored') {
        this.unsupported(key, at, rule.reason);
        continue;
      }
      const parsed = atLine(at, key, () => (USER_FIELDS as Record<string, { parse: (raw: unknown) => unknown }>)[param].parse(value));
      entry[param] = parsed;
      if (param === 'pool_mode' && parsed === 'statement') this.unsupported(key, at, STATEMENT_MODE);
    }
    this.users[name] = entry;
  }
}

function atLine<T>(at: Line, key: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof InvalidValue) throw new ConfigError(where(at, key), err.message);
    throw err;
  }
}

/** PgBouncer durations: a non-negative number of seconds, as strtod() reads it ("15", "0.5", "1e3"). */
function parseSeconds(value: string): number {
  if (!/^\s*\+?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(value)) {
    throw new InvalidValue(`must be a number of seconds, as in PgBouncer (e.g. 30 or 0.5) (got ${show(value)})`);
  }
  return Number(value);
}

/**
 * Parses pgbouncer.ini text into a pgmux configuration document. `file` names the file in errors and notes, and
 * anchors relative `%include`s. Throws ConfigError naming file, line and key.
 */
export function parsePgbouncerIni(text: string, file: string, options: IniReadOptions = {}): PgbouncerImport {
  const reader = new Reader(options);
  reader.read(text, file, 0);
  if (!reader.sawMainSection) {
    throw new ConfigError(file, 'has no [pgbouncer] section (PgBouncer refuses such a file too)');
  }

  const out = new Converter();
  for (const [key, { value, at }] of reader.settings) out.pgbouncerSetting(key, value, at);
  for (const [name, { value, at }] of reader.databases) out.database(name, value, at);
  for (const [name, { value, at }] of reader.users) out.user(name, value, at);
  for (const { name, at } of reader.peers) out.unsupported(`peers.${name}`, at, 'peering is not implemented');

  const defaults: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(PGBOUNCER_DEFAULTS)) {
    if (!(name in out.settings)) defaults[name] = SETTINGS_BY_NAME.get(name)!.parse(value);
  }
  // Settings in the order of pgmux's settings table, so the document reads like config/pgmux.yaml.
  const merged: Record<string, unknown> = { ...defaults, ...out.settings };
  const document: Record<string, unknown> = {};
  for (const name of SETTINGS_BY_NAME.keys()) if (name in merged) document[name] = merged[name];
  document.databases = out.databases;
  document.users = out.users;
  return { document, ...out.notes, files: reader.files };
}

/** One line per note, for logs and `pgmux import`: `server_round_robin (pgbouncer.ini:12): reason`. */
export function formatIniNote(note: IniNote): string {
  return `${note.key} (${note.file}:${note.line}): ${note.reason}`;
}
