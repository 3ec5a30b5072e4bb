/**
 * PostgreSQL's JDBC driver (Debian's libpostgresql-jdbc-java, run by the JDK's single-file launcher), used as Java
 * applications use it, through pgmux in transaction mode and directly: the same workload's transcript must be the
 * same both ways (test/drivers/JdbcWorkload.java). 8 threads, half of them with autocommit off, each on its own
 * connection, over a pool of 2 server connections.
 *
 * What pgjdbc does that other drivers do not, and what went wrong through pgmux before:
 * - `setTransactionIsolation` sends SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL ..., a session
 *   setting pgmux did not carry to the next transaction (the next one ran read committed);
 * - every statement goes through the extended protocol, RESET ALL too: inside a transaction (autocommit off) the
 *   statements after it ran with the server's defaults instead of the client's startup values;
 * - its startup packet sets DateStyle, TimeZone (the JVM's), extra_float_digits and application_name, and `options`
 *   carries more; it server-prepares from the fifth execution, batches with one Sync, fetches with a row limit.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgInfo } from './harness/context.js';
import { startDriverPool, type DriverPool } from './harness/driver-pool.js';
import { REPO_ROOT } from './harness/pgmux-process.js';
import { runProcess } from './harness/process.js';
import { APP_ROLE } from './harness/roles.js';

const WORKERS = 8;
const DRIVER = '/usr/share/java/postgresql.jar';
let pool: DriverPool;

beforeAll(async () => {
  pool = await startDriverPool('jdbc_driver', 2);
});

afterAll(async () => pool?.stop());

async function transcript(port: number): Promise<string[]> {
  expect(fs.existsSync(DRIVER), `${DRIVER} (apt-get install libpostgresql-jdbc-java; .ci/run installs it)`).toBe(true);
  const result = await runProcess(
    'java',
    ['-Duser.timezone=Asia/Tokyo', '-cp', DRIVER, path.join(REPO_ROOT, 'test', 'drivers', 'JdbcWorkload.java'), `jdbc:postgresql://127.0.0.1:${port}/${pool.db}`, APP_ROLE.name, APP_ROLE.password as string, String(WORKERS)],
    { timeoutMs: 120_000 },
  );
  expect(result.code, result.output.slice(-3000)).toBe(0);
  const workers = result.stdout.split(/^=== worker \d+\n/m).slice(1);
  expect(workers).toHaveLength(WORKERS);
  for (const w of workers) expect(w, 'a worker died').not.toContain('WORKER DIED');
  return workers;
}

describe('JDBC through pgmux (transaction mode, pool of 2) answers as directly', () => {
  it(`${WORKERS} concurrent connections, half with autocommit off: the same transcript through pgmux as directly`, async () => {
    const viaPgmux = await transcript(pool.px.port);
    await pool.expectPoolShared();
    const direct = await transcript(pgInfo().port);
    for (let i = 0; i < WORKERS; i++) expect(viaPgmux[i].split('\n'), `worker ${i}`).toEqual(direct[i].split('\n'));
    // Not vacuous: what the workload is about happened directly.
    expect(direct[1]).toContain('isolation stays: transaction_isolation:text | serializable');
    expect(direct[1]).toMatch(/reset all: .* \| pg_catalog,public 20001ms Asia\/Tokyo 2/);
    expect(direct[0]).toContain('BATCH ERROR 23505');
  }, 300_000);
});
