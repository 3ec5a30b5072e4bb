/**
 * Copies what one run needs into its own temp directory, owned by the regression OS user: the cache may sit
 * where that user cannot reach (a checkout under /root), yet pg_regress reads sql/ and expected/, the server
 * reads data/*.data (COPY FROM) and loads the libraries, and the server writes into the output directory.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { REGRESS_LIBS } from './build.js';
import { giveTo, type OsUser } from './os-user.js';
import type { RegressSources } from './sources.js';

export interface StagedRun {
  /** pg_regress --inputdir. */
  readonly inputDir: string;
  /** pg_regress --dlpath. */
  readonly libDir: string;
  /** pg_regress --outputdir (results/, regression.diffs, regression.out). */
  readonly outputDir: string;
  readonly schedule: string;
}

const INPUTS = ['sql', 'expected', 'data', 'parallel_schedule', 'resultmap'];

export async function stageRun(runDir: string, sources: RegressSources, builtLibDir: string, user: OsUser): Promise<StagedRun> {
  const inputDir = path.join(runDir, 'input');
  const libDir = path.join(runDir, 'lib');
  const outputDir = path.join(runDir, 'out');
  await fsp.mkdir(inputDir);
  for (const name of INPUTS) await fsp.cp(path.join(sources.regressDir, name), path.join(inputDir, name), { recursive: true });
  await fsp.mkdir(libDir);
  for (const name of REGRESS_LIBS) await fsp.copyFile(path.join(builtLibDir, `${name}.so`), path.join(libDir, `${name}.so`));
  await fsp.mkdir(outputDir);
  for (const dir of [inputDir, libDir, outputDir]) await giveTo(user, dir, true);
  return { inputDir, libDir, outputDir, schedule: path.join(inputDir, 'parallel_schedule') };
}
