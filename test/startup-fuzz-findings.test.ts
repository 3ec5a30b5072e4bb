/**
 * What the client-side protocol fuzzer (test/fuzz-protocol) found in startup packets, each as the raw bytes it
 * sent: sent to pgmux and directly to PostgreSQL, the answer must be the same (the same bytes where PostgreSQL's
 * answer is not a v3 message; else the same errors, or a login and the same answer to a probe query). pgmux trusts
 * its clients here (auth_type trust), as the fuzzer's pgmux does, and serves the database under its own name, so
 * one packet fits both.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, dropTestDatabase, pgInfo } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { TRUST_ROLE } from './harness/roles.js';
import { authKind, queryMessage, RawConnection, splitMessages, startupPacket } from './harness/wire.js';
import { normalise } from './harness/wire-client.js';

let db: string;
let px: TestPgmux;

beforeAll(async () => {
  db = await createTestDatabase('startup_findings');
  px = await startPgmux({
    settings: { default_pool_size: 2, auth_type: 'trust', log_connections: false, log_disconnections: false },
    databases: { [db]: { dbname: db, pool_mode: 'transaction' } },
  });
});

afterAll(async () => {
  await px?.stop();
  if (db !== undefined) await dropTestDatabase(db);
});

const PROBE = "select 'probe-0' as probe";

interface Answer {
  /** Every byte received. */
  data: Buffer;
  /** The ErrorResponses, normalised; or after a login, the messages after its ReadyForQuery (the probe's answer). */
  messages: string[];
  loggedIn: boolean;
  closed: boolean;
}

/**
 * Sends `bytes` (a startup packet, the probe query pipelined behind it) and reads until the close, the probe's
 * ReadyForQuery, or `waitMs`.
 */
async function attempt(port: number, bytes: Buffer, waitMs = 5000): Promise<Answer> {
  const c = await RawConnection.connect(port);
  try {
    await c.write(Buffer.concat([bytes, queryMessage(PROBE)]));
    const zs = (conn: RawConnection): number => {
      try {
        return splitMessages(conn.data).messages.filter((m) => m.code === 'Z').length;
      } catch {
        return 0; // not v3 messages (a version-2 error): wait for the close
      }
    };
    await c.until((conn) => conn.closed || zs(conn) >= 2, waitMs, 'the close or the probe answered').catch(() => undefined);
    let messages: string[] = [];
    let loggedIn = false;
    try {
      const all = splitMessages(c.data).messages;
      const z = all.findIndex((m) => m.code === 'Z');
      loggedIn = z >= 0;
      messages = loggedIn ? normalise(all.slice(z + 1)) : normalise(all.filter((m) => m.code === 'E'));
    } catch {
      messages = [];
    }
    return { data: Buffer.from(c.data), messages, loggedIn, closed: c.closed };
  } finally {
    c.destroy();
  }
}

function both(bytes: Buffer): Promise<[Answer, Answer]> {
  return Promise.all([attempt(px.port, bytes), attempt(pgInfo().port, bytes)]);
}

/** A startup packet built from raw parts: Int32 length, Int32 version, then `body` as given. */
function rawPacket(body: Buffer, version = 196608): Buffer {
  const buf = Buffer.alloc(8 + body.length);
  buf.writeInt32BE(buf.length, 0);
  buf.writeInt32BE(version, 4);
  body.copy(buf, 8);
  return buf;
}

describe('startup packets the fuzzer sent, answered as PostgreSQL answers them', () => {
  // Seed 3 path 6: protocol 2.0. PostgreSQL refuses it in the version-2 format ('E', "FATAL:  ...\n", a zero: no
  // length), since it answers in the client's version; pgmux sent a v3 ErrorResponse, which such a client misreads.
  it('protocol 2.0 (and 1.0): the same version-2 error bytes, then the close', async () => {
    for (const major of [2, 1]) {
      const [got, want] = await both(startupPacket({ user: TRUST_ROLE.name, database: db }, major << 16));
      expect(want.data.toString('latin1')).toBe(`EFATAL:  unsupported frontend protocol ${major}.0: server supports 3.0 to 3.0\n\0`);
      expect(got.data.toString('hex')).toBe(want.data.toString('hex'));
      expect(got.closed && want.closed).toBe(true);
    }
  });

  it('protocol 0.5 too; but 4.0 and 0.0 (seed 3 path 7): a v3 ErrorResponse 0A000, as PostgreSQL sends them', async () => {
    const [got05, want05] = await both(startupPacket({ user: TRUST_ROLE.name, database: db }, 5));
    expect(want05.data.toString('latin1')).toBe('EFATAL:  unsupported frontend protocol 0.5: server supports 3.0 to 3.0\n\0');
    expect(got05.data.toString('hex')).toBe(want05.data.toString('hex'));
    for (const [version, text] of [[4 << 16, '4.0'], [0, '0.0']] as const) {
      const [got, want] = await both(startupPacket({ user: TRUST_ROLE.name, database: db }, version));
      expect(want.messages).toEqual([`E FATAL/FATAL 0A000 unsupported frontend protocol ${text}: server supports 3.0 to 3.0`]);
      expect(got.messages).toEqual(want.messages);
    }
  });

  // Seed 11 path 8: the packet's last byte was 0xf9, not zero. PostgreSQL only checks that the list ends at the last
  // byte, and logs the client in; pgmux refused it (08P01 "unterminated parameter").
  it('a non-zero last byte where the terminator goes: logged in, the probe answered alike', async () => {
    for (const last of [0xf9, 0x41]) {
      const body = Buffer.concat([Buffer.from(`user\0${TRUST_ROLE.name}\0database\0${db}\0application_name\0yP{\0fz.custom\0x\0`), Buffer.from([last])]);
      const [got, want] = await both(rawPacket(body));
      expect(want.loggedIn).toBe(true);
      expect(got.loggedIn).toBe(true);
      expect(got.messages).toEqual(want.messages);
    }
  });

  it('layouts PostgreSQL refuses: the same 08P01 and message', async () => {
    const bodies = [
      `user\0${TRUST_ROLE.name}\0database\0${db}`, // a name with no value, not at the last byte
      `user\0${TRUST_ROLE.name}\0database\0${db}\0`, // no terminator
      `user\0${TRUST_ROLE.name}\0\0xx`, // bytes after the terminator
      `user\0${TRUST_ROLE.name}\0database\0${db}\0ab`, // a name running to the end
    ];
    for (const body of bodies) {
      const [got, want] = await both(rawPacket(Buffer.from(body)));
      expect(want.messages, JSON.stringify(body)).toEqual(['E FATAL/FATAL 08P01 invalid startup packet layout: expected terminator as last byte']);
      expect(got.messages, JSON.stringify(body)).toEqual(want.messages);
    }
  });

  // Seed 9 path 19: `options` held an unknown setting and a later parameter a bad value. PostgreSQL applies the
  // options first and names the unknown setting (42704); pgmux named the bad value (22023).
  it('a bad setting in options and a bad parameter: the one in options is named, as PostgreSQL names it', async () => {
    const packet = startupPacket({ database: db, user: TRUST_ROLE.name, options: '--nosuch_guc=1', 'fz.v': 's>@L*`i{)', statement_timeout: 'abc' });
    const [got, want] = await both(packet);
    expect(want.messages).toEqual(['E FATAL/FATAL 42704 unrecognized configuration parameter "nosuch_guc"']);
    expect(got.messages).toEqual(want.messages);
  });

  // Seed 31 path 7 (weighted run, seed 3): DateStyle=garbage and then DateStyle='ISO, MDY'. PostgreSQL applies both
  // and refuses the first (22023); pgmux kept the last only and let the client in.
  it('a setting given twice, the first value bad: refused as PostgreSQL refuses it', async () => {
    for (const [first, then] of [['garbage', 'ISO, MDY'], ['ISO, MDY', 'garbage']]) {
      const body = `user\0${TRUST_ROLE.name}\0database\0${db}\0DateStyle\0${first}\0DateStyle\0${then}\0\0`;
      const [got, want] = await both(rawPacket(Buffer.from(body)));
      expect(want.messages).toEqual(['E FATAL/FATAL 22023 invalid value for parameter "DateStyle": "garbage"']);
      expect(got.messages).toEqual(want.messages);
    }
    const body = `user\0${TRUST_ROLE.name}\0database\0${db}\0options\0-c work_mem=nonsense\0work_mem\x002MB\0work_mem\x001MB\0\0`;
    const [got, want] = await both(rawPacket(Buffer.from(body)));
    expect(want.messages).toEqual(['E FATAL/FATAL 22023 invalid value for parameter "work_mem": "nonsense"']);
    expect(got.messages).toEqual(want.messages);
    // All of them good: logged in, and the last one holds.
    const good = `user\0${TRUST_ROLE.name}\0database\0${db}\0DateStyle\0German\0DateStyle\0ISO, MDY\0\0`;
    const [gotOk, wantOk] = await both(rawPacket(Buffer.from(good)));
    expect(wantOk.loggedIn && gotOk.loggedIn).toBe(true);
    expect(gotOk.messages).toEqual(wantOk.messages);
  });

  it('a parameter and the same setting in options: the parameter wins, as in PostgreSQL', async () => {
    const packet = startupPacket({ database: db, user: TRUST_ROLE.name, application_name: 'from-param', options: '-c application_name=from-options' });
    const probe = "select current_setting('application_name') as probe";
    const run = async (port: number): Promise<string[]> => {
      const c = await RawConnection.connect(port);
      try {
        await c.write(Buffer.concat([packet, queryMessage(probe)]));
        await c.until((conn) => conn.closed || splitMessages(conn.data).messages.filter((m) => m.code === 'Z').length >= 2, 5000, 'the probe');
        return normalise(splitMessages(c.data).messages).filter((m) => m.startsWith('D '));
      } finally {
        c.destroy();
      }
    };
    const [got, want] = await Promise.all([run(px.port), run(pgInfo().port)]);
    expect(want).toEqual(['D ["from-param"]']);
    expect(got).toEqual(want);
  });

  // Seed 9 path 18 (weighted run, seed 3): a mutated user name and no database, so the database is the user name.
  // PostgreSQL asks the unknown user for a password first (it checks the database after authentication); pgmux
  // serves no such database and says so at once (3D000), then closes (the judge accepts exactly this).
  it('a database pgmux does not serve, for a user PostgreSQL asks a password of: 3D000 and the close', async () => {
    const packet = startupPacket({ user: 'pgmux0trust' });
    const direct = await RawConnection.connect(pgInfo().port);
    try {
      await direct.write(packet);
      expect(authKind(await direct.untilMessage('R', 5000))).toBe(10); // AuthenticationSASL
    } finally {
      direct.destroy();
    }
    const got = await attempt(px.port, packet);
    expect(got.closed).toBe(true);
    expect(got.messages).toEqual(['E FATAL/FATAL 3D000 database "pgmux0trust" does not exist in pgmux']);
  });

  // Seeds 17 and 22: a mutated user name, a role pgmux has no password for, whom PostgreSQL challenges for one. pgmux
  // trusts its clients but must log in upstream with its own credentials, so it cannot go on: it refuses with 28000
  // and says why (the judge accepts exactly this), where PostgreSQL waits for the password or refuses what came.
  it('an unknown user PostgreSQL asks a password of: pgmux refuses with 28000 and closes', async () => {
    const packet = startupPacket({ database: db, user: 'pgmuY_trust' });
    const direct = await RawConnection.connect(pgInfo().port);
    try {
      await direct.write(packet);
      const request = await direct.untilMessage('R', 5000);
      expect(authKind(request)).toBe(10); // AuthenticationSASL
    } finally {
      direct.destroy();
    }
    const got = await attempt(px.port, packet);
    expect(got.closed).toBe(true);
    expect(got.messages).toEqual(['E FATAL/FATAL 28000 server asked for SCRAM-SHA-256 authentication of user "pgmuY_trust" but pgmux has no password for it']);
  });
});
