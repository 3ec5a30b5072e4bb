/**
 * Server and client binaries of the same point release as the regression sources.
 *
 * The expected outputs belong to one point release: psql's COPY FROM STDIN handling and several server
 * messages changed between 15.18 and 15.20, so a 15.20 server run with 15.18's expected files fails copy,
 * copy2, alter_table, privileges and others even directly. When the archive has no source for the installed
 * point release (a security update whose source the mirror lacks), the binary packages of the source's version
 * (postgresql-N, postgresql-client-N, postgresql-server-dev-N for regress.so, libpq5) are downloaded with `apt-get download` and unpacked with
 * `dpkg-deb -x` under /var/tmp (reachable by the regression OS user, unlike a checkout under /root). Nothing is
 * installed: the system's PostgreSQL is untouched. PostgreSQL is relocatable, so the unpacked server finds its
 * share/ and lib/ next to its bin/; psql and pg_regress find the unpacked libpq through LD_LIBRARY_PATH.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { PgInstall } from './prerequisites.js';
import { mustRun } from './proc.js';
import type { RegressSources } from './sources.js';

const ROOT = '/var/tmp/pgmux-pg-regress-binaries';
const STAMP = 'unpacked.json';

/** `15.18-0+deb12u1` → `15.18`. */
function upstreamOf(version: string): string {
  return version.replace(/^\d+:/, '').replace(/-[^-]*$/, '');
}

async function multiarchLibDir(): Promise<string> {
  const triplet = (await mustRun('dpkg-architecture', ['-qDEB_HOST_MULTIARCH']).catch(() => 'x86_64-linux-gnu')).trim();
  return path.join('usr', 'lib', triplet || 'x86_64-linux-gnu');
}

function installAt(root: string, major: string, libraryPath: string): PgInstall {
  const pgLib = path.join(root, 'usr', 'lib', 'postgresql', major);
  return {
    major,
    binDir: path.join(pgLib, 'bin'),
    // regress.so is built with this release's own pgxs and headers: a point release may change the ABI.
    pgConfig: path.join(pgLib, 'bin', 'pg_config'),
    pgRegress: path.join(pgLib, 'lib', 'pgxs', 'src', 'test', 'regress', 'pg_regress'),
    libraryPath,
  };
}

async function stampMatches(dir: string, packages: readonly string[]): Promise<boolean> {
  try {
    const stamp = JSON.parse(await fsp.readFile(path.join(dir, STAMP), 'utf8')) as { packages?: string[] };
    return JSON.stringify(stamp.packages) === JSON.stringify(packages);
  } catch {
    return false;
  }
}

/**
 * The install to run the suite with: the system's when it is the sources' point release, else the unpacked
 * binaries of the sources' version.
 */
export async function installMatchingSources(system: PgInstall, sources: RegressSources, log: (line: string) => void): Promise<PgInstall> {
  if (upstreamOf(sources.installedVersion) === upstreamOf(sources.sourceVersion)) return system;
  const version = sources.sourceVersion;
  const dir = path.join(ROOT, version.replace(/[^A-Za-z0-9.+~-]/g, '_'));
  const root = path.join(dir, 'root');
  const libraryPath = path.join(root, await multiarchLibDir());
  const install = installAt(root, system.major, libraryPath);
  const packages = [`postgresql-${system.major}`, `postgresql-client-${system.major}`, `postgresql-server-dev-${system.major}`, 'libpq5'].map((p) => `${p}=${version}`);
  if (await stampMatches(dir, packages)) {
    log(`using the unpacked PostgreSQL ${version} binaries in ${root} (installed ${sources.installedVersion} has no source in the archive)`);
    return install;
  }
  log(`the installed server is ${sources.installedVersion} but the regression sources are ${version}: unpacking PostgreSQL ${version}'s binaries into ${root}`);
  await fsp.rm(dir, { recursive: true, force: true });
  const debs = path.join(dir, 'debs');
  await fsp.mkdir(debs, { recursive: true, mode: 0o755 });
  await fsp.mkdir(root, { recursive: true, mode: 0o755 });
  await mustRun('apt-get', ['-q', 'download', ...packages], { cwd: debs });
  for (const deb of (await fsp.readdir(debs)).filter((n) => n.endsWith('.deb'))) {
    await mustRun('dpkg-deb', ['-x', path.join(debs, deb), root]);
  }
  for (const p of [dir, ROOT]) await fsp.chmod(p, 0o755);
  if (!fs.existsSync(path.join(install.binDir, 'postgres')) || !fs.existsSync(install.pgRegress) || !fs.existsSync(install.pgConfig)) {
    throw new Error(`unpacked PostgreSQL ${version} into ${root}, but its postgres, pg_regress or pg_config is missing`);
  }
  await fsp.writeFile(path.join(dir, STAMP), `${JSON.stringify({ version, packages }, null, 2)}\n`);
  return install;
}
