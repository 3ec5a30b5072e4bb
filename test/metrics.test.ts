/**
 * The Prometheus endpoint and the health endpoints, against real traffic through pgmux.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import pg from 'pg';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { parseExposition, sampleSum, sampleValue, type Exposition } from './harness/prometheus-text.js';
import { freePort } from './harness/postgres.js';
import { APP_ROLE, SCRAM_ROLE } from './harness/roles.js';

let px: TestPgmux;
let db: string;

const POOL_LABELS = ['database', 'pool_mode', 'user'];
/** Every pgmux metric, with its type and its labels besides database/user/pool_mode. */
const EXPECTED: Record<string, { type: string; labels: string[] | null }> = {
  pgmux_info: { type: 'gauge', labels: null },
  pgmux_clients: { type: 'gauge', labels: null },
  pgmux_max_client_conn: { type: 'gauge', labels: null },
  pgmux_client_connections: { type: 'gauge', labels: ['state'] },
  pgmux_server_connections: { type: 'gauge', labels: ['state'] },
  pgmux_pool_size: { type: 'gauge', labels: [] },
  pgmux_pool_saturation: { type: 'gauge', labels: [] },
  pgmux_pool_waiting_clients: { type: 'gauge', labels: [] },
  pgmux_pool_wait_oldest_seconds: { type: 'gauge', labels: [] },
  pgmux_pool_server_login_failures_consecutive: { type: 'gauge', labels: [] },
  pgmux_server_login_failures_total: { type: 'counter', labels: [] },
  pgmux_transactions_total: { type: 'counter', labels: [] },
  pgmux_queries_total: { type: 'counter', labels: [] },
  pgmux_received_bytes_total: { type: 'counter', labels: [] },
  pgmux_sent_bytes_total: { type: 'counter', labels: [] },
  pgmux_errors_total: { type: 'counter', labels: ['class'] },
  pgmux_pins_total: { type: 'counter', labels: ['reason'] },
  pgmux_prepared_statement_cache_hits_total: { type: 'counter', labels: [] },
  pgmux_prepared_statement_cache_misses_total: { type: 'counter', labels: [] },
  pgmux_client_login_failures_total: { type: 'counter', labels: null },
  pgmux_reloads_total: { type: 'counter', labels: null },
  pgmux_client_wait_seconds: { type: 'histogram', labels: [] },
  pgmux_transaction_duration_seconds: { type: 'histogram', labels: [] },
  pgmux_query_duration_seconds: { type: 'histogram', labels: [] },
};

/** What /readyz answers. */
interface ReadyBody {
  status: string;
  ready: boolean;
  reasons: string[];
  databases: Record<string, { ready: boolean; upstream: string; detail: string }>;
}

const APP = { database: 'app', user: APP_ROLE.name, pool_mode: 'transaction' };
const SMALL = { database: 'small', user: APP_ROLE.name, pool_mode: 'transaction' };
const EVERYTHING: Exposition[] = [];

async function scrape(target: TestPgmux = px): Promise<Exposition> {
  const res = await fetch(`${target.metricsUrl}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  const exp = parseExposition(await res.text());
  if (target === px) EVERYTHING.push(exp);
  return exp;
}

async function connect(database = 'app', password = APP_ROLE.password): Promise<pg.Client> {
  const client = new pg.Client(px.url(database, APP_ROLE.name, password));
  await client.connect();
  return client;
}

/** Polls until `check` passes (slow CI: generous, but fails with the last error). */
async function eventually(check: () => Promise<void>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

beforeAll(async () => {
  db = await createTestDatabase('metrics');
  px = await startPgmux({
    metrics: true,
    settings: { default_pool_size: 2, max_client_conn: 50 },
    databases: { app: { dbname: db }, small: { dbname: db, pool_size: 1 } },
    users: { [APP_ROLE.name]: { password: APP_ROLE.password }, [SCRAM_ROLE.name]: { password: SCRAM_ROLE.password } },
  });
});

afterAll(async () => {
  await px?.stop();
});

describe('/metrics', () => {
  it('is a valid Prometheus text exposition with every pgmux metric, typed, plus process metrics', async () => {
    const client = await connect();
    await client.query('select 1');
    const exp = await scrape();
    for (const [name, { type }] of Object.entries(EXPECTED)) {
      expect(exp.get(name)?.type, name).toBe(type);
      expect(exp.get(name)?.help, name).not.toBe('');
    }
    expect(exp.get('process_cpu_user_seconds_total')?.type).toBe('counter');
    expect(exp.get('nodejs_heap_size_used_bytes')?.type).toBe('gauge');
    expect(sampleValue(exp, 'pgmux_max_client_conn')).toBe(50);
    expect(sampleValue(exp, 'pgmux_pool_size', APP)).toBe(2);
    expect(sampleValue(exp, 'pgmux_client_connections', { ...APP, state: 'idle' })).toBe(1);
    expect(sampleValue(exp, 'pgmux_server_connections', { ...APP, state: 'idle' })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(exp, 'pgmux_clients')).toBe(1);
    await client.end();
  });

  it('moves the transaction and query counters by exactly the traffic sent', async () => {
    const client = await connect();
    const before = await scrape();
    const N = 7;
    for (let i = 0; i < N; i++) await client.query('select $1::int', [i]);
    await client.query('begin');
    await client.query('select 1');
    await client.query('commit');
    const after = await scrape();
    const delta = (name: string) => (sampleValue(after, name, APP) ?? 0) - (sampleValue(before, name, APP) ?? 0);
    expect(delta('pgmux_transactions_total')).toBe(N + 1);
    expect(delta('pgmux_queries_total')).toBe(N + 3);
    expect(delta('pgmux_received_bytes_total')).toBeGreaterThan(0);
    expect(delta('pgmux_sent_bytes_total')).toBeGreaterThan(0);
    expect(delta('pgmux_transaction_duration_seconds_count')).toBe(N + 1);
    expect(delta('pgmux_query_duration_seconds_count')).toBe(N + 3);
    await client.end();
  });

  it('puts a slow transaction in the right histogram buckets', async () => {
    const client = await connect();
    const before = await scrape();
    await client.query('select pg_sleep(0.3)');
    const after = await scrape();
    const bucket = (exp: Exposition, le: string) => sampleValue(exp, 'pgmux_transaction_duration_seconds_bucket', { ...APP, le }) ?? 0;
    for (const le of ['0.1', '0.25']) expect(bucket(after, le) - bucket(before, le), `le=${le}`).toBe(0);
    expect(bucket(after, '+Inf') - bucket(before, '+Inf')).toBe(1);
    const sum = (exp: Exposition) => sampleValue(exp, 'pgmux_transaction_duration_seconds_sum', APP) ?? 0;
    expect(sum(after) - sum(before)).toBeGreaterThanOrEqual(0.29);
    await client.end();
  });

  it('shows a waiting client while it waits, then observes its wait', async () => {
    const holder = await connect('small');
    const waiter = await connect('small');
    const before = await scrape();
    await holder.query('begin');
    await holder.query('select 1');
    const waited = waiter.query('select 2 as two');
    await eventually(async () => {
      const exp = await scrape();
      expect(sampleValue(exp, 'pgmux_client_connections', { ...SMALL, state: 'waiting' })).toBe(1);
      expect(sampleValue(exp, 'pgmux_pool_waiting_clients', SMALL)).toBe(1);
      expect(sampleValue(exp, 'pgmux_pool_saturation', SMALL)).toBe(1);
      expect(sampleValue(exp, 'pgmux_server_connections', { ...SMALL, state: 'active' })).toBe(1);
      expect(sampleValue(exp, 'pgmux_pool_wait_oldest_seconds', SMALL)).toBeGreaterThan(0.25);
    });
    await holder.query('commit');
    expect((await waited).rows[0].two).toBe(2);
    const after = await scrape();
    const bucket = (exp: Exposition, le: string) => sampleValue(exp, 'pgmux_client_wait_seconds_bucket', { ...SMALL, le }) ?? 0;
    // Every request is observed: the holder's BEGIN, served at once, and the waiter's, after over 0.25 s.
    expect(bucket(after, '+Inf') - bucket(before, '+Inf')).toBe(2);
    expect(bucket(after, '0.1') - bucket(before, '0.1')).toBe(1);
    expect(bucket(after, '0.25') - bucket(before, '0.25')).toBe(1);
    expect(sampleValue(after, 'pgmux_pool_waiting_clients', SMALL)).toBe(0);
    expect(sampleValue(after, 'pgmux_pool_wait_oldest_seconds', SMALL)).toBe(0);
    await holder.end();
    await waiter.end();
  });

  it('counts errors by SQLSTATE class, pins by reason, prepared-statement hits and misses, failed logins', async () => {
    const client = await connect('small');
    const before = await scrape();
    await expect(client.query('select 1/0')).rejects.toThrow(/division by zero/);
    await client.query({ name: 'metrics_q', text: 'select $1::int + 1 as n', values: [1] });
    const afterFirst = await scrape();
    await client.query({ name: 'metrics_q', text: 'select $1::int + 1 as n', values: [2] });
    await client.query('listen metrics_channel');
    await client.query('unlisten metrics_channel');
    await expect(connect('app', 'wrong password')).rejects.toThrow(/password authentication failed/);
    const after = await scrape();

    const delta = (name: string, labels: Record<string, string> = {}, from = before) => (sampleValue(after, name, labels) ?? 0) - (sampleValue(from, name, labels) ?? 0);
    expect(delta('pgmux_errors_total', { ...SMALL, class: '22' })).toBe(1);
    expect(delta('pgmux_pins_total', { ...SMALL, reason: 'listen' })).toBe(1);
    const firstMisses = (sampleValue(afterFirst, 'pgmux_prepared_statement_cache_misses_total', SMALL) ?? 0) - (sampleValue(before, 'pgmux_prepared_statement_cache_misses_total', SMALL) ?? 0);
    expect(firstMisses).toBeGreaterThanOrEqual(1);
    // pool_size 1: the second run finds the statement on the same server connection.
    expect(delta('pgmux_prepared_statement_cache_misses_total', SMALL, afterFirst)).toBe(0);
    expect(delta('pgmux_prepared_statement_cache_hits_total', SMALL, afterFirst)).toBeGreaterThanOrEqual(1);
    expect(delta('pgmux_client_login_failures_total')).toBe(1);
    expect(sampleValue(after, 'pgmux_reloads_total', { result: 'ok' })).toBeGreaterThanOrEqual(0);
    await client.end();
  });

  it('labels pool series with database, user and pool_mode only, and never a client address or query text', async () => {
    const client = await connect();
    await client.query(`select 'needle_in_metrics' as needle_column`);
    const text = await (await fetch(`${px.metricsUrl}/metrics`)).text();
    const exp = parseExposition(text);
    expect(text).not.toContain('needle');
    const local = (client as unknown as { connection: { stream: net.Socket } }).connection.stream.localPort;
    for (const [name, { labels }] of Object.entries(EXPECTED)) {
      const family = exp.get(name);
      expect(family, name).toBeDefined();
      for (const sample of family?.samples ?? []) {
        const names = Object.keys(sample.labels).filter((l) => l !== 'le').sort();
        const allowed = labels === null ? [] : [...POOL_LABELS, ...labels].sort();
        if (name === 'pgmux_info') expect(names).toEqual(['version']);
        else if (name === 'pgmux_reloads_total') expect(names).toEqual(['result']);
        else expect(names, `${name} ${JSON.stringify(sample.labels)}`).toEqual(allowed);
        for (const value of Object.values(sample.labels)) {
          expect(value).not.toMatch(/\d+\.\d+\.\d+\.\d+|::1|127\.0\.0\.1/);
          expect(value).not.toBe(String(local));
        }
      }
    }
    await client.end();
  });

  it('keeps counting a pool across a reload that removes it and one that brings it back', async () => {
    const client = await connect('small');
    client.on('error', () => {});
    await client.query('select 1');
    const before = await scrape();
    const original = readFileSync(px.configFile, 'utf8');
    const without = parse(original) as { databases: Record<string, unknown> };
    delete without.databases.small;
    writeFileSync(px.configFile, stringify(without));
    try {
      expect(px.pgmux.reload().ok).toBe(true);
      await client.query('select 2'); // the orphaned pool still serves the clients it has
      await client.end();
    } finally {
      writeFileSync(px.configFile, original);
    }
    expect(px.pgmux.reload().ok).toBe(true);
    const again = await connect('small');
    await again.query('select 3');
    await again.end();
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string>) => (sampleValue(after, name, labels) ?? 0) - (sampleValue(before, name, labels) ?? 0);
    expect(delta('pgmux_transactions_total', SMALL)).toBe(2);
    expect(delta('pgmux_transaction_duration_seconds_count', SMALL)).toBe(2);
    expect(delta('pgmux_reloads_total', { result: 'ok' })).toBe(2);
    expect(sampleValue(after, 'pgmux_pool_size', SMALL)).toBe(1);
  });

  it('keeps every counter series monotonic as new pools appear', async () => {
    const before = await scrape();
    // A new pool (another user) while the others keep counting.
    expect(sampleValue(before, 'pgmux_pool_size', { ...APP, user: SCRAM_ROLE.name })).toBeUndefined();
    const other = new pg.Client(px.url('app', SCRAM_ROLE.name, SCRAM_ROLE.password));
    await other.connect();
    await other.query('select 1');
    await other.end();
    const client = await connect('app');
    await client.query('select 1');
    await client.end();
    const after = await scrape();
    expect(sampleValue(after, 'pgmux_transactions_total', { ...APP, user: SCRAM_ROLE.name })).toBe(1);
    let compared = 0;
    for (const exp of [...EVERYTHING.slice(0, -1)]) {
      for (const [name, family] of exp) {
        if (!name.startsWith('pgmux_') || (family.type !== 'counter' && family.type !== 'histogram')) continue;
        for (const s of family.samples) {
          if (s.name.endsWith('_sum')) continue;
          const later = sampleValue(after, s.name, s.labels);
          expect(later, `${s.name} ${JSON.stringify(s.labels)} disappeared`).toBeDefined();
          expect(later as number, `${s.name} ${JSON.stringify(s.labels)}`).toBeGreaterThanOrEqual(s.value);
          compared++;
        }
      }
    }
    expect(compared).toBeGreaterThan(50);
    expect(sampleSum(after, 'pgmux_transactions_total')).toBeGreaterThan(sampleSum(before, 'pgmux_transactions_total'));
  });
});

describe('/healthz and /readyz', () => {
  it('answers /healthz with 200 and /readyz with 200 when every upstream is reachable', async () => {
    const health = await fetch(`${px.metricsUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', draining: false });
    const ready = await fetch(`${px.metricsUrl}/readyz`);
    const body = (await ready.json()) as ReadyBody;
    expect(ready.status, JSON.stringify(body)).toBe(200);
    expect(body).toMatchObject({ status: 'ready', ready: true, reasons: [] });
    expect(Object.keys(body.databases).sort()).toEqual(['app', 'small']);
  });

  it('answers /readyz with 503 naming an unreachable database, and keeps serving through a drain', async () => {
    const ghostPort = await freePort();
    const second = await startPgmux({
      metrics: true,
      databases: { app: { dbname: db }, ghost: { host: '127.0.0.1', port: ghostPort, dbname: 'ghost' } },
      users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
    });
    try {
      const res = await fetch(`${second.metricsUrl}/readyz`);
      const body = (await res.json()) as ReadyBody;
      expect(res.status, JSON.stringify(body)).toBe(503);
      expect(body.ready).toBe(false);
      expect(body.databases.ghost).toMatchObject({ ready: false, upstream: `127.0.0.1:${ghostPort}` });
      expect(body.databases.ghost.detail).toMatch(/ECONNREFUSED/);
      expect(body.databases.app.ready).toBe(true);
      expect(body.reasons).toHaveLength(1);
      expect(body.reasons[0]).toContain('"ghost"');

      // A client in a transaction holds the drain open: meanwhile health is 200, readiness 503, metrics served.
      const client = new pg.Client(second.url('app', APP_ROLE.name, APP_ROLE.password));
      client.on('error', () => {}); // told 57P01 once its transaction ends: expected
      await client.connect();
      await client.query('begin');
      const stopped = second.stop(30_000);
      await eventually(async () => {
        const health = await fetch(`${second.metricsUrl}/healthz`);
        expect(health.status).toBe(200);
        expect(await health.json()).toMatchObject({ draining: true });
      });
      const draining = await fetch(`${second.metricsUrl}/readyz`);
      expect(draining.status).toBe(503);
      expect(((await draining.json()) as ReadyBody).reasons).toContain('pgmux is shutting down');
      const scraped = await scrape(second);
      expect(sampleValue(scraped, 'pgmux_client_connections', { database: 'app', user: APP_ROLE.name, pool_mode: 'transaction', state: 'active' })).toBe(1);
      await client.query('commit').catch(() => {});
      await client.end().catch(() => {});
      await stopped;
      await expect(fetch(`${second.metricsUrl}/healthz`)).rejects.toThrow();
    } finally {
      await second.stop();
    }
  });

  it('listens on metrics_port from the configuration, and not at all by default in tests', async () => {
    expect(px.pgmux.metricsPort).toBeGreaterThan(0);
    const port = await freePort();
    const configured = await startPgmux({ settings: { metrics_port: port }, databases: { app: { dbname: db } } });
    const off = await startPgmux({ databases: { app: { dbname: db } } });
    try {
      expect(configured.pgmux.metricsPort).toBe(port);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      expect(off.pgmux.metricsPort).toBe(0);
      const missing = await fetch(`http://127.0.0.1:${port}/nope`);
      expect(missing.status).toBe(404);
      const post = await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' });
      expect(post.status).toBe(405);
      // A metrics port already taken stops the start, naming the settings (the client listener is closed again).
      await expect(startPgmux({ settings: { metrics_port: port }, databases: { app: { dbname: db } } })).rejects.toThrow(
        /cannot serve metrics on 127\.0\.0\.1:\d+ \(metrics_addr, metrics_port\): listen EADDRINUSE/,
      );
    } finally {
      await configured.stop();
      await off.stop();
    }
  });
});
