/**
 * Hostile and broken input before (and just after) login, over raw sockets: pgmux answers with
 * the error PostgreSQL would give (or closes), never hangs, never crashes, and every other client
 * keeps working. After each case a normal node-postgres client logs in and runs `select 1`.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loginError as pgLoginError, type PgError } from './harness/clients.js';
import { createTestDatabase } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { APP_ROLE } from './harness/roles.js';
import {
  authKind,
  findError,
  message,
  queryMessage,
  RawConnection,
  scramLogin,
  splitMessages,
  sslRequest,
  startupPacket,
} from './harness/wire.js';

let px: TestPgmux;
let db: string;
const raws: RawConnection[] = [];

beforeAll(async () => {
  db = await createTestDatabase('startup_input');
  px = await startPgmux({
    settings: { default_pool_size: 4 },
    databases: { app: { dbname: db } },
    users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
  });
});

afterEach(() => {
  for (const r of raws.splice(0)) r.destroy();
});

afterAll(async () => {
  await px?.stop();
});

async function raw(port = px.port): Promise<RawConnection> {
  const c = await RawConnection.connect(port);
  raws.push(c);
  return c;
}

/** A normal client still logs in and runs a query through the same pgmux. */
async function expectHealthy(target: TestPgmux = px): Promise<void> {
  const client = new pg.Client({ connectionString: target.url('app', APP_ROLE.name, APP_ROLE.password), connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    const r = await client.query('select 1 as one');
    expect(r.rows).toEqual([{ one: 1 }]);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Connects to px with node-postgres and returns the error the login failed with. */
function loginError(config: pg.ClientConfig): Promise<PgError> {
  return pgLoginError({ port: px.port, ...config });
}

/** Sends `bytes` on a fresh connection; expects one ErrorResponse with `sqlstate`, then the close. */
async function expectRejected(bytes: Buffer, sqlstate: string): Promise<Record<string, string>> {
  const c = await raw();
  await c.write(bytes);
  await c.untilClosed(5000);
  const { messages, rest } = splitMessages(c.data);
  expect(messages.map((m) => m.code)).toEqual(['E']);
  expect(rest.length).toBe(0);
  const error = findError(c.data) ?? {};
  expect(error.C).toBe(sqlstate);
  expect(error.S).toBe('FATAL');
  expect(error.M).toBeTruthy();
  return error;
}

describe('bad startup packets', () => {
  it('rejects an HTTP request sent to the pooler port', async () => {
    // "GET " read as a length is 1.2 GB: rejected at once, before anything is allocated.
    const error = await expectRejected(Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'), '08P01');
    expect(error.M).toMatch(/invalid length of startup packet/);
    await expectHealthy();
  });

  it('survives random garbage on many connections', async () => {
    const conns = await Promise.all(Array.from({ length: 60 }, () => raw()));
    await Promise.all(
      conns.map(async (c, i) => {
        // Half of them start with a negative length (at least 4 bytes of it): those must be refused at once.
        const garbage = randomBytes((i % 2 === 0 ? 4 : 1) + ((i * 37) % 300));
        if (i % 2 === 0) garbage[0] |= 0x80;
        await c.write(garbage).catch(() => undefined);
        if (i % 2 === 0) await c.untilClosed(5000);
        else await new Promise((r) => setTimeout(r, 100));
      }),
    );
    for (const c of conns) {
      if (c.data.length === 0) continue;
      // Whatever came back is ErrorResponse messages only, never anything else.
      const { messages, rest } = splitMessages(c.data);
      expect(rest.length).toBe(0);
      for (const m of messages) expect(m.code).toBe('E');
      expect(['08P01', '0A000', '28000']).toContain(findError(c.data)?.C);
    }
    for (const [i, c] of conns.entries()) if (i % 2 === 0) expect(findError(c.data)?.C).toBe('08P01');
    await expectHealthy();
  });

  it('rejects a length of 0x7fffffff without waiting for 2 GB', async () => {
    const buf = Buffer.alloc(8);
    buf.writeInt32BE(0x7fffffff, 0);
    buf.writeInt32BE(196608, 4);
    const error = await expectRejected(buf, '08P01');
    expect(error.M).toMatch(/invalid length of startup packet/);
    await expectHealthy();
  });

  it('rejects a length of 3', async () => {
    const buf = Buffer.alloc(4);
    buf.writeInt32BE(3, 0);
    await expectRejected(buf, '08P01');
    await expectHealthy();
  });

  it('refuses protocol version 4.0 with 0A000', async () => {
    const error = await expectRejected(startupPacket({ user: APP_ROLE.name, database: 'app' }, 4 << 16), '0A000');
    expect(error.M).toMatch(/unsupported frontend protocol 4\.0/);
    await expectHealthy();
  });

  it('refuses protocol version 2.0 in the version-2 format, as PostgreSQL does', async () => {
    // PostgreSQL answers in the client's protocol: 'E', the text, a zero, no length (test/startup-fuzz-findings.test.ts
    // compares the bytes with PostgreSQL's).
    const c = await raw();
    await c.write(startupPacket({ user: APP_ROLE.name, database: 'app' }, 2 << 16));
    await c.untilClosed(5000);
    expect(c.data.toString('latin1')).toBe('EFATAL:  unsupported frontend protocol 2.0: server supports 3.0 to 3.0\n\0');
    await expectHealthy();
  });

  it('refuses a startup packet without a user with 28000', async () => {
    const error = await expectRejected(startupPacket({ database: 'app' }), '28000');
    expect(error.M).toMatch(/no PostgreSQL user name/);
    await expectHealthy();
  });

  it('refuses a startup packet whose parameters are not terminated', async () => {
    const good = startupPacket({ user: APP_ROLE.name, database: 'app' });
    const bad = Buffer.from(good);
    // The last value's zero replaced by a letter: the list runs to the end. (A letter in the final terminator's
    // place is taken as the terminator, as PostgreSQL takes it: test/startup-fuzz-findings.test.ts.)
    bad[bad.length - 2] = 0x41;
    const error = await expectRejected(bad, '08P01');
    expect(error.M).toBe('invalid startup packet layout: expected terminator as last byte');
    await expectHealthy();
  });
});

describe('odd but legal startup input', () => {
  it('accepts a startup packet written one byte at a time', async () => {
    const c = await raw();
    const packet = startupPacket({ user: APP_ROLE.name, database: 'app', application_name: 'byte-by-byte' });
    for (const byte of packet) {
      await c.write(Buffer.from([byte]));
      await new Promise((r) => setImmediate(r));
    }
    await scramLogin(c, APP_ROLE.password as string);
    await expectHealthy();
  });

  it('accepts a startup packet of exactly 10000 bytes and refuses one of 10001', async () => {
    const base = startupPacket({ user: APP_ROLE.name, database: 'app', application_name: '' }).length;
    const exact = startupPacket({ user: APP_ROLE.name, database: 'app', application_name: 'x'.repeat(10000 - base) });
    expect(exact.length).toBe(10000);
    const c = await raw();
    await c.write(exact);
    const sasl = await c.untilMessage('R', 5000);
    expect(authKind(sasl)).toBe(10);

    const tooLong = startupPacket({ user: APP_ROLE.name, database: 'app', application_name: 'x'.repeat(10001 - base) });
    expect(tooLong.length).toBe(10001);
    await expectRejected(tooLong, '08P01');
    await expectHealthy();
  });

  it('closes a CancelRequest with an unknown key without an answer', async () => {
    const c = await raw();
    const cancel = Buffer.alloc(16);
    cancel.writeInt32BE(16, 0);
    cancel.writeInt32BE(80877102, 4);
    cancel.writeInt32BE(12345, 8);
    cancel.writeInt32BE(67890, 12);
    await c.write(cancel);
    await c.untilClosed(5000);
    expect(c.data.length).toBe(0);
    await expectHealthy();
  });

  it('refuses a replication connection with 0A000', async () => {
    await expectRejected(startupPacket({ user: APP_ROLE.name, database: 'app', replication: 'database' }), '0A000');
    await expectHealthy();
  });
});

describe('SSLRequest', () => {
  it("answers 'N' and then accepts a normal startup on the same socket", async () => {
    const c = await raw();
    await c.write(sslRequest());
    await c.until((x) => x.data.length >= 1 || x.closed, 5000, "the SSL answer");
    expect(c.take(1).toString('latin1')).toBe('N');
    expect(c.data.length).toBe(0);
    await c.write(startupPacket({ user: APP_ROLE.name, database: 'app', application_name: 'raw-after-ssl' }));
    await scramLogin(c, APP_ROLE.password as string);
    const before = c.messages.length;
    await c.write(queryMessage('select 40 + 2 as answer'));
    await c.untilMessage('Z', 5000, 2);
    const reply = c.messages.slice(before);
    expect(reply.map((m) => m.code)).toEqual(['T', 'D', 'C', 'Z']);
    const row = reply[1].body;
    // DataRow: Int16 column count, Int32 length, text value.
    expect(row.readInt16BE(0)).toBe(1);
    expect(row.toString('utf8', 6, 6 + row.readInt32BE(2))).toBe('42');
    await c.write(message('X'));
    await c.untilClosed(5000);
    await expectHealthy();
  });

  it('rejects bytes sent in the same write as the SSLRequest (08P01, closed, no hang)', async () => {
    const c = await raw();
    await c.write(Buffer.concat([sslRequest(), startupPacket({ user: APP_ROLE.name, database: 'app' })]));
    await c.untilClosed(5000);
    // No 'N': an answer would let the client think the queued bytes were read as plaintext after it.
    expect(c.data[0]).toBe('E'.charCodeAt(0));
    expect(findError(c.data)?.C).toBe('08P01');
    expect(splitMessages(c.data).messages.map((m) => m.code)).toEqual(['E']);
    await expectHealthy();
  });

  it("answers a GSSENCRequest with 'N' too, then accepts a startup", async () => {
    const c = await raw();
    const gss = Buffer.alloc(8);
    gss.writeInt32BE(8, 0);
    gss.writeInt32BE(80877104, 4);
    await c.write(gss);
    await c.until((x) => x.data.length >= 1 || x.closed, 5000, 'the GSSENC answer');
    expect(c.take(1).toString('latin1')).toBe('N');
    await c.write(startupPacket({ user: APP_ROLE.name, database: 'app' }));
    await scramLogin(c, APP_ROLE.password as string);
    await expectHealthy();
  });
});

describe('authentication failures', () => {
  it('refuses a wrong password with 28P01', async () => {
    const err = await loginError({ user: APP_ROLE.name, password: 'not-the-password', database: 'app' });
    expect(err.code).toBe('28P01');
    expect(err.message).toBe(`password authentication failed for user "${APP_ROLE.name}"`);
    await expectHealthy();
  });

  it('refuses an unknown user exactly like a wrong password (no user enumeration)', async () => {
    const err = await loginError({ user: 'no_such_user', password: 'whatever', database: 'app' });
    expect(err.code).toBe('28P01');
    expect(err.message).toBe('password authentication failed for user "no_such_user"');
    expect(err.severity).toBe('FATAL');

    // The exchange looks the same too: SASL with the same mechanisms, a server-first message of the same shape.
    const shapes: string[] = [];
    for (const user of [APP_ROLE.name, 'no_such_user']) {
      const c = await raw();
      await c.write(startupPacket({ user, database: 'app' }));
      const sasl = await c.untilMessage('R', 5000);
      expect(authKind(sasl)).toBe(10);
      const initial = Buffer.from('n,,n=,r=abcdefghijklmnopqrstuvwx');
      const len = Buffer.alloc(4);
      len.writeInt32BE(initial.length);
      await c.write(message('p', Buffer.concat([Buffer.from('SCRAM-SHA-256\0'), len, initial])));
      const cont = await c.untilMessage('R', 5000, 2);
      expect(authKind(cont)).toBe(11);
      const serverFirst = cont.body.toString('utf8', 4);
      shapes.push(`${sasl.body.toString('hex')} ${serverFirst.replace(/=[^,]*/g, '=')} i=${/i=(\d+)/.exec(serverFirst)?.[1]}`);
    }
    expect(shapes[1]).toBe(shapes[0]);
    await expectHealthy();
  });

  it('refuses an unknown database with 3D000', async () => {
    const err = await loginError({ user: APP_ROLE.name, password: APP_ROLE.password, database: 'no_such_db' });
    expect(err.code).toBe('3D000');
    expect(err.message).toContain('no_such_db');
    await expectHealthy();
  });
});

describe('malformed authentication messages', () => {
  /** Sends a startup packet, waits for AuthenticationSASL, then sends `bytes`; returns the error and checks the close. */
  async function afterChallenge(bytes: Buffer, user = APP_ROLE.name): Promise<Record<string, string> | undefined> {
    const c = await raw();
    await c.write(startupPacket({ user, database: 'app' }));
    await c.untilMessage('R', 5000);
    await c.write(bytes);
    await c.untilClosed(5000);
    return findError(c.data);
  }

  function saslInitial(mechanism: string, data: Buffer, declared = data.length): Buffer {
    const len = Buffer.alloc(4);
    len.writeInt32BE(declared);
    return message('p', Buffer.concat([Buffer.from(`${mechanism}\0`), len, data]));
  }

  it.each([
    ['a Query instead of a password message', queryMessage('select 1'), '08P01'],
    ['an empty password message', message('p'), '08P01'],
    ['an unterminated mechanism name', message('p', 'SCRAM-SHA-256'), '08P01'],
    ['an unknown SASL mechanism', saslInitial('SCRAM-SHA-1', Buffer.from('n,,n=,r=abc')), '08P01'],
    ['a SASL length beyond the message', saslInitial('SCRAM-SHA-256', Buffer.from('n,,n=,r=abc'), 1000), '08P01'],
    ['a negative SASL length', saslInitial('SCRAM-SHA-256', Buffer.from('n,,n=,r=abc'), -2), '08P01'],
    ['a client-first message that is not SCRAM', saslInitial('SCRAM-SHA-256', Buffer.from('hello')), '08P01'],
    ['a client-first message asking for channel binding', saslInitial('SCRAM-SHA-256', Buffer.from('p=tls-server-end-point,,n=,r=abc')), null],
    ['random bytes as client-first', saslInitial('SCRAM-SHA-256', randomBytes(64)), null],
    ['a message with a bad length', Buffer.from([0x70, 0, 0, 0, 1]), '08P01'],
  ] as const)('closes the connection on %s', async (_name, bytes, sqlstate) => {
    for (const user of [APP_ROLE.name, 'no_such_user']) {
      const error = await afterChallenge(bytes, user);
      expect(error?.S).toBe('FATAL');
      if (sqlstate !== null) expect(error?.C).toBe(sqlstate);
      else expect(['08P01', '28000', '28P01']).toContain(error?.C);
    }
    await expectHealthy();
  });

  it('refuses a client-final message with a garbage proof (28P01 or 08P01)', async () => {
    const c = await raw();
    await c.write(startupPacket({ user: APP_ROLE.name, database: 'app' }));
    await c.untilMessage('R', 5000);
    await c.write(saslInitial('SCRAM-SHA-256', Buffer.from('n,,n=,r=abcdefghijklmnop')));
    const cont = await c.untilMessage('R', 5000, 2);
    const nonce = /r=([^,]*)/.exec(cont.body.toString('utf8', 4))?.[1];
    await c.write(message('p', `c=biws,r=${nonce},p=${Buffer.alloc(32, 7).toString('base64')}`));
    await c.untilClosed(5000);
    expect(findError(c.data)?.C).toBe('28P01');
    await expectHealthy();
  });
});

describe('after login', () => {
  async function loggedIn(): Promise<RawConnection> {
    const c = await raw();
    await c.write(startupPacket({ user: APP_ROLE.name, database: 'app' }));
    await scramLogin(c, APP_ROLE.password as string);
    c.take(c.data.length);
    return c;
  }

  it('closes a client that sends a Query with length 2 (08P01)', async () => {
    const c = await loggedIn();
    const bad = Buffer.from([0x51, 0, 0, 0, 2]);
    await c.write(bad);
    await c.untilClosed(5000);
    const error = findError(c.data);
    expect(error?.C).toBe('08P01');
    expect(error?.S).toBe('FATAL');
    await expectHealthy();
  });

  it('closes a client that claims a 2 GB message (08P01)', async () => {
    const c = await loggedIn();
    const bad = Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff, 0x41, 0x41]);
    await c.write(bad);
    await c.untilClosed(5000);
    expect(findError(c.data)?.C).toBe('08P01');
    await expectHealthy();
  });

  it('answers an unknown message type like PostgreSQL (08P01) and the pool recovers', async () => {
    const c = await loggedIn();
    await c.write(message('z', 'whatever'));
    await c.untilClosed(5000);
    const error = findError(c.data);
    expect(error?.C).toBe('08P01');
    expect(error?.S).toBe('FATAL');
    // Every server connection of the pool is still usable (none was left broken by the bad message).
    const clients = Array.from({ length: 6 }, () => new pg.Client(px.url('app', APP_ROLE.name, APP_ROLE.password)));
    await Promise.all(clients.map((x) => x.connect()));
    try {
      const rows = await Promise.all(clients.map((x) => x.query('select pg_sleep(0.05), 1 as one')));
      for (const r of rows) expect(r.rows[0].one).toBe(1);
    } finally {
      await Promise.all(clients.map((x) => x.end()));
    }
  });

  it('closes a client that sends a bad length in the middle of a transaction, and its transaction is rolled back', async () => {
    const c = await loggedIn();
    await c.write(queryMessage('begin; create table half_done (x int)'));
    const z = await c.untilMessage('Z', 5000);
    expect(z.body.toString('latin1')).toBe('T');
    await c.write(Buffer.from([0x51, 0, 0, 0, 1]));
    await c.untilClosed(5000);
    expect(findError(c.data)?.C).toBe('08P01');

    const client = new pg.Client(px.url('app', APP_ROLE.name, APP_ROLE.password));
    await client.connect();
    try {
      const r = await client.query("select to_regclass('half_done') is null as gone");
      expect(r.rows[0].gone).toBe(true);
    } finally {
      await client.end();
    }
  });
});

describe('cleanup', () => {
  it('keeps no client session of any rejected connection', async () => {
    for (const r of raws.splice(0)) r.destroy();
    const deadline = Date.now() + 5000;
    while (px.pgmux.registry.clients.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(px.pgmux.registry.clients.size).toBe(0);
    expect(px.pgmux.registry.serverCount).toBeLessThanOrEqual(4);
    await expectHealthy();
  });
});

describe('client_login_timeout', () => {
  let slow: TestPgmux;

  beforeAll(async () => {
    slow = await startPgmux({
      settings: { client_login_timeout: '1s', default_pool_size: 2 },
      databases: { app: { dbname: db } },
      users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
    });
  });

  afterAll(async () => {
    await slow?.stop();
  });

  it('closes a client that sends half a startup packet and stalls', async () => {
    const c = await raw(slow.port);
    const packet = startupPacket({ user: APP_ROLE.name, database: 'app' });
    await c.write(packet.subarray(0, 12));
    await c.untilClosed(5000);
    const waited = (c.closedAt as number) - c.openedAt;
    expect(waited).toBeGreaterThanOrEqual(900);
    expect(waited).toBeLessThan(4000);
    if (c.data.length > 0) expect(findError(c.data)?.C).toBe('08P01');
    await expectHealthy(slow);
  });

  it('closes a client that stalls in the middle of authentication', async () => {
    const c = await raw(slow.port);
    await c.write(startupPacket({ user: APP_ROLE.name, database: 'app' }));
    const sasl = await c.untilMessage('R', 5000);
    expect(authKind(sasl)).toBe(10);
    await c.untilClosed(5000);
    const waited = (c.closedAt as number) - c.openedAt;
    expect(waited).toBeGreaterThanOrEqual(900);
    expect(waited).toBeLessThan(4000);
    expect(findError(c.data)?.C).toBe('08P01');
    await expectHealthy(slow);
  });

  it('does not close a logged-in client that is idle longer than the login timeout', async () => {
    const client = new pg.Client(slow.url('app', APP_ROLE.name, APP_ROLE.password));
    await client.connect();
    try {
      await new Promise((r) => setTimeout(r, 1600));
      const r = await client.query('select 2 as two');
      expect(r.rows).toEqual([{ two: 2 }]);
    } finally {
      await client.end();
    }
  });
});
