/**
 * The soak run's own PostgreSQL cluster (test/harness/postgres.ts), which it can restart.
 *
 * restart() is `pg_ctl restart -m fast` in two steps: `pg_ctl stop -m fast -w` (what restart does first: active
 * backends are terminated with 57P01, the postmaster exits), then the postmaster is started again as the harness
 * starts it, as a child of this process with a parent-death signal, on the same port and data directory. (pg_ctl's
 * own start would daemonize it: a runner killed with SIGKILL would then leave a cluster behind.)
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { PG_OS_USER, startPostgres, type PostgresInstance } from '../harness/postgres.js';
import { APP_DATABASE, APP_ROLE } from '../harness/roles.js';
import { sleep } from '../harness/wait.js';
import { connectQuietly } from '../harness/pg-connect.js';

const execFileAsync = promisify(execFile);

interface OsUser {
  uid: number;
  gid: number;
}

async function clusterUser(): Promise<OsUser | undefined> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const uid = Number((await execFileAsync('id', ['-u', PG_OS_USER])).stdout.trim());
  const gid = Number((await execFileAsync('id', ['-g', PG_OS_USER])).stdout.trim());
  return { uid, gid };
}

/** The environment the harness gives initdb/postgres: no PG* variable of the caller. */
function clusterEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  return { ...env, HOME: home, LC_ALL: 'C', LANG: 'C' };
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p));

/** Postmasters started by restart(): killed when this process exits, whatever the way. */
const relaunched = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of relaunched) child.kill('SIGKILL');
});

export interface SoakCluster {
  readonly pg: PostgresInstance;
  /** How many restarts were done, and how long each took until the cluster accepted connections again (ms). */
  readonly restarts: number[];
  /** Whether a restart is under way (its errors are expected). */
  readonly restarting: boolean;
  /** Runs `fn` on a fresh superuser connection to `db` (default the app database) and closes it. */
  withSuperuser<T>(fn: (client: pg.Client) => Promise<T>, db?: string): Promise<T>;
  restart(): Promise<number>;
  stop(): Promise<void>;
}

/** Starts the cluster and creates the soak's tables in the `app` database, owned by `app`. */
export async function startSoakCluster(schema: string): Promise<SoakCluster> {
  const instance = await startPostgres({
    name: 'soak',
    // Room for pgmux's pools, the checks and psql; idle sessions of the checks never linger.
    settings: { max_connections: 60, log_min_messages: 'warning', log_connections: 'off' },
  });
  const user = await clusterUser();
  const tmp = path.dirname(instance.dataDir);
  const restarts: number[] = [];
  let restarting = false;
  let child: ChildProcess | undefined;

  const connect = (db: string): Promise<pg.Client> =>
    connectQuietly({ host: instance.host, port: instance.port, user: instance.superuser, password: instance.password, database: db, connectionTimeoutMillis: 5_000 });

  const withSuperuser = async <T>(fn: (client: pg.Client) => Promise<T>, db = APP_DATABASE): Promise<T> => {
    const client = await connect(db);
    try {
      return await fn(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  };

  await withSuperuser(async (c) => {
    await c.query(schema);
    await c.query(`GRANT ALL ON ALL TABLES IN SCHEMA public TO ${c.escapeIdentifier(APP_ROLE.name)}`);
  });

  const runAsCluster = (file: string, args: string[]): Promise<void> =>
    new Promise((resolve, reject) => {
      const p = spawn(file, args, { cwd: tmp, env: clusterEnv(tmp), stdio: ['ignore', 'pipe', 'pipe'], ...(user ?? {}) });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr.on('data', (d: Buffer) => (out += d.toString()));
      p.on('error', reject);
      p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${path.basename(file)} ${args.join(' ')} exited ${code}: ${out}`))));
    });

  const launch = (): ChildProcess => {
    const postgres = path.join(instance.binDir, 'postgres');
    const pgArgs = ['-D', instance.dataDir, '-p', String(instance.port)];
    const [file, args] = SETPRIV === undefined ? [postgres, pgArgs] : [SETPRIV, ['--pdeathsig', 'KILL', '--', postgres, ...pgArgs]];
    const logFd = fs.openSync(instance.logFile, 'a');
    try {
      const p = spawn(file, args, { cwd: tmp, env: clusterEnv(tmp), stdio: ['ignore', logFd, logFd], ...(user ?? {}) });
      relaunched.add(p);
      p.once('exit', () => relaunched.delete(p));
      return p;
    } finally {
      fs.closeSync(logFd);
    }
  };

  const waitReady = async (): Promise<void> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await withSuperuser(async () => undefined, 'postgres');
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`the restarted cluster did not accept connections within 30 s: ${String(err)}`);
        await sleep(50);
      }
    }
  };

  return {
    pg: instance,
    restarts,
    get restarting() {
      return restarting;
    },
    withSuperuser,
    async restart() {
      restarting = true;
      const started = Date.now();
      try {
        await runAsCluster(path.join(instance.binDir, 'pg_ctl'), ['stop', '-D', instance.dataDir, '-m', 'fast', '-w', '-t', '30']);
        child = launch();
        await waitReady();
        const ms = Date.now() - started;
        restarts.push(ms);
        return ms;
      } finally {
        restarting = false;
      }
    },
    async stop() {
      const last = child;
      if (last !== undefined && last.exitCode === null && last.signalCode === null) {
        const exited = new Promise((resolve) => last.once('exit', resolve));
        last.kill('SIGINT');
        const timer = setTimeout(() => last.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      await instance.stop();
    },
  };
}
