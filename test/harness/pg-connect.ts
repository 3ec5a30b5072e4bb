/**
 * A connected node-postgres client whose 'error' events are ignored (a server lost, pgmux shutting down: the
 * caller sees failures in the queries it awaits), ended again if the connect fails. No vitest import: the soak
 * script uses it outside the test runner.
 */
import pg from 'pg';

export async function connectQuietly(config: pg.ClientConfig): Promise<pg.Client> {
  const client = new pg.Client(config);
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  return client;
}
