/**
 * pgmux's Prometheus metrics and the data of the status page, for one Pgmux instance.
 *
 * Nothing here runs on the hot path except the histogram sinks (see histogram-family.ts). Gauges
 * are read from the pools' containers and the client set at scrape time; counters are read from
 * each pool's `PoolStats` at scrape time and accumulated per (database, user, pool_mode) series
 * as deltas, so a series never goes backwards when a pool is replaced (reload), removed or has its
 * stats reset. Labels are database, user and pool_mode only: never a client address or query text.
 *
 * Each instance has its own prom-client `Registry` (tests run several pgmux in one process).
 * Process metrics (`process_*`, `nodejs_*`, under their usual names) describe the process, not an
 * instance: they are registered once per process in a shared registry and merged in at scrape time,
 * so a second instance does not add a second set of event-loop and GC observers.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { ClientState } from '../client/client-state.js';
import type { PoolRegistry } from '../pool/pool-registry.js';
import type { PoolStats } from '../pool/pool-stats.js';
import type { Pool } from '../pool/pool.js';
import type { PgmuxEvent } from '../pool/event-log.js';
import { DURATION_BUCKETS, HistogramFamily } from './histogram-family.js';
import { poolDetail, type PoolDetail } from './pool-detail.js';
import { HistogramWindow, SAMPLE_INTERVAL_MS, StatusHistory, type HistoryReport } from './status-history.js';

const POOL_LABELS = ['database', 'user', 'pool_mode'] as const;
type PoolLabel = (typeof POOL_LABELS)[number];
type PoolLabels = Record<PoolLabel, string>;

/** PoolStats fields accumulated into monotonic series. */
const COUNTED = [
  'xactCount',
  'queryCount',
  'bytesReceived',
  'bytesSent',
  'xactTimeUs',
  'queryTimeUs',
  'waitTimeUs',
  'waitCount',
  'preparedHits',
  'preparedMisses',
  'serverLoginFailures',
] as const satisfies readonly (keyof PoolStats)[];
type Counted = (typeof COUNTED)[number];
type Totals = Record<Counted, number>;

export const CLIENT_STATES = ['active', 'waiting', 'idle', 'login'] as const;
export type ClientStateLabel = (typeof CLIENT_STATES)[number];
export const SERVER_STATES = ['active', 'idle', 'connecting', 'resetting'] as const;
export type ServerStateLabel = (typeof SERVER_STATES)[number];

/** Everything counted for one label set since this instance started. */
interface Series {
  readonly labels: PoolLabels;
  readonly totals: Totals;
  readonly errors: Map<string, number>;
  readonly pins: Map<string, number>;
}

/** A pool being followed: the values last folded into its series. */
interface Tracked {
  key: string;
  series: Series;
  readonly last: Totals;
  readonly lastErrors: Map<string, number>;
  readonly lastPins: Map<string, number>;
  seen: number;
  /** For the events the sampler notices: logged-in servers and servers lost at the last sample, logins failing then. */
  servers: number;
  lost: number;
  failing: boolean;
}

/**
 * The pools of one label set, as one scrape sees them. Usually one pool; two while a pool that a reload
 * orphaned (same database and user) still serves its clients beside its replacement: counts are summed.
 */
export interface PoolView {
  readonly key: string;
  readonly labels: PoolLabels;
  readonly pools: Pool[];
  readonly clients: Record<ClientStateLabel, number>;
  readonly servers: Record<ServerStateLabel, number>;
  /** The largest configured pool_size among them. */
  poolSize: number;
  waiting: number;
  oldestWaitSeconds: number;
}

/** One scrape's view of the process: client states counted once, shared by every gauge. */
interface Census {
  readonly at: number;
  readonly pools: PoolView[];
  /** Clients still in startup/authentication: no pool yet, so no labels. */
  readonly loginWithoutPool: number;
  readonly clients: number;
}

export interface StatusPool {
  database: string;
  user: string;
  mode: string;
  clients: Record<ClientStateLabel, number>;
  servers: { active: number; idle: number; connecting: number; resetting: number };
  poolSize: number;
  saturation: number;
  waiting: number;
  oldestWaitSeconds: number;
  transactions: number;
  queries: number;
  waitCount: number;
  waitSeconds: number;
}

/** The document behind `/status.json` and the status page. */
export interface StatusReport {
  version: string;
  time: number;
  uptimeSeconds: number;
  draining: boolean;
  /** /readyz's verdict, added by the HTTP server to /status.json (it owns the readiness probes). */
  readiness?: { ready: boolean; reasons: string[] };
  totals: {
    clients: number;
    maxClientConn: number;
    clientsActive: number;
    clientsWaiting: number;
    clientsIdle: number;
    clientsLogin: number;
    serversActive: number;
    serversIdle: number;
    serversConnecting: number;
    serversResetting: number;
    poolSize: number;
    /** Counters since start, summed over every pool that ever existed (monotonic). */
    transactions: number;
    queries: number;
    waitCount: number;
    waitSeconds: number;
    oldestWaitSeconds: number;
  };
  pools: StatusPool[];
  /** p50/p99 (seconds) of the last sample window (one second); null where nothing was observed in it. */
  percentiles: Record<'wait' | 'query' | 'transaction', { p50: number | null; p99: number | null }>;
  /** The sampled history (status.json?history=1, or ?since=<ms> for the samples after that time). */
  history?: HistoryReport;
  /** The latest events (reloads, pauses, kills, upstream trouble), newest first. */
  events: PgmuxEvent[];
}

export interface MetricsHost {
  readonly pools: PoolRegistry;
  readonly version: string;
  draining(): boolean;
  /** Reloads so far, by outcome (owned by whoever implements reload). */
  reloads(): { ok: number; failed: number };
}

/** Events in each /status.json. */
const STATUS_EVENTS = 50;

let processRegistry: Registry | null = null;

/** The process-wide registry of default Node.js/process metrics, created on first use. */
function processMetrics(): Registry {
  if (processRegistry === null) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

function labelsOf(pool: Pool): PoolLabels {
  return { database: pool.database, user: pool.user, pool_mode: pool.settings.mode };
}

function keyOf(labels: PoolLabels): string {
  return `${labels.database}\0${labels.user}\0${labels.pool_mode}`;
}

function zeroTotals(): Totals {
  const t = {} as Totals;
  for (const f of COUNTED) t[f] = 0;
  return t;
}

function clientStateLabel(state: ClientState): ClientStateLabel | null {
  switch (state) {
    case ClientState.Active:
      return 'active';
    case ClientState.Waiting:
      return 'waiting';
    case ClientState.Idle:
      return 'idle';
    case ClientState.Startup:
    case ClientState.Authenticating:
    case ClientState.LoggingIn:
      return 'login';
    default:
      return null; // closed, on its way out of the set
  }
}

/** Adds to `into` what `now` gained over `last`, then remembers `now`. A map that went backwards (reset) adds nothing. */
function foldMap(now: ReadonlyMap<string, number>, last: Map<string, number>, into: Map<string, number>): void {
  for (const [k, v] of now) {
    const d = v - (last.get(k) ?? 0);
    if (d > 0) into.set(k, (into.get(k) ?? 0) + d);
    last.set(k, v);
  }
}

export class Metrics {
  /** This instance's metrics (process metrics are merged in by render()). */
  readonly registry = new Registry();
  readonly startedAt = Date.now();
  private readonly tracked = new Map<Pool, Tracked>();
  private readonly series = new Map<string, Series>();
  private generation = 0;
  private census: Census | null = null;
  private readonly queryHistogram = new HistogramFamily<PoolLabel>(
    'pgmux_query_duration_seconds',
    'Time from a request (Query or Sync) being forwarded to its ReadyForQuery.',
  );
  private readonly xactHistogram = new HistogramFamily<PoolLabel>(
    'pgmux_transaction_duration_seconds',
    'Time from the first request of a transaction to the ReadyForQuery that ends it.',
  );
  private readonly waitHistogram = new HistogramFamily<PoolLabel>(
    'pgmux_client_wait_seconds',
    'Time clients waited for a server connection, from the request to the assignment (0 for a client served at once: every request is observed).',
  );

  /** The status page's per-second history, filled by the sampler while it runs (start/stop). */
  readonly history = new StatusHistory();
  private sampler: NodeJS.Timeout | null = null;
  private readonly waitWindow = new HistogramWindow(DURATION_BUCKETS);
  private readonly queryWindow = new HistogramWindow(DURATION_BUCKETS);
  private readonly xactWindow = new HistogramWindow(DURATION_BUCKETS);
  /** Totals at the previous sample (NaN before the first, which only sets the baseline). */
  private readonly lastSample = { at: Number.NaN, xacts: 0, queries: 0, waits: 0, waitUs: 0, serverLoginFailures: 0, clientLoginFailures: 0 };
  private readonly lastErrors = new Map<string, number>();
  private readonly lastPins = new Map<string, number>();
  private readonly keyedScratch = new Map<string, number>();

  constructor(private readonly host: MetricsHost) {
    host.pools.onPoolCreated = (pool) => this.track(pool);
    for (const pool of host.pools.pools.values()) this.track(pool);
    this.define();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition of this instance and the process. */
  async render(): Promise<string> {
    this.refresh();
    return Registry.merge([this.registry, processMetrics()]).metrics();
  }

  /** Starts the once-a-second sampler behind the status page's history (unref'd: it never keeps the process up). */
  start(): void {
    if (this.sampler !== null) return;
    this.sample();
    this.sampler = setInterval(() => this.sample(), SAMPLE_INTERVAL_MS);
    this.sampler.unref();
  }

  stop(): void {
    if (this.sampler !== null) clearInterval(this.sampler);
    this.sampler = null;
  }

  /**
   * One history sample: counters and histogram buckets differenced against the previous sample.
   * Reuses preallocated arrays and maps; the cost is one pass over the pools and clients (as a scrape).
   */
  sample(): void {
    const census = this.refresh();
    const nowMs = performance.now();
    const last = this.lastSample;
    let xacts = 0;
    let queries = 0;
    let waits = 0;
    let waitUs = 0;
    let serverLoginFailures = 0;
    for (const s of this.series.values()) {
      xacts += s.totals.xactCount;
      queries += s.totals.queryCount;
      waits += s.totals.waitCount;
      waitUs += s.totals.waitTimeUs;
      serverLoginFailures += s.totals.serverLoginFailures;
    }
    const clientLoginFailures = this.host.pools.loginFailuresTotal;
    windowOf(this.waitWindow, this.waitHistogram);
    windowOf(this.queryWindow, this.queryHistogram);
    windowOf(this.xactWindow, this.xactHistogram);
    this.noticeEvents();
    const history = this.history;
    const first = Number.isNaN(last.at);
    const slot = first ? -1 : history.begin();
    const errors = this.keyedDeltas((s) => s.errors, this.lastErrors, first ? null : (k) => history.errorsByClass.column(k), slot);
    this.keyedDeltas((s) => s.pins, this.lastPins, first ? null : (k) => history.pinsByReason.column(k), slot);
    if (!first) {
      const dt = Math.max(1, nowMs - last.at) / 1000;
      const v = history.next;
      const dWaits = waits - last.waits;
      v.tps = Math.max(0, xacts - last.xacts) / dt;
      v.qps = Math.max(0, queries - last.queries) / dt;
      v.clients = census.clients;
      let active = 0;
      let waiting = 0;
      let serversActive = 0;
      let serversIdle = 0;
      let serversConnecting = 0;
      let oldest = 0;
      for (const view of census.pools) {
        active += view.clients.active;
        waiting += view.clients.waiting;
        serversActive += view.servers.active;
        serversIdle += view.servers.idle;
        serversConnecting += view.servers.connecting;
        oldest = Math.max(oldest, view.oldestWaitSeconds);
      }
      v.clientsActive = active;
      v.clientsWaiting = waiting;
      v.serversActive = serversActive;
      v.serversIdle = serversIdle;
      v.serversConnecting = serversConnecting;
      v.waitAvg = dWaits > 0 ? Math.max(0, waitUs - last.waitUs) / dWaits / 1e6 : Number.NaN;
      v.waitOldest = oldest;
      v.waitP50 = this.waitWindow.quantile(0.5);
      v.waitP99 = this.waitWindow.quantile(0.99);
      v.queryP50 = this.queryWindow.quantile(0.5);
      v.queryP99 = this.queryWindow.quantile(0.99);
      v.xactP50 = this.xactWindow.quantile(0.5);
      v.xactP99 = this.xactWindow.quantile(0.99);
      v.serverLoginFailures = Math.max(0, serverLoginFailures - last.serverLoginFailures);
      v.clientLoginFailures = Math.max(0, clientLoginFailures - last.clientLoginFailures);
      v.errors = errors;
      history.commit(census.at);
    }
    last.at = nowMs;
    last.xacts = xacts;
    last.queries = queries;
    last.waits = waits;
    last.waitUs = waitUs;
    last.serverLoginFailures = serverLoginFailures;
    last.clientLoginFailures = clientLoginFailures;
  }

  /**
   * Events seen from the pools' state at each sample: server logins starting and stopping to fail,
   * and a pool losing all its logged-in server connections to the server or network (an upstream restart).
   */
  private noticeEvents(): void {
    const events = this.host.pools.events;
    for (const [pool, t] of this.tracked) {
      const failing = pool.logins.failing;
      if (failing && !t.failing) events.add('login-failing', pool.name, `server logins failing: ${pool.logins.lastError?.message ?? 'connection failed'}`);
      else if (!failing && t.failing) events.add('login-recovered', pool.name, 'server logins succeed again');
      t.failing = failing;
      const lost = pool.stats.serversLost - t.lost;
      if (t.servers > 0 && lost >= t.servers) {
        events.add('upstream-lost', pool.name, `all ${t.servers} server connection(s) lost (${pool.stats.lastServerLoss}): the upstream restarted or went away`);
      }
      t.lost = pool.stats.serversLost;
      t.servers = pool.idle.length + pool.active.size + pool.resetting.size;
    }
  }

  /** Sums a keyed counter over the series, writes each key's gain since the last sample into its column; returns the total gain. */
  private keyedDeltas(
    values: (s: Series) => ReadonlyMap<string, number>,
    last: Map<string, number>,
    column: ((key: string) => Float64Array) | null,
    slot: number,
  ): number {
    const totals = this.keyedScratch;
    for (const s of this.series.values()) for (const [k, n] of values(s)) totals.set(k, (totals.get(k) ?? 0) + n);
    let gained = 0;
    for (const [k, n] of totals) {
      const d = Math.max(0, n - (last.get(k) ?? 0));
      last.set(k, n);
      if (column === null || d === 0) continue;
      column(k)[slot] = d;
      gained += d;
    }
    totals.clear();
    return gained;
  }

  /** The history for status.json: everything (`since` 0) or the samples after `since` (ms since the epoch). */
  historyReport(since = 0): HistoryReport {
    return this.history.report(since);
  }

  /** The status page's drill-down into one pool: its clients and server connections; null for no such pool. */
  poolDetail(database: string, user: string): PoolDetail | null {
    return poolDetail(this.host.pools, database, user);
  }

  /** The status page's data. */
  status(): StatusReport {
    const census = this.refresh();
    const config = this.host.pools.config;
    const now = census.at;
    const pools: StatusPool[] = [];
    const totals: StatusReport['totals'] = {
      clients: census.clients,
      maxClientConn: config.max_client_conn,
      clientsActive: 0,
      clientsWaiting: 0,
      clientsIdle: 0,
      clientsLogin: census.loginWithoutPool,
      serversActive: 0,
      serversIdle: 0,
      serversConnecting: 0,
      serversResetting: 0,
      poolSize: 0,
      transactions: 0,
      queries: 0,
      waitCount: 0,
      waitSeconds: 0,
      oldestWaitSeconds: 0,
    };
    for (const view of census.pools) {
      const { labels, clients, servers } = view;
      // The series' totals: they survive the pool being replaced, so rates computed from them do not jump.
      const series = this.series.get(view.key)?.totals;
      pools.push({
        database: labels.database,
        user: labels.user,
        mode: labels.pool_mode,
        clients: { ...clients },
        servers: { ...servers },
        poolSize: view.poolSize,
        saturation: saturation(view),
        waiting: view.waiting,
        oldestWaitSeconds: view.oldestWaitSeconds,
        transactions: series?.xactCount ?? 0,
        queries: series?.queryCount ?? 0,
        waitCount: series?.waitCount ?? 0,
        waitSeconds: (series?.waitTimeUs ?? 0) / 1e6,
      });
      totals.clientsActive += clients.active;
      totals.clientsWaiting += clients.waiting;
      totals.clientsIdle += clients.idle;
      totals.clientsLogin += clients.login;
      totals.serversActive += servers.active;
      totals.serversIdle += servers.idle;
      totals.serversConnecting += servers.connecting;
      totals.serversResetting += servers.resetting;
      totals.poolSize += view.poolSize;
      totals.oldestWaitSeconds = Math.max(totals.oldestWaitSeconds, view.oldestWaitSeconds);
    }
    for (const s of this.series.values()) {
      totals.transactions += s.totals.xactCount;
      totals.queries += s.totals.queryCount;
      totals.waitCount += s.totals.waitCount;
      totals.waitSeconds += s.totals.waitTimeUs / 1e6;
    }
    pools.sort((a, b) => a.database.localeCompare(b.database) || a.user.localeCompare(b.user));
    return {
      version: this.host.version,
      time: now,
      uptimeSeconds: Math.floor((now - this.startedAt) / 1000),
      draining: this.host.draining(),
      totals,
      pools,
      events: this.host.pools.events.recent(STATUS_EVENTS),
      percentiles: {
        wait: { p50: finite(this.waitWindow.quantile(0.5)), p99: finite(this.waitWindow.quantile(0.99)) },
        query: { p50: finite(this.queryWindow.quantile(0.5)), p99: finite(this.queryWindow.quantile(0.99)) },
        transaction: { p50: finite(this.xactWindow.quantile(0.5)), p99: finite(this.xactWindow.quantile(0.99)) },
      },
    };
  }

  // ---- pools and series ----

  private seriesFor(labels: PoolLabels): Series {
    const key = keyOf(labels);
    let s = this.series.get(key);
    if (s === undefined) {
      s = { labels, totals: zeroTotals(), errors: new Map(), pins: new Map() };
      this.series.set(key, s);
    }
    return s;
  }

  private track(pool: Pool): Tracked {
    const labels = labelsOf(pool);
    const t: Tracked = {
      key: keyOf(labels),
      series: this.seriesFor(labels),
      last: zeroTotals(),
      lastErrors: new Map(),
      lastPins: new Map(),
      seen: this.generation,
      servers: 0,
      lost: pool.stats.serversLost,
      failing: false,
    };
    this.tracked.set(pool, t);
    this.attach(pool, t);
    return t;
  }

  /** Point the pool's duration sinks at the histogram series of its labels. */
  private attach(pool: Pool, t: Tracked): void {
    const labels = t.series.labels;
    pool.stats.queryHistogram = this.queryHistogram.child(t.key, labels);
    pool.stats.xactHistogram = this.xactHistogram.child(t.key, labels);
    pool.stats.waitHistogram = this.waitHistogram.child(t.key, labels);
  }

  private fold(pool: Pool, t: Tracked): void {
    const stats = pool.stats;
    const totals = t.series.totals;
    for (const f of COUNTED) {
      const d = stats[f] - t.last[f];
      if (d > 0) totals[f] += d;
      t.last[f] = stats[f];
    }
    foldMap(stats.errorsByClass, t.lastErrors, t.series.errors);
    foldMap(stats.pinsByReason, t.lastPins, t.series.pins);
  }

  /** Fold every pool's counters into its series and count client states: once per scrape or status request. */
  private refresh(): Census {
    const gen = ++this.generation;
    const registryPools = this.host.pools.pools;
    for (const pool of registryPools.values()) (this.tracked.get(pool) ?? this.track(pool)).seen = gen;
    for (const [pool, t] of this.tracked) {
      const labels = labelsOf(pool);
      const key = keyOf(labels);
      if (key !== t.key) {
        // pool_mode changed by a reload: what it counts from now on belongs to the new series.
        this.fold(pool, t);
        t.key = key;
        t.series = this.seriesFor(labels);
        this.attach(pool, t);
        continue;
      }
      this.fold(pool, t);
      // A pool no longer in the registry is followed while it still serves someone.
      if (t.seen !== gen && pool.clients.size === 0 && pool.serverCount === 0) this.tracked.delete(pool);
    }

    const now = Date.now();
    const views = new Map<string, PoolView>();
    const seenPools = new Map<Pool, PoolView>();
    const viewOf = (pool: Pool): PoolView => {
      const known = seenPools.get(pool);
      if (known !== undefined) return known;
      const labels = labelsOf(pool);
      const key = keyOf(labels);
      let v = views.get(key);
      if (v === undefined) {
        v = {
          key,
          labels,
          pools: [],
          clients: { active: 0, waiting: 0, idle: 0, login: 0 },
          servers: { active: 0, idle: 0, connecting: 0, resetting: 0 },
          poolSize: 0,
          waiting: 0,
          oldestWaitSeconds: 0,
        };
        views.set(key, v);
      }
      v.pools.push(pool);
      v.servers.active += pool.active.size;
      v.servers.idle += pool.idle.length;
      v.servers.connecting += pool.connecting.size;
      v.servers.resetting += pool.resetting.size;
      v.poolSize = Math.max(v.poolSize, pool.settings.poolSize);
      v.waiting += pool.waiting.length;
      v.oldestWaitSeconds = Math.max(v.oldestWaitSeconds, oldestWaitSeconds(pool, now));
      seenPools.set(pool, v);
      return v;
    };
    for (const pool of registryPools.values()) viewOf(pool);
    let loginWithoutPool = 0;
    let clients = 0;
    for (const client of this.host.pools.clients) {
      const state = clientStateLabel(client.state);
      if (state === null) continue;
      clients++;
      if (client.pool === null) loginWithoutPool++;
      else viewOf(client.pool).clients[state]++;
    }
    this.census = { at: now, pools: [...views.values()], loginWithoutPool, clients };
    return this.census;
  }

  private current(): Census {
    return this.census ?? this.refresh();
  }

  // ---- metric definitions ----

  private define(): void {
    const registers = [this.registry];
    const metrics = this;
    const poolLabels = [...POOL_LABELS];

    new Gauge({
      name: 'pgmux_info',
      help: 'Always 1; the version label says which pgmux is running.',
      labelNames: ['version'],
      registers,
      collect() {
        this.reset();
        this.set({ version: metrics.host.version }, 1);
      },
    });
    new Gauge({
      name: 'pgmux_clients',
      help: 'Client connections, in every state (compare with pgmux_max_client_conn).',
      registers,
      collect() {
        this.set(metrics.current().clients);
      },
    });
    new Gauge({
      name: 'pgmux_max_client_conn',
      help: 'The max_client_conn setting: client connections accepted in total.',
      registers,
      collect() {
        this.set(metrics.host.pools.config.max_client_conn);
      },
    });
    new Gauge({
      name: 'pgmux_client_connections',
      help: 'Client connections by state (active: has a server; waiting: queued for one; idle: between transactions; login: authenticating). Clients still authenticating have no pool yet and empty pool labels.',
      labelNames: [...poolLabels, 'state'],
      registers,
      collect() {
        this.reset();
        const census = metrics.current();
        this.set({ database: '', user: '', pool_mode: '', state: 'login' }, census.loginWithoutPool);
        for (const view of census.pools) for (const state of CLIENT_STATES) this.set({ ...view.labels, state }, view.clients[state]);
      },
    });
    new Gauge({
      name: 'pgmux_server_connections',
      help: 'Server connections by state (active: lent to a client; idle: in the pool; connecting: logging in; resetting: being cleaned or checked).',
      labelNames: [...poolLabels, 'state'],
      registers,
      collect() {
        this.reset();
        for (const view of metrics.current().pools) for (const state of SERVER_STATES) this.set({ ...view.labels, state }, view.servers[state]);
      },
    });
    this.poolGauge('pgmux_pool_size', 'Configured pool size (pool_size / default_pool_size) of each pool.', (view) => view.poolSize);
    this.poolGauge(
      'pgmux_pool_saturation',
      'Active server connections divided by the pool size; 1 means every connection is lent out (above 1 with the reserve pool).',
      saturation,
    );
    this.poolGauge('pgmux_pool_waiting_clients', 'Clients queued for a server connection (including clients waiting for their first server at login).', (view) => view.waiting);
    this.poolGauge(
      'pgmux_pool_server_login_failures_consecutive',
      'Server logins that failed in a row, 0 once one succeeds; while above 0 pgmux backs off (server_login_retry_min up to server_login_retry) and fails clients at once when no server is up.',
      (view) => Math.max(...view.pools.map((p) => p.logins.failures)),
    );
    this.poolGauge('pgmux_pool_wait_oldest_seconds', 'How long the oldest client in the queue has been waiting; 0 when nobody waits.', (view) => view.oldestWaitSeconds);

    this.seriesCounter('pgmux_transactions_total', 'Transactions completed (a ReadyForQuery back to idle).', (s) => s.totals.xactCount);
    this.seriesCounter('pgmux_queries_total', 'Requests completed (each Query or Sync answered by a ReadyForQuery).', (s) => s.totals.queryCount);
    this.seriesCounter('pgmux_received_bytes_total', 'Bytes received from clients.', (s) => s.totals.bytesReceived);
    this.seriesCounter('pgmux_sent_bytes_total', 'Bytes sent to clients from servers.', (s) => s.totals.bytesSent);
    this.seriesCounter(
      'pgmux_prepared_statement_cache_hits_total',
      "Transaction mode: uses of a client's named statement that found it already prepared on the server connection.",
      (s) => s.totals.preparedHits,
    );
    this.seriesCounter(
      'pgmux_prepared_statement_cache_misses_total',
      "Transaction mode: uses of a client's named statement that pgmux had to prepare on the server connection first.",
      (s) => s.totals.preparedMisses,
    );
    this.seriesCounter(
      'pgmux_server_login_failures_total',
      'Server connections whose connect or login failed (upstream down, refusing, slower than server_connect_timeout, or rejecting the login).',
      (s) => s.totals.serverLoginFailures,
    );
    this.seriesMapCounter('pgmux_errors_total', 'Errors sent to clients, by SQLSTATE class (first two characters).', 'class', (s) => s.errors);
    this.seriesMapCounter(
      'pgmux_pins_total',
      'Clients pinned to their server connection by session state, by reason (transaction mode; once per client and reason).',
      'reason',
      (s) => s.pins,
    );
    new Counter({
      name: 'pgmux_client_login_failures_total',
      help: 'Client logins refused for a wrong password, unknown user or failed authentication exchange.',
      registers,
      collect() {
        this.reset();
        this.inc(metrics.host.pools.loginFailuresTotal);
      },
    });
    new Counter({
      name: 'pgmux_reloads_total',
      help: 'Configuration reloads (SIGHUP or admin RELOAD), by result.',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset();
        const r = metrics.host.reloads();
        this.inc({ result: 'ok' }, r.ok);
        this.inc({ result: 'failed' }, r.failed);
      },
    });
    this.queryHistogram.register(this.registry);
    this.xactHistogram.register(this.registry);
    this.waitHistogram.register(this.registry);
  }

  private poolGauge(name: string, help: string, value: (view: PoolView) => number): void {
    const metrics = this;
    new Gauge({
      name,
      help,
      labelNames: [...POOL_LABELS],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const view of metrics.current().pools) this.set(view.labels, value(view));
      },
    });
  }

  private seriesCounter(name: string, help: string, value: (s: Series) => number): void {
    const metrics = this;
    new Counter({
      name,
      help,
      labelNames: [...POOL_LABELS],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of metrics.series.values()) this.inc(s.labels, value(s));
      },
    });
  }

  private seriesMapCounter(name: string, help: string, label: string, values: (s: Series) => ReadonlyMap<string, number>): void {
    const metrics = this;
    new Counter({
      name,
      help,
      labelNames: [...POOL_LABELS, label],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of metrics.series.values()) for (const [k, v] of values(s)) this.inc({ ...s.labels, [label]: k }, v);
      },
    });
  }
}

/** The buckets a histogram family gained since the last sample, summed over its series. */
function windowOf(w: HistogramWindow, family: HistogramFamily<PoolLabel>): void {
  w.reset();
  for (const { histogram } of family.histograms()) w.sum(histogram.counts);
  w.delta();
}

function finite(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}

function saturation(view: PoolView): number {
  return view.poolSize > 0 ? view.servers.active / view.poolSize : 0;
}

function oldestWaitSeconds(pool: Pool, now: number): number {
  const head = pool.waiting.peek();
  return head === undefined || head.waitingSince === 0 ? 0 : Math.max(0, now - head.waitingSince) / 1000;
}
