/**
 * Child processes for the regression runner: commands that run to completion (`runCommand`, `mustRun`) and
 * long-running ones (`startChild`: postgres, pgmux, pg_regress) that die with this process and are tracked so
 * that an interrupted run leaves nothing behind.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** Numeric ids to run a child as (spawn's uid/gid); undefined means this process's own user. */
export interface RunAs {
  readonly uid: number;
  readonly gid: number;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface CommandResult extends ExitStatus {
  /** stdout and stderr interleaved as they arrived. */
  output: string;
}

export interface CommandOptions {
  cwd?: string;
  /** The child's whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  user?: RunAs;
  /** Also write the output to this process's stdout as it arrives (long installs and builds). */
  echo?: boolean;
  /** SIGKILL the command after this long (then `signal` is SIGKILL). */
  timeoutMs?: number;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The first executable named `name` on PATH, or undefined. */
export function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    if (dir === '') continue;
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function runCommand(file: string, args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.user === undefined ? {} : { uid: options.user.uid, gid: options.user.gid }),
    });
    let output = '';
    const onData = (chunk: string): void => {
      output += chunk;
      if (options.echo === true) process.stdout.write(chunk);
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    child.stderr.setEncoding('utf8').on('data', onData);
    const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output });
    });
  });
}

/** Runs a command and returns its output; throws with the output when it does not exit 0. */
export async function mustRun(file: string, args: readonly string[], options: CommandOptions = {}): Promise<string> {
  const result = await runCommand(file, args, options);
  if (result.code !== 0) {
    const tail = result.output.split('\n').slice(-30).join('\n');
    throw new Error(`${path.basename(file)} ${args.join(' ')} failed (${result.code ?? result.signal}):\n${tail}`);
  }
  return result.output;
}

// ---------------------------------------------------------------------------------------------------------------
// Long-running children

export interface Child {
  readonly process: ChildProcess;
  readonly pid: number;
  /** Settles when the child has exited and its pipes are closed. */
  readonly exited: Promise<ExitStatus>;
  /** Undefined while it runs. */
  exitStatus(): ExitStatus | undefined;
  /** Sends `signal` (to the whole process group when started with `group`). */
  signal(signal: NodeJS.Signals): void;
  /** Sends `signal`, waits up to `graceMs`, then SIGKILLs; resolves once it has exited. */
  stop(signal: NodeJS.Signals, graceMs: number): Promise<ExitStatus>;
}

export interface ChildOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  user?: RunAs;
  /** Where stdout and stderr go: a file descriptor, or 'pipe' to read `process.stdout`/`stderr`. */
  output: number | 'pipe';
  /** Its own process group (so `signal` reaches the processes it starts, e.g. pg_regress's psql). */
  group?: boolean;
}

const live = new Set<Child>();
const tempDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort (an uncaught error, a signal, process.exit): nothing we started may outlive us.
  process.on('exit', () => {
    for (const child of live) {
      try {
        child.signal('SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const dir of tempDirs) {
      try {
        fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
      } catch {
        // best effort: a dying backend may still hold files
      }
    }
  });
}

/** Removes `dir` when this process exits, unless `forgetTempDir` is called first. */
export function removeAtExit(dir: string): void {
  installExitHook();
  tempDirs.add(dir);
}

export function forgetTempDir(dir: string): void {
  tempDirs.delete(dir);
}

let setprivPath: string | null | undefined;
function setpriv(): string | undefined {
  if (setprivPath === undefined) setprivPath = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p)) ?? null;
  return setprivPath ?? undefined;
}

/**
 * Starts a long-running child. Where `setpriv` exists the child is exec'd with a parent-death signal (same pid),
 * so it is SIGKILLed even if this process is SIGKILLed; uid/gid are switched by spawn before setpriv runs.
 */
export function startChild(file: string, args: readonly string[], options: ChildOptions): Child {
  installExitHook();
  const sp = setpriv();
  const [cmd, argv] = sp === undefined ? [file, [...args]] : [sp, ['--pdeathsig', 'KILL', '--', file, ...args]];
  const stdio: StdioOptions = options.output === 'pipe' ? ['ignore', 'pipe', 'pipe'] : ['ignore', options.output, options.output];
  const proc = spawn(cmd, argv, {
    cwd: options.cwd,
    env: options.env,
    stdio,
    detached: options.group === true,
    ...(options.user === undefined ? {} : { uid: options.user.uid, gid: options.user.gid }),
  });
  let status: ExitStatus | undefined;
  const exited = new Promise<ExitStatus>((resolve) => {
    proc.once('error', (err) => {
      status ??= { code: 127, signal: null };
      process.stderr.write(`pg-regress: could not start ${file}: ${err.message}\n`);
      resolve(status);
    });
    proc.once('close', (code, signal) => {
      status ??= { code, signal };
      resolve(status);
    });
  });
  const pid = proc.pid ?? -1;
  const child: Child = {
    process: proc,
    pid,
    exited,
    exitStatus: () => status,
    signal(sig) {
      if (status !== undefined || pid <= 0) return;
      try {
        if (options.group === true) process.kill(-pid, sig);
        else proc.kill(sig);
      } catch {
        // exited meanwhile
      }
    },
    async stop(sig, graceMs) {
      child.signal(sig);
      let timer: NodeJS.Timeout | undefined;
      const done = await Promise.race([
        exited.then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
      ]);
      clearTimeout(timer);
      if (!done) child.signal('SIGKILL');
      const final = await exited;
      // The group may hold processes that outlived their leader (psql started by pg_regress).
      if (options.group === true && pid > 0) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // none left
        }
      }
      return final;
    },
  };
  live.add(child);
  void exited.then(() => live.delete(child));
  return child;
}

/** Stops every child still running (SIGTERM, then SIGKILL after `graceMs`): used on SIGINT/SIGTERM. */
export async function stopAllChildren(graceMs: number): Promise<void> {
  await Promise.all([...live].map((child) => child.stop('SIGTERM', graceMs)));
}

/** An environment with nothing of this process's but PATH, plus `extra`. */
export function cleanEnv(home: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  // LD_LIBRARY_PATH is kept: main sets it when the binaries run are unpacked ones with their own libpq.
  const libraryPath = process.env.LD_LIBRARY_PATH === undefined ? {} : { LD_LIBRARY_PATH: process.env.LD_LIBRARY_PATH };
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, LANG: 'C', ...libraryPath, ...extra };
}
