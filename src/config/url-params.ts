/**
 * The query parameters of a postgres:// URL (`?sslmode=require&application_name=x`), with libpq's meanings, turned
 * into what pgmux has for them: global settings (server TLS, the connect timeout) and startup parameters of the
 * database's server connections (application_name, options). A parameter pgmux cannot honour is an error, never
 * ignored: a URL saying `sslmode=require` must not connect in plaintext.
 */
import { closest, didYouMean } from './suggest.js';
import { InvalidValue, MAX_DURATION_MS } from './values.js';

/** Global settings a URL parameter can set. */
export type UrlSettingName = 'server_tls_sslmode' | 'server_tls_ca_file' | 'server_tls_cert_file' | 'server_tls_key_file' | 'server_connect_timeout';

/** A global setting a URL parameter gave, already validated (durations in milliseconds). */
export interface UrlSetting {
  readonly setting: UrlSettingName;
  readonly value: string | number;
  /** The parameter as written (`sslmode=require`), for messages: never a secret. */
  readonly from: string;
}

export interface UrlParameters {
  /** Startup parameters for the database's server connections. */
  readonly application_name?: string;
  readonly options?: string;
  readonly settings: readonly UrlSetting[];
}

const SSLMODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;

/** Parameters pgmux honours. */
const SUPPORTED = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'sslnegotiation', 'application_name', 'fallback_application_name', 'options', 'connect_timeout', 'target_session_attrs'];

/** libpq parameters pgmux knows but does not implement: an error says so, rather than "unknown". */
const UNSUPPORTED = [
  'host', 'hostaddr', 'port', 'dbname', 'user', 'password', 'passfile', 'require_auth', 'channel_binding', 'client_encoding',
  'keepalives', 'keepalives_idle', 'keepalives_interval', 'keepalives_count', 'tcp_user_timeout', 'replication', 'gssencmode',
  'sslcompression', 'sslpassword', 'sslcertmode', 'sslcrl', 'sslcrldir', 'sslsni', 'requirepeer', 'ssl_min_protocol_version',
  'ssl_max_protocol_version', 'krbsrvname', 'gsslib', 'gssdelegation', 'service', 'load_balance_hosts', 'min_protocol_version',
  'max_protocol_version',
];

/** Parameters of drivers and ORMs, not libpq: they belong in the application's URL. */
const DRIVER_PARAMS: Readonly<Record<string, string>> = {
  ssl: 'a driver\'s spelling; libpq\'s is sslmode=require (or verify-full)',
  schema: 'Prisma\'s; with pgmux use options=-c search_path=... or set it in the application\'s URL',
  connection_limit: 'Prisma\'s; it belongs in the application\'s URL (pgmux\'s pool size is default_pool_size)',
  pool_timeout: 'Prisma\'s; it belongs in the application\'s URL',
  pgbouncer: 'Prisma\'s; it belongs in the application\'s URL',
  sslaccept: 'Prisma\'s; libpq\'s is sslmode',
};

const TARGET_SESSION_ATTRS = ['any', 'read-write', 'read-only', 'primary', 'standby', 'prefer-standby'];

function oneOf(name: string, value: string, allowed: readonly string[]): string {
  if (allowed.includes(value)) return value;
  throw new InvalidValue(`has ${name}=${JSON.stringify(value)}; ${name} must be one of ${allowed.join(', ')}${didYouMean(value, allowed)}`);
}

function unknownParameter(name: string): InvalidValue {
  const driver = Object.hasOwn(DRIVER_PARAMS, name) ? DRIVER_PARAMS[name] : undefined;
  if (driver !== undefined) return new InvalidValue(`has parameter ${name}, which pgmux does not read: it is ${driver}`);
  if (UNSUPPORTED.includes(name)) return new InvalidValue(`has parameter ${name}, a libpq parameter pgmux does not support (supported: ${SUPPORTED.join(', ')})`);
  const near = closest(name, [...SUPPORTED, ...UNSUPPORTED]);
  const hint = near === undefined ? '' : `; did you mean ${JSON.stringify(near)}?`;
  return new InvalidValue(`has parameter ${name}, which is not a libpq connection parameter${hint} (supported: ${SUPPORTED.join(', ')})`);
}

/** libpq's connect_timeout: whole seconds; 0 or negative waits forever; 1 is taken as 2. */
function connectTimeoutMs(raw: string): number {
  if (!/^\s*-?\d+\s*$/.test(raw)) throw new InvalidValue(`has connect_timeout=${JSON.stringify(raw)}; connect_timeout must be a whole number of seconds`);
  const seconds = Number(raw);
  if (seconds <= 0) return MAX_DURATION_MS;
  const ms = Math.max(seconds, 2) * 1000;
  if (ms > MAX_DURATION_MS) throw new InvalidValue(`has connect_timeout=${seconds}, more than the longest timeout pgmux supports (${Math.floor(MAX_DURATION_MS / 1000)} s)`);
  return ms;
}

/**
 * The TLS settings of sslmode, sslrootcert, sslcert and sslkey, as libpq reads them: sslmode=require with a root
 * certificate checks the chain (verify-ca); sslrootcert=system means the system's roots and needs verify-full (its
 * default then).
 */
function tlsSettings(params: ReadonlyMap<string, string>): UrlSetting[] {
  const out: UrlSetting[] = [];
  const given = params.get('sslmode');
  let mode = given === undefined ? undefined : oneOf('sslmode', given, SSLMODES);
  let modeFrom = `sslmode=${given ?? ''}`;
  const root = params.get('sslrootcert');
  if (root === 'system') {
    if (mode !== undefined && mode !== 'verify-full') {
      throw new InvalidValue(`has sslrootcert=system with sslmode=${mode}; as in libpq, sslrootcert=system needs sslmode=verify-full`);
    }
    mode = 'verify-full';
    modeFrom = 'sslrootcert=system';
  } else if (root !== undefined) {
    if (root === '') throw new InvalidValue('has an empty sslrootcert; name a CA file (or "system")');
    out.push({ setting: 'server_tls_ca_file', value: root, from: 'sslrootcert' });
    if (mode === 'require') {
      mode = 'verify-ca'; // libpq: "if a root CA file exists, sslmode=require behaves like verify-ca"
      modeFrom = 'sslmode=require with sslrootcert (libpq checks the chain then)';
    }
  }
  if (mode !== undefined) out.push({ setting: 'server_tls_sslmode', value: mode, from: modeFrom });
  for (const [param, setting] of [['sslcert', 'server_tls_cert_file'], ['sslkey', 'server_tls_key_file']] as const) {
    const file = params.get(param);
    if (file === undefined) continue;
    if (file === '') throw new InvalidValue(`has an empty ${param}; name a PEM file`);
    out.push({ setting, value: file, from: param });
  }
  if ((params.get('sslcert') === undefined) !== (params.get('sslkey') === undefined)) {
    throw new InvalidValue(`has ${params.has('sslcert') ? 'sslcert without sslkey' : 'sslkey without sslcert'}; a client certificate needs both`);
  }
  return out;
}

/** Checks and interprets the query parameters (already %-decoded, each name once). */
export function interpretUrlParameters(params: ReadonlyMap<string, string>): UrlParameters {
  for (const name of params.keys()) if (!SUPPORTED.includes(name)) throw unknownParameter(name);
  const negotiation = params.get('sslnegotiation');
  if (negotiation !== undefined && oneOf('sslnegotiation', negotiation, ['postgres', 'direct']) === 'direct') {
    throw new InvalidValue('has sslnegotiation=direct, which pgmux does not support yet: it asks servers for TLS with an SSLRequest (sslnegotiation=postgres)');
  }
  const attrs = params.get('target_session_attrs');
  if (attrs !== undefined && oneOf('target_session_attrs', attrs, TARGET_SESSION_ATTRS) !== 'any') {
    throw new InvalidValue(`has target_session_attrs=${attrs}, which pgmux does not support yet: it connects to the one host given whatever its role (only target_session_attrs=any)`);
  }
  const settings = tlsSettings(params);
  const timeout = params.get('connect_timeout');
  if (timeout !== undefined) settings.push({ setting: 'server_connect_timeout', value: connectTimeoutMs(timeout), from: `connect_timeout=${timeout}` });
  const applicationName = params.get('application_name') ?? params.get('fallback_application_name');
  const options = params.get('options');
  return {
    ...(applicationName === undefined ? {} : { application_name: applicationName }),
    ...(options === undefined || options.trim() === '' ? {} : { options }),
    settings,
  };
}
