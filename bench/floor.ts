/**
 * The floor as a benchmark target: bench/floor-forwarder.ts (a bare Node.js forwarder, no auth, no pooling, no
 * parsing) run as its own process with the same node and NODE_ENV as pgmux, so its CPU time per transaction is
 * the least any Node.js pooler spends on the same traffic. pgmux's CPU per transaction minus the floor's is what
 * pgmux's own code costs.
 *
 * On the bench cluster the floor gets a role of its own, FLOOR_ROLE, a member of the application role (so it reads
 * and writes pgbench's tables), and a trust line for that role alone, put ahead of every other line of pg_hba.conf:
 * `host <database> bench_floor 127.0.0.1/32 trust`. Every other login (direct Postgres, PgBouncer and pgmux logging
 * in to the server as the application role) is checked with SCRAM as before.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import ts from 'typescript';
import { freePort } from '../test/harness/postgres.js';
import type { FloorConfig } from './floor-forwarder.js';
import { cleanEnv, sleep, spawnWrapped } from './proc.js';
import { FLOOR_SPARE, poolerProcess, tail, type PoolerSetup, type Target } from './target.js';
import { TARGET_LABELS } from './target-names.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const FLOOR_ROLE = 'bench_floor';
const HBA_TIMEOUT_MS = 10_000;

function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Creates FLOOR_ROLE with a trust line for it alone; resolves once Postgres has reloaded pg_hba.conf. */
async function trustFloorRole(setup: PoolerSetup): Promise<void> {
  const { pg: cluster } = setup;
  await cluster.psql(`CREATE ROLE ${ident(FLOOR_ROLE)} LOGIN IN ROLE ${ident(setup.user)}`);
  const hbaFile = path.join(cluster.dataDir, 'pg_hba.conf');
  const lines = (await fsp.readFile(hbaFile, 'utf8')).split('\n');
  const firstRule = lines.findIndex((l) => /^\s*(local|host)/.test(l));
  // First match wins: ahead of `host all all ... scram-sha-256`, and naming one database and one role.
  lines.splice(firstRule < 0 ? lines.length : firstRule, 0, '# bench/floor.ts: the floor\'s server connections, this role only', `host ${setup.database} ${FLOOR_ROLE} 127.0.0.1/32 trust`);
  await fsp.writeFile(hbaFile, lines.join('\n'));
  await cluster.query('SELECT pg_reload_conf()');
  // The postmaster reloads on SIGHUP, a moment later: wait until a login without a password works.
  const deadline = Date.now() + HBA_TIMEOUT_MS;
  for (;;) {
    const client = new pg.Client({ host: '127.0.0.1', port: cluster.port, user: FLOOR_ROLE, database: setup.database, connectionTimeoutMillis: 5000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`the trust line for ${FLOOR_ROLE} did not take effect: ${(err as Error).message}`);
      await sleep(100);
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

/** floor-forwarder.ts as JavaScript in `dir` (it imports only node: modules, so the one file is enough). */
async function transpileForwarder(dir: string): Promise<string> {
  const source = await fsp.readFile(path.join(HERE, 'floor-forwarder.ts'), 'utf8');
  const { outputText } = ts.transpileModule(source, {
    fileName: 'floor-forwarder.ts',
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  });
  const file = path.join(dir, 'floor-forwarder.mjs');
  await fsp.writeFile(file, outputText);
  return file;
}

export async function startFloor(setup: PoolerSetup): Promise<Target> {
  await trustFloorRole(setup);
  const port = await freePort();
  const dir = path.join(setup.workDir, 'floor');
  await fsp.mkdir(dir, { recursive: true });
  const script = await transpileForwarder(dir);
  const logFile = path.join(dir, 'floor.log');
  const config: FloorConfig = {
    listenPort: port,
    serverHost: '127.0.0.1',
    serverPort: setup.pg.port,
    user: FLOOR_ROLE,
    database: setup.database,
    spare: FLOOR_SPARE,
  };
  return poolerProcess('floor', TARGET_LABELS.floor, port, `Node.js ${process.version}`, setup, () => {
    const out = fs.openSync(logFile, 'a');
    const proc = spawnWrapped(process.execPath, [script, JSON.stringify(config)], { cwd: dir, env: cleanEnv({ NODE_ENV: 'production' }), stdio: ['ignore', out, out] });
    fs.closeSync(out);
    return { proc, diagnostics: () => tail(logFile) };
  });
}
