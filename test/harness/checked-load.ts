/**
 * Bystanders that check what they see: clients of the same pool running a query in a loop and comparing each
 * answer with what that client must get (its own user, its own settings). A pooler that leaks one client's
 * session state into a server another client then gets is caught by them, not only by the client under test.
 */
import type pg from 'pg';

export interface CheckedLoadOptions {
  /** How many clients (default 6). */
  clients?: number;
  /** Pause between a client's queries, in ms (default 2): keeps the servers busy without spinning the CPU. */
  pauseMs?: number;
  /** What each runs in a loop (simple query protocol). */
  sql: string;
  /**
   * What client `index` must get: the rows, as node-postgres returns them (arrays of text, rowMode 'array').
   * Default: whatever the first run of `sql` on that client returned.
   */
  expected?: (index: number) => unknown[][];
}

export interface CheckedLoad {
  /** Answers that differed from the expected ones (at most 20 kept), and errors. */
  readonly problems: string[];
  /** Stops the loops, ends the clients, returns how many queries ran. */
  stop(): Promise<number>;
}

const RAW_TEXT = { getTypeParser: () => (v: string) => v };

export async function startCheckedLoad(connect: (index: number) => Promise<pg.Client>, options: CheckedLoadOptions): Promise<CheckedLoad> {
  const count = options.clients ?? 6;
  const pauseMs = options.pauseMs ?? 2;
  const clients = await Promise.all(Array.from({ length: count }, (_, i) => connect(i)));
  const run = async (client: pg.Client): Promise<unknown[][]> => (await client.query({ text: options.sql, rowMode: 'array', types: RAW_TEXT })).rows as unknown[][];
  const expected = await Promise.all(clients.map(async (c, i) => (options.expected ? options.expected(i) : run(c))));
  const problems: string[] = [];
  let running = true;
  let queries = 0;
  const loops = clients.map(async (client, i) => {
    while (running) {
      try {
        const rows = await run(client);
        queries++;
        const want = JSON.stringify(expected[i]);
        const got = JSON.stringify(rows);
        if (got !== want && problems.length < 20) problems.push(`bystander ${i}: expected ${want}, got ${got}`);
        if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
      } catch (err) {
        if (problems.length < 20) problems.push(`bystander ${i}: ${(err as { code?: string }).code ?? ''} ${(err as Error).message}`);
        return;
      }
    }
  });
  return {
    problems,
    async stop() {
      running = false;
      await Promise.all(loops);
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      return queries;
    },
  };
}
