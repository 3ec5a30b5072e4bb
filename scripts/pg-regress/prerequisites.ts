/**
 * What the runner needs from the machine, installed with apt when missing (CI runs it as root on a fresh
 * Debian 12): the PostgreSQL server and client of one major version, its pgxs (postgresql-server-dev-N) to
 * build regress.so/autoinc.so/refint.so, a C compiler and make, and the decompressors for the source tarball.
 */
import fs from 'node:fs';
import path from 'node:path';
import { mustRun, which } from './proc.js';

export interface PgInstall {
  readonly major: string;
  readonly binDir: string;
  readonly pgConfig: string;
  /** Debian's pg_regress from the client package. */
  readonly pgRegress: string;
  /** Where this install's libpq is, when it is not the system's (see binaries.ts). */
  readonly libraryPath?: string;
}

const PG_ROOT = '/usr/lib/postgresql';

/** The highest installed major with server binaries, else `fallback` (what apt will install). */
export function defaultMajor(fallback = '15'): string {
  let names: string[] = [];
  try {
    names = fs.readdirSync(PG_ROOT).filter((n) => /^\d+$/.test(n) && fs.existsSync(path.join(PG_ROOT, n, 'bin', 'postgres')));
  } catch {
    // nothing installed yet
  }
  names.sort((a, b) => Number(b) - Number(a));
  return names[0] ?? fallback;
}

export function pgInstall(major: string): PgInstall {
  const binDir = path.join(PG_ROOT, major, 'bin');
  return {
    major,
    binDir,
    pgConfig: path.join(binDir, 'pg_config'),
    pgRegress: path.join(PG_ROOT, major, 'lib', 'pgxs', 'src', 'test', 'regress', 'pg_regress'),
  };
}

interface Requirement {
  /** Present when this returns true. */
  readonly present: () => boolean;
  readonly packages: readonly string[];
}

function requirements(install: PgInstall): Requirement[] {
  const inBin = (name: string) => () => fs.existsSync(path.join(install.binDir, name));
  const onPath = (name: string) => () => which(name) !== undefined;
  const pgxsMk = path.join(PG_ROOT, install.major, 'lib', 'pgxs', 'src', 'makefiles', 'pgxs.mk');
  const serverHeaders = `/usr/include/postgresql/${install.major}/server/postgres.h`;
  return [
    { present: () => inBin('postgres')() && inBin('initdb')(), packages: [`postgresql-${install.major}`] },
    { present: () => inBin('psql')() && fs.existsSync(install.pgRegress) && fs.existsSync(pgxsMk), packages: [`postgresql-client-${install.major}`] },
    { present: () => fs.existsSync(serverHeaders) && inBin('pg_config')(), packages: [`postgresql-server-dev-${install.major}`] },
    { present: () => onPath('gcc')() && onPath('make')(), packages: ['build-essential'] },
    { present: onPath('bzip2'), packages: ['bzip2'] },
    { present: onPath('xz'), packages: ['xz-utils'] },
  ];
}

function asRoot(cmd: string, args: string[]): [string, string[]] {
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  return root ? [cmd, args] : ['sudo', ['-n', cmd, ...args]];
}

/** Installs whatever is missing; returns the install's paths. */
export async function ensurePrerequisites(major: string, log: (line: string) => void): Promise<PgInstall> {
  const install = pgInstall(major);
  const missing = [...new Set(requirements(install).filter((r) => !r.present()).flatMap((r) => r.packages))];
  if (missing.length > 0) {
    log(`installing ${missing.join(' ')} with apt-get`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    await mustRun(...asRoot('apt-get', ['update', '-q']), { env });
    await mustRun(...asRoot('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing]), { env });
    const still = requirements(install).filter((r) => !r.present());
    if (still.length > 0) throw new Error(`still missing after apt-get install: ${still.flatMap((r) => r.packages).join(' ')}`);
  }
  return install;
}
