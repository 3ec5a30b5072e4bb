/**
 * Builds the C libraries the regression tests load (regress.so from src/test/regress/regress.c, autoinc.so and
 * refint.so from contrib/spi) with pgxs, once per server version. refint is built with REFINT_VERBOSE, as
 * contrib/spi's Makefile does: the triggers test expects its NOTICEs. No LLVM bitcode (with_llvm=no), so clang
 * is not needed.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { PgInstall } from './prerequisites.js';
import { mustRun } from './proc.js';
import type { RegressSources } from './sources.js';

export const REGRESS_LIBS = ['regress', 'autoinc', 'refint'] as const;

const MAKEFILE = `# Written by scripts/pg-regress/build.ts
MODULES = ${REGRESS_LIBS.join(' ')}
PG_CPPFLAGS = -DREFINT_VERBOSE
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
`;

const STAMP = 'build.json';

/** Returns the directory holding regress.so, autoinc.so and refint.so (pg_regress's --dlpath). */
export async function ensureRegressLibs(sources: RegressSources, install: PgInstall, log: (line: string) => void): Promise<string> {
  const libDir = path.join(sources.versionDir, 'lib');
  const serverVersion = (await mustRun(install.pgConfig, ['--version'])).trim();
  const built = REGRESS_LIBS.every((name) => fs.existsSync(path.join(libDir, `${name}.so`)));
  if (built) {
    try {
      const stamp = JSON.parse(await fsp.readFile(path.join(libDir, STAMP), 'utf8')) as { serverVersion?: string };
      if (stamp.serverVersion === serverVersion) return libDir;
    } catch {
      // rebuild
    }
  }
  log(`building ${REGRESS_LIBS.map((n) => `${n}.so`).join(', ')} with pgxs (${serverVersion})`);
  await fsp.rm(libDir, { recursive: true, force: true });
  await fsp.mkdir(libDir, { recursive: true });
  await fsp.copyFile(path.join(sources.regressDir, 'regress.c'), path.join(libDir, 'regress.c'));
  for (const name of ['autoinc', 'refint']) await fsp.copyFile(path.join(sources.spiDir, `${name}.c`), path.join(libDir, `${name}.c`));
  await fsp.writeFile(path.join(libDir, 'Makefile'), MAKEFILE);
  await mustRun('make', ['-C', libDir, `PG_CONFIG=${install.pgConfig}`, 'with_llvm=no']);
  await fsp.writeFile(path.join(libDir, STAMP), `${JSON.stringify({ serverVersion }, null, 2)}\n`);
  return libDir;
}
