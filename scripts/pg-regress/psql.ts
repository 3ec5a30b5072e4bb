/**
 * psql as pg_regress runs it (libpq, the regression OS user, pg_regress's environment), for the setup it would
 * do itself without --use-existing and for checking that pg_regress's startup parameters arrive.
 */
import path from 'node:path';
import type { OsUser } from './os-user.js';
import type { PgInstall } from './prerequisites.js';
import { cleanEnv, runCommand, type CommandResult } from './proc.js';

/**
 * What pg_regress (PostgreSQL 15, initialize_environment and psql_start_test) puts in psql's environment; libpq
 * sends these as startup parameters. PGAPPNAME is pg_regress/<test> while a test runs.
 */
export function regressEnv(home: string, appName = 'pg_regress'): NodeJS.ProcessEnv {
  return cleanEnv(home, {
    PGTZ: 'America/Los_Angeles',
    PGDATESTYLE: 'Postgres, MDY',
    PGOPTIONS: ' -c intervalstyle=postgres_verbose',
    PGAPPNAME: appName,
    LC_MESSAGES: 'C',
    PGCONNECT_TIMEOUT: '15',
  });
}

export interface PsqlTarget {
  readonly install: PgInstall;
  readonly user: OsUser;
  readonly port: number;
  /** Working directory and HOME of psql. */
  readonly home: string;
}

/** `psql -X -At -v ON_ERROR_STOP=1 -c ... -c ...` against 127.0.0.1:port. */
export function psql(target: PsqlTarget, db: string, commands: readonly string[], env?: NodeJS.ProcessEnv): Promise<CommandResult> {
  const args = ['-X', '-At', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(target.port), '-U', target.user.name, '-d', db];
  for (const c of commands) args.push('-c', c);
  return runCommand(path.join(target.install.binDir, 'psql'), args, {
    cwd: target.home,
    env: env ?? regressEnv(target.home),
    user: target.user.ids,
    timeoutMs: 120_000,
  });
}

/** What pg_regress's create_database() runs (PostgreSQL 15), since --use-existing leaves it to us. */
export async function createRegressionDatabase(target: PsqlTarget, dbname = 'regression'): Promise<void> {
  const id = `"${dbname.replaceAll('"', '""')}"`;
  const settings = ["lc_messages TO 'C'", "lc_monetary TO 'C'", "lc_numeric TO 'C'", "lc_time TO 'C'", "bytea_output TO 'hex'", "timezone_abbreviations TO 'Default'"];
  const res = await psql(target, 'postgres', [
    'SET client_min_messages = warning',
    `CREATE DATABASE ${id} TEMPLATE=template0`,
    settings.map((s) => `ALTER DATABASE ${id} SET ${s};`).join(''),
  ]);
  if (res.code !== 0) throw new Error(`creating database ${dbname} through port ${target.port} failed:\n${res.output}`);
}
