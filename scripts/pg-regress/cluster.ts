/**
 * A throwaway PostgreSQL cluster for one run, configured as pg_regress's own temp-instance mode configures its
 * cluster (the settings it appends to postgresql.conf, max_prepared_transactions = 2 above all, which the
 * prepared_xacts test needs), initdb'ed and run as the regression OS user, who is also the bootstrap superuser.
 * Trust authentication on loopback and on its unix socket; a free loopback port; killed with this process.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { freePort } from './net.js';
import { giveTo, type OsUser } from './os-user.js';
import type { PgInstall } from './prerequisites.js';
import { cleanEnv, mustRun, sleep, startChild, type Child } from './proc.js';

export interface Cluster {
  readonly port: number;
  readonly superuser: string;
  readonly dataDir: string;
  readonly logFile: string;
  /** False once the postmaster has exited. */
  running(): boolean;
  /** Fast shutdown, SIGKILL after 15 s. Idempotent. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 60_000;
const PORT_ATTEMPTS = 3;

/** What pg_regress --temp-instance appends to postgresql.conf (PostgreSQL 15), plus what this runner needs. */
function settings(socketDir: string): Record<string, string | number> {
  return {
    // pg_regress's temp-instance settings
    log_autovacuum_min_duration: 0,
    log_checkpoints: 'on',
    log_line_prefix: '%m %b[%p] %q%a ',
    log_lock_waits: 'on',
    log_temp_files: '128kB',
    max_prepared_transactions: 2,
    // this runner's: loopback only, its own socket dir, room for pgmux's pools next to the tests' own connections
    listen_addresses: '127.0.0.1',
    unix_socket_directories: socketDir,
    max_connections: 200,
    fsync: 'off',
    // the statement of every error is in the log, with the application_name (pg_regress/<test>) in the prefix
    log_min_error_statement: 'error',
  };
}

function confValue(value: string | number): string {
  return typeof value === 'number' ? String(value) : `'${value.replaceAll("'", "''")}'`;
}

async function probe(port: number, user: string): Promise<boolean> {
  const client = new pg.Client({ host: '127.0.0.1', port, user, database: 'postgres', connectionTimeoutMillis: 2_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function logTail(file: string, lines = 30): Promise<string> {
  try {
    return (await fsp.readFile(file, 'utf8')).split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export async function startCluster(install: PgInstall, user: OsUser, runDir: string): Promise<Cluster> {
  const dataDir = path.join(runDir, 'data');
  const socketDir = path.join(runDir, 'sock');
  const logFile = path.join(runDir, 'postgres.log');
  await fsp.mkdir(socketDir, { mode: 0o700 });
  await giveTo(user, socketDir);

  await mustRun(
    path.join(install.binDir, 'initdb'),
    ['-D', dataDir, '-U', user.name, '-E', 'UTF8', '--locale=C', '--auth=trust', '--no-sync'],
    { cwd: runDir, env: cleanEnv(runDir, { LC_ALL: 'C' }), user: user.ids },
  );
  const conf = Object.entries(settings(socketDir))
    .map(([k, v]) => `${k} = ${confValue(v)}`)
    .join('\n');
  await fsp.appendFile(path.join(dataDir, 'postgresql.conf'), `\n# scripts/pg-regress/cluster.ts\n${conf}\n`);

  const logFd = fs.openSync(logFile, 'a', 0o644);
  await giveTo(user, logFile);
  let child: Child | undefined;
  let port = 0;
  try {
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      const started = startChild(path.join(install.binDir, 'postgres'), ['-D', dataDir, '-p', String(port)], {
        cwd: runDir,
        env: cleanEnv(runDir, { LC_ALL: 'C' }),
        user: user.ids,
        output: logFd,
      });
      const deadline = Date.now() + READY_TIMEOUT_MS;
      let ready = false;
      while (Date.now() < deadline && started.exitStatus() === undefined) {
        if (await probe(port, user.name)) {
          ready = true;
          break;
        }
        await sleep(100);
      }
      if (ready) {
        child = started;
        break;
      }
      await started.stop('SIGKILL', 1_000);
      const tail = await logTail(logFile);
      if (attempt < PORT_ATTEMPTS && /could not bind|Address already in use/i.test(tail)) continue;
      throw new Error(`PostgreSQL did not start (log ${logFile}):\n${tail}`);
    }
  } finally {
    fs.closeSync(logFd);
  }

  const postmaster = child;
  let stopping: Promise<void> | undefined;
  return {
    port,
    superuser: user.name,
    dataDir,
    logFile,
    running: () => postmaster.exitStatus() === undefined,
    stop() {
      stopping ??= postmaster.stop('SIGINT', 15_000).then(() => undefined);
      return stopping;
    },
  };
}
