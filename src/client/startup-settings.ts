/**
 * The settings a client asks for in its startup packet: parameters that are GUCs, and `-c` /
 * `--name=value` switches in `options`, keyed by canonical GUC name (libpq sends `timezone`
 * for PGTZ, JDBC `TimeZone`: one setting). They are applied on whichever server serves the
 * client, and are what RESET returns to.
 */
import { parseOptionsParameter } from '../protocol/startup.js';
import { canonicalGucName, opensServerWith, startupKeyOf } from '../server/session-params.js';

/** Startup settings a server connection may be opened with for this client (see Pool.openServer), and their key. */
export interface ServerStartup {
  readonly settings: ReadonlyMap<string, string>;
  readonly key: string;
}

export const NO_SETTINGS: ReadonlyMap<string, string> = new Map();
export const NO_SERVER_STARTUP: ServerStartup = { settings: NO_SETTINGS, key: '' };

/** Startup parameters that are not settings to apply on the server. */
const NOT_GUCS = new Set(['user', 'database', 'options', 'replication']);

export interface StartupSettings {
  settings: Map<string, string>;
  forServer: ServerStartup;
  /** Switches in `options` pgmux does not apply (logged). */
  unsupported: string[];
}

/**
 * `addHost`: the client's address, for application_name_add_host ("app - host:port", as
 * PgBouncer does, so pg_stat_activity shows which client a server works for).
 */
export function startupSettings(params: ReadonlyMap<string, string>, addHost: string | null): StartupSettings {
  const settings = new Map<string, string>();
  for (const [name, value] of params) if (!NOT_GUCS.has(name)) settings.set(canonicalGucName(name), value);
  let unsupported: string[] = [];
  const options = params.get('options');
  if (options !== undefined) {
    const parsed = parseOptionsParameter(options);
    for (const [name, value] of parsed.settings) settings.set(canonicalGucName(name), value);
    unsupported = parsed.unsupported;
  }
  const forServer = new Map([...settings].filter(([name]) => opensServerWith(name)));
  if (addHost !== null) settings.set('application_name', `${settings.get('application_name') ?? ''} - ${addHost}`);
  return { settings, forServer: forServer.size > 0 ? { settings: forServer, key: startupKeyOf(forServer) } : NO_SERVER_STARTUP, unsupported };
}
