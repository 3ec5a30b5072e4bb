/**
 * The `pgmux` command as the README gives it: `npx pgmux ...` from a checkout, a package from `npm pack` that
 * installs and runs, and `npm start` that stops when npm is stopped (SIGTERM, Ctrl-C, or npm killed outright),
 * instead of leaving `node dist/src/main.js` running and holding the port.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { pgUrl } from './harness/context.js';
import { canConnect, runProcess, startProcess, type ChildProc } from './harness/process.js';
import { APP_DATABASE } from './harness/roles.js';
import { sleep, waitFor } from './harness/wait.js';

const REPO = path.resolve(import.meta.dirname, '..');
const NPM = 'npm';

/** The pids of processes running dist/src/main.js with this marker in their environment. */
function pgmuxPids(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (!cmdline.includes('dist/src/main.js')) continue;
      if (readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0').includes(`PGMUX_TEST_MARKER=${marker}`)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

interface NpmStart {
  npm: ChildProc;
  marker: string;
  port: number;
}

/** `npm start` with only DATABASE_URL (and a free port); `build` false skips prestart's build (done once already). */
async function npmStart(build: boolean): Promise<NpmStart> {
  const marker = randomUUID();
  const args = build ? ['start'] : ['start', '--ignore-scripts'];
  const npm = startProcess(NPM, args, {
    cwd: REPO,
    env: {
      ...process.env,
      DATABASE_URL: pgUrl(APP_DATABASE),
      LISTEN_PORT: '0',
      METRICS_PORT: '0',
      UNIX_SOCKET_DIR: '',
      PGMUX_TEST_MARKER: marker,
    },
  });
  await waitFor(() => /"msg":"pgmux listening"/.test(npm.stdout()) || !npm.running(), 'pgmux listening under npm start', 120_000);
  const line = npm.stdout().split('\n').find((l) => l.includes('"msg":"pgmux listening"'));
  expect(line, npm.output()).toBeDefined();
  const port = (JSON.parse(line as string) as { port: number }).port;
  expect(pgmuxPids(marker)).toHaveLength(1);
  return { npm, marker, port };
}

async function expectGone(started: NpmStart, withinMs: number): Promise<void> {
  await waitFor(() => pgmuxPids(started.marker).length === 0, 'node dist/src/main.js to exit', withinMs);
  expect(await canConnect(started.port)).toBe(false);
}

describe('the pgmux command', () => {
  it('runs as npx pgmux from the checkout (--help, --version)', async () => {
    const help = await runProcess('npx', ['--no-install', 'pgmux', '--help'], { cwd: REPO, timeoutMs: 60_000 });
    expect(help.code, help.output).toBe(0);
    expect(help.stdout).toMatch(/^Usage: pgmux \[options\]/);
    expect(help.stdout).toContain('pgmux import PGBOUNCER_INI');
    const version = await runProcess('npx', ['--no-install', 'pgmux', '--version'], { cwd: REPO, timeoutMs: 60_000 });
    expect(version.stdout.trim()).toMatch(/^pgmux \d+\.\d+\.\d+$/);
  });

  it('is a package that npm pack builds and npm install -g installs, whose pgmux runs', async () => {
    const out = mkdtempSync(path.join(tmpdir(), 'pgmux-pack-'));
    const pack = await runProcess(NPM, ['pack', '--pack-destination', out, '--silent'], { cwd: REPO, timeoutMs: 180_000 });
    expect(pack.code, pack.output).toBe(0);
    const tarball = path.join(out, pack.stdout.trim().split('\n').at(-1) as string);
    expect(existsSync(tarball)).toBe(true);
    const prefix = path.join(out, 'global');
    const install = await runProcess(NPM, ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: out, timeoutMs: 180_000 });
    expect(install.code, install.output).toBe(0);
    const bin = path.join(prefix, 'bin', 'pgmux');
    const help = await runProcess(bin, ['--help'], { cwd: out, timeoutMs: 30_000 });
    expect(help.code, help.output).toBe(0);
    expect(help.stdout).toMatch(/^Usage: pgmux/);
    // It runs, serves, and converts a pgbouncer.ini: the package holds everything it needs.
    const started = startProcess(bin, [], { cwd: out, env: { ...process.env, DATABASE_URL: pgUrl(APP_DATABASE), LISTEN_PORT: '0', METRICS_PORT: '0', UNIX_SOCKET_DIR: '' } });
    try {
      await waitFor(() => /"msg":"pgmux listening"/.test(started.stdout()) || !started.running(), 'installed pgmux listening', 30_000);
      expect(started.stdout(), started.output()).toMatch(/"msg":"pgmux listening"/);
    } finally {
      await started.stop('SIGTERM');
    }
  }, 400_000);
});

describe('npm start', () => {
  it('builds, serves DATABASE_URL, and stops when npm gets SIGTERM', async () => {
    const s = await npmStart(true);
    s.npm.child.kill('SIGTERM');
    await expectGone(s, 10_000);
    await s.npm.exited;
  }, 200_000);

  it('drains once on Ctrl-C, which reaches pgmux from the terminal and from npm at the same moment', async () => {
    const s = await npmStart(false);
    const [pid] = pgmuxPids(s.marker);
    // A terminal's Ctrl-C goes to the whole foreground process group: npm and pgmux both get SIGINT.
    s.npm.child.kill('SIGINT');
    process.kill(pid, 'SIGINT');
    await expectGone(s, 10_000);
    await s.npm.exited;
    const out = s.npm.stdout();
    expect(out).toContain('"msg":"signal received: draining"');
    expect(out).toContain('"msg":"pgmux stopped"');
    expect(out).not.toContain('second signal');
  }, 60_000);

  it('stops when npm is killed outright (SIGKILL: nothing is passed on), instead of living on holding the port', async () => {
    const s = await npmStart(false);
    s.npm.child.kill('SIGKILL');
    await sleep(100);
    await expectGone(s, 10_000);
  }, 60_000);
});
