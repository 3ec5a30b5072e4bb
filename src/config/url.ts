// postgres:// URLs, as used by `url:` in a database entry and by DATABASE_URL.
import { interpretUrlParameters, type UrlSetting } from './url-params.js';
import { InvalidValue } from './values.js';

/** The parts a URL gave; absent parts are left for defaults. User and password are percent-decoded. */
export interface PostgresUrl {
  readonly host?: string;
  readonly port?: number;
  readonly dbname?: string;
  readonly user?: string;
  readonly password?: string;
  /** Startup parameters for server connections (?application_name=, ?options=). */
  readonly application_name?: string;
  readonly options?: string;
  /** Global settings the query parameters give (?sslmode=, ?connect_timeout=...); absent when none. */
  readonly settings?: readonly UrlSetting[];
}

const SHAPE = 'a URL like postgres://user:password@host:5432/dbname';

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new InvalidValue(`must be ${SHAPE} (its ${what} has a malformed %-escape)`);
  }
}

/**
 * The query string's parameters, %-decoded as libpq decodes them ('+' stays a plus sign). A parameter given twice
 * is an error: which one wins would be a guess.
 */
function queryParameters(search: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const pair of search.replace(/^\?/, '').split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new InvalidValue(`must have query parameters of the form name=value (got a parameter without "=")`);
    const name = decode(pair.slice(0, eq), 'query parameter name');
    if (params.has(name)) throw new InvalidValue(`has parameter ${name} twice`);
    params.set(name, decode(pair.slice(eq + 1), `parameter ${name}`));
  }
  return params;
}

/**
 * Parses postgres:// or postgresql:// URLs, with libpq's query parameters (see url-params.ts: the ones pgmux cannot
 * honour are errors). Reasons never repeat the URL, which usually holds a password.
 */
export function parsePostgresUrl(raw: unknown): PostgresUrl {
  if (typeof raw !== 'string') throw new InvalidValue(`must be ${SHAPE}`);
  if (!/^postgres(ql)?:\/\//i.test(raw.trim())) {
    throw new InvalidValue(`must be ${SHAPE} (the scheme must be postgres:// or postgresql://)`);
  }
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new InvalidValue(`must be ${SHAPE} (it could not be parsed; check the port and %-encode special characters)`);
  }
  const host = decode(url.hostname, 'host').replace(/^\[(.*)\]$/, '$1');
  if (host.includes(',')) throw new InvalidValue(`must name a single host (multiple hosts are not supported)`);
  const path = decode(url.pathname.replace(/^\//, ''), 'database name');
  if (path.includes('/')) throw new InvalidValue(`must be ${SHAPE} (the path must be just the database name)`);
  const port = url.port === '' ? undefined : Number(url.port);
  if (port === 0) throw new InvalidValue(`must have a port between 1 and 65535 (got 0)`);

  const parts: { -readonly [K in keyof PostgresUrl]: PostgresUrl[K] } = {};
  if (host !== '') parts.host = host;
  if (port !== undefined) parts.port = port;
  if (path !== '') parts.dbname = path;
  if (url.username !== '') parts.user = decode(url.username, 'user name');
  if (url.password !== '') parts.password = decode(url.password, 'password');
  const { settings, ...startup } = interpretUrlParameters(queryParameters(url.search));
  Object.assign(parts, startup);
  if (settings.length > 0) parts.settings = settings;
  return parts;
}
