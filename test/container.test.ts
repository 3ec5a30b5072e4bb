/**
 * The container setup, without a Docker engine: Dockerfile and docker-compose.yml are parsed, and what they say is
 * run for real against the test cluster.
 *
 * - The build is the Dockerfile's (`tsc -p tsconfig.build.json`, into a temp directory laid out like the image's
 *   /app: dist/, package.json, node_modules). Difference from the image: node_modules there is the repo's, dev
 *   dependencies included; the image installs production dependencies only.
 * - pgmux runs the Dockerfile's CMD exactly, from that directory, with the Dockerfile's ENV plus the compose
 *   pgmux service's environment. The only changes: DATABASE_URL's host:port points at the test cluster, and
 *   LISTEN_PORT/METRICS_PORT are free ports (the container's would clash on a shared machine).
 * - The compose postgres service is stood in for by the test cluster, given the role and database its
 *   POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB name; the bench service's command runs (pgbench from the
 *   cluster's binaries) against pgmux; the HEALTHCHECK command runs against the pgmux it started.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { adminClient, pgInfo } from './harness/context.js';
import { freePort } from './harness/postgres.js';
import { runProcess, startProcess, waitListening, type ChildProc } from './harness/process.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// ---- Dockerfile --------------------------------------------------------------------------------------------------

interface Instruction {
  keyword: string;
  args: string;
}

interface Stage {
  from: string;
  name: string | undefined;
  instructions: Instruction[];
}

/** Splits a Dockerfile into stages of instructions (comments dropped, `\` continuations joined). */
function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let current = '';
  for (const line of text.split('\n')) {
    if (/^\s*#/.test(line) && current === '') continue;
    if (/^\s*#/.test(line)) continue; // a comment inside a continued instruction
    if (line.trimEnd().endsWith('\\')) {
      current += `${line.trimEnd().slice(0, -1)} `;
      continue;
    }
    current += line;
    if (current.trim() !== '') logical.push(current.trim());
    current = '';
  }
  const stages: Stage[] = [];
  for (const entry of logical) {
    const m = /^(\S+)\s+([\s\S]*)$/.exec(entry);
    if (m === null) throw new Error(`cannot read Dockerfile line: ${entry}`);
    const keyword = m[1].toUpperCase();
    if (keyword === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(m[2].trim());
      stages.push({ from: from?.[1] ?? m[2], name: from?.[2], instructions: [] });
    } else {
      if (stages.length === 0) throw new Error(`instruction before FROM: ${entry}`);
      stages[stages.length - 1].instructions.push({ keyword, args: m[2].trim() });
    }
  }
  return stages;
}

function exec(args: string): string[] {
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) throw new Error(`not an exec-form array: ${args}`);
  return parsed;
}

/** ENV K=V K2="V 2" ... (the key=value form only). */
function parseEnv(args: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("([^"]*)"|\S*)/g)) env[m[1]] = m[3] ?? m[2];
  return env;
}

// ---- docker-compose.yml ------------------------------------------------------------------------------------------

interface ComposeService {
  image?: string;
  build?: unknown;
  environment?: Record<string, string> | string[];
  command?: string | string[];
  depends_on?: Record<string, { condition?: string }> | string[];
  healthcheck?: { test?: unknown };
  volumes?: unknown;
  stop_grace_period?: string;
}

function environment(service: ComposeService): Record<string, string> {
  const env = service.environment ?? {};
  if (Array.isArray(env)) return Object.fromEntries(env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
}

/** Compose interpolates `$VAR` from the host when it reads the file; `$$` is a literal `$`. */
function composeUnescape(text: string): string {
  if (/\$(?!\$)[A-Za-z{]/.test(text.replaceAll('$$', ''))) throw new Error(`compose would interpolate a variable in: ${text}`);
  return text.replaceAll('$$', '$');
}

// ---- processes ----------------------------------------------------------------------------------------------------

/** The environment a container gets: only what the image and compose give it (plus PATH and HOME). */
function containerEnv(vars: Record<string, string>, home: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, ...vars };
}

// ---- the tests ---------------------------------------------------------------------------------------------------

const stages = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
const runtime = stages[stages.length - 1];
const compose = parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, ComposeService> };
const composeText = readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8');

function instruction(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((i) => i.keyword === keyword);
}

const cmd = exec(instruction(runtime, 'CMD').at(-1)?.args ?? '[]');
const healthcheckArgs = instruction(runtime, 'HEALTHCHECK').at(-1)?.args ?? '';
const healthcheck = exec(healthcheckArgs.replace(/^(--\S+\s+)*CMD\s+/, ''));

describe('Dockerfile', () => {
  it('builds in one stage and runs from a slim image with production dependencies and dist/ only', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const build = stages[0];
    expect(build.name).toBeDefined();
    const buildRuns = instruction(build, 'RUN').map((i) => i.args);
    expect(buildRuns.some((r) => /^npm ci\b/.test(r) && !r.includes('--omit=dev'))).toBe(true);
    expect(buildRuns).toContain('npm run build');

    // The maintained LTS line (Node 20 is end of life), in both stages; a digest pin (@sha256:...) is allowed.
    for (const stage of stages) expect(stage.from).toMatch(/^node:22(\.\S*)?-(bookworm-)?slim(@sha256:[0-9a-f]{64})?$/);
    const runs = instruction(runtime, 'RUN').map((i) => i.args);
    expect(runs.some((r) => /^npm ci --omit=dev\b/.test(r))).toBe(true);
    const copies = instruction(runtime, 'COPY').map((i) => i.args);
    expect(copies).toContain(`--from=${build.name} /app/dist ./dist`);
    // Nothing else from the source tree: no src/, and no config file that would define databases or users.
    for (const copy of copies) expect(copy.split(/\s+/).slice(0, -1).filter((s) => !s.startsWith('--'))).not.toContain('config');
    expect(copies.every((c) => c.startsWith('--from=') || /^package(-lock)?\.json/.test(c))).toBe(true);
  });

  it('runs as a non-root user, exposes the client and metrics ports, stops with SIGTERM', () => {
    const user = instruction(runtime, 'USER').at(-1)?.args;
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
    expect(instruction(runtime, 'EXPOSE').flatMap((i) => i.args.split(/\s+/))).toEqual(expect.arrayContaining(['6543', '9127']));
    expect(instruction(runtime, 'STOPSIGNAL').at(-1)?.args).toBe('SIGTERM');
    // node is PID 1 and handles SIGTERM itself (see the Dockerfile's comment): no init wrapper in front of it.
    expect(cmd[0]).toBe('node');
    expect(instruction(runtime, 'ENTRYPOINT')).toEqual([]);
  });

  it('CMD is the npm start command, and the HEALTHCHECK is node fetching /healthz on the metrics port', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    // npm start execs it (so npm's signals reach node itself, not a shell between them).
    expect(`exec ${cmd.join(' ')}`).toBe(pkg.scripts.start);
    expect(healthcheck.slice(0, 2)).toEqual(['node', '-e']);
    expect(healthcheck[2]).toContain('/healthz');
    expect(healthcheck[2]).toContain('process.env.METRICS_PORT || 9127');
  });
});

describe('docker-compose.yml', () => {
  it('starts postgres, then pgmux, then the bench job, each once the one before is healthy', () => {
    const { postgres, pgmux, bench } = compose.services;
    expect(postgres.image).toBe('postgres:16');
    expect(postgres.healthcheck?.test).toBeDefined();
    expect(pgmux.build).toBe('.');
    expect(pgmux.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    expect(bench.depends_on).toEqual({ pgmux: { condition: 'service_healthy' } });
    // service_healthy on pgmux needs a health check: the image's, unless compose gives one.
    if (pgmux.healthcheck === undefined) expect(healthcheck.length).toBeGreaterThan(0);
    expect(pgmux.stop_grace_period).toBeDefined();
  });

  it('configures pgmux from its environment only, and the bench job talks to pgmux only', () => {
    const { pgmux, bench } = compose.services;
    expect(pgmux.volumes).toBeUndefined();
    expect(pgmux.command).toBeUndefined();
    const env = environment(pgmux);
    expect(env.PGMUX_CONFIG).toBeUndefined();
    expect(new URL(env.DATABASE_URL).host).toBe('postgres:5432');
    expect(new URL(environment(bench).DATABASE_URL).host).toBe('pgmux:6543');
    expect(JSON.stringify(bench.command)).not.toMatch(/postgres:5432/);
  });

  it('shows a Prometheus scrape of pgmux:9127 (commented out)', () => {
    expect(composeText).toMatch(/^\s*#\s*-\s*targets:\s*\["pgmux:9127"\]/m);
    expect(composeText).toMatch(/^\s*#\s*prometheus:/m);
  });
});

describe('the compose setup, run outside Docker', () => {
  let appDir: string;
  let pgmux: ChildProc;
  let listenPort: number;
  let metricsPort: number;
  let env: NodeJS.ProcessEnv;
  let pgmuxEnv: Record<string, string>;
  let dbUser: string;
  let dbName: string;
  let dbPassword: string;
  const info = () => pgInfo();

  beforeAll(async () => {
    // 1. The build stage: compile into a directory laid out like the image's /app.
    appDir = mkdtempSync(path.join(tmpdir(), 'pgmux-container-'));
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const build = await runProcess(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', path.join(appDir, 'dist')], { cwd: ROOT, timeoutMs: 120_000 });
    // Another change in flight elsewhere in the tree may not typecheck; tsc still emits, and that is what runs.
    if (!existsSync(path.join(appDir, 'dist', 'src', 'main.js'))) throw new Error(`build failed:\n${build.output}`);
    copyFileSync(path.join(ROOT, 'package.json'), path.join(appDir, 'package.json'));
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(appDir, 'node_modules'), 'dir');

    // 2. The postgres service: its role and database, in the test cluster.
    const pgEnv = environment(compose.services.postgres);
    [dbUser, dbPassword, dbName] = [pgEnv.POSTGRES_USER, pgEnv.POSTGRES_PASSWORD, pgEnv.POSTGRES_DB];
    const admin = await adminClient();
    try {
      const role = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [dbUser]);
      if (role.rowCount === 0) await admin.query(`CREATE ROLE ${admin.escapeIdentifier(dbUser)} LOGIN PASSWORD ${admin.escapeLiteral(dbPassword)}`);
      const db = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [dbName]);
      if (db.rowCount === 0) await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(dbName)} OWNER ${admin.escapeIdentifier(dbUser)}`);
    } finally {
      await admin.end();
    }

    // 3. The pgmux service: image ENV + compose environment; host and ports rewritten, nothing else.
    listenPort = await freePort();
    metricsPort = await freePort();
    const imageEnv = Object.assign({}, ...instruction(runtime, 'ENV').map((i) => parseEnv(i.args))) as Record<string, string>;
    pgmuxEnv = { ...imageEnv, ...environment(compose.services.pgmux) };
    const url = new URL(pgmuxEnv.DATABASE_URL);
    url.hostname = info().host;
    url.port = String(info().port);
    pgmuxEnv.DATABASE_URL = url.toString();
    pgmuxEnv.LISTEN_PORT = String(listenPort);
    pgmuxEnv.METRICS_PORT = String(metricsPort);
    env = containerEnv(pgmuxEnv, appDir);

    // 4. docker run: the CMD, from /app.
    expect(cmd[0]).toBe('node');
    pgmux = startProcess(process.execPath, cmd.slice(1), { cwd: appDir, env });
    await waitListening(pgmux, listenPort);
  }, 180_000);

  afterAll(async () => {
    await pgmux?.stop('SIGKILL');
  });

  it('accepts the DATABASE_URL credentials and serves queries (node-postgres)', async () => {
    const client = new pg.Client({ host: '127.0.0.1', port: listenPort, user: dbUser, password: dbPassword, database: dbName });
    await client.connect();
    try {
      const r = await client.query<{ u: string; d: string; n: number }>('select current_user as u, current_database() as d, $1::int * 2 as n', [21]);
      expect(r.rows).toEqual([{ u: dbUser, d: dbName, n: 42 }]);
      // The compose environment took effect.
      expect(pgmuxEnv.POOL_MODE).toBe('transaction');
    } finally {
      await client.end();
    }
    const bad = new pg.Client({ host: '127.0.0.1', port: listenPort, user: dbUser, password: 'not-it', database: dbName });
    await expect(bad.connect()).rejects.toMatchObject({ code: '28P01' });
    await bad.end().catch(() => undefined);
  });

  it('passes its own HEALTHCHECK command; the same command fails when nothing serves /healthz', async () => {
    const ok = await runProcess(process.execPath, healthcheck.slice(1), { cwd: appDir, env, timeoutMs: 15_000 });
    expect(ok.output).toBe('');
    expect(ok.code).toBe(0);

    const nothing = await freePort();
    const failing = await runProcess(process.execPath, healthcheck.slice(1), { cwd: appDir, env: { ...env, METRICS_PORT: String(nothing) }, timeoutMs: 15_000 });
    expect(failing.code).toBe(1);

    // The path is one pgmux serves (not merely "some 200"): another path gets 404.
    const res = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
    expect(res.status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/no-such-path`)).status).toBe(404);
  });

  it('runs the bench service (pgbench -i, then 20 clients with -M prepared) through pgmux, within its pool', async () => {
    const bench = compose.services.bench;
    const command = Array.isArray(bench.command) ? bench.command.map(composeUnescape) : ['sh', '-c', composeUnescape(bench.command ?? '')];
    const benchUrl = new URL(environment(bench).DATABASE_URL);
    benchUrl.hostname = '127.0.0.1';
    benchUrl.port = String(listenPort);
    const benchEnv = containerEnv({ DATABASE_URL: benchUrl.toString(), PGCONNECT_TIMEOUT: '10' }, appDir);
    benchEnv.PATH = `${info().binDir}:${benchEnv.PATH}`;

    const result = await runProcess(command[0], command.slice(1), { cwd: appDir, env: benchEnv, timeoutMs: 120_000 });
    expect(result.code, result.output).toBe(0);
    const processed = /number of transactions actually processed: (\d+)\/(\d+)/.exec(result.output);
    expect(processed, result.output).not.toBeNull();
    expect(processed?.[1]).toBe(processed?.[2]);
    expect(Number(processed?.[1])).toBeGreaterThan(0);
    expect(result.output).not.toMatch(/number of failed transactions: [1-9]/);

    // Postgres saw no more connections from pgmux than DEFAULT_POOL_SIZE.
    const admin = await adminClient();
    try {
      const r = await admin.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1', [dbUser]);
      expect(r.rows[0].n).toBeGreaterThan(0);
      expect(r.rows[0].n).toBeLessThanOrEqual(Number(pgmuxEnv.DEFAULT_POOL_SIZE));
    } finally {
      await admin.end();
    }
  }, 150_000);

  it('docker stop: SIGTERM drains and exits 0', async () => {
    pgmux.child.kill('SIGTERM');
    const { code } = await pgmux.exited;
    expect(code, pgmux.output()).toBe(0);
    // Logs are JSON lines on stdout, and never contain the password.
    expect(pgmux.output()).not.toContain(dbPassword);
    expect(pgmux.output()).toMatch(/"msg":"pgmux stopped"/);
  });
});
