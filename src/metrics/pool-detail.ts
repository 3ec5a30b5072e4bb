/**
 * The status page's drill-down into one pool (`/status/pool.json?database=&user=`): its clients and
 * server connections, read from the registry as SHOW CLIENTS / SHOW SERVERS read them. No client
 * address: the page is served without authentication on the metrics port, so it shows what an
 * operator needs to find a stuck client (application name, state, wait, transaction age) and no more.
 */
import type { ClientInfo } from '../client/client-info.js';
import { ClientState, operatorState, type OperatorState } from '../client/client-state.js';
import type { Pool, PoolClient } from '../pool/pool.js';
import type { PoolRegistry } from '../pool/pool-registry.js';
import type { ServerConnection } from '../server/server-connection.js';

/** Rows beyond these are counted, not listed (a pool can have thousands of clients). */
export const DETAIL_ROWS = 200;

export interface DetailClient {
  id: number;
  applicationName: string;
  state: OperatorState;
  /** Seconds queued for a server, when waiting. */
  waitSeconds: number | null;
  /** Seconds since the transaction in progress began, when it has one. */
  transactionSeconds: number | null;
  connectedSeconds: number;
  idleSeconds: number;
  server: number | null;
  pinReasons: string[];
}

export interface DetailServer {
  id: number;
  state: 'active' | 'idle' | 'connecting' | 'resetting';
  ageSeconds: number;
  /** Seconds since it was last released, when idle. */
  idleSeconds: number | null;
  client: number | null;
  applicationName: string;
}

export interface PoolDetail {
  database: string;
  user: string;
  time: number;
  clients: DetailClient[];
  clientsTotal: number;
  servers: DetailServer[];
  serversTotal: number;
}

/** Waiting first (longest first), then active (longest transaction first), then the rest. */
function order(a: DetailClient, b: DetailClient): number {
  const rank = (c: DetailClient) => (c.state === 'waiting' ? 0 : c.state === 'active' ? 1 : 2);
  return rank(a) - rank(b) || (b.waitSeconds ?? 0) - (a.waitSeconds ?? 0) || (b.transactionSeconds ?? 0) - (a.transactionSeconds ?? 0) || a.id - b.id;
}

export function poolDetail(registry: PoolRegistry, database: string, user: string, now: number = Date.now()): PoolDetail | null {
  const pools: Pool[] = [];
  for (const pool of registry.pools.values()) if (pool.database === database && pool.user === user) pools.push(pool);
  if (pools.length === 0) return null;
  const mono = performance.now();
  const clients: DetailClient[] = [];
  const servers: DetailServer[] = [];
  for (const pool of pools) {
    for (const c of pool.clients as Set<PoolClient> as unknown as Set<ClientInfo>) {
      if (c.state === ClientState.Closed) continue;
      const since = c.server?.transactionSince ?? null;
      clients.push({
        id: c.id,
        applicationName: c.params.get('application_name') ?? c.applicationName,
        state: operatorState(c),
        waitSeconds: c.waitLink.queued ? Math.max(0, now - c.waitingSince) / 1000 : null,
        transactionSeconds: since === null ? null : Math.max(0, mono - since) / 1000,
        connectedSeconds: Math.max(0, now - c.connectedAt) / 1000,
        idleSeconds: Math.max(0, now - c.lastActive) / 1000,
        server: c.server?.id ?? null,
        pinReasons: [...c.pinReasons],
      });
    }
    const add = (server: ServerConnection, state: DetailServer['state']) => {
      const client = server.client as (PoolClient & ClientInfo) | null;
      servers.push({
        id: server.id,
        state,
        ageSeconds: Math.max(0, now - server.createdAt) / 1000,
        idleSeconds: state === 'idle' ? Math.max(0, now - server.idleSince) / 1000 : null,
        client: client?.id ?? null,
        applicationName: client === null ? '' : (client.params.get('application_name') ?? ''),
      });
    };
    for (const s of pool.active) add(s, 'active');
    pool.idle.forEach((s) => add(s, 'idle'));
    for (const s of pool.resetting) add(s, 'resetting');
    for (const s of pool.connecting) add(s, 'connecting');
  }
  clients.sort(order);
  return {
    database,
    user,
    time: now,
    clients: clients.slice(0, DETAIL_ROWS),
    clientsTotal: clients.length,
    servers: servers.slice(0, DETAIL_ROWS),
    serversTotal: servers.length,
  };
}
