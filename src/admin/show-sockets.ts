/**
 * SHOW CLIENTS and SHOW SERVERS: one row per connection.
 *
 * Columns and types are PgBouncer 1.25's (admin.c socket_header, without the debug columns),
 * then pgmux's `pin_reasons` at the end: why a client is held on its server connection by session
 * state (transaction mode), comma-separated. `ptr`/`link` are "c<id>" / "s<id>", so a client's
 * link is its server's ptr and the other way round; `id` is what KILL_CLIENT takes.
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { ClientInfo } from '../client/client-info.js';
import { operatorState } from '../client/client-state.js';
import type { Pool, PoolClient } from '../pool/pool.js';
import type { PoolRegistry } from '../pool/pool-registry.js';
import type { ServerConnection } from '../server/server-connection.js';
import { formatTime, int4, ResultSet, text, timestamp, type Cell } from './result-set.js';
import { idleSplit } from './show-pools.js';

export const SOCKET_COLUMNS = [
  text('type'),
  text('user'),
  text('database'),
  text('replication'),
  text('state'),
  text('addr'),
  int4('port'),
  text('local_addr'),
  int4('local_port'),
  timestamp('connect_time'),
  timestamp('request_time'),
  int4('wait'),
  int4('wait_us'),
  int4('close_needed'),
  text('ptr'),
  text('link'),
  int4('remote_pid'),
  text('tls'),
  text('application_name'),
  int4('prepared_statements'),
  int4('id'),
  // pgmux
  text('pin_reasons'),
];

function tlsInfo(socket: Socket): string {
  if (!(socket instanceof TLSSocket)) return '';
  const cipher = socket.getCipher();
  return `${socket.getProtocol() ?? 'TLS'}/${cipher.standardName ?? cipher.name}`;
}

/** "10.0.0.1:5432" → address and port (IPv6 addresses contain colons: split at the last one). */
function splitLabel(label: string): [string, number | null] {
  const i = label.lastIndexOf(':');
  if (i < 0) return [label, null];
  const port = Number(label.slice(i + 1));
  return [label.slice(0, i), Number.isInteger(port) ? port : null];
}

/** SHOW CLIENTS states are PgBouncer's: a client still logging in is listed as idle. */
function clientState(client: ClientInfo): string {
  const state = operatorState(client);
  return state === 'login' ? 'idle' : state;
}

function clientRow(client: ClientInfo, now: number, running = false): Cell[] {
  const [addr, port] = splitLabel(client.label);
  const waiting = client.waitLink.queued;
  const waitedUs = waiting ? Math.max(0, now - client.waitingSince) * 1000 : 0;
  return [
    'C',
    client.user,
    client.database,
    'none',
    running ? 'active' : clientState(client),
    addr,
    port,
    client.socket.localAddress ?? null,
    client.socket.localPort ?? null,
    formatTime(client.connectedAt),
    formatTime(client.lastActive),
    Math.floor(waitedUs / 1_000_000),
    Math.floor(waitedUs % 1_000_000),
    0,
    `c${client.id}`,
    client.server === null ? '' : `s${client.server.id}`,
    0,
    tlsInfo(client.socket),
    client.params.get('application_name') ?? client.applicationName,
    client.preparedStatementCount,
    client.id,
    client.pinReasons.join(','),
  ];
}

/** `running`: the admin client running this SHOW CLIENTS, which is active while it does (as in PgBouncer). */
export function showClients(registry: PoolRegistry, now: number = Date.now(), running: ClientInfo | null = null): Buffer {
  const rs = new ResultSet(SOCKET_COLUMNS);
  for (const pool of registry.pools.values()) {
    const waiting: ClientInfo[] = [];
    for (const c of pool.clients as Set<PoolClient> as unknown as Set<ClientInfo>) {
      if (c.waitLink.queued) waiting.push(c);
      else rs.row(clientRow(c, now));
    }
    for (const c of waiting) rs.row(clientRow(c, now));
  }
  // Admin console sessions, as PgBouncer lists its own "pgbouncer" pool.
  for (const c of registry.clients) if (c.isAdmin) rs.row(clientRow(c, now, c === running));
  return rs.finish();
}

function serverRow(pool: Pool, server: ServerConnection, state: string): Cell[] {
  const client = server.client as (PoolClient & ClientInfo) | null;
  return [
    'S',
    pool.user,
    pool.database,
    'none',
    state,
    server.target.host,
    server.target.port,
    server.socket.localAddress ?? null,
    server.socket.localPort ?? null,
    formatTime(server.createdAt),
    formatTime(Math.max(server.readyAt, server.idleSince)),
    0,
    0,
    pool.closeNeeded.has(server) ? 1 : 0,
    `s${server.id}`,
    client === null ? '' : `c${client.id}`,
    server.processId,
    tlsInfo(server.socket),
    client === null ? '' : (client.params.get('application_name') ?? ''),
    server.statements.size,
    server.id,
    client === null ? '' : client.pinReasons.join(','),
  ];
}

export function showServers(registry: PoolRegistry, now: number = Date.now()): Buffer {
  const rs = new ResultSet(SOCKET_COLUMNS);
  for (const pool of registry.pools.values()) {
    for (const server of pool.active) rs.row(serverRow(pool, server, 'active'));
    const { used } = idleSplit(pool, now);
    // Oldest idle first: those are the ones past server_check_delay ("used").
    pool.idle.forEach((server, i) => rs.row(serverRow(pool, server, i < used ? 'used' : 'idle')));
    for (const server of pool.resetting) rs.row(serverRow(pool, server, 'tested'));
    for (const server of pool.connecting) rs.row(serverRow(pool, server, 'new'));
  }
  return rs.finish();
}
