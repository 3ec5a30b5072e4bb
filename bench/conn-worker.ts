/**
 * Child process that opens many client connections at once, so the runner can watch a pooler from outside and the
 * clients get their own open-files limit and their own CPU. Started by connections.ts with one JSON argument
 * (WorkerJob); writes JSON lines to stdout.
 *
 * - `storm`: all clients connect at the same moment, each runs one query and terminates. One line: StormOutcome.
 * - `idle`: clients connect (at most `concurrency` logins in flight) and stay idle. A line `{"event":"ready",...}`
 *   (IdleOutcome) once all have logged in or failed; on a line `close` (or end of stdin) they all terminate, then
 *   `{"event":"closed"}`.
 */
import readline from 'node:readline';
import { BenchConnection, deriveLoginKeys, type ConnectOptions } from './pg-client.js';
import { percentileSorted } from './stats.js';

export interface WorkerJob {
  mode: 'storm' | 'idle';
  host: string;
  port: number;
  user: string;
  database: string;
  password: string;
  /** The role's SCRAM verifier from pg_authid: the salt and iteration count to derive the keys with. */
  verifier: string;
  clients: number;
  /** storm: the query each client runs. */
  query?: string;
  /** idle: logins in flight at once. */
  concurrency?: number;
  timeoutMs: number;
}

export interface StormOutcome {
  clients: number;
  ok: number;
  failed: number;
  /** From the first connect() to the last query answered. */
  wallMs: number;
  /** Per client, connect to query answered. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: Record<string, number>;
  clientCpuMs: number;
}

export interface IdleOutcome {
  event: 'ready';
  clients: number;
  connected: number;
  failed: number;
  wallMs: number;
  errors: Record<string, number>;
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return (e.code !== undefined && typeof e.code === 'string' ? `${e.code}: ` : '') + (e.message ?? String(err));
}

function count(errors: Record<string, number>, err: unknown): void {
  const key = describe(err).slice(0, 160);
  errors[key] = (errors[key] ?? 0) + 1;
}

async function storm(job: WorkerJob, connect: ConnectOptions): Promise<StormOutcome> {
  const errors: Record<string, number> = {};
  const times: number[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let lastServed = t0;
  const one = async (): Promise<void> => {
    const start = performance.now();
    let conn: BenchConnection | undefined;
    try {
      conn = await BenchConnection.open(connect);
      await conn.query(job.query ?? 'SELECT 1');
      lastServed = performance.now();
      times.push(lastServed - start);
      await conn.close();
    } catch (err) {
      count(errors, err);
      conn?.destroy();
    }
  };
  await Promise.all(Array.from({ length: job.clients }, one));
  const wallMs = lastServed - t0;
  const cpu = process.cpuUsage(cpu0);
  const sorted = Float64Array.from(times).sort();
  return {
    clients: job.clients,
    ok: times.length,
    failed: job.clients - times.length,
    wallMs,
    p50Ms: percentileSorted(sorted, 50),
    p99Ms: percentileSorted(sorted, 99),
    maxMs: sorted.length === 0 ? Number.NaN : sorted[sorted.length - 1],
    errors,
    clientCpuMs: (cpu.user + cpu.system) / 1000,
  };
}

async function idle(job: WorkerJob, connect: ConnectOptions): Promise<void> {
  const errors: Record<string, number> = {};
  const open: BenchConnection[] = [];
  const t0 = performance.now();
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < job.clients) {
      next++;
      try {
        open.push(await BenchConnection.open(connect));
      } catch (err) {
        count(errors, err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(job.concurrency ?? 100, job.clients) }, lane));
  const ready: IdleOutcome = {
    event: 'ready',
    clients: job.clients,
    connected: open.length,
    failed: job.clients - open.length,
    wallMs: performance.now() - t0,
    errors,
  };
  process.stdout.write(`${JSON.stringify(ready)}\n`);

  const lines = readline.createInterface({ input: process.stdin });
  await new Promise<void>((resolve) => {
    lines.on('line', (line) => line.trim() === 'close' && resolve());
    lines.on('close', () => resolve());
  });
  lines.close();
  // Terminate in batches so closing does not turn into a storm of its own.
  for (let i = 0; i < open.length; i += 1000) await Promise.all(open.slice(i, i + 1000).map((c) => c.close()));
  process.stdout.write(`${JSON.stringify({ event: 'closed' })}\n`);
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '') as WorkerJob;
  const connect: ConnectOptions = {
    host: job.host,
    port: job.port,
    user: job.user,
    database: job.database,
    keys: deriveLoginKeys(job.password, job.verifier),
    timeoutMs: job.timeoutMs,
  };
  if (job.mode === 'storm') process.stdout.write(`${JSON.stringify(await storm(job, connect))}\n`);
  else await idle(job, connect);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`conn-worker: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
