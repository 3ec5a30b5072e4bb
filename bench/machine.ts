/** What the benchmark ran on, recorded with the results. */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { effectiveNofile } from './proc.js';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  postgres: string;
  pgbench: string;
  /** Debian's PgBouncer. */
  pgbouncer: string | null;
  /** PgBouncer 1.25 (absent in results written before it was a target). */
  pgbouncer125?: string | null;
  pgmux: string | null;
  /** Open-files limit the poolers and client tools ran with. */
  nofile: number;
}

function firstLine(file: string, args: string[]): string {
  try {
    return execFileSync(file, args, { encoding: 'utf8' }).split('\n')[0].trim();
  } catch {
    return 'unknown';
  }
}

export function machineInfo(binDir: string, versions: { pgbouncer: string | null; pgbouncer125: string | null; pgmux: string | null }): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    postgres: firstLine(path.join(binDir, 'postgres'), ['--version']),
    pgbench: firstLine(path.join(binDir, 'pgbench'), ['--version']),
    pgbouncer: versions.pgbouncer,
    pgbouncer125: versions.pgbouncer125,
    pgmux: versions.pgmux,
    nofile: effectiveNofile(),
  };
}
