/**
 * A simple Query destroys the unnamed statement before it does anything else, even one pgmux answers itself
 * (DEALLOCATE, DISCARD ALL with nothing in flight). Compared with a direct connection (differential fuzzer,
 * seed 6060611: `DEALLOCATE q0` answered by pgmux left the unnamed statement, and a later Describe of it
 * succeeded where PostgreSQL says 26000).
 */
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, dropTestDatabase, pgInfo } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { TRUST_ROLE } from './harness/roles.js';
import { normalise, WireClient } from './harness/wire-client.js';

let db: string;
let px: TestPgmux;

beforeAll(async () => {
  db = await createTestDatabase('unnamed_stmt');
  px = await startPgmux({ settings: { pool_mode: 'transaction', default_pool_size: 2, auth_type: 'trust' }, databases: { [db]: { dbname: db } } });
});

afterAll(async () => {
  await px?.stop();
  if (db !== undefined) await dropTestDatabase(db);
});

const PREPARE_UNNAMED = [serialize.parse({ name: '', text: 'select $1::int + 1 as v', types: [] }), serialize.sync()];
const USE_UNNAMED = [serialize.describe({ type: 'S', name: '' }), serialize.bind({ statement: '', values: ['41'] }), serialize.execute({}), serialize.sync()];

async function converse(port: number, query: string): Promise<string[][]> {
  const { client } = await WireClient.login(port, { user: TRUST_ROLE.name, database: db });
  try {
    return [normalise(await client.request(PREPARE_UNNAMED)), normalise(await client.request(query)), normalise(await client.request(USE_UNNAMED))];
  } finally {
    client.destroy();
  }
}

it.each(['DEALLOCATE q0', 'DEALLOCATE ALL', 'DISCARD ALL', 'select 1'])('after %s the unnamed statement is gone, as directly', async (query) => {
  const direct = await converse(pgInfo().port, query);
  expect(direct[2].join(' ')).toContain('26000');
  expect(await converse(px.port, query)).toEqual(direct);
});

// Differential fuzzer, seed 90921: an unnamed statement that SETs, Parsed in one transaction and run by a Bind in a
// later one. pgmux noted the SET only at the Parse (it had not run then), so the server went back to the pool with
// the client's search_path on it, and the next client of that server ran with it.
it('a SET in the unnamed statement, run by a Bind in a later transaction, stays with its client', async () => {
  const pool1 = await startPgmux({ settings: { pool_mode: 'transaction', default_pool_size: 1, auth_type: 'trust' }, databases: { [db]: { dbname: db } } });
  try {
    const showPath = 'show search_path';
    const run = async (port: number): Promise<{ setter: string[][]; other: string[] }> => {
      const setter = (await WireClient.login(port, { user: TRUST_ROLE.name, database: db })).client;
      const other = (await WireClient.login(port, { user: TRUST_ROLE.name, database: db })).client;
      try {
        const answers = [
          normalise(await setter.request([serialize.parse({ name: '', text: 'set search_path to pg_catalog', types: [] }), serialize.sync()])),
          normalise(await setter.request([serialize.bind({ statement: '' }), serialize.execute({}), serialize.sync()])),
        ];
        // The other client takes the only server in between; then each says what it has.
        const otherPath = normalise(await other.request(showPath));
        answers.push(normalise(await setter.request(showPath)));
        return { setter: answers, other: otherPath };
      } finally {
        setter.destroy();
        other.destroy();
      }
    };
    const direct = await run(pgInfo().port);
    expect(direct.setter[2].join(' ')).toContain('pg_catalog');
    expect(direct.other.join(' ')).not.toContain('pg_catalog');
    expect(await run(pool1.port)).toEqual(direct);
  } finally {
    await pool1.stop();
  }
});
