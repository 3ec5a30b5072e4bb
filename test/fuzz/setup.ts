/**
 * Server-side objects of the differential fuzzer, made and inspected with node-postgres as the cluster's
 * superuser (not through pgmux): the roles, each client's schema and table, and their contents afterwards.
 */
import pg from 'pg';
import { FUZZ_PASSWORD, FUZZ_SUPERUSER, ROLE_1, ROLE_2, schemaOf, tableOf } from './model.js';

export interface PgAddress {
  host: string;
  port: number;
  user: string;
  password: string;
  /**
   * Directory of the cluster's unix socket, where every role is trusted: the direct runs connect there, which
   * saves a SCRAM exchange per client (without it they log in over TCP with SCRAM).
   */
  socketDir?: string;
}

export async function connectAdmin(pgAddr: PgAddress, database: string): Promise<pg.Client> {
  const client = new pg.Client({ host: pgAddr.host, port: pgAddr.port, user: pgAddr.user, password: pgAddr.password, database });
  client.on('error', () => undefined);
  await client.connect();
  // Waits for locks rather than failing; a lock held for longer than this is a leak worth an error.
  await client.query("SET lock_timeout = '20s'");
  return client;
}

/** The superuser the fuzzer logs in as and the two plain roles it switches to (idempotent; roles are per cluster). */
export async function createRoles(admin: pg.Client, database: string): Promise<void> {
  const roles = await admin.query<{ rolname: string }>('select rolname from pg_roles where rolname = any($1)', [[FUZZ_SUPERUSER, ROLE_1, ROLE_2]]);
  const have = new Set(roles.rows.map((r) => r.rolname));
  try {
    if (!have.has(FUZZ_SUPERUSER)) await admin.query(`CREATE ROLE ${FUZZ_SUPERUSER} SUPERUSER LOGIN PASSWORD '${FUZZ_PASSWORD}'`);
    if (!have.has(ROLE_2)) await admin.query(`CREATE ROLE ${ROLE_2} NOLOGIN`);
    if (!have.has(ROLE_1)) await admin.query(`CREATE ROLE ${ROLE_1} NOLOGIN IN ROLE ${ROLE_2}`);
  } catch (err) {
    // Another test process may have created them meanwhile.
    if ((err as { code?: string }).code !== '42710') throw err;
  }
  await admin.query(`GRANT ALL ON DATABASE ${admin.escapeIdentifier(database)} TO ${ROLE_1}, ${ROLE_2}`);
  // A custom setting, once set in a backend, stays defined there for good (RESET and DISCARD ALL leave it, as
  // ''), so a pooled server would answer SHOW fz.tenant where a fresh backend says 42704. Defining it for the
  // database makes every session start with it defined, so only its value is compared.
  await admin.query(`ALTER DATABASE ${admin.escapeIdentifier(database)} SET fz.tenant = ''`);
}

/**
 * Brings the schemas and tables of clients 0..n-1 back to their initial state: a table whose columns are as made
 * (no attribute number above 2, so none added or dropped) is truncated and refilled, any other is dropped and
 * made again. Schemas of clients beyond n are left for a later conversation with more clients.
 */
export async function resetClientObjects(admin: pg.Client, n: number): Promise<void> {
  if (n === 0) return;
  const r = await admin.query<{ nspname: string; clean: boolean }>(
    `select n.nspname, coalesce(bool_and(a.attnum <= 2), false) and count(c.oid) > 0 as clean
       from pg_namespace n
       left join pg_class c on c.relnamespace = n.oid and c.relname = 't' and c.relkind = 'r'
       left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0
      where n.nspname = any($1)
      group by n.nspname`,
    [Array.from({ length: n }, (_, i) => schemaOf(i))],
  );
  const state = new Map(r.rows.map((row) => [row.nspname, row.clean]));
  const sql: string[] = [];
  const clean: string[] = [];
  for (let i = 0; i < n; i++) {
    const s = state.get(schemaOf(i));
    if (s === true) {
      clean.push(tableOf(i));
      continue;
    }
    if (s === false) sql.push(`DROP SCHEMA ${schemaOf(i)} CASCADE`);
    sql.push(
      `CREATE SCHEMA ${schemaOf(i)}`,
      `GRANT USAGE ON SCHEMA ${schemaOf(i)} TO PUBLIC`,
      `CREATE TABLE ${tableOf(i)} (id int PRIMARY KEY, v text)`,
      `GRANT ALL ON ${tableOf(i)} TO ${ROLE_1}`,
    );
  }
  if (clean.length > 0) sql.push(`TRUNCATE ${clean.join(', ')}`);
  for (let i = 0; i < n; i++) sql.push(`INSERT INTO ${tableOf(i)} VALUES (1, 'a'), (2, 'b'), (3, 'c')`);
  await admin.query(sql.join(';\n'));
}

/** Each client's table as JSON text (columns included), or the error reading it. */
export async function snapshot(admin: pg.Client, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    try {
      const r = await admin.query<{ j: string | null }>(`select json_agg(row_to_json(x) order by x.id)::text as j from ${tableOf(i)} x`);
      out.push(r.rows[0].j ?? '[]');
    } catch (err) {
      out.push(`error: ${(err as Error).message}`);
    }
  }
  return out;
}

/**
 * Waits until no other client backend is connected to the database (the backends of the last phase have gone,
 * with their locks, LISTENs and temp tables). Returns false if some are still there after `timeoutMs`.
 */
export async function waitForQuietDatabase(admin: pg.Client, database: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await admin.query<{ n: number }>(
      "select count(*)::int as n from pg_stat_activity where datname = $1 and pid <> pg_backend_pid() and backend_type = 'client backend'",
      [database],
    );
    if (r.rows[0].n === 0) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
