/**
 * SHOW STATS, STATS_TOTALS, STATS_AVERAGES and TOTALS: traffic per database, summed over its pools.
 *
 * Columns, names and types (numeric, PgBouncer's 'N') are PgBouncer 1.25's (stats.c): totals
 * since start; averages per second (counts, bytes) or per transaction / query / assignment
 * (times, in microseconds) over the window from the older of the last two stats_period
 * snapshots until now (see StatsHistory). pgmux does not count the prepared-statement messages
 * (client/server parse, bind): those columns are 0.
 */
import type { PoolRegistry } from '../pool/pool-registry.js';
import { addCounters, averages, ZERO_COUNTERS, type StatsCounters } from '../pool/pool-stats.js';
import { numeric, ResultSet, text, type Cell } from './result-set.js';

interface DatabaseStats {
  live: StatsCounters;
  then: StatsCounters;
}

function byDatabase(registry: PoolRegistry): Map<string, DatabaseStats> {
  const out = new Map<string, DatabaseStats>();
  for (const pool of registry.pools.values()) {
    let entry = out.get(pool.database);
    if (entry === undefined) {
      entry = { live: { ...ZERO_COUNTERS }, then: { ...ZERO_COUNTERS } };
      out.set(pool.database, entry);
    }
    addCounters(entry.live, pool.stats.snapshot());
    addCounters(entry.then, registry.statsHistory.baseline(pool.stats));
  }
  return out;
}

/** The 11 values PgBouncer prints per group, in its order. */
function values(c: StatsCounters): Cell[] {
  return [
    c.assignCount,
    c.xactCount,
    c.queryCount,
    c.bytesReceived,
    c.bytesSent,
    Math.round(c.xactTimeUs),
    Math.round(c.queryTimeUs),
    Math.round(c.waitTimeUs),
    0, // client_parse_count
    0, // server_parse_count
    0, // bind_count
  ];
}

const TOTAL_NAMES = [
  'server_assignment_count',
  'xact_count',
  'query_count',
  'received',
  'sent',
  'xact_time',
  'query_time',
  'wait_time',
  'client_parse_count',
  'server_parse_count',
  'bind_count',
];
const AVG_NAMES = [
  'server_assignment_count',
  'xact_count',
  'query_count',
  'recv',
  'sent',
  'xact_time',
  'query_time',
  'wait_time',
  'client_parse_count',
  'server_parse_count',
  'bind_count',
];

export const STATS_COLUMNS = [
  text('database'),
  ...TOTAL_NAMES.map((n) => numeric(`total_${n}`)),
  ...AVG_NAMES.map((n) => numeric(`avg_${n}`)),
];

/** STATS_TOTALS / STATS_AVERAGES use unprefixed names (and PgBouncer keeps avg_ on three averages). */
export const STATS_TOTALS_COLUMNS = [
  text('database'),
  ...['server_assignment_count', 'xact_count', 'query_count', 'bytes_received', 'bytes_sent', 'xact_time', 'query_time', 'wait_time', 'client_parse_count', 'server_parse_count', 'bind_count'].map(numeric),
];
export const STATS_AVERAGES_COLUMNS = [
  text('database'),
  ...['server_assignment_count', 'xact_count', 'query_count', 'bytes_received', 'bytes_sent', 'xact_time', 'query_time', 'wait_time', 'avg_client_parse_count', 'avg_server_parse_count', 'avg_bind_count'].map(numeric),
];

export function showStats(registry: PoolRegistry, now: number = Date.now()): Buffer {
  const rs = new ResultSet(STATS_COLUMNS);
  const window = now - registry.statsHistory.windowStart;
  for (const [db, s] of byDatabase(registry)) rs.row([db, ...values(s.live), ...values(averages(s.live, s.then, window))]);
  return rs.finish();
}

export function showStatsTotals(registry: PoolRegistry): Buffer {
  const rs = new ResultSet(STATS_TOTALS_COLUMNS);
  for (const [db, s] of byDatabase(registry)) rs.row([db, ...values(s.live)]);
  return rs.finish();
}

export function showStatsAverages(registry: PoolRegistry, now: number = Date.now()): Buffer {
  const rs = new ResultSet(STATS_AVERAGES_COLUMNS);
  const window = now - registry.statsHistory.windowStart;
  for (const [db, s] of byDatabase(registry)) rs.row([db, ...values(averages(s.live, s.then, window))]);
  return rs.finish();
}

/** SHOW TOTALS: the same figures over all databases, one (name, value) row each. */
export function showTotals(registry: PoolRegistry, now: number = Date.now()): Buffer {
  const live = { ...ZERO_COUNTERS };
  const then = { ...ZERO_COUNTERS };
  for (const s of byDatabase(registry).values()) {
    addCounters(live, s.live);
    addCounters(then, s.then);
  }
  const rs = new ResultSet([text('name'), numeric('value')]);
  const totals = values(live);
  const avgs = values(averages(live, then, now - registry.statsHistory.windowStart));
  // PgBouncer names these rows after its struct fields.
  const names = ['server_assignment_count', 'xact_count', 'query_count', 'client_bytes', 'server_bytes', 'xact_time', 'query_time', 'wait_time', 'ps_client_parse_count', 'ps_server_parse_count', 'ps_bind_count'];
  names.forEach((n, i) => rs.row([`total_${n}`, totals[i]]));
  names.forEach((n, i) => rs.row([`avg_${n}`, avgs[i]]));
  return rs.finish();
}
