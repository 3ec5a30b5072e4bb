/**
 * Child processes in tests: one that runs to completion (`runProcess`: psql, pgbench, tsc, a guide's script), one
 * that keeps running (`startProcess`: pgmux itself), and the environment libpq tools get (`libpqEnv`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { sleep } from './wait.js';

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Date.now() when the process had exited and its pipes were closed. */
  at: number;
}

export interface ChildProc {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** stdout and stderr interleaved as they arrived. */
  output(): string;
  /** False once the process has exited (its last output may still be in the pipes). */
  running(): boolean;
  /** Settles when the process has exited and stdout/stderr are closed; rejects if it could not be started. */
  readonly exited: Promise<ExitStatus>;
  /** Sends `signal` if it is still running, then waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<ExitStatus>;
}

export interface ProcessOptions {
  cwd?: string;
  /** The child's whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

/** Children still running: killed when this process exits, so none outlives a test run or a stopped long run. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function killOnExit(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of running) c.kill('SIGKILL');
  });
}

/**
 * For long runs stopped with a signal (Ctrl-C, kill, timeout): exit normally, so the exit hooks stop the children
 * (pgmux here, PostgreSQL in postgres.ts) instead of leaving them running.
 */
export function exitOnSignals(): void {
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) process.once(signal, () => process.exit(code));
}

export function startProcess(file: string, args: readonly string[], options: ProcessOptions = {}): ChildProc {
  const child = spawn(file, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  killOnExit(child);
  let stdout = '';
  let stderr = '';
  let output = '';
  let done = false;
  // Decoded as a stream, so a character split between two chunks stays whole.
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    output += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    output += chunk;
  });
  child.once('exit', () => (done = true));
  const exited = new Promise<ExitStatus>((resolve, reject) => {
    child.once('error', (err) => {
      done = true;
      reject(err);
    });
    // 'close' comes after 'exit' once the pipes are drained, so the last lines are in stdout().
    child.once('close', (code, signal) => resolve({ code, signal, at: Date.now() }));
  });
  exited.catch(() => undefined); // a spawn failure is reported to whoever awaits `exited`, never as unhandled
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    output: () => output,
    running: () => !done,
    exited,
    async stop(signal = 'SIGTERM') {
      if (!done) child.kill(signal);
      return exited;
    },
  };
}

export interface RunResult {
  /** null when the process was killed (by the timeout, for one: then `signal` is SIGKILL). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved as they arrived. */
  output: string;
}

/**
 * Runs a process to completion; SIGKILLs it after `timeoutMs`. Never rejects for a non-zero exit: look at `code`
 * and `output`. Rejects only if it could not be started.
 */
export async function runProcess(file: string, args: readonly string[], options: ProcessOptions & { timeoutMs: number }): Promise<RunResult> {
  const proc = startProcess(file, args, options);
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), options.timeoutMs);
  try {
    const { code, signal } = await proc.exited;
    return { code, signal, stdout: proc.stdout(), stderr: proc.stderr(), output: proc.output() };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * This process's environment for a libpq tool (psql, pgbench): without any PG* variable of the caller, which
 * could point it elsewhere, and with PGCONNECT_TIMEOUT=10 so a connection that hangs fails instead. `password`
 * becomes PGPASSWORD; `home` replaces HOME (an empty directory keeps ~/.pgpass and ~/.postgresql out of it).
 */
export function libpqEnv(options: { password?: string; home?: string } = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  env.PGCONNECT_TIMEOUT = '10';
  if (options.password !== undefined) env.PGPASSWORD = options.password;
  if (options.home !== undefined) env.HOME = options.home;
  return env;
}

/** Whether something accepts TCP connections on 127.0.0.1:port right now. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Polls until the process accepts TCP connections on `port`; fails at once, with its output, if it exits first. */
export async function waitListening(proc: ChildProc, port: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!proc.running()) throw new Error(`the process exited before listening on ${port}:\n${proc.output()}`);
    if (await canConnect(port)) return;
    await sleep(100);
  }
  throw new Error(`nothing listening on ${port} after ${timeoutMs} ms:\n${proc.output()}`);
}

/**
 * Waits until `text` appears in the process's output (a log line can reach the pipe after the port already
 * accepts connections); fails at once, with the output, if the process exits first.
 */
export async function waitForOutput(proc: ChildProc, text: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!proc.output().includes(text)) {
    if (!proc.running()) throw new Error(`the process exited before writing "${text}":\n${proc.output()}`);
    if (Date.now() > deadline) throw new Error(`no "${text}" in the output after ${timeoutMs} ms:\n${proc.output()}`);
    await sleep(50);
  }
}
