/**
 * Processes for the benchmark: spawning with a raised open-files limit, running tools to completion, and reading
 * CPU time and memory of running processes from /proc.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';

/** Open files wanted for poolers and client tools: 10,000 idle clients need 10,000 sockets plus some. */
export const WANTED_NOFILE = 65536;

/**
 * Wraps a command so it runs with `ulimit -n` raised to WANTED_NOFILE, or to the hard limit when that is lower
 * (raising the hard limit needs CAP_SYS_RESOURCE, which containers often lack). `exec` keeps the pid, so the pid
 * of the returned child is the pid of `file` itself, which is what /proc is read for.
 * With `parentDeath`, the command is also started through `setpriv --pdeathsig KILL` so it dies with this process.
 */
export function wrapCommand(file: string, args: readonly string[], parentDeath = true): [string, string[]] {
  const setpriv = parentDeath ? setprivPath() : undefined;
  const execLine = setpriv === undefined ? 'exec "$0" "$@"' : `exec ${setpriv} --pdeathsig KILL -- "$0" "$@"`;
  const script = `ulimit -n ${WANTED_NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; ${execLine}`;
  return ['/bin/bash', ['-c', script, file, ...args]];
}

let setprivCache: string | null | undefined;
function setprivPath(): string | undefined {
  if (setprivCache === undefined) setprivCache = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p)) ?? null;
  return setprivCache ?? undefined;
}

/** The open-files limit a wrapped command gets (what `ulimit -n` prints after raising it). */
export function effectiveNofile(): number {
  const [file, args] = wrapCommand('/bin/bash', ['-c', 'ulimit -n'], false);
  return Number(execFileSync(file, args, { encoding: 'utf8' }).trim());
}

/** Environment without the caller's PG* variables and without anything that could configure pgmux. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', LANG: 'C', LC_ALL: 'C' };
  return { ...env, ...extra };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command (through wrapCommand) to completion, collecting its output; SIGKILLs it after `timeoutMs`. */
export function runCommand(file: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const [wrapped, wrappedArgs] = wrapCommand(file, args);
  return new Promise((resolve, reject) => {
    const child = spawn(wrapped, wrappedArgs, { env: opts.env ?? cleanEnv(), cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Spawns a long-running wrapped command; see wrapCommand. */
export function spawnWrapped(file: string, args: readonly string[], opts: SpawnOptions): ChildProcess {
  const [wrapped, wrappedArgs] = wrapCommand(file, args);
  return spawn(wrapped, wrappedArgs, opts);
}

/** Resolves when the child exits (at once if it already has). */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([exited(child), new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
  clearTimeout(timer);
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await exited(child);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// /proc

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

interface ProcStat {
  ppid: number;
  /** utime + stime, µs. */
  cpuUs: number;
  /** cutime + cstime (children waited for), µs. */
  childCpuUs: number;
}

/** Parses /proc/<pid>/stat; undefined when the process is gone. */
export function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); field n is rest[n - 3].
  const us = 1e6 / clockTicks();
  return {
    ppid: Number(rest[1]),
    cpuUs: (Number(rest[11]) + Number(rest[12])) * us,
    childCpuUs: (Number(rest[13]) + Number(rest[14])) * us,
  };
}

/** CPU time (user + system, µs) a process has used so far, all its threads included. */
export function processCpuUs(pid: number): number {
  return procStat(pid)?.cpuUs ?? Number.NaN;
}

/**
 * CPU time (µs) of a process tree one level deep: the process, its live children, and the children it has
 * already reaped (cutime/cstime). For the postmaster this is every backend, including ones that have exited.
 */
export function treeCpuUs(pid: number): number {
  const root = procStat(pid);
  if (root === undefined) return Number.NaN;
  let total = root.cpuUs + root.childCpuUs;
  for (const name of fs.readdirSync('/proc')) {
    const child = Number(name);
    if (!Number.isInteger(child) || child === pid) continue;
    const stat = procStat(child);
    if (stat !== undefined && stat.ppid === pid) total += stat.cpuUs;
  }
  return total;
}

/** Resident set size in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return match === null ? Number.NaN : Number(match[1]) * 1024;
  } catch {
    return Number.NaN;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
