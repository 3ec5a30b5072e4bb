/**
 * SHOW DATABASES and SHOW USERS: the configured entries with their effective limits and what is
 * in use now. Columns and types are PgBouncer 1.25's (admin.c show_one_database, admin_show_users).
 */
import { ADMIN_DATABASES } from '../config/checks.js';
import { resolveDatabase, type DatabaseConfig } from '../config/index.js';
import type { PoolRegistry } from '../pool/pool-registry.js';
import type { AdminHost } from './admin-host.js';
import { int4, ResultSet, text, type Cell } from './result-set.js';

export const DATABASES_COLUMNS = [
  text('name'),
  text('host'),
  int4('port'),
  text('database'),
  text('force_user'),
  int4('pool_size'),
  int4('min_pool_size'),
  int4('reserve_pool_size'),
  int4('server_lifetime'),
  text('pool_mode'),
  text('load_balance_hosts'),
  int4('max_connections'),
  int4('current_connections'),
  int4('max_client_connections'),
  int4('current_client_connections'),
  int4('paused'),
  int4('disabled'),
];

function serversOf(registry: PoolRegistry, match: (database: string, user: string) => boolean): number {
  let n = 0;
  for (const pool of registry.pools.values()) if (match(pool.database, pool.user)) n += pool.serverCount;
  return n;
}

function clientsOf(registry: PoolRegistry, database: string): number {
  let n = 0;
  for (const pool of registry.pools.values()) if (pool.database === database) n += pool.clients.size;
  return n;
}

export function showDatabases(host: AdminHost): Buffer {
  const { registry, config } = host;
  const rs = new ResultSet(DATABASES_COLUMNS);
  const row = (name: string, db: DatabaseConfig): Cell[] => [
    name,
    db.host,
    db.port,
    db.dbname,
    db.user ?? null,
    db.pool_size ?? config.default_pool_size,
    db.min_pool_size ?? config.min_pool_size,
    db.reserve_pool_size ?? config.reserve_pool_size,
    Math.floor(config.server_lifetime / 1000),
    db.pool_mode ?? null,
    null,
    db.max_db_connections ?? config.max_db_connections,
    serversOf(registry, (d) => d === name),
    0,
    clientsOf(registry, name),
    registry.isPaused(name) ? 1 : 0,
    registry.isDisabled(name) ? 1 : 0,
  ];
  const shown = new Set<string>();
  for (const [name, db] of Object.entries(config.databases)) {
    shown.add(name);
    rs.row(row(name, db));
  }
  // Databases served through the wildcard entry "*", as PgBouncer lists its auto-databases.
  for (const pool of registry.pools.values()) {
    if (shown.has(pool.database)) continue;
    const db = resolveDatabase(config, pool.database);
    if (db === undefined) continue; // removed by a reload; its pool drains
    shown.add(pool.database);
    rs.row(row(pool.database, db));
  }
  // The admin console, as PgBouncer shows its own "pgbouncer" database.
  let adminClients = 0;
  for (const c of registry.clients) if (c.isAdmin) adminClients++;
  rs.row([ADMIN_DATABASES[0], null, host.port, ADMIN_DATABASES[0], ADMIN_DATABASES[0], 2, 0, 0, 0, 'statement', null, 0, 0, 0, adminClients, 0, 0]);
  return rs.finish();
}

export const USERS_COLUMNS = [
  text('name'),
  text('pool_size'),
  text('reserve_pool_size'),
  text('pool_mode'),
  int4('max_user_connections'),
  int4('current_connections'),
  int4('max_user_client_connections'),
  int4('current_client_connections'),
];

export function showUsers(host: AdminHost): Buffer {
  const { registry, config } = host;
  const names = new Set<string>(Object.keys(config.users));
  for (const pool of registry.pools.values()) names.add(pool.user);
  const clientsByUser = new Map<string, number>();
  for (const c of registry.clients) if (c.pool !== null || c.isAdmin) clientsByUser.set(c.user, (clientsByUser.get(c.user) ?? 0) + 1);
  const rs = new ResultSet(USERS_COLUMNS);
  for (const name of names) {
    const u = Object.hasOwn(config.users, name) ? config.users[name] : undefined;
    rs.row([
      name,
      u?.pool_size === undefined ? null : String(u.pool_size),
      null, // pgmux has no per-user reserve pool
      u?.pool_mode ?? null,
      u?.max_user_connections ?? config.max_user_connections,
      serversOf(registry, (_d, user) => user === name),
      0,
      clientsByUser.get(name) ?? 0,
    ]);
  }
  return rs.finish();
}
