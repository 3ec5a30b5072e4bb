/**
 * Node's drivers, used as applications use them, through pgmux in transaction mode and directly: the same workload's
 * transcript must be the same both ways (the oracle is PostgreSQL).
 *
 * - node-postgres (`pg`): a pg.Pool per worker, unnamed and named prepared statements, rowMode 'array', types
 *   parsed from text, transactions with savepoints, errors inside them, SET / SET LOCAL / RESET ALL, startup options.
 * - postgres.js (`postgres`): its default `prepare: true` (every query a named statement), many queries issued at once
 *   on one connection (pipelined before any answer), `sql.begin` with savepoints, `unsafe` multi-statement text,
 *   arrays and JSON.
 *
 * Many workers run at once, each with its own startup settings; through pgmux they share a pool of 2 server
 * connections, so their statements and settings follow them from server to server.
 */
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDriverPool, type DriverPool } from './harness/driver-pool.js';

const WORKERS = 12;
let pool: DriverPool;

beforeAll(async () => {
  pool = await startDriverPool('node_drivers', 2);
});

afterAll(async () => pool?.stop());

type Entry = [tag: string, value: unknown];
type Workload = (url: string, i: number) => Promise<Entry[]>;

/** JSON-comparable: Dates as ISO text, Buffers as hex, bigint as text. */
function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)));
}

function pgError(err: unknown): unknown {
  const e = err as { code?: string; message?: string };
  return ['ERROR', e.code ?? null, e.message ?? String(err)];
}

const ZONES = ['Asia/Tokyo', 'America/Los_Angeles', 'Europe/Berlin', 'UTC'];

const nodePostgres: Workload = async (url, i) => {
  const log: Entry[] = [];
  const t = `np_${i}`;
  const pool = new pg.Pool({ connectionString: url, max: 3, application_name: `np${i}`, options: `-c TimeZone=${ZONES[i % 4]} -c extra_float_digits=${i % 3}` });
  const run = async (tag: string, config: pg.QueryConfig | pg.QueryArrayConfig | string, values?: unknown[]): Promise<void> => {
    try {
      const r = await pool.query(config as pg.QueryConfig, values);
      log.push([tag, plain({ command: r.command, rowCount: r.rowCount, fields: r.fields.map((f) => [f.name, f.dataTypeID]), rows: r.rows })]);
    } catch (err) {
      log.push([tag, pgError(err)]);
    }
  };
  try {
    await run('create', `drop table if exists ${t}; create table ${t} (id int primary key, v text, ts timestamptz, f float8, j jsonb)`);
    await run('settings', "select current_setting('TimeZone') as tz, current_setting('extra_float_digits') as efd, current_setting('application_name') as app");
    await run('float', 'select 0.1::float8 + 0.2::float8 as f, 1e100::float8 as big');
    for (let k = 0; k < 4; k++) await run(`named ${k}`, { name: 'ins', text: `insert into ${t} values ($1, $2, $3, $4, $5)`, values: [k, `v${k}`, new Date(Date.UTC(2020, 0, 1, k)), k / 3, { k }] });
    await run('unnamed', `select id, v, ts, ts::text as tstext, f, j from ${t} where id < $1 order by id`, [3]);
    await run('array rows', { text: `select id, v from ${t} order by id`, rowMode: 'array' });
    await run('duplicate', { name: 'ins', text: `insert into ${t} values ($1, $2, $3, $4, $5)`, values: [1, 'dup', null, null, null] });
    await run('named after error', { name: 'count', text: `select count(*)::int as n from ${t}` });
    const client = await pool.connect();
    try {
      const step = async (tag: string, text: string, values?: unknown[]): Promise<void> => {
        try {
          const r = await client.query(text, values);
          log.push([tag, plain({ command: r.command, rowCount: r.rowCount, rows: r.rows })]);
        } catch (err) {
          log.push([tag, pgError(err)]);
        }
      };
      await step('begin', 'begin');
      await step('set local', "set local statement_timeout = '5s'");
      await step('insert', `insert into ${t} (id, v) values (100, 'tx')`);
      await step('savepoint', 'savepoint a');
      await step('fail', `insert into ${t} (id, v) values (100, 'again')`);
      await step('in failed transaction', 'select 1');
      await step('rollback to', 'rollback to savepoint a');
      await step('after rollback to', `select count(*)::int as n, current_setting('statement_timeout') as st from ${t}`);
      await step('commit', 'commit');
      await step('local gone', "select current_setting('statement_timeout') as st");
      await step('set', "set search_path = pg_catalog, public");
      await step('set stays', 'show search_path');
      await step('reset all', 'reset all');
      await step('after reset all', "select current_setting('TimeZone') as tz, current_setting('search_path') as sp");
    } finally {
      client.release();
    }
    await run('drop', `drop table ${t}`);
  } finally {
    await pool.end();
  }
  return log;
};

const postgresJs: Workload = async (url, i) => {
  const log: Entry[] = [];
  const t = `pj_${i}`;
  const sql = postgres(url, { max: 1, onnotice: () => {}, connection: { application_name: `pj${i}`, TimeZone: ZONES[(i + 1) % 4] } });
  const record = async (tag: string, q: Promise<postgres.RowList<postgres.Row[]>>): Promise<void> => {
    try {
      const r = await q;
      log.push([tag, plain({ command: r.command, count: r.count, columns: (r.columns ?? []).map((c) => [c.name, c.type]), rows: [...r] })]);
    } catch (err) {
      log.push([tag, pgError(err)]);
    }
  };
  try {
    await record('create', sql.unsafe(`drop table if exists ${t}; create table ${t} (id int primary key, v text, tags text[], j jsonb, ts timestamptz)`));
    await record('settings', sql`select current_setting('TimeZone') as tz, current_setting('application_name') as app`);
    // Issued together on one connection: pipelined, answered in order.
    const inserts = Array.from({ length: 8 }, (_, k) => record(`insert ${k}`, sql`insert into ${sql(t)} values (${k}, ${`v${k}`}, ${[`a${k}`, 'b']}, ${sql.json({ k })}, ${new Date(Date.UTC(2021, 1, 2, k))}) returning id`));
    const failing = record('pipelined error', sql`select 1 / ${0}::int as x`);
    const after = record('pipelined after error', sql`select count(*)::int as n from ${sql(t)}`);
    await Promise.all([...inserts, failing, after]);
    await record('rows', sql`select id, v, tags, j, ts, ts::text as tstext from ${sql(t)} where id < ${4} order by id`);
    try {
      await sql.begin(async (tx) => {
        await tx`insert into ${tx(t)} (id, v) values (100, 'tx')`;
        await tx.savepoint(async (sp) => {
          await sp`insert into ${sp(t)} (id, v) values (100, 'dup')`;
        }).catch((err: unknown) => log.push(['savepoint error', pgError(err)]));
        const [row] = await tx`select count(*)::int as n from ${tx(t)}`;
        log.push(['inside transaction', plain(row)]);
        await tx`select set_config('app.tenant', ${`tenant${i}`}, false)`;
      });
    } catch (err) {
      log.push(['transaction', pgError(err)]);
    }
    await record('custom setting stays', sql`select current_setting('app.tenant', true) as tenant`);
    await record('multi-statement', sql.unsafe("set datestyle = 'German'; select '2001-02-03'::date::text as d"));
    await record('set stays', sql`select '2001-02-03'::date::text as d, current_setting('DateStyle') as ds`);
    await record('syntax error', sql.unsafe('selec 1'));
    await record('reset', sql.unsafe('reset datestyle'));
    await record('after reset', sql`select current_setting('DateStyle') as ds, current_setting('TimeZone') as tz`);
    await record('drop', sql.unsafe(`drop table ${t}`));
  } finally {
    await sql.end({ timeout: 5 });
  }
  return log;
};

describe('Node drivers through pgmux (transaction mode, pool of 2) answer as directly', () => {
  const cases: Array<[name: string, workload: Workload]> = [
    ['node-postgres', nodePostgres],
    ['postgres.js', postgresJs],
  ];
  for (const [name, workload] of cases) {
    it(`${name}: ${WORKERS} concurrent workers, the same transcript through pgmux as directly`, async () => {
      const viaPgmux = await Promise.all(Array.from({ length: WORKERS }, (_, i) => workload(pool.viaPgmux, i)));
      await pool.expectPoolShared();
      const direct = await Promise.all(Array.from({ length: WORKERS }, (_, i) => workload(pool.direct, i)));
      for (let i = 0; i < WORKERS; i++) expect(viaPgmux[i], `${name} worker ${i}`).toEqual(direct[i]);
      // Not vacuous: every worker got rows back, and the expected errors.
      expect(direct[0].length).toBeGreaterThan(15);
      expect(JSON.stringify(direct[0])).toContain('23505');
    }, 120_000);
  }
});
