/**
 * node-postgres clients for tests: one connected through a test pgmux, a login expected to fail, a one-query
 * session, the clients a test file opened (to end them all after each test), and a background load of busy
 * clients that keeps every server of a small pool occupied (so a client under test moves between servers, or waits).
 */
import pg from 'pg';
import { expect } from 'vitest';
import type { TestPgmux } from './pgmux.js';
import { APP_ROLE, type TestRole } from './roles.js';

export interface ConnectOptions {
  /** pgmux database name (default `app`). */
  database?: string;
  /** Default APP_ROLE. */
  role?: TestRole;
  /**
   * Swallow the client's 'error' events (a server lost, pgmux shutting down): the test then sees failures only
   * in the queries it awaits. Without this an 'error' event nobody listens to fails the run.
   */
  ignoreErrors?: boolean;
}

/** A connected pg.Client through `px`. Call `end()` when done. */
export async function connectClient(px: TestPgmux, options: ConnectOptions = {}): Promise<pg.Client> {
  const role = options.role ?? APP_ROLE;
  const client = new pg.Client(px.url(options.database ?? 'app', role.name, role.password));
  if (options.ignoreErrors === true) client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** What node-postgres rejects with for an error from the server. */
export type PgError = Error & { code?: string; severity?: string };

/**
 * Logs in with node-postgres (host 127.0.0.1 unless `config` says otherwise, 5 s to connect) and returns the error
 * the login failed with; throws if it succeeded.
 */
export async function loginError(config: pg.ClientConfig): Promise<PgError> {
  const client = new pg.Client({ host: '127.0.0.1', connectionTimeoutMillis: 5000, ...config });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    return err as PgError;
  } finally {
    await client.end().catch(() => undefined);
  }
  throw new Error('login unexpectedly succeeded');
}

/** Logs in as loginError does, runs `sql`, disconnects, and returns the first row. */
export async function queryOne<R extends pg.QueryResultRow>(config: pg.ClientConfig, sql: string): Promise<R> {
  const client = new pg.Client({ host: '127.0.0.1', connectionTimeoutMillis: 5000, ...config });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.query<R>(sql)).rows[0];
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * The clients a test file opened, ended together from an afterEach: a test that fails half-way leaves no
 * connection behind (holding a server, or erroring when its pgmux stops).
 */
export class ClientTracker {
  private readonly clients = new Set<pg.Client>();

  /** connectClient, remembered; `ignoreErrors` defaults to true here (failures show in the awaited queries). */
  async connect(px: TestPgmux, options: ConnectOptions = {}): Promise<pg.Client> {
    return this.add(await connectClient(px, { ignoreErrors: true, ...options }));
  }

  /** Remembers a client made elsewhere. */
  add(client: pg.Client): pg.Client {
    this.clients.add(client);
    return client;
  }

  delete(client: pg.Client): void {
    this.clients.delete(client);
  }

  /** Ends every remembered client (errors ignored) and forgets them. */
  async endAll(): Promise<void> {
    const clients = [...this.clients];
    this.clients.clear();
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
}

export interface LoadOptions {
  /** How many clients (default 20). */
  clients?: number;
  /** What each runs in a loop (default `select pg_sleep(0.002)`: short, but long enough to hold a server). */
  sql?: string;
}

export interface BackgroundLoad {
  /** Stops the loops and ends the clients; fails the test if any query failed. Returns how many queries ran. */
  stop(): Promise<number>;
}

/** Connects `clients` clients with `connect` and has each run `sql` in a loop until stop(). */
export async function startLoad(connect: () => Promise<pg.Client>, options: LoadOptions = {}): Promise<BackgroundLoad> {
  const sql = options.sql ?? 'select pg_sleep(0.002)';
  const clients = await Promise.all(Array.from({ length: options.clients ?? 20 }, () => connect()));
  let running = true;
  let queries = 0;
  const errors: string[] = [];
  const loops = clients.map(async (client) => {
    while (running) {
      try {
        await client.query(sql);
        queries++;
      } catch (err) {
        errors.push(`${(err as { code?: string }).code ?? ''} ${(err as Error).message}`);
        return;
      }
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      expect(errors, 'errors in the background load').toEqual([]);
      return queries;
    },
  };
}
