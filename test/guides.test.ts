/**
 * The guides in docs/guides cannot rot: every configuration snippet tagged for testing is loaded by the real
 * config loader, and where a guide makes a claim about behaviour, it is run.
 *
 * Tags (the word after the fence's language; renderers ignore it):
 *   ```yaml pgmux        a pgmux YAML file            → loadConfig --config
 *   ```sh pgmux-env      KEY=value lines              → loadConfig with that environment
 *   ```ini pgbouncer     a pgbouncer.ini              → loadConfig --pgbouncer-ini
 *   ```python pgmux-test a script run with DATABASE_URL pointing at a pgmux (Debian's /usr/bin/python3)
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { loadConfig, type LoadedConfig } from '../src/config/index.js';
import { createLogger } from '../src/logger.js';
import { Pgmux } from '../src/pgmux.js';
import { watchBackends } from './harness/backends.js';
import { adminClient, createTestDatabase, pgInfo } from './harness/context.js';
import { startPgmux } from './harness/pgmux.js';
import { runProcess } from './harness/process.js';
import { APP_ROLE } from './harness/roles.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const GUIDES = path.join(ROOT, 'docs', 'guides');
const EXPECTED = ['migrating-from-pgbouncer.md', 'prisma.md', 'serverless.md', 'sizing.md', 'sqlalchemy-asyncpg.md', 'supabase-style-stacks.md'];

interface Block {
  guide: string;
  lang: string;
  tag: string;
  text: string;
  line: number;
}

function blocks(guide: string): Block[] {
  const text = readFileSync(path.join(GUIDES, guide), 'utf8');
  const out: Block[] = [];
  for (const m of text.matchAll(/^```(\S+)(?:[ \t]+(\S+))?[ \t]*\n([\s\S]*?)^```[ \t]*$/gm)) {
    out.push({ guide, lang: m[1], tag: m[2] ?? '', text: m[3], line: text.slice(0, m.index).split('\n').length });
  }
  return out;
}

const ALL = EXPECTED.flatMap(blocks);
const tagged = (tag: string) => ALL.filter((b) => b.tag === tag);

function emptyDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'pgmux-guide-'));
}

function loadYaml(block: Block): LoadedConfig {
  const dir = emptyDir();
  writeFileSync(path.join(dir, 'pgmux.yaml'), block.text);
  return loadConfig({ argv: ['--config', 'pgmux.yaml'], env: {}, cwd: dir });
}

function envOf(block: Block): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of block.text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m === null) throw new Error(`${block.guide}:${block.line}: not a KEY=value line: ${line}`);
    env[m[1]] = m[2].replace(/^"(.*)"$/, '$1');
  }
  return env;
}

function loadEnv(block: Block, extra: Record<string, string> = {}, argv: string[] = []): LoadedConfig {
  return loadConfig({ argv, env: { ...envOf(block), ...extra }, cwd: emptyDir() });
}

function loadIni(block: Block): LoadedConfig {
  const dir = emptyDir();
  writeFileSync(path.join(dir, 'pgbouncer.ini'), block.text);
  return loadConfig({ argv: ['--pgbouncer-ini', 'pgbouncer.ini'], env: {}, cwd: dir });
}

describe('the guides', () => {
  it('are all there, linked from the README, and their relative links resolve', () => {
    expect(readdirSync(GUIDES).filter((f) => f.endsWith('.md')).sort()).toEqual(EXPECTED);
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    for (const guide of EXPECTED) expect(readme, guide).toContain(`](docs/guides/${guide})`);
    for (const guide of EXPECTED) {
      const text = readFileSync(path.join(GUIDES, guide), 'utf8');
      for (const m of text.matchAll(/\]\(([^)#:]+)(?:#[^)]*)?\)/g)) {
        expect(existsSync(path.resolve(GUIDES, m[1])), `${guide} links to ${m[1]}`).toBe(true);
      }
    }
  });

  it('each carries at least one snippet that a test runs', () => {
    for (const guide of EXPECTED) {
      expect(ALL.filter((b) => b.guide === guide && b.tag !== '').length, guide).toBeGreaterThan(0);
    }
    expect(ALL.every((b) => ['', 'pgmux', 'pgmux-env', 'pgbouncer', 'pgmux-test'].includes(b.tag))).toBe(true);
  });

  it.each(tagged('pgmux').map((b) => [`${b.guide}:${b.line}`, b] as const))('YAML %s loads', (_name, block) => {
    const { config } = loadYaml(block);
    expect(Object.keys(config.databases).length).toBeGreaterThan(0);
  });

  it.each(tagged('pgmux-env').map((b) => [`${b.guide}:${b.line}`, b] as const))('environment %s loads', (_name, block) => {
    const { config } = loadEnv(block);
    expect(Object.keys(config.databases).length).toBeGreaterThan(0);
  });

  it.each(tagged('pgbouncer').map((b) => [`${b.guide}:${b.line}`, b] as const))('pgbouncer.ini %s loads', (_name, block) => {
    const { config } = loadIni(block);
    expect(Object.keys(config.databases).length).toBeGreaterThan(0);
  });
});

describe('what the guides claim', () => {
  const only = (guide: string, tag: string): Block => {
    const found = ALL.filter((b) => b.guide === guide && b.tag === tag);
    expect(found, `${guide} ${tag}`).toHaveLength(1);
    return found[0];
  };

  it('migrating: the example pgbouncer.ini warns about nothing and names the three ignored settings', () => {
    const { config, notices } = loadIni(only('migrating-from-pgbouncer.md', 'pgbouncer'));
    expect(notices.filter((n) => n.level === 'warn')).toEqual([]);
    expect(notices.map((n) => n.message)).toEqual(['pgbouncer.ini: ignored as meaningless for pgmux: logfile, pidfile, ignore_startup_parameters']);
    expect(config).toMatchObject({ listen_port: 6432, pool_mode: 'transaction', auth_type: 'scram-sha-256', reserve_pool_timeout: 2500, server_idle_timeout: 300_000 });
    expect(config.databases.reporting).toMatchObject({ user: 'report', password: 'rep or7', pool_mode: 'session', dbname: 'analytics' });
    expect(config.databases['*']).toBeDefined();
  });

  it('migrating: the edoburu environment keeps port 5432 and serves any database name', () => {
    const { config } = loadEnv(only('migrating-from-pgbouncer.md', 'pgmux-env'));
    expect(config).toMatchObject({ listen_port: 5432, pool_mode: 'transaction', auth_type: 'md5', max_client_conn: 1000, admin_users: ['postgres'] });
    expect(Object.keys(config.databases)).toEqual(['*']);
    expect(config.users).toEqual({ app: { password: 'secret' } });
  });

  it('sizing: the worked example adds up', () => {
    const { config } = loadYaml(only('sizing.md', 'pgmux'));
    const instances = 2;
    const budget = 200 - 20;
    expect(instances * config.max_db_connections).toBe(budget);
    const api = (config.databases.app.pool_size ?? config.default_pool_size) + config.reserve_pool_size;
    const workers = config.users.worker.max_user_connections ?? 0;
    expect(api + workers).toBe(config.max_db_connections);
    expect(config.max_client_conn).toBeGreaterThanOrEqual(400 + 50);
  });

  it('serverless: 40 short-lived clients at once through the guide\'s settings; Postgres sees at most DEFAULT_POOL_SIZE', async () => {
    const block = only('serverless.md', 'pgmux-env');
    const db = await createTestDatabase('guide_serverless');
    const info = pgInfo();
    // The guide's DATABASE_URL pointed at the test cluster (address, credentials, database); nothing else changed.
    const url = `postgres://${APP_ROLE.name}:${APP_ROLE.password}@${info.host}:${info.port}/${db}`;
    const { config } = loadEnv(block, { DATABASE_URL: url }, ['--set', 'listen_addr=127.0.0.1', '--set', 'listen_port=0', '--set', 'metrics_port=0']);
    const poolSize = Number(envOf(block).DEFAULT_POOL_SIZE);
    expect(config.default_pool_size).toBe(poolSize);
    mkdirSync(path.join(ROOT, '.tmp', 'logs'), { recursive: true });
    const log = createLogger('warn', pino.destination({ dest: path.join(ROOT, '.tmp', 'logs', `guides-${process.pid}.log`), sync: false, mkdir: true }));
    const pgmux = new Pgmux(config, log);
    const { port } = await pgmux.start();
    const admin = await adminClient();
    const watch = watchBackends(admin, { database: db }, 10);
    let peak = 0;
    try {
      const invocations = Array.from({ length: 40 }, async (_, i) => {
        // A function instance: one connection (pool max 1), one request, gone.
        const pool = new pg.Pool({ host: '127.0.0.1', port, user: APP_ROLE.name, password: APP_ROLE.password, database: db, max: 1 });
        try {
          const r = await pool.query<{ n: number }>('select $1::int as n, pg_sleep(0.2)', [i]);
          return r.rows[0].n;
        } finally {
          await pool.end();
        }
      });
      expect((await Promise.all(invocations)).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    } finally {
      peak = await watch.stop();
      await admin.end();
      await pgmux.stop(1000);
    }
    expect(peak).toBeGreaterThan(1);
    expect(peak).toBeLessThanOrEqual(poolSize);
  }, 60_000);

  it('sqlalchemy-asyncpg: the guide\'s script runs through pgmux (pool of 3, 10 workers) with both statement caches on', async () => {
    const block = only('sqlalchemy-asyncpg.md', 'pgmux-test');
    const db = await createTestDatabase('guide_asyncpg');
    const px = await startPgmux({
      settings: { pool_mode: 'transaction', default_pool_size: 3 },
      databases: { [db]: {} },
      users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
    });
    try {
      const result = await runProcess('/usr/bin/python3', ['-c', block.text], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', DATABASE_URL: px.url(db, APP_ROLE.name, APP_ROLE.password) },
        timeoutMs: 50_000,
      });
      expect(result.output.trim(), result.output).toBe('ok');
      expect(result.code).toBe(0);
    } finally {
      await px.stop();
    }
  }, 60_000);
});
