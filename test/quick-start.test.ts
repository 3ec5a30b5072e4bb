/**
 * The README's quick start, as a user runs it from a fresh clone: `DATABASE_URL=... npm start` in the repository,
 * whose config/ holds the example file. `npm start` is its prestart (the build) and then its start command; both
 * are taken from package.json and run in a copy of the repository's layout (config/, src/, the tsconfigs,
 * package.json, node_modules), so the build and the run see what a clone has. pgmux must serve exactly the
 * database of DATABASE_URL (/readyz 200, not 503 for the example file's database) and say where its
 * configuration came from.
 */
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, pgInfo, pgUrl } from './harness/context.js';
import { logLines, REPO_ROOT } from './harness/pgmux-process.js';
import { freePort } from './harness/postgres.js';
import { runProcess, startProcess, waitForOutput, waitListening, type ChildProc } from './harness/process.js';
import { APP_ROLE } from './harness/roles.js';

const scripts = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;

/** "npm run build --silent" → ['npm', 'run', 'build', '--silent']; "node dist/src/main.js" → ['node', 'dist/src/main.js']. */
function words(command: string): string[] {
  return command.split(/\s+/).filter((w) => w !== '');
}

describe('DATABASE_URL=... npm start from a clone', () => {
  let clone: string;
  let pgmux: ChildProc;
  let listenPort: number;
  let metricsPort: number;
  /** Not "app", the example file's database: a URL naming that one would hide the example being read. */
  let database: string;

  beforeAll(async () => {
    database = await createTestDatabase('quickstart');
    clone = mkdtempSync(path.join(tmpdir(), 'pgmux-clone-'));
    for (const entry of ['config', 'src', 'package.json', 'tsconfig.json', 'tsconfig.build.json']) {
      cpSync(path.join(REPO_ROOT, entry), path.join(clone, entry), { recursive: true });
    }
    symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(clone, 'node_modules'), 'dir');

    // prestart: the build, as npm runs it.
    expect(words(scripts.prestart)).toEqual(['npm', 'run', 'build', '--silent']);
    const [tscCommand, ...tscArgs] = words(scripts.build);
    expect(tscCommand).toBe('tsc');
    const tsc = path.join(clone, 'node_modules', 'typescript', 'bin', 'tsc');
    const build = await runProcess(process.execPath, [tsc, ...tscArgs], { cwd: clone, timeoutMs: 180_000 });
    // Another change in flight elsewhere in the tree may not typecheck; tsc still emits, and that is what runs.
    if (!existsSync(path.join(clone, 'dist', 'src', 'main.js'))) throw new Error(`build failed:\n${build.output}`);

    // start: with DATABASE_URL, and the two ports moved off their defaults so parallel test files cannot clash.
    // (`exec`, if the script has it, only makes the shell npm starts give way to node.)
    const [node, ...startArgs] = words(scripts.start).filter((w, i) => !(i === 0 && w === 'exec'));
    expect(node).toBe('node');
    listenPort = await freePort();
    metricsPort = await freePort();
    pgmux = startProcess(process.execPath, startArgs, {
      cwd: clone,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: clone,
        DATABASE_URL: pgUrl(database),
        LISTEN_PORT: String(listenPort),
        METRICS_PORT: String(metricsPort),
      },
    });
    await waitListening(pgmux, listenPort);
  }, 240_000);

  afterAll(async () => {
    await pgmux?.stop('SIGKILL');
  });

  it('the clone ships the example under a name pgmux does not read by itself', () => {
    expect(readdirSync(path.join(clone, 'config'))).toContain('pgmux.example.yaml');
    expect(existsSync(path.join(clone, 'config', 'pgmux.yaml'))).toBe(false);
  });

  it('is ready: /readyz judges only the database of DATABASE_URL', async () => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
    const body = await res.text();
    expect(res.status, body).toBe(200);
    const report = JSON.parse(body) as { databases: Record<string, { upstream: string }> };
    expect(Object.keys(report.databases)).toEqual([database]);
    expect(report.databases[database].upstream).toBe(`${pgInfo().host}:${pgInfo().port}`);
  });

  it('serves that database with the URL\'s credentials', async () => {
    const client = new pg.Client({ host: '127.0.0.1', port: listenPort, user: APP_ROLE.name, password: APP_ROLE.password, database: database });
    await client.connect();
    try {
      expect((await client.query<{ d: string }>('SELECT current_database() AS d')).rows).toEqual([{ d: database }]);
    } finally {
      await client.end();
    }
  });

  it('logs where the configuration came from: no file, and the variables by name only', async () => {
    await waitForOutput(pgmux, 'configuration read from');
    const line = logLines(pgmux.stdout()).find((l) => typeof l.msg === 'string' && l.msg.startsWith('configuration read from'));
    expect(line).toMatchObject({
      level: 'info',
      msg: 'configuration read from no config file (config/pgmux.yaml does not exist; --config or PGMUX_CONFIG names one), environment LISTEN_PORT, METRICS_PORT, DATABASE_URL',
      configFile: null,
      env: ['LISTEN_PORT', 'METRICS_PORT', 'DATABASE_URL'],
    });
    expect(pgmux.stdout()).not.toContain(APP_ROLE.password as string);
    expect(pgmux.stdout()).not.toContain('no databases configured');
  });
});
