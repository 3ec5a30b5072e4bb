/**
 * After a run: is the upstream still healthy (a fresh direct connection can read pg_class in each database the
 * run used), and did the server log a PANIC or a backend crash (which makes the postmaster restart everything)?
 */
import fsp from 'node:fs/promises';
import pg from 'pg';

export interface UpstreamHealth {
  readonly healthy: boolean;
  /** One line per database that failed the check. */
  readonly problems: string[];
}

export interface ServerLogScan {
  readonly panics: string[];
  /** "server process ... was terminated by signal", "terminating any other active server processes", ... */
  readonly crashes: string[];
  /** The log lines before the first PANIC or crash (who did what just before). */
  readonly context: string[];
}

export async function checkUpstream(port: number, user: string, databases: readonly string[]): Promise<UpstreamHealth> {
  const problems: string[] = [];
  for (const database of databases) {
    const client = new pg.Client({ host: '127.0.0.1', port, user, database, connectionTimeoutMillis: 10_000, query_timeout: 20_000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('select count(*) from pg_class');
    } catch (err) {
      problems.push(`${database}: ${(err as Error).message}`);
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  return { healthy: problems.length === 0, problems };
}

// A background worker exiting with code 1 is normal (a parallel worker that raised an error); a server process
// that did, or anything killed by a signal, makes the postmaster reset the whole cluster.
const CRASH = /was terminated by signal|terminating any other active server processes|all server processes terminated; reinitializing|server process \(PID \d+\) exited with exit code [1-9]/;

export async function scanServerLog(file: string, contextLines = 12): Promise<ServerLogScan> {
  let lines: string[];
  try {
    lines = (await fsp.readFile(file, 'utf8')).split('\n');
  } catch {
    return { panics: [], crashes: [], context: [] };
  }
  const panics: string[] = [];
  const crashes: string[] = [];
  let first = -1;
  lines.forEach((line, i) => {
    const panic = /\bPANIC:/.test(line);
    const crash = CRASH.test(line);
    if (panic) panics.push(line);
    if (crash) crashes.push(line);
    if ((panic || crash) && first === -1) first = i;
  });
  const context = first === -1 ? [] : lines.slice(Math.max(0, first - contextLines), first + 1);
  return { panics, crashes, context };
}
