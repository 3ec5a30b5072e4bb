/**
 * The parameter values a client expects (`ClientSession.params`): the pool's defaults for the reported settings a
 * client may change, its startup settings, and what its SQL set. Set at login, and put back by DISCARD ALL and RESET.
 */
import type { Pool } from '../pool/pool.js';
import type { ParamMap } from '../server/param-map.js';
import type { ServerConnection } from '../server/server-connection.js';
import { SYNCED_PARAMETERS } from '../server/session-params.js';

/** The pool's defaults for the reported settings a client may change; `onlyMissing`: those not set yet only. */
export function putPoolDefaults(params: ParamMap, defaults: ReadonlyMap<string, string>, onlyMissing: boolean): void {
  for (const name of SYNCED_PARAMETERS) {
    const value = defaults.get(name);
    if (value !== undefined && !(onlyMissing && params.has(name))) params.set(name, value);
  }
}

/**
 * Logging in without a server: the pool's defaults, and each startup setting at the value a server reported when it
 * accepted it. False when a value is not known yet (the pool has no defaults yet, or a setting is new to it): then a
 * server must tell it, and a bad setting fails the login, as it would against PostgreSQL.
 */
export function expectKnownValues(params: ParamMap, startupParams: ReadonlyMap<string, string>, pool: Pool): boolean {
  const defaults = pool.defaultParams;
  if (defaults !== null) putPoolDefaults(params, defaults, false);
  let known = defaults !== null;
  for (const [name, value] of startupParams) {
    const accepted = defaults?.get(name) === value ? value : pool.acceptedStartupValue(name, value);
    if (accepted === undefined) known = false;
    params.set(name, accepted ?? value);
  }
  return known;
}

/**
 * Logging in on a server: the values it took for the startup settings (remembered by the pool, so later clients
 * asking for the same need no server to log in), and the pool's default for the rest.
 */
export function learnStartupValues(params: ParamMap, startupParams: ReadonlyMap<string, string>, pool: Pool, server: ServerConnection): void {
  for (const [name, value] of startupParams) {
    // As the server reports it (`DateStyle = German` is "German, DMY"), whether or not this sync changed it.
    const reported = server.reports(name) ? (server.params.get(name) ?? value) : value;
    pool.rememberStartupValue(name, value, reported);
    params.set(name, reported);
  }
  // What the client did not ask for is the pool's default, whatever another client left on a server.
  putPoolDefaults(params, pool.defaultParams ?? server.params, true);
}

/** What DISCARD ALL leaves: the pool's defaults and the client's startup settings. Returns the reported parameters that changed. */
export function resetToStartup(params: ParamMap, startupParams: ReadonlyMap<string, string>, defaults: ReadonlyMap<string, string> | null): Array<[string, string]> {
  const before = new Map(params);
  params.clear();
  if (defaults !== null) putPoolDefaults(params, defaults, false);
  for (const [name, value] of startupParams) params.set(name, value);
  return [...params].filter(([name, value]) => before.get(name) !== value && defaults?.has(name) === true);
}

/**
 * What RESET must return a client's settings to on a server opened with `opened`: its startup values, and the pool's
 * default for a setting the server was opened with that this client did not give (the server would return to the
 * value of the client it was opened for: search_path, reported and so opened with from PostgreSQL 18 on).
 */
export function resetTargets(
  startupParams: ReadonlyMap<string, string>,
  opened: ReadonlyMap<string, string> | null,
  defaults: ReadonlyMap<string, string> | null,
): ReadonlyMap<string, string> {
  if (opened === null || defaults === null) return startupParams;
  let targets: Map<string, string> | null = null;
  for (const name of opened.keys()) {
    const value = defaults.get(name);
    if (startupParams.has(name) || value === undefined) continue;
    targets ??= new Map(startupParams);
    targets.set(name, value);
  }
  return targets ?? startupParams;
}
