/**
 * The settings a client asks for in its startup packet: parameters that are GUCs, and `-c` /
 * `--name=value` switches in `options`, keyed by canonical GUC name (libpq sends `timezone`
 * for PGTZ, JDBC `TimeZone`: one setting). They are applied on whichever server serves the
 * client, and are what RESET returns to.
 */
import { parseOptionsParameter, type OptionsRefusal } from '../protocol/startup.js';
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
  /** What PostgreSQL would refuse the login for in `options` (after authentication), if anything. */
  refusal: OptionsRefusal | null;
  /**
   * Values PostgreSQL would apply and then override (a setting given twice: in options and as a parameter, or twice
   * in either), in its order. Only their validity matters: PostgreSQL fails the login on a bad one.
   */
  overridden: Array<[string, string]>;
}

/**
 * `addHost`: the client's address, for application_name_add_host ("app - host:port", as
 * PgBouncer does, so pg_stat_activity shows which client a server works for).
 */
export function startupSettings(
  params: ReadonlyMap<string, string>,
  addHost: string | null,
  /** StartupPacket.repeated: earlier values of parameters given twice. */
  repeated: ReadonlyArray<readonly [string, string]> = [],
): StartupSettings {
  const settings = new Map<string, string>();
  const overridden: Array<[string, string]> = [];
  const apply = (name: string, value: string): void => {
    const earlier = settings.get(name);
    if (earlier !== undefined) overridden.push([name, earlier]);
    settings.delete(name); // applied after the earlier value, so it goes after it in the order too
    settings.set(name, value);
  };
  // As PostgreSQL's process_startup_options: the switches in `options` first, then the other parameters, which win
  // over them. The order is also the order they are applied at login, so the first bad one is the one PostgreSQL
  // names (before, a bad parameter was reported ahead of a bad `-c` in options, and options won over parameters).
  let unsupported: string[] = [];
  let refusal: OptionsRefusal | null = null;
  const options = params.get('options');
  if (options !== undefined) {
    const parsed = parseOptionsParameter(options);
    for (const [name, value] of parsed.assignments) apply(canonicalGucName(name), value);
    unsupported = parsed.unsupported;
    refusal = parsed.refusal;
  }
  // The packet's parameters in packet order, each occurrence (a repeated one first with its earlier values).
  const earlierValues = new Map<string, string[]>();
  for (const [name, value] of repeated) earlierValues.set(name, [...(earlierValues.get(name) ?? []), value]);
  for (const [name, value] of params) {
    if (NOT_GUCS.has(name)) continue;
    for (const earlier of earlierValues.get(name) ?? []) apply(canonicalGucName(name), earlier);
    apply(canonicalGucName(name), value);
  }
  const forServer = new Map([...settings].filter(([name]) => opensServerWith(name)));
  if (addHost !== null) settings.set('application_name', `${settings.get('application_name') ?? ''} - ${addHost}`);
  return { settings, forServer: forServer.size > 0 ? { settings: forServer, key: startupKeyOf(forServer) } : NO_SERVER_STARTUP, unsupported, refusal, overridden };
}

/**
 * A query that applies the overridden startup values on a server, each for its own statement only (`is_local`, in
 * the query's implicit transaction: nothing stays set), so a bad one fails with PostgreSQL's own error (22023,
 * 42704 ...) as it fails the login there. Null when there are none.
 */
export function overriddenCheckQuery(overridden: ReadonlyArray<readonly [string, string]>): string | null {
  if (overridden.length === 0) return null;
  const literal = (v: string): string => `'${v.replace(/'/g, "''")}'`;
  return overridden.map(([name, value]) => `SELECT pg_catalog.set_config(${literal(name)}, ${literal(value)}, true);`).join('');
}
