/**
 * Standalone idle-memory measurement of pgmux (the `idle-memory` scenario of bench/run.ts, outside the runner), with
 * the JS heap besides RSS, so a change to what an idle client holds can be measured on its own:
 *
 *   npx tsx bench/idle-memory-driver.ts [--clients 2000,10000] [--auth scram-sha-256|trust] [--query SQL]... [--extended SQL]...
 *     [--snapshot [--detail]] [--floor] [--settle MS] [--node-args=--flag,...] [--no-build] [--build-dir DIR]
 *
 * For each client count: Postgres (test/harness/postgres.ts), pgmux built from this checkout with tsc into
 * node_modules/.cache (dist/ is left alone) and run as its own process as bench/pgmux-process.ts runs it (same
 * settings: transaction mode, pool 20, no TLS, logging off), its pool filled, then `clients` idle logged-in clients
 * (bench/conn-worker.ts). RSS is read from /proc after a settle as the bench reads it (no GC forced); then a
 * preloaded probe is signalled (SIGUSR2) to collect garbage and report process.memoryUsage() and, with
 * --snapshot, to write a heap snapshot, summarised here by constructor: what each idle client retains.
 * With --snapshot the RSS figures after the clients include what writing the first snapshot left resident: read RSS
 * from runs without it. --floor also measures a bare Node.js server holding the same number of idle sockets (the
 * runtime's own floor). --query / --extended make clients that ran statements first (opened in this process).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { freePort, startPostgres } from '../test/harness/postgres.js';
import { APP_DATABASE, APP_ROLE } from '../test/harness/roles.js';
import { openIdleClients, runStormClients, type IdleClients, type LoginTarget } from './connections.js';
import { BenchConnection, deriveLoginKeys } from './pg-client.js';
import { benchConfig } from './pgmux-process.js';
import { cleanEnv, rssBytes, runCommand, sleep, stopChild, wrapCommand } from './proc.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Where pgmux is compiled to; --build-dir (with --no-build) runs an earlier build, to compare against it. */
let buildDir = path.join(ROOT, 'node_modules', '.cache', 'pgmux-idle-memory');
const entry = (): string => path.join(buildDir, 'src', 'main.js');
/** As bench/idle-memory.ts waits before each reading; --settle changes the wait after the clients logged in. */
const SETTLE_MS = 2000;
let settleAfterMs = SETTLE_MS;
/**
 * --query / --extended: each client runs these statements once before it goes idle (clients opened in this process),
 * with the simple protocol or as an unnamed statement (Parse, Bind, Describe, Execute, Sync).
 */
let warmQueries: Array<{ sql: string; extended: boolean }> = [];

/** --node-args: extra node flags for the measured processes, space-separated (--node-args=--max-semi-space-size=8). */
let nodeArgs: string[] = [];
const LOGIN_CONCURRENCY = 200;
/** --detail: group heap snapshot nodes by what retains them too. */
let DETAIL = false;

/** Loaded into the measured process with --import: on SIGUSR2, collect garbage, report memory, maybe snapshot. */
const PROBE = `
import fs from 'node:fs';
import v8 from 'node:v8';
process.on('SIGUSR2', () => {
  const out = process.env.IDLE_PROBE_OUT;
  globalThis.gc(); globalThis.gc();
  const usage = process.memoryUsage();
  const heap = v8.getHeapStatistics();
  const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]));
  let snapshot = null;
  const dir = process.env.IDLE_PROBE_SNAPSHOT_DIR;
  if (dir) snapshot = v8.writeHeapSnapshot(dir + '/' + Date.now() + '.heapsnapshot');
  fs.writeFileSync(out + '.tmp', JSON.stringify({ ...usage, usedHeapSize: heap.used_heap_size, spaces, snapshot }));
  fs.renameSync(out + '.tmp', out);
});`;

interface ProbeReading {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  /** v8.getHeapSpaceStatistics(): size and used bytes per space. */
  spaces: Record<string, { size: number; used: number }>;
  snapshot: string | null;
}

interface Measured {
  /** RSS as the bench reads it, after a settle, no GC forced. */
  rss: number;
  probe: ProbeReading;
  /** Resident bytes by kind of mapping (/proc/PID/smaps), read after the probe's GC. */
  mappings: Map<string, number>;
}

/**
 * Resident memory by kind of mapping: the malloc heap ([heap]), anonymous mappings by size class (V8 pages are 256 KiB
 * chunks and larger spaces; glibc's per-thread malloc arenas are 64 MiB reservations, touched in part), stacks, files.
 */
function residentByMapping(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let kind = '';
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head !== null) {
      const size = (parseInt(head[2], 16) - parseInt(head[1], 16)) / 1024;
      const name = head[3];
      if (name === '') kind = size >= 65536 ? 'anon ≥64 MiB (malloc arenas, V8 reservations)' : size >= 1024 ? 'anon 1-64 MiB' : 'anon < 1 MiB';
      else if (name.startsWith('[')) kind = name;
      else kind = 'files';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss !== null) out.set(kind, (out.get(kind) ?? 0) + Number(rss[1]) * 1024);
  }
  return out;
}

function log(line: string): void {
  process.stderr.write(`[idle-memory] ${line}\n`);
}

async function build(): Promise<void> {
  log(`compiling pgmux into ${path.relative(ROOT, buildDir)}`);
  const result = await runCommand('npx', ['tsc', '-p', 'tsconfig.build.json', '--outDir', buildDir, '--sourceMap', 'false'], {
    cwd: ROOT,
    env: { ...process.env },
    timeoutMs: 300_000,
  });
  if (result.code !== 0) throw new Error(`tsc failed:\n${result.stdout}\n${result.stderr}`);
}

/** A measured Node.js process, started with the probe and its fd limit raised. */
class Probed {
  private constructor(
    readonly proc: ChildProcess,
    /** Where the probe writes its reading. */
    private readonly outFile: string,
  ) {}

  static start(args: string[], dir: string, snapshots: boolean, cwd: string, logFile: string): Probed {
    const probeFile = path.join(dir, 'probe.json');
    const out = fs.openSync(logFile, 'a');
    const [file, wrapped] = wrapCommand(process.execPath, [...nodeArgs, '--expose-gc', `--import=data:text/javascript,${encodeURIComponent(PROBE)}`, ...args]);
    const env = cleanEnv({ NODE_ENV: 'production', IDLE_PROBE_OUT: probeFile, ...(snapshots ? { IDLE_PROBE_SNAPSHOT_DIR: dir } : {}) });
    const proc = spawn(file, wrapped, { cwd, env, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    return new Probed(proc, probeFile);
  }

  async read(): Promise<Measured> {
    const rss = rssBytes(this.proc.pid as number);
    await fsp.rm(this.outFile, { force: true });
    this.proc.kill('SIGUSR2');
    const deadline = Date.now() + 300_000;
    while (!fs.existsSync(this.outFile)) {
      if (Date.now() > deadline) throw new Error('the probe did not answer');
      await sleep(100);
    }
    const probe = JSON.parse(await fsp.readFile(this.outFile, 'utf8')) as ProbeReading;
    return { rss, probe, mappings: residentByMapping(this.proc.pid as number) };
  }
}

async function waitForPort(port: number, proc: ChildProcess): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (proc.exitCode !== null) throw new Error('the process exited during startup');
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`nothing listens on ${port}`);
}

// ---- clients that run a query first ---------------------------------------------------------------------------

function message(code: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const header = Buffer.alloc(5);
  header.write(code, 0, 'latin1');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

function extendedQuery(sql: string): Buffer {
  const z = Buffer.from([0]);
  const int16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
  return Buffer.concat([
    message('P', z, Buffer.from(`${sql}\0`), int16(0)),
    message('B', z, z, int16(0), int16(0), int16(0)),
    message('D', Buffer.from('P'), z),
    message('E', z, Buffer.alloc(4)),
    message('S'),
  ]);
}

/**
 * Clients that run `warmQueries` once and then stay idle, opened in this process (conn-worker.ts opens clients that
 * never send a query): what a client of an application's connection pool holds between its transactions.
 */
async function openUsedClients(target: LoginTarget, clients: number): Promise<IdleClients> {
  const keys = deriveLoginKeys(target.password, target.verifier);
  const open: BenchConnection[] = [];
  const errors: Record<string, number> = {};
  const t0 = performance.now();
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < clients) {
      next++;
      try {
        const conn = await BenchConnection.open({ ...target, keys, timeoutMs: 120_000 });
        open.push(conn);
        for (const q of warmQueries) await (q.extended ? conn.send(extendedQuery(q.sql)) : conn.query(q.sql));
      } catch (err) {
        const key = (err as Error).message.slice(0, 160);
        errors[key] = (errors[key] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(LOGIN_CONCURRENCY, clients) }, lane));
  const failed = Object.values(errors).reduce((a, b) => a + b, 0);
  return {
    outcome: { event: 'ready', clients, connected: open.length, failed, wallMs: performance.now() - t0, errors },
    async close() {
      for (let i = 0; i < open.length; i += 1000) await Promise.all(open.slice(i, i + 1000).map((c) => c.close()));
    },
  };
}

// ---- heap snapshot summary -------------------------------------------------------------------------------------

interface Summary {
  /** By "type:name": [count, self bytes]. */
  groups: Map<string, [number, number]>;
  total: number;
}

async function summarise(file: string): Promise<Summary> {
  const snap = JSON.parse(await fsp.readFile(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
    nodes: number[];
    edges: number[];
    strings: string[];
  };
  const { node_fields: fields, node_types: nodeTypes, edge_fields: edgeFields, edge_types: edgeTypes } = snap.snapshot.meta;
  const types = nodeTypes[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const edgeCountAt = fields.indexOf('edge_count');
  const edgeWidth = edgeFields.length;
  const edgeTypeAt = edgeFields.indexOf('type');
  const edgeNameAt = edgeFields.indexOf('name_or_index');
  const edgeToAt = edgeFields.indexOf('to_node');
  const nodes = snap.nodes;
  const label = (i: number): string => {
    const type = types[nodes[i + typeAt]];
    let name = type === 'object' || type === 'native' || type === 'closure' || type === 'hidden' || type === 'object shape' || type === 'synthetic' ? snap.strings[nodes[i + nameAt]] : '';
    name = name.replace(/ @?\d+$/, '').slice(0, 50);
    return `${type}:${name}`;
  };
  // The first retainer of each node (by strong edges, weak ones skipped): it names what an array or a context is for.
  const retainer = new Int32Array(nodes.length / width).fill(-1);
  const retainerEdge = new Array<string>(nodes.length / width);
  for (let i = 0, e = 0; i < nodes.length; i += width) {
    const count = nodes[i + edgeCountAt];
    for (let k = 0; k < count; k++, e += edgeWidth) {
      const edgeType = edgeTypes[0][snap.edges[e + edgeTypeAt]];
      if (edgeType === 'weak' || edgeType === 'shortcut') continue;
      const to = snap.edges[e + edgeToAt] / width;
      if (retainer[to] !== -1) continue;
      retainer[to] = i;
      const nameOrIndex = snap.edges[e + edgeNameAt];
      retainerEdge[to] = edgeType === 'element' || edgeType === 'hidden' ? `[${edgeType}]` : String(snap.strings[nameOrIndex]);
    }
  }
  const groups = new Map<string, [number, number]>();
  let total = 0;
  for (let i = 0; i < nodes.length; i += width) {
    let key = label(i);
    const type = types[nodes[i + typeAt]];
    if (DETAIL && (type === 'array' || type === 'hidden' || type === 'closure' || key === 'object:Object' || key === 'object:Array' || key === 'object:Map' || key === 'object:Set' || key === 'object:Buffer' || key === 'object:ArrayBuffer' || type === 'code' || type === 'number' || key === 'object:system / Context' || type === 'native' || type === 'string' || type === 'concatenated string' || type === 'sliced string')) {
      const parent = retainer[i / width];
      if (parent !== -1) key += ` <- ${label(parent)}.${retainerEdge[i / width]}`;
      // An array's backing store: say whose array it is.
      const grand = parent === -1 ? -1 : retainer[parent / width];
      if (grand !== -1 && (label(parent) === 'object:Array' || label(parent).startsWith('object:system / Context'))) key += ` <- ${label(grand)}.${retainerEdge[parent / width]}`;
    }
    const size = nodes[i + sizeAt];
    const g = groups.get(key);
    if (g === undefined) groups.set(key, [1, size]);
    else {
      g[0]++;
      g[1] += size;
    }
    total += size;
  }
  await fsp.rm(file, { force: true });
  return { groups, total };
}

function diffReport(before: Summary, after: Summary, clients: number): string {
  const rows: Array<[string, number, number]> = [];
  for (const [key, [n, size]] of after.groups) {
    const [n0, size0] = before.groups.get(key) ?? [0, 0];
    if (size - size0 > clients * 4 || n - n0 >= clients) rows.push([key, (n - n0) / clients, (size - size0) / clients]);
  }
  rows.sort((a, b) => b[2] - a[2]);
  const lines = rows.slice(0, DETAIL ? 80 : 40).map(([key, n, bytes]) => `  ${bytes.toFixed(1).padStart(8)} B  ${n.toFixed(2).padStart(6)} ×  ${key}`);
  return [`  heap snapshot: ${((after.total - before.total) / clients).toFixed(0)} B per client in all (self sizes)`, ...lines].join('\n');
}

// ---- the measurements ------------------------------------------------------------------------------------------

interface Setup {
  pgPort: number;
  authFile: string;
  /** The same role with its plaintext password, for auth_type trust. */
  plainAuthFile: string;
  verifier: string;
  workDir: string;
}

async function measurePgmux(setup: Setup, clients: number, auth: string, snapshots: boolean): Promise<void> {
  const port = await freePort();
  const dir = await fsp.mkdtemp(path.join(setup.workDir, 'pgmux-'));
  const configFile = path.join(dir, 'pgmux.yaml');
  await fsp.writeFile(
    configFile,
    // trust: no client proof to log in upstream with, so the auth_file holds the password itself.
    stringify(benchConfig(port, auth === 'trust' ? setup.plainAuthFile : setup.authFile, setup.pgPort, APP_DATABASE, { max_client_conn: clients + 1000, auth_type: auth })),
  );
  const pgmux = Probed.start([entry(), '--config', configFile], dir, snapshots, dir, path.join(dir, 'pgmux.log'));
  try {
    await waitForPort(port, pgmux.proc);
    const target: LoginTarget = { host: '127.0.0.1', port, user: APP_ROLE.name, database: APP_DATABASE, password: APP_ROLE.password ?? '', verifier: setup.verifier };
    await runStormClients(target, 20, 'SELECT pg_sleep(0.05)', 30_000); // the pool's 20 servers, as warmPool
    await sleep(SETTLE_MS);
    const before = await pgmux.read();
    const idle = warmQueries.length === 0 ? await openIdleClients(target, clients, LOGIN_CONCURRENCY, 120_000) : await openUsedClients(target, clients);
    try {
      const { connected, failed } = idle.outcome;
      if (failed > 0) log(`${failed} logins failed: ${JSON.stringify(idle.outcome.errors)}`);
      if (connected === 0) throw new Error('no client logged in');
      await sleep(settleAfterMs);
      const after = await pgmux.read();
      report(`pgmux (${auth}), ${connected} idle clients${warmQueries.length > 0 ? ` after ${warmQueries.map((q) => `${q.extended ? 'extended' : 'simple'} ${JSON.stringify(q.sql)}`).join(', ')}` : ''}`, before, after, connected);
      if (before.probe.snapshot !== null && after.probe.snapshot !== null) {
        process.stdout.write(`${diffReport(await summarise(before.probe.snapshot), await summarise(after.probe.snapshot), connected)}\n`);
      }
    } finally {
      await idle.close();
    }
  } finally {
    await stopChild(pgmux.proc);
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/** A bare Node.js server holding `clients` idle sockets, each with one data and one close listener: the floor. */
async function measureFloor(workDir: string, clients: number): Promise<void> {
  const port = await freePort();
  const dir = await fsp.mkdtemp(path.join(workDir, 'floor-'));
  const server = `import net from 'node:net';
const sockets = new Set();
function onData(chunk) { this.write(chunk); }
function onClose() { sockets.delete(this); }
net.createServer({ noDelay: true }, (s) => { sockets.add(s); s.on('data', onData); s.on('close', onClose); }).listen(${port}, '127.0.0.1');`;
  const file = path.join(dir, 'floor.mjs');
  await fsp.writeFile(file, server);
  const floor = Probed.start([file], dir, false, dir, path.join(dir, 'floor.log'));
  const sockets: net.Socket[] = [];
  try {
    await waitForPort(port, floor.proc);
    await sleep(SETTLE_MS);
    const before = await floor.read();
    for (let i = 0; i < clients; i += 200) {
      await Promise.all(
        Array.from({ length: Math.min(200, clients - i) }, () => new Promise<void>((resolve, reject) => {
          const s = net.connect({ host: '127.0.0.1', port });
          sockets.push(s);
          s.once('connect', () => s.write('hello', () => resolve()));
          s.once('error', reject);
        })),
      );
    }
    await sleep(settleAfterMs);
    const after = await floor.read();
    report(`bare Node.js server, ${clients} idle sockets`, before, after, clients);
  } finally {
    for (const s of sockets) s.destroy();
    await stopChild(floor.proc);
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

function spaces(m: Measured): string {
  return Object.entries(m.probe.spaces)
    .filter(([, v]) => v.size > 0)
    .map(([name, v]) => `${name.replace('_space', '')} ${(v.size / 2 ** 20).toFixed(1)}/${(v.used / 2 ** 20).toFixed(1)}`)
    .join(', ');
}

function report(what: string, before: Measured, after: Measured, clients: number): void {
  const per = (a: number, b: number): string => `${((b - a) / clients).toFixed(0)} B`;
  process.stdout.write(
    `${what}:\n` +
      `  RSS (as the bench reads it): ${(before.rss / 2 ** 20).toFixed(1)} → ${(after.rss / 2 ** 20).toFixed(1)} MiB = ${per(before.rss, after.rss)} per client\n` +
      `  after GC: RSS ${per(before.probe.rss, after.probe.rss)}, heapUsed ${per(before.probe.heapUsed, after.probe.heapUsed)}, ` +
      `heapTotal ${per(before.probe.heapTotal, after.probe.heapTotal)}, external ${per(before.probe.external, after.probe.external)}, ` +
      `arrayBuffers ${per(before.probe.arrayBuffers, after.probe.arrayBuffers)} per client\n` +
      `  heap spaces, size/used MiB: before ${spaces(before)}; after ${spaces(after)}\n` +
      `  resident by mapping, MiB before → after: ${[...after.mappings]
        .map(([kind, bytes]) => [kind, before.mappings.get(kind) ?? 0, bytes] as const)
        .filter(([, a, b]) => Math.abs(b - a) > 2 ** 19)
        .map(([kind, a, b]) => `${kind} ${(a / 2 ** 20).toFixed(1)} → ${(b / 2 ** 20).toFixed(1)}`)
        .join(', ')}\n`,
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      clients: { type: 'string', default: '2000,10000' },
      auth: { type: 'string', default: 'scram-sha-256' },
      snapshot: { type: 'boolean', default: false },
      floor: { type: 'boolean', default: false },
      detail: { type: 'boolean', default: false },
      settle: { type: 'string', default: String(SETTLE_MS) },
      'node-args': { type: 'string', default: '' },
      query: { type: 'string', multiple: true, default: [] },
      extended: { type: 'string', multiple: true, default: [] },
      'no-build': { type: 'boolean', default: false },
      'build-dir': { type: 'string' },
    },
  });
  const counts = values.clients.split(',').map(Number);
  DETAIL = values.detail;
  settleAfterMs = Number(values.settle);
  warmQueries = [...values.query.map((sql) => ({ sql, extended: false })), ...values.extended.map((sql) => ({ sql, extended: true }))];
  nodeArgs = values['node-args'].split(' ').filter((a) => a !== '');
  if (values['build-dir'] !== undefined) buildDir = path.resolve(values['build-dir']);
  if (!values['no-build'] || !fs.existsSync(entry())) await build();
  const workDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'pgmux-idle-memory-'));
  const pg = await startPostgres({ name: 'idle-memory', settings: { max_connections: 100 } });
  try {
    const [{ rolpassword: verifier }] = await pg.query<{ rolpassword: string }>('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [APP_ROLE.name]);
    const authFile = path.join(workDir, 'userlist.txt');
    await fsp.writeFile(authFile, `"${APP_ROLE.name}" "${verifier}"\n`, { mode: 0o600 });
    const plainAuthFile = path.join(workDir, 'userlist-plain.txt');
    await fsp.writeFile(plainAuthFile, `"${APP_ROLE.name}" "${APP_ROLE.password ?? ''}"\n`, { mode: 0o600 });
    for (const clients of counts) {
      if (values.floor) await measureFloor(workDir, clients);
      await measurePgmux({ pgPort: pg.port, authFile, plainAuthFile, verifier, workDir }, clients, values.auth, values.snapshot);
    }
  } finally {
    await pg.stop();
    await fsp.rm(workDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
