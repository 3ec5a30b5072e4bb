/**
 * A superuser connection straight to the cluster that looks at pg_stat_activity every few seconds and cancels
 * any client backend whose query has been active (running, or waiting on a lock) for longer than the limit. A
 * pooler that loses an advisory lock, a prepared transaction or a transaction's end leaves a test waiting
 * forever on a lock; cancelling lets the run go on, and the incident (with who blocked it) goes in the report.
 * A query still there well after its cancel is terminated.
 *
 * Two limits: `stuckAfterMs` (15 s) for a query waiting on something that is not making progress (a lock held
 * by an idle or idle-in-transaction session or a prepared transaction, a safe snapshot, the client), and the
 * longer `busyLimitMs` (60 s) for one that is working (on CPU or I/O) or waits for a lock held by a session that
 * is itself running a query: on a loaded 2-core machine a parallel group's CREATE INDEX CONCURRENTLY can wait
 * 20 s for join_hash's long hash joins, and cancelling that would be a false alarm.
 *
 * The cluster is the run's own, so every client backend but this one belongs to the run.
 */
import pg from 'pg';

export interface Blocker {
  pid: number;
  state: string | null;
  applicationName: string | null;
  /** Seconds since its transaction started. */
  xactSeconds: number | null;
  query: string | null;
}

export interface StuckQuery {
  /** ISO time it was seen stuck. */
  at: string;
  pid: number;
  database: string | null;
  user: string | null;
  applicationName: string | null;
  /** e.g. "Lock/transactionid", or "running". */
  wait: string;
  seconds: number;
  query: string;
  /** What pg_blocking_pids names; when it names nothing, the transactions open for more than 5 s. */
  blockers: Blocker[];
  blockedByLock: boolean;
  /** Working, or waiting for a session that is (so it was given busyLimitMs rather than stuckAfterMs). */
  busy: boolean;
  /** Prepared transactions, when one blocks (pg_blocking_pids reports it as pid 0). */
  preparedXacts: string[];
  action: 'cancelled' | 'terminated' | 'cancel failed';
}

export interface WatchdogOptions {
  readonly port: number;
  readonly user: string;
  readonly stuckAfterMs: number;
  readonly busyLimitMs: number;
  readonly intervalMs: number;
  readonly onIncident: (incident: StuckQuery) => void;
}

interface ActivityRow {
  pid: number;
  datname: string | null;
  usename: string | null;
  application_name: string | null;
  wait_event_type: string | null;
  wait_event: string | null;
  seconds: number;
  query_start: string;
  query: string;
  blockers: number[];
}

interface BlockerRow {
  pid: number;
  state: string | null;
  application_name: string | null;
  xact_seconds: number | null;
  query: string | null;
}

const STUCK_SQL = `
select a.pid, a.datname, a.usename, a.application_name, a.wait_event_type, a.wait_event,
       extract(epoch from clock_timestamp() - a.query_start)::float8 as seconds,
       a.query_start::text as query_start, left(a.query, 500) as query,
       pg_blocking_pids(a.pid) as blockers
  from pg_stat_activity a
 where a.backend_type = 'client backend' and a.pid <> pg_backend_pid() and a.state = 'active'
   and a.query_start < clock_timestamp() - make_interval(secs => $1::float8)`;

const BLOCKER_SQL = `
select pid, state, application_name, extract(epoch from clock_timestamp() - xact_start)::float8 as xact_seconds,
       left(query, 300) as query
  from pg_stat_activity where pid = any($1::int[])`;

/** When nothing blocks it by lock (a SafeSnapshot wait, say): the transactions open longer than 5 s instead. */
const SUSPECTS_SQL = `
select pid, state, application_name, extract(epoch from clock_timestamp() - xact_start)::float8 as xact_seconds,
       left(query, 300) as query
  from pg_stat_activity
 where backend_type = 'client backend' and pid <> pg_backend_pid() and pid <> $1
   and xact_start < clock_timestamp() - interval '5 s'`;

export class Watchdog {
  readonly incidents: StuckQuery[] = [];
  private client: pg.Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> = Promise.resolve();
  private stopped = false;
  /** pid + query_start of queries already cancelled, with when. */
  private readonly cancelled = new Map<string, number>();

  constructor(private readonly options: WatchdogOptions) {}

  start(): void {
    this.timer = setInterval(() => {
      this.ticking = this.ticking.then(() => this.tick());
    }, this.options.intervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.ticking;
    await this.client?.end().catch(() => undefined);
    this.client = undefined;
  }

  /** Every client backend that is not idle, one line each (for the report of a run that timed out). */
  async snapshot(): Promise<string[]> {
    try {
      const client = await this.connection();
      const res = await client.query<{ line: string }>(
        `select format('pid %s %s %s%s %ss: %s', pid, coalesce(nullif(application_name, ''), '-'), state,
                       coalesce(' ' || wait_event_type || '/' || wait_event, ''),
                       round(extract(epoch from clock_timestamp() - coalesce(query_start, backend_start)))::int,
                       left(regexp_replace(query, '\\s+', ' ', 'g'), 160)) as line
           from pg_stat_activity
          where backend_type = 'client backend' and pid <> pg_backend_pid() and state <> 'idle'
          order by pid`,
      );
      return res.rows.map((r) => r.line);
    } catch (err) {
      return [`(could not read pg_stat_activity: ${(err as Error).message})`];
    }
  }

  private async connection(): Promise<pg.Client> {
    if (this.client !== undefined) return this.client;
    const client = new pg.Client({
      host: '127.0.0.1',
      port: this.options.port,
      user: this.options.user,
      database: 'postgres',
      application_name: 'pg-regress-watchdog',
      connectionTimeoutMillis: 5_000,
      statement_timeout: 10_000,
    });
    client.on('error', () => {
      if (this.client === client) this.client = undefined;
    });
    await client.connect();
    this.client = client;
    return client;
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    let client: pg.Client;
    try {
      client = await this.connection();
    } catch {
      return; // the server is down or restarting: the health check after the run reports that
    }
    try {
      const stuck = await client.query<ActivityRow>(STUCK_SQL, [this.options.stuckAfterMs / 1000]);
      for (const row of stuck.rows) await this.handle(client, row);
    } catch {
      await client.end().catch(() => undefined);
      if (this.client === client) this.client = undefined;
    }
  }

  private async handle(client: pg.Client, row: ActivityRow): Promise<void> {
    const key = `${row.pid}@${row.query_start}`;
    const cancelledAt = this.cancelled.get(key);
    // Cancelled before and still there a while later: terminate it (once).
    if (cancelledAt !== undefined) {
      if (cancelledAt < 0 || Date.now() - cancelledAt < this.options.stuckAfterMs) return;
      await client.query('select pg_terminate_backend($1)', [row.pid]);
      this.cancelled.set(key, -1);
      const earlier = this.incidents.find((i) => i.pid === row.pid && i.action === 'cancelled' && i.query === row.query);
      if (earlier !== undefined) earlier.action = 'terminated';
      return;
    }
    const blockerPids = row.blockers.filter((p) => p !== 0);
    const blockerRows =
      row.blockers.length === 0
        ? await client.query<BlockerRow>(SUSPECTS_SQL, [row.pid])
        : await client.query<BlockerRow>(BLOCKER_SQL, [blockerPids]);
    const blockers = blockerRows.rows.map((b) => ({
      pid: b.pid,
      state: b.state,
      applicationName: b.application_name,
      xactSeconds: b.xact_seconds === null ? null : Math.round(b.xact_seconds),
      query: b.query,
    }));
    // Working (on CPU or I/O), or waiting for a lock whose holder is itself running: give it the longer limit.
    const busy = row.blockers.length > 0 ? blockers.some((b) => b.state === 'active') : row.wait_event_type === null || row.wait_event_type === 'IO';
    if (busy && row.seconds * 1000 < this.options.busyLimitMs) return;
    const preparedXacts = row.blockers.includes(0)
      ? (await client.query<{ gid: string }>('select gid from pg_prepared_xacts')).rows.map((r) => r.gid)
      : [];
    const ok = (await client.query<{ ok: boolean }>('select pg_cancel_backend($1) as ok', [row.pid])).rows[0]?.ok === true;
    this.cancelled.set(key, Date.now());
    const incident: StuckQuery = {
      at: new Date().toISOString(),
      pid: row.pid,
      database: row.datname,
      user: row.usename,
      applicationName: row.application_name,
      wait: row.wait_event_type === null ? 'running' : `${row.wait_event_type}/${row.wait_event ?? ''}`,
      seconds: Math.round(row.seconds),
      query: row.query,
      blockers,
      blockedByLock: row.blockers.length > 0,
      busy,
      preparedXacts,
      action: ok ? 'cancelled' : 'cancel failed',
    };
    this.incidents.push(incident);
    this.options.onIncident(incident);
  }
}

/** One line describing an incident, for logs and the report. */
export function describeIncident(i: StuckQuery): string {
  const who = i.applicationName === null || i.applicationName === '' ? `pid ${i.pid}` : `${i.applicationName} (pid ${i.pid})`;
  const query = i.query.replace(/\s+/g, ' ').slice(0, 160);
  const blocked = i.blockers
    .map((b) => `pid ${b.pid} ${b.applicationName ?? ''} ${b.state ?? ''}${b.xactSeconds === null ? '' : ` xact ${b.xactSeconds}s`}: ${(b.query ?? '').replace(/\s+/g, ' ').slice(0, 100)}`)
    .concat(i.preparedXacts.map((g) => `prepared transaction '${g}'`));
  const by = i.blockedByLock ? 'blocked by' : 'no lock holder; transactions open > 5 s:';
  return `${i.action} after ${i.seconds}s${i.busy ? ' (busy limit)' : ''}, ${who} in ${i.database ?? '?'}, ${i.wait}: ${query}${blocked.length === 0 ? '' : `; ${by} ${blocked.join('; ')}`}`;
}
