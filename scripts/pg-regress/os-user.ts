/**
 * The unprivileged OS user that owns the throwaway cluster and runs pg_regress (and so psql). PostgreSQL refuses
 * to run as root, and the server must read the staged test data and write into pg_regress's output directory,
 * so server and client run as the same user, which is also the cluster's bootstrap superuser.
 *
 * As root that is `pgmux-test` (the test harness's user, created on demand); otherwise the current user.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { mustRun, runCommand, type RunAs } from './proc.js';

export const REGRESS_OS_USER = 'pgmux-test';

export interface OsUser {
  readonly name: string;
  /** Ids to spawn children with; undefined when that is this process's own user. */
  readonly ids: RunAs | undefined;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

async function lookup(name: string): Promise<RunAs | undefined> {
  const uid = await runCommand('id', ['-u', name]);
  const gid = await runCommand('id', ['-g', name]);
  if (uid.code !== 0 || gid.code !== 0) return undefined;
  return { uid: Number(uid.output.trim()), gid: Number(gid.output.trim()) };
}

export async function ensureOsUser(): Promise<OsUser> {
  if (!isRoot()) return { name: os.userInfo().username, ids: undefined };
  let ids = await lookup(REGRESS_OS_USER);
  if (ids === undefined) {
    const made = await runCommand('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', REGRESS_OS_USER]);
    ids = await lookup(REGRESS_OS_USER); // another process may have created it meanwhile
    if (ids === undefined) throw new Error(`running as root and could not create OS user ${REGRESS_OS_USER}:\n${made.output}`);
  }
  return { name: REGRESS_OS_USER, ids };
}

/** Gives `target` (and, with `recursive`, everything below it) to the user; a no-op for the current user. */
export async function giveTo(user: OsUser, target: string, recursive = false): Promise<void> {
  if (user.ids === undefined) return;
  if (recursive) {
    await mustRun('chown', ['-R', `${user.ids.uid}:${user.ids.gid}`, target]);
    return;
  }
  await fsp.chown(target, user.ids.uid, user.ids.gid);
}

/** Makes a fresh directory owned by the user (mode 0700), under `parent`. */
export async function makeUserDir(user: OsUser, parent: string, prefix: string): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(parent, prefix));
  await giveTo(user, dir);
  await fsp.chmod(dir, 0o700);
  return dir;
}
