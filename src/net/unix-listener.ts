/**
 * The unix-domain socket listener (unix_socket_dir, unix_socket_mode, unix_socket_group), as PgBouncer and
 * PostgreSQL have it: `<dir>/.s.PGSQL.<port>`, the name libpq looks for, so `psql -p 6543 pgbouncer` without `-h`
 * reaches pgmux when the directory is the one the client's libpq was built with.
 */
import { accessSync, chmodSync, chownSync, constants, existsSync, lstatSync, readFileSync, unlinkSync } from 'node:fs';
import net, { type Server, type Socket } from 'node:net';
import path from 'node:path';

/** unix_socket_dir's default: Debian's libpq looks in the first; /tmp is where other builds look. */
export const AUTO_SOCKET_DIR = 'auto';
const AUTO_CANDIDATES = ['/var/run/postgresql', '/tmp'];

/** The directory the socket goes in: null when unix_socket_dir is empty (no socket). */
export function socketDirectory(setting: string): string | null {
  if (setting === '') return null;
  if (setting !== AUTO_SOCKET_DIR) return setting;
  for (const dir of AUTO_CANDIDATES) {
    try {
      accessSync(dir, constants.W_OK | constants.X_OK);
      return dir;
    } catch {
      // not there or not writable: the next one
    }
  }
  return null;
}

/** PostgreSQL's socket file name for a port. */
export function socketPath(dir: string, port: number): string {
  return path.join(dir, `.s.PGSQL.${port}`);
}

/** unix_socket_mode: octal as PgBouncer writes it ("0777", "777", or YAML's number 777). Returns the mode bits. */
export function parseSocketMode(text: string): number | null {
  const m = /^(?:0o?)?([0-7]{1,4})$/i.exec(text.trim());
  return m === null ? null : parseInt(m[1], 8);
}

/** A group name (from /etc/group) or a numeric gid; null when there is no such group. */
export function groupId(group: string, groupFile = '/etc/group'): number | null {
  if (/^\d+$/.test(group)) return Number(group);
  let text: string;
  try {
    text = readFileSync(groupFile, 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return null;
}

export class UnixListenError extends Error {}

/** Is something accepting connections on this socket file? (A file left by a process that died is not.) */
function inUse(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(file);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

export interface UnixListenOptions {
  dir: string;
  port: number;
  mode: number;
  group: string;
  onConnection: (socket: Socket) => void;
}

/** Listens on `<dir>/.s.PGSQL.<port>`, replacing a stale socket file; closing the server removes the file. */
export async function listenUnix(options: UnixListenOptions): Promise<{ server: Server; path: string }> {
  const file = socketPath(options.dir, options.port);
  if (existsSync(file)) {
    if (!lstatSync(file).isSocket()) throw new UnixListenError(`${file} exists and is not a socket (unix_socket_dir)`);
    if (await inUse(file)) throw new UnixListenError(`another process is listening on ${file} (unix_socket_dir, listen_port)`);
    unlinkSync(file); // left by a process that did not close it (killed)
  }
  const gid = options.group === '' ? null : groupId(options.group);
  if (gid === null && options.group !== '') throw new UnixListenError(`unix_socket_group: no group named "${options.group}"`);
  const server = net.createServer({ noDelay: true }, options.onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new UnixListenError(`cannot listen on ${file} (unix_socket_dir): ${err.code ?? err.message}`)));
    server.listen({ path: file, backlog: 4096 }, () => resolve());
  });
  server.removeAllListeners('error');
  try {
    chmodSync(file, options.mode);
    if (gid !== null) chownSync(file, -1, gid);
  } catch (err) {
    server.close();
    throw new UnixListenError(`cannot set the mode or group of ${file} (unix_socket_mode, unix_socket_group): ${(err as Error).message}`);
  }
  return { server, path: file };
}
