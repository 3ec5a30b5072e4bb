/** Runner side of conn-worker.ts: starts it as a child process (own fd limit, own CPU) and reads its JSON lines. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { IdleOutcome, StormOutcome, WorkerJob } from './conn-worker.js';
import { cleanEnv, exited, wrapCommand } from './proc.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');

/** Where clients log in: a target's port plus the role's credentials. */
export interface LoginTarget {
  host: string;
  port: number;
  user: string;
  database: string;
  password: string;
  verifier: string;
}

function startWorker(job: WorkerJob): { child: ChildProcess; lines: AsyncIterator<string>; stderr: () => string } {
  // Same node as the runner, TypeScript loaded through tsx as for the runner itself.
  const [file, args] = wrapCommand(process.execPath, ['--import', 'tsx', path.join(HERE, 'conn-worker.ts'), JSON.stringify(job)]);
  const child = spawn(file, args, { cwd: ROOT, env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  let errText = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (errText = (errText + s).slice(-4000)));
  const lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return { child, lines, stderr: () => errText };
}

async function nextJson<T>(worker: ReturnType<typeof startWorker>, what: string, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer from the client process after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const next = await Promise.race([worker.lines.next(), timeout]);
    if (next.done === true) throw new Error(`${what}: client process ended without a result: ${worker.stderr().trim() || '(no stderr)'}`);
    return JSON.parse(next.value) as T;
  } finally {
    clearTimeout(timer);
  }
}

/** `clients` connect at once, each runs `query` once; resolves with the worker's measurements. */
export async function runStormClients(target: LoginTarget, clients: number, query: string, timeoutMs: number): Promise<StormOutcome> {
  const worker = startWorker({ mode: 'storm', ...target, clients, query, timeoutMs });
  try {
    return await nextJson<StormOutcome>(worker, 'storm', timeoutMs + 30_000);
  } finally {
    if (worker.child.exitCode === null) worker.child.kill('SIGKILL');
    await exited(worker.child);
  }
}

/** Idle clients held open by a worker until close() is called. */
export interface IdleClients {
  outcome: IdleOutcome;
  close(): Promise<void>;
}

export async function openIdleClients(target: LoginTarget, clients: number, concurrency: number, timeoutMs: number): Promise<IdleClients> {
  const worker = startWorker({ mode: 'idle', ...target, clients, concurrency, timeoutMs });
  const kill = async (): Promise<void> => {
    if (worker.child.exitCode === null) worker.child.kill('SIGKILL');
    await exited(worker.child);
  };
  let outcome: IdleOutcome;
  try {
    outcome = await nextJson<IdleOutcome>(worker, 'idle clients', Math.max(timeoutMs, 10 * 60_000));
  } catch (err) {
    await kill();
    throw err;
  }
  return {
    outcome,
    async close() {
      worker.child.stdin?.end('close\n');
      try {
        await nextJson<{ event: string }>(worker, 'closing idle clients', 120_000);
      } finally {
        await kill();
      }
    },
  };
}
