/** Loopback ports: a free one to listen on, and whether something accepts connections on one. */
import net from 'node:net';

/** A loopback port that was free a moment ago: the test harness's own. */
export { freePort } from '../../test/harness/postgres.js';

export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
