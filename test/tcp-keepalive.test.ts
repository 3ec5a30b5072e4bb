/**
 * tcp_keepalive / tcp_keepidle on both sides, read back from the kernel with `ss -o` (the socket's keepalive timer):
 * a client socket pgmux accepted and the server socket it opened start their first probe after tcp_keepidle.
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pgInfo } from './harness/context.js';
import { startPgmux, transactionPool, type TestPgmux } from './harness/pgmux.js';
import { runProcess } from './harness/process.js';
import { APP_DATABASE, TRUST_ROLE } from './harness/roles.js';
import { waitFor } from './harness/wait.js';

let px: TestPgmux;

beforeAll(async () => {
  px = await startPgmux({ settings: transactionPool(1, { tcp_keepidle: '125s', unix_socket_dir: '' }), databases: { [APP_DATABASE]: { dbname: APP_DATABASE } } });
});

afterAll(async () => {
  await px?.stop();
});

/** Seconds left on the keepalive timer of each established socket whose local or remote port is `port`, per side. */
async function keepaliveTimers(filter: string): Promise<number[]> {
  const r = await runProcess('ss', ['-tnoH', 'state', 'established', ...filter.split(' ')], { timeoutMs: 10_000 });
  expect(r.code, r.stderr).toBe(0);
  // ss prints a timer as "2min4sec", "114min" or "59sec" (and under a second "6.508ms").
  return [...r.stdout.matchAll(/timer:\(keepalive,(?:(\d+)min)?(?:(\d+)sec)?(?:([\d.]+)ms)?,/g)].map(
    (m) => Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0) + Number(m[3] ?? 0) / 1000,
  );
}

it('starts keepalive probes after tcp_keepidle on client and server sockets', async () => {
  const client = new pg.Client({ host: '127.0.0.1', port: px.port, user: TRUST_ROLE.name, database: APP_DATABASE });
  await client.connect();
  try {
    await client.query('select 1'); // a server connection is open now, idle in the pool
    // While data is unacknowledged the socket shows its retransmit timer instead: wait for the keepalive one.
    let accepted: number[] = [];
    await waitFor(async () => (accepted = await keepaliveTimers(`( sport = :${px.port} )`)).length === 1, 'the keepalive timer of the accepted socket');
    // Above the 60 s default, at most tcp_keepidle.
    expect(accepted[0]).toBeGreaterThan(60);
    expect(accepted[0]).toBeLessThanOrEqual(125);
    let upstream: number[] = [];
    await waitFor(async () => (upstream = await keepaliveTimers(`( dport = :${pgInfo().port} )`)).some((s) => s > 60), 'a server socket with the keepalive timer');
    // Other tests' servers run at the same time (with the 60 s default); this pgmux's has the longer timer.
    expect(upstream.some((s) => s > 60 && s <= 125), String(upstream)).toBe(true);
  } finally {
    await client.end();
  }
});
