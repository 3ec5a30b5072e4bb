/**
 * The `options` startup parameter as users get it wrong (`options=statement_timeout=5s` without `-c`, `-c name`
 * without a value, a stray word, a switch PostgreSQL does not have), and right: each login through pgmux ends as
 * the same login directly to PostgreSQL ends, after authentication, with the same SQLSTATE, message and hint, or
 * logs in with the same settings. libpq passes `options` through unchanged (PGOPTIONS, `?options=` in a URL).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, pgInfo } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { APP_ROLE } from './harness/roles.js';
import { dataRowValues, WireClient } from './harness/wire-client.js';

let px: TestPgmux;
let db: string;

beforeAll(async () => {
  db = await createTestDatabase('startup_options');
  px = await startPgmux({
    settings: { default_pool_size: 2, auth_type: 'scram-sha-256', log_connections: false, log_disconnections: false },
    databases: { [db]: { dbname: db } },
    users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
  });
});

afterAll(async () => px?.stop());

/** How a login with `options` ends: the FATAL's fields, or the settings a logged-in session then has. */
async function outcome(port: number, options: string): Promise<string> {
  try {
    const { client } = await WireClient.login(port, { user: APP_ROLE.name, database: db, options }, APP_ROLE.password, 10_000);
    try {
      const answer = await client.request("select current_setting('work_mem'), current_setting('DateStyle'), current_setting('statement_timeout')");
      return `in: ${JSON.stringify(answer.filter((m) => m.code === 'D').map((m) => dataRowValues(m.body)))}`;
    } finally {
      client.destroy();
    }
  } catch (err) {
    // WireClient.login throws with the ErrorResponse's fields; the location fields (F, L, R) are PostgreSQL's own.
    const m = /(\{.*\})/.exec((err as Error).message);
    if (m === null) throw err;
    const f = JSON.parse(m[1]) as Record<string, string>;
    return `refused: ${f.S} ${f.C} ${f.M}${f.H === undefined ? '' : ` (hint: ${f.H})`}`;
  }
}

describe('options in the startup packet', () => {
  const cases = [
    // Mistakes.
    'statement_timeout=5s',
    '-c statement_timeout',
    '-cstatement_timeoutL5s',
    '--statement_timeout',
    '-c =5',
    '-c work_mem=2MB -c',
    '-X',
    '-t zz',
    '-Px',
    '-c work_mem=2MB first second',
    '-c work_mem=2MB -- -c statement_timeout=5s',
    '-',
    // Right.
    '-c statement_timeout=5s',
    '-cwork_mem=2MB --statement-timeout=7s',
    '-c DateStyle=German -c work_mem=3MB',
    '-e',
    '-S 2048',
    '-B 100',
    '-F',
    '-i',
    '-s',
    '-tpa',
    '-S 2048 -c work_mem=5MB',
    '-c statement_timeout=5s --',
  ];
  it.each(cases)('%j: the login ends as it does directly', async (options) => {
    const direct = await outcome(pgInfo().port, options);
    expect(await outcome(px.port, options)).toBe(direct);
  });

  it('a refused login says why, after authentication, as PostgreSQL does', async () => {
    expect(await outcome(px.port, 'statement_timeout=5s')).toBe(
      'refused: FATAL 42601 invalid command-line argument for server process: statement_timeout=5s (hint: Try "postgres --help" for more information.)',
    );
  });
});
