/**
 * What a benchmark runs against: Postgres itself; PgBouncer 1.18 (Debian's), PgBouncer 1.25 and pgmux in front of
 * it with equivalent settings (transaction mode, pool size 20, SCRAM-SHA-256 for clients from the same verifier, no
 * TLS, connection logging off); and the floor, a bare Node.js forwarder (floor.ts). Each pooler and the floor is a
 * separate process so its CPU time and RSS can be read from /proc.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PG_OS_USER, startPostgres, type PostgresInstance } from '../test/harness/postgres.js';
import { APP_DATABASE, APP_ROLE } from '../test/harness/roles.js';
import type { LoginTarget } from './connections.js';
import { startFloor } from './floor.js';
import { startPgbouncer, startPgbouncer125 } from './pgbouncer.js';
import { startPgmuxProcess } from './pgmux-process.js';
import { treeCpuUs } from './proc.js';
import { PG_MAX_CONNECTIONS, type PoolerSetup, type Target } from './target.js';
import { TARGET_LABELS, type TargetName } from './target-names.js';

export interface BenchEnv {
  pg: PostgresInstance;
  /** Parent of every Postgres backend: its process tree is Postgres's CPU time. */
  postmasterPid: number;
  database: string;
  user: string;
  password: string;
  verifier: string;
  workDir: string;
  targets: Map<TargetName, Target>;
  /** Targets that could not be started, with the reason. */
  missing: Map<TargetName, string>;
  login(target: Target): LoginTarget;
  stop(): Promise<void>;
}

function osUserIds(): { uid: number; gid: number } {
  // startPostgres has created the user by now when running as root; otherwise everything runs as ourselves.
  if (process.getuid?.() !== 0) return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${PG_OS_USER}:`));
  if (line === undefined) throw new Error(`OS user ${PG_OS_USER} does not exist`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

function postmasterPid(pg: PostgresInstance): number {
  return Number(fs.readFileSync(path.join(pg.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
}

function directTarget(pg: PostgresInstance, version: string): Target {
  const pid = postmasterPid(pg);
  return {
    name: 'direct',
    port: pg.port,
    version,
    pid: () => pid,
    cpuUs: () => treeCpuUs(pid),
    restart: async () => undefined,
    stop: async () => undefined,
  };
}

export interface StartOptions {
  wanted: readonly TargetName[];
  log: (line: string) => void;
}

/**
 * Starts Postgres and whichever of the poolers (and the floor) are wanted; one that cannot start is reported
 * (logged, and recorded in `missing` for the report), not fatal.
 */
export async function startTargets(opts: StartOptions): Promise<BenchEnv> {
  opts.log('starting PostgreSQL');
  const pg = await startPostgres({ name: 'bench', settings: { max_connections: PG_MAX_CONNECTIONS } });
  const stops: Array<() => Promise<void>> = [];
  try {
    const [{ version: pgVersion }] = await pg.query<{ version: string }>('SHOW server_version');
    const [{ rolpassword: verifier }] = await pg.query<{ rolpassword: string }>('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [APP_ROLE.name]);
    const user = APP_ROLE.name;
    const database = APP_DATABASE;
    const osUser = osUserIds();
    const workDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'pgmux-bench-'));
    await fsp.chown(workDir, osUser.uid, osUser.gid);
    stops.push(() => fsp.rm(workDir, { recursive: true, force: true }));
    const authFile = path.join(workDir, 'userlist.txt');
    await fsp.writeFile(authFile, `"${user}" "${verifier}"\n`, { mode: 0o600 });
    await fsp.chown(authFile, osUser.uid, osUser.gid);

    const targets = new Map<TargetName, Target>();
    const missing = new Map<TargetName, string>();
    const setup: PoolerSetup = { pg, database, user, password: APP_ROLE.password ?? '', authFile, workDir, osUser, log: opts.log };
    if (opts.wanted.includes('direct')) targets.set('direct', directTarget(pg, pgVersion));
    const starters = { pgbouncer: startPgbouncer, pgbouncer125: startPgbouncer125, pgmux: startPgmuxProcess, floor: startFloor } as const;
    for (const name of ['pgbouncer', 'pgbouncer125', 'pgmux', 'floor'] as const) {
      if (!opts.wanted.includes(name)) continue;
      try {
        const target = await starters[name](setup);
        targets.set(name, target);
        stops.push(() => target.stop());
      } catch (err) {
        const reason = (err as Error).message;
        missing.set(name, reason);
        opts.log(`${TARGET_LABELS[name]} is not available, running without it: ${reason}`);
      }
    }
    let stopping: Promise<void> | undefined;
    return {
      pg,
      postmasterPid: postmasterPid(pg),
      database,
      user,
      password: APP_ROLE.password ?? '',
      verifier,
      workDir,
      targets,
      missing,
      login: (target) => ({ host: '127.0.0.1', port: target.port, user, database, password: APP_ROLE.password ?? '', verifier }),
      stop() {
        stopping ??= (async () => {
          for (const stop of stops.reverse()) await stop().catch(() => undefined);
          await pg.stop();
        })();
        return stopping;
      },
    };
  } catch (err) {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await pg.stop();
    throw err;
  }
}
