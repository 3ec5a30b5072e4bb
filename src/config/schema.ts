// The settings pgmux understands: their types, defaults, descriptions and validation, in one table.
// SETTINGS also drives the environment variables, `--set`, the README table and SHOW CONFIG, so adding a global
// setting is one line below; its TypeScript type is derived from that line.
import { parsePassword } from './password.js';
import { parsePostgresUrl, type PostgresUrl } from './url.js';
import { parseSocketMode } from '../net/unix-listener.js';
import {
  InvalidValue,
  enumParser,
  formatDuration,
  intParser,
  parseBool,
  parseDuration,
  parseNameList,
  show,
  stringParser,
  type Parser,
} from './values.js';

export const POOL_MODES = ['session', 'transaction', 'statement'] as const;
export type PoolMode = (typeof POOL_MODES)[number];

export const AUTH_TYPES = ['scram-sha-256', 'md5', 'plain', 'trust', 'cert'] as const;

export const TLS_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type TlsMode = (typeof TLS_MODES)[number];
export type AuthType = (typeof AUTH_TYPES)[number];

export const PIN_POLICIES = ['pin', 'reject', 'allow'] as const;

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type SettingKind = 'int' | 'duration' | 'bool' | 'string' | 'enum' | 'list';
export type SettingValue = number | boolean | string | readonly string[];

export interface Setting<N extends string = string, T extends SettingValue = SettingValue> {
  readonly name: N;
  readonly kind: SettingKind;
  /** The value used when nothing sets it (durations in milliseconds). */
  readonly default: T;
  readonly description: string;
  /** For enum settings: the accepted values. */
  readonly values?: readonly string[];
  /** Validates a raw value from YAML, the environment or the command line; throws InvalidValue. */
  readonly parse: Parser<T>;
}

function int<N extends string>(name: N, def: number, min: number, max: number | undefined, description: string) {
  return { name, kind: 'int', default: def, description, parse: intParser(min, max) } as const satisfies Setting<N, number>;
}

/** `def` is in seconds here, for readability; it is stored in milliseconds. */
function duration<N extends string>(name: N, defSeconds: number, description: string) {
  return { name, kind: 'duration', default: defSeconds * 1000, description, parse: parseDuration } as const satisfies Setting<N, number>;
}

function bool<N extends string>(name: N, def: boolean, description: string) {
  return { name, kind: 'bool', default: def, description, parse: parseBool } as const satisfies Setting<N, boolean>;
}

function str<N extends string>(name: N, def: string, description: string, parse: Parser<string> = stringParser()) {
  return { name, kind: 'string', default: def, description, parse } as const satisfies Setting<N, string>;
}

function oneOf<N extends string, V extends string>(
  name: N,
  def: NoInfer<V>,
  values: readonly V[],
  description: string,
  aliases: Readonly<Record<string, V>> = {},
): Setting<N, V> {
  return { name, kind: 'enum', default: def, description, values, parse: enumParser(values, aliases) };
}

function list<N extends string>(name: N, description: string) {
  const def: readonly string[] = [];
  return { name, kind: 'list', default: def, description, parse: parseNameList } as const satisfies Setting<N, readonly string[]>;
}

/** Octal permission bits as PgBouncer writes them: "0777", "777", or a YAML number whose digits are octal. */
const socketMode: Parser<string> = (raw) => {
  const text = typeof raw === 'number' && Number.isInteger(raw) ? String(raw) : raw;
  if (typeof text !== 'string' || parseSocketMode(text) === null) throw new InvalidValue(`must be octal permission bits such as 0777 or 0770 (got ${show(raw)})`);
  return `0${(parseSocketMode(text) as number).toString(8)}`;
};

/** "*" is PgBouncer's spelling of "all interfaces". */
const address = stringParser({ transform: (value) => (value === '*' ? '0.0.0.0' : value) });

// prettier-ignore
export const SETTINGS = [
  str('listen_addr', '127.0.0.1', 'Address to accept client connections on; "*" means all interfaces.', address),
  int('listen_port', 6543, 0, 65535, 'Port to accept client connections on; 0 picks a free port.'),
  str('unix_socket_dir', 'auto', 'Directory of the unix-domain socket .s.PGSQL.<listen_port> (the name libpq looks for); "auto": /var/run/postgresql when writable (where Debian\'s libpq looks), else /tmp; empty: no socket.', stringParser({ allowEmpty: true })),
  str('unix_socket_mode', '0777', 'Permissions of the unix-domain socket, in octal (as PgBouncer).', socketMode),
  str('unix_socket_group', '', 'Group (name or gid) to give the unix-domain socket; empty: the group pgmux runs as.', stringParser({ allowEmpty: true })),
  oneOf('pool_mode', 'transaction', POOL_MODES, 'When a server connection goes back to the pool: when the client disconnects (session), after each transaction (transaction), or after each request, refusing transaction blocks that span requests (statement).'),
  int('default_pool_size', 20, 1, undefined, 'Server connections per (database, user) pool.'),
  int('min_pool_size', 0, 0, undefined, 'Server connections each pool keeps open even when idle.'),
  int('reserve_pool_size', 0, 0, undefined, 'Extra server connections a pool may open when clients have waited reserve_pool_timeout.'),
  duration('reserve_pool_timeout', 5, 'How long a client waits before the reserve pool is used.'),
  int('max_client_conn', 5000, 1, undefined, 'Client connections accepted in total; more are refused.'),
  int('max_db_connections', 0, 0, undefined, 'Server connections per database across all its pools; 0 means unlimited.'),
  int('max_user_connections', 0, 0, undefined, 'Server connections per user across all its pools; 0 means unlimited.'),
  duration('query_wait_timeout', 120, 'How long a client may wait for a server connection before it gets an error; 0 waits forever.'),
  duration('query_wait_notify', 5, 'Send a client one NOTICE once it has waited this long in the queue for a server connection (as PgBouncer 1.25); 0 disables.'),
  int('max_queued_clients_per_pool', 0, 0, undefined, 'Clients that may wait in one pool\'s queue for a server connection; a request beyond it fails at once with 53300. 0 means unlimited.'),
  int('max_server_logins_per_pool', 5, 0, undefined, 'Server connections one pool may have connecting and logging in at the same time; more are opened as those finish. 0 means unlimited.'),
  int('server_connect_rate', 100, 0, undefined, 'New server connections one pool may open per second (a token bucket holding one second\'s worth); 0 means unlimited.'),
  duration('client_login_slice', 0.001, 'Event-loop time that client logins (startup packets, password exchanges) may take per loop turn; the rest waits for a later turn, so during a login storm the traffic of clients already logged in is served in between. 0 means unlimited.'),
  int('max_client_logins_in_progress', 100, 0, undefined, 'Client connections that may be logging in (from connect to authentication done) at the same time; later ones wait, unread, in arrival order. 0 means unlimited.'),
  duration('server_idle_timeout', 600, 'Close server connections idle for longer than this; 0 disables.'),
  duration('server_lifetime', 3600, 'Close server connections older than this when they are next released; 0 disables.'),
  duration('server_connect_timeout', 15, 'Time allowed to connect and log in to a server.'),
  duration('server_login_retry', 15, 'Longest wait before connecting again after failed server logins (the backoff cap); while logins fail, clients get the last login error at once.'),
  duration('server_login_retry_min', 0.1, 'First wait before connecting again after a failed server login; it doubles with each further failure up to server_login_retry. 0 waits server_login_retry every time (PgBouncer).'),
  duration('client_idle_timeout', 0, 'Close client connections idle for longer than this; 0 disables.'),
  duration('client_login_timeout', 60, 'Close clients that have not finished logging in after this long; 0 disables.'),
  duration('idle_transaction_timeout', 0, 'Close clients idle inside a transaction for longer than this; 0 disables.'),
  duration('query_timeout', 0, 'Cancel queries running longer than this; 0 disables.'),
  duration('shutdown_timeout', 30, 'On shutdown, how long to wait for clients to finish before closing them.'),
  str('server_reset_query', 'DISCARD ALL', 'Run on a server connection before another client gets it (session mode); empty disables.', stringParser({ allowEmpty: true })),
  bool('server_reset_query_always', false, 'Run server_reset_query in transaction mode too.'),
  str('server_check_query', 'select 1', 'Run on a server connection idle for server_check_delay before reusing it; empty disables.', stringParser({ allowEmpty: true })),
  duration('server_check_delay', 30, 'Idle time after which a server connection is checked before reuse; 0 checks every time.'),
  oneOf('auth_type', 'scram-sha-256', AUTH_TYPES, 'How clients authenticate to pgmux: scram-sha-256, md5, plain (cleartext; alias "password"), trust, or cert (TLS client certificate whose CN is the user name).', { password: 'plain' }),
  str('auth_file', '', 'PgBouncer-format userlist file ("user" "password" per line; plaintext, md5 or SCRAM secrets), read at start and on reload.', stringParser({ allowEmpty: true })),
  str('auth_user', '', 'User pgmux logs in as to run auth_query for users it has no password for; its password comes from users: or auth_file.', stringParser({ allowEmpty: true })),
  str('auth_query', 'SELECT usename, passwd FROM pg_shadow WHERE usename=$1', 'Query returning (user name, stored password) for a user, run upstream as auth_user.'),
  duration('auth_query_cache_ttl', 30, 'How long a password looked up with auth_query is reused before it is looked up again.'),
  bool('auth_plain_without_tls', false, 'Allow cleartext password authentication (auth_type plain) on connections without TLS.'),
  oneOf('client_tls_sslmode', 'prefer', TLS_MODES, 'TLS towards clients: disable, allow/prefer (offered when a certificate is configured), require (plaintext clients refused), verify-ca/verify-full (client certificate required, checked against client_tls_ca_file).'),
  str('client_tls_cert_file', '', 'Certificate (PEM) pgmux presents to clients.', stringParser({ allowEmpty: true })),
  str('client_tls_key_file', '', 'Private key (PEM) for client_tls_cert_file.', stringParser({ allowEmpty: true })),
  str('client_tls_ca_file', '', 'CA bundle (PEM) that client certificates must chain to (cert auth, verify-ca, verify-full).', stringParser({ allowEmpty: true })),
  oneOf('server_tls_sslmode', 'prefer', TLS_MODES, 'TLS towards servers, as libpq sslmode: disable, allow, prefer, require, verify-ca (chain checked), verify-full (chain and host name checked).'),
  str('server_tls_ca_file', '', 'CA bundle (PEM) for checking server certificates (verify-ca, verify-full); default: the system roots.', stringParser({ allowEmpty: true })),
  str('server_tls_cert_file', '', 'Client certificate (PEM) pgmux presents to servers.', stringParser({ allowEmpty: true })),
  str('server_tls_key_file', '', 'Private key (PEM) for server_tls_cert_file.', stringParser({ allowEmpty: true })),
  list('admin_users', 'Users allowed to run commands in the admin console (database "pgbouncer" or "pgmux").'),
  list('stats_users', 'Users allowed read-only SHOW commands in the admin console.'),
  oneOf('session_state_listen', 'pin', PIN_POLICIES, 'Transaction mode, LISTEN: pin the client to its server until UNLISTEN (pin), refuse with an error (reject), or let it be (allow).'),
  oneOf('session_state_advisory_lock', 'pin', PIN_POLICIES, 'Transaction mode, session-level advisory locks: pin, reject or allow.'),
  oneOf('session_state_temp_table', 'pin', PIN_POLICIES, 'Transaction mode, temporary tables: pin, reject or allow.'),
  oneOf('session_state_cursor_with_hold', 'pin', PIN_POLICIES, 'Transaction mode, WITH HOLD cursors: pin, reject or allow.'),
  oneOf('session_state_prepare', 'pin', PIN_POLICIES, 'Transaction mode, SQL-level PREPARE: pin, reject or allow (protocol-level named statements need none of this).'),
  int('max_prepared_statements', 200, 0, undefined, 'Named prepared statements tracked per server connection in transaction mode; 0 disables tracking.'),
  bool('tcp_keepalive', true, 'Enable TCP keepalive on client and server sockets.'),
  duration('tcp_keepidle', 60, 'Idle time before the first keepalive probe on client and server sockets (as PgBouncer); 0 keeps the OS default (net.ipv4.tcp_keepalive_time). The probe interval and count are the OS\'s: Node.js cannot set TCP_KEEPINTVL, TCP_KEEPCNT or TCP_USER_TIMEOUT.'),
  bool('log_connections', true, 'Log each client connection.'),
  bool('log_disconnections', true, 'Log each client disconnection, with the reason.'),
  oneOf('log_level', 'info', LOG_LEVELS, 'Least severe log level written.'),
  bool('application_name_add_host', false, 'Append " - address:port" of the client to application_name on the server (as PgBouncer). Every client then has its own settings, so each hand-over of a server runs a set_config first.'),
  duration('stats_period', 60, 'How often averages in SHOW STATS are recomputed and logged.'),
  int('metrics_port', 9127, 0, 65535, 'Port of the HTTP endpoint serving Prometheus /metrics, /healthz, /readyz and the status page; 0 turns it off.'),
  str('metrics_addr', '127.0.0.1', 'Address of the metrics/health/status HTTP endpoint; "*" means all interfaces.', address),
] as const;

type AnySetting = (typeof SETTINGS)[number];
export type SettingName = AnySetting['name'];

/** Every global setting, by name, with its validated type. */
export type GlobalSettings = { readonly [S in AnySetting as S['name']]: S['default'] };

export const SETTINGS_BY_NAME: ReadonlyMap<string, Setting> = new Map(SETTINGS.map((s) => [s.name, s]));

/** A database clients can connect to (the key in `databases:` is the name they use). */
export interface DatabaseConfig {
  readonly host: string;
  readonly port: number;
  /** Database name on the server. */
  readonly dbname: string;
  /** Forced upstream user; when absent pgmux logs in as the client's user with that user's password. */
  readonly user?: string;
  readonly password?: string;
  // Per-database overrides; undefined means the global setting applies.
  readonly pool_size?: number;
  readonly min_pool_size?: number;
  readonly reserve_pool_size?: number;
  readonly max_db_connections?: number;
  readonly pool_mode?: PoolMode;
  /** Run once on each new server connection. */
  readonly connect_query?: string;
  /** Startup parameters of its server connections, as libpq sends them (from a URL's ?application_name=, ?options=). */
  readonly application_name?: string;
  readonly options?: string;
  /** Client authentication for this database (a user's own auth_type wins). */
  readonly auth_type?: AuthType;
  /** auth_user for this database's auth_query. */
  readonly auth_user?: string;
}

/** A user clients can log in as (the key in `users:` is the user name). */
export interface UserConfig {
  /** Plaintext, md5 hash ("md5" + 32 hex digits) or SCRAM verifier; may be absent only with auth_type trust. */
  readonly password?: string;
  readonly pool_mode?: PoolMode;
  readonly pool_size?: number;
  readonly max_user_connections?: number;
  /** Client authentication for this user (wins over the database's and the global one). */
  readonly auth_type?: AuthType;
}

export interface PgmuxConfig extends GlobalSettings {
  readonly databases: Readonly<Record<string, DatabaseConfig>>;
  readonly users: Readonly<Record<string, UserConfig>>;
}

/** A key of a database or user entry, for validation and documentation. */
export interface Field<T> {
  readonly name: string;
  readonly kind: SettingKind | 'url' | 'password';
  /** What applies when the key is absent, in words. */
  readonly defaultText: string;
  readonly description: string;
  readonly parse: Parser<T>;
}

type FieldTable<C> = { readonly [K in keyof C]-?: Field<NonNullable<C[K]>> };

/** What a database entry may contain: DatabaseConfig plus `url`, which is folded into the other fields. */
export type DatabaseEntry = DatabaseConfig & { readonly url?: PostgresUrl };

const poolMode = enumParser(POOL_MODES);
const authType = enumParser(AUTH_TYPES, { password: 'plain' });
const name = stringParser();

// prettier-ignore
export const DATABASE_FIELDS: FieldTable<DatabaseEntry> = {
  url: { name: 'url', kind: 'url', defaultText: '', description: 'postgres://user:password@host:port/dbname; fills the fields below (which win when both are given).', parse: parsePostgresUrl },
  host: { name: 'host', kind: 'string', defaultText: '"127.0.0.1"', description: 'Server host name or address.', parse: name },
  port: { name: 'port', kind: 'int', defaultText: '5432', description: 'Server port.', parse: intParser(1, 65535) },
  dbname: { name: 'dbname', kind: 'string', defaultText: 'the entry name', description: 'Database name on the server.', parse: name },
  user: { name: 'user', kind: 'string', defaultText: 'the client\'s user', description: 'Log in to the server as this user, whoever the client is.', parse: name },
  password: { name: 'password', kind: 'password', defaultText: 'from users:', description: 'Password for user.', parse: parsePassword },
  pool_size: { name: 'pool_size', kind: 'int', defaultText: 'default_pool_size', description: 'Server connections per pool of this database.', parse: intParser(1) },
  min_pool_size: { name: 'min_pool_size', kind: 'int', defaultText: 'min_pool_size', description: 'Idle server connections kept per pool of this database.', parse: intParser(0) },
  reserve_pool_size: { name: 'reserve_pool_size', kind: 'int', defaultText: 'reserve_pool_size', description: 'Reserve connections per pool of this database.', parse: intParser(0) },
  max_db_connections: { name: 'max_db_connections', kind: 'int', defaultText: 'max_db_connections', description: 'Server connections to this database in total; 0 means unlimited.', parse: intParser(0) },
  pool_mode: { name: 'pool_mode', kind: 'enum', defaultText: 'pool_mode', description: 'Pool mode for this database.', parse: poolMode },
  connect_query: { name: 'connect_query', kind: 'string', defaultText: 'none', description: 'Query run once on each new server connection.', parse: name },
  application_name: { name: 'application_name', kind: 'string', defaultText: 'none', description: 'application_name pgmux\'s server connections log in with (a client\'s own application_name still applies to its session).', parse: name },
  options: { name: 'options', kind: 'string', defaultText: 'none', description: 'Command-line options for the server, as libpq\'s options (e.g. "-c search_path=app"), sent when connecting: the defaults of every session; a client\'s own settings win.', parse: name },
  auth_type: { name: 'auth_type', kind: 'enum', defaultText: 'auth_type', description: 'Client authentication for this database.', parse: authType },
  auth_user: { name: 'auth_user', kind: 'string', defaultText: 'auth_user', description: 'User that runs auth_query for this database.', parse: name },
};

// prettier-ignore
export const USER_FIELDS: FieldTable<UserConfig> = {
  password: { name: 'password', kind: 'password', defaultText: 'none (only with auth_type trust)', description: 'Plaintext, md5 hash or SCRAM-SHA-256 verifier; also used to log in to servers as this user.', parse: parsePassword },
  pool_mode: { name: 'pool_mode', kind: 'enum', defaultText: 'the database\'s, else pool_mode', description: 'Pool mode for this user\'s pools.', parse: poolMode },
  pool_size: { name: 'pool_size', kind: 'int', defaultText: 'the database\'s, else default_pool_size', description: 'Server connections per pool of this user.', parse: intParser(1) },
  max_user_connections: { name: 'max_user_connections', kind: 'int', defaultText: 'max_user_connections', description: 'Server connections for this user in total; 0 means unlimited.', parse: intParser(0) },
  auth_type: { name: 'auth_type', kind: 'enum', defaultText: 'the database\'s, else auth_type', description: 'Client authentication for this user.', parse: authType },
};

/** Renders a setting's value the way it is written in the config: durations with a unit, lists comma-separated. */
export function formatSettingValue(setting: Setting, value: SettingValue): string {
  if (setting.kind === 'duration' && typeof value === 'number') return formatDuration(value);
  if (Array.isArray(value)) return value.join(',');
  return String(value);
}
