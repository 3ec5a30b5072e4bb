/**
 * What the client-side protocol fuzzer (test/fuzz-protocol) found in logged-in conversations, each as the raw bytes
 * it sent: sent through pgmux (session and transaction mode) and directly to PostgreSQL, every backend message must
 * match, and the connection must stay as open (or closed) as PostgreSQL leaves it. Each case ends with a probe
 * query, so a server connection pgmux lost step with shows (pgmux closes the client with 08006 where PostgreSQL
 * answers the probe).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, createTestDatabase, dropTestDatabase, pgInfo } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import { TRUST_ROLE } from './harness/roles.js';
import { message, queryMessage, type RawConnection } from './harness/wire.js';
import { normalise, WireClient } from './harness/wire-client.js';
import { judgeSession, type Outcome } from './fuzz-protocol/judge.js';

let db: string;
let px: TestPgmux;

beforeAll(async () => {
  db = await createTestDatabase('fuzz_findings');
  const admin: pg.Client = await adminClient(db);
  try {
    await admin.query('CREATE TABLE fz (a int); GRANT SELECT, INSERT ON fz TO PUBLIC');
  } finally {
    await admin.end();
  }
  px = await startPgmux({
    settings: { default_pool_size: 2, auth_type: 'trust', max_client_conn: 100, query_wait_timeout: '20s', log_connections: false, log_disconnections: false },
    databases: { tx: { dbname: db, pool_mode: 'transaction' }, sess: { dbname: db, pool_mode: 'session' } },
  });
});

afterAll(async () => {
  await px?.stop();
  if (db !== undefined) await dropTestDatabase(db);
});

const PROBE = "select 'probe-0' as probe";

/** Whether the probe's row and the ReadyForQuery after it arrived. */
function probeAnswered(c: RawConnection): boolean {
  const text = normalise(c.messages);
  const row = text.lastIndexOf('D ["probe-0"]');
  return row >= 0 && text.slice(row).some((m) => m.startsWith('Z '));
}

/**
 * Logs in, sends the parts (a pause between them, so the server has answered the earlier ones: the same bytes meet
 * pgmux in another state) and then the probe, and returns what came back until the probe was answered or the
 * connection closed.
 */
async function exchange(port: number, database: string, parts: readonly Buffer[]): Promise<Outcome> {
  const { client } = await WireClient.login(port, { user: TRUST_ROLE.name, database });
  try {
    for (let i = 0; i < parts.length; i++) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 300));
      await client.conn.write(i === parts.length - 1 ? Buffer.concat([parts[i], queryMessage(PROBE)]) : parts[i]);
    }
    await client.conn.until((c) => c.closed || probeAnswered(c), 10_000, 'the probe answered or the connection closed');
    // A desynchronised pgmux closes right after; give it a moment to show.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const messages = normalise(client.conn.messages);
    const codes = messages.filter((m) => m.startsWith('E ')).map((m) => m.split(' ')[2]);
    return { messages, codes, closed: client.closed, timedOut: false };
  } finally {
    client.destroy();
  }
}

function hex(...parts: string[]): Buffer {
  return Buffer.from(parts.join('').replace(/\s+/g, ''), 'hex');
}

/** The fuzzer's COPY setup in extended protocol: Parse `copy fz from stdin`, Bind, Execute. */
const COPY_EXT = '500000001a00636f707920667a2066726f6d20737464696e000000 420000000c0000000000000000 45000000090000000000';

const SYNC = '5300000004';
const COPY_DONE = '6300000004';
const COPY_FAIL = '660000000f66757a7a2070726f626500';
const ROLLBACK = '510000000d524f4c4c4241434b00';
const COPY_QUERY = '5100000017636f707920667a2066726f6d20737464696e00';

interface Finding {
  name: string;
  parts: Buffer[];
  /**
   * Where pgmux may refuse instead (ErrorResponse 08P01, then the close, where PostgreSQL reported an error: the
   * fuzzer's judge, test/fuzz-protocol/judge.ts); otherwise its answer must be PostgreSQL's exactly.
   */
  refusable?: Array<'transaction' | 'session'>;
}

/** A NUL-terminated string of raw bytes (names that are not UTF-8 must reach the wire as they are). */
function cstr(bytes: string | Buffer): Buffer {
  return Buffer.concat([typeof bytes === 'string' ? Buffer.from(bytes) : bytes, Buffer.from([0])]);
}
const NOT_UTF8 = Buffer.from([0x73, 0xff, 0x31]); // 's', a byte no UTF-8 text has, '1'
const ALSO_NOT_UTF8 = Buffer.from([0x73, 0xfe, 0x31]); // decoded, both read "s\uFFFD1"
const parse = (name: string | Buffer, sql: string | Buffer): Buffer => message('P', Buffer.concat([cstr(name), cstr(sql), Buffer.alloc(2)]));
const bind = (statement: string | Buffer, portal: string | Buffer = ''): Buffer =>
  message('B', Buffer.concat([cstr(portal), cstr(statement), Buffer.alloc(6)]));
const describeStatement = (name: string | Buffer): Buffer => message('D', Buffer.concat([Buffer.from('S'), cstr(name)]));
const closeStatement = (name: string | Buffer): Buffer => message('C', Buffer.concat([Buffer.from('S'), cstr(name)]));
const execute = (): Buffer => message('E', Buffer.concat([cstr(''), Buffer.alloc(4)]));
const sync = (): Buffer => message('S');

const FINDINGS: Finding[] = [
  {
    // Seed 6 path 2: Syncs sent during COPY IN (ignored), then after CopyDone a failing Bind, a Describe with an invalid
    // kind byte and a CopyFail in the part the server skips; pgmux lost step ("got 'Z' while owing message kind 2"):
    // the Queries sent after the copy reset its count of the Syncs the COPY would swallow.
    name: 'Syncs during an extended COPY, a failing Bind after it, then Queries (seed 6)',
    parts: [
      hex(
        COPY_EXT,
        '6400000006320a', SYNC, SYNC, COPY_DONE,
        '420000001a00733100000200000001000100000004000000070000',
        '5000000027733100696e7365727420696e746f20667a2076616c7565732028332900000100000017',
        '440000000899703100',
        COPY_FAIL, SYNC, ROLLBACK,
      ),
    ],
    // Transaction mode refuses the Describe of kind 0x99 (PostgreSQL skips it, after the Bind's error).
    refusable: ['transaction'],
  },
  {
    // Seed 1 path 4: a Close of the unnamed statement in the middle of COPY IN, which pgmux answered itself: the
    // server found the next message (0x42) in its COPY where PostgreSQL finds the Close (0x43).
    name: 'a Close pgmux answers itself, sent during COPY IN (seed 1)',
    parts: [hex(COPY_QUERY, '6400000006310a', '43000000065300', '6400000008320a330a', '4200000024703100623000000100010001000000013700010000fbdd3de484438f640deb5f', COPY_FAIL, SYNC, ROLLBACK)],
  },
  {
    // Seed 25 path 9: the same Close, then CopyDone: pgmux let the COPY complete (and answered the Close after it)
    // where PostgreSQL refuses the Close inside the COPY and closes the connection.
    name: 'a Close pgmux answers itself during COPY IN, then CopyDone (seed 25)',
    parts: [hex(COPY_QUERY, '6400000006310a', '43000000065300', COPY_DONE, '430000000850703100', SYNC, COPY_FAIL, SYNC, ROLLBACK)],
  },
  {
    name: 'a second Query sent in the middle of COPY IN, before the CopyInResponse',
    parts: [hex(COPY_QUERY, '510000000d73656c656374203100', '6400000006310a', COPY_DONE)],
  },
  {
    name: 'a Bind sent in the middle of COPY IN, after the CopyInResponse',
    parts: [hex(COPY_QUERY, '6400000006310a'), hex('420000000c0000000000000000', COPY_DONE, SYNC)],
  },
  {
    // CopyDone was sent before the CopyInResponse came: the copy is over for what the client sends next (a Sync
    // then is answered; the one sent during the copy is not).
    name: 'an extended COPY ended before its CopyInResponse, then a Sync sent later',
    parts: [hex(COPY_EXT, SYNC, '6400000006310a', COPY_DONE), hex(SYNC)],
  },
  {
    // Seed 2 (long run), seed 10: the COPY fails on its data ("x") before PostgreSQL reads the Close, which then runs
    // as usual. Session mode lets the server answer; transaction mode, which cannot know, refuses (08P01, close).
    name: 'bad COPY data, then a Close pgmux answers itself, during COPY IN (long run seed 10)',
    parts: [hex(COPY_QUERY, '6400000006310a', '6400000006780a', '43000000065300', SYNC, '500000000a733200000000', COPY_FAIL, SYNC, ROLLBACK)],
    refusable: ['transaction'],
  },
  {
    // Seed 2 (long run), seed 39: a Flush with a body (and a CopyDone with one) during an extended COPY IN, which
    // PostgreSQL ignores; pgmux refused it (it refuses one outside COPY, where it fails on the server).
    name: 'a Flush with a body during COPY IN from Execute (long run seed 39)',
    parts: [
      hex(
        '500000001a00636f707920667a2066726f6d20737464696e000000420000000c0000000000000000450000000900000000006400000006320a480000000eb5a4b44ed084eb02563b630000000d729a111517e3d5f64748000000045000000023613000696e7365727420696e746f20667a2076616c75657320283329000000660000001266757a7a20636f7079206661696c5300000004660000000f66757a7a2070726f6265005300000004510000000d524f4c4c4241434b00',
      ),
    ],
  },
  {
    // Seed 2 (long run), seed 20: a named Parse whose text is not valid UTF-8 (0x86), in a failed transaction: pgmux
    // read its parameter count at the wrong offset (the decoded text is longer) and closed the client with XX000.
    name: 'a named Parse with invalid UTF-8 in a failed transaction (long run seed 20)',
    parts: [
      hex(
        '510000000a424547494e00510000000f73656c65637420312f30004200000018703100623000000100000001ffffffff000100004600000004460000000e00000575000000000000500000001f63300073656c656386202778273a3a74657874206173207600000048000000044400000008507031006400000006780a660000000f66757a7a2070726f6265005300000004510000000d524f4c4c4241434b00',
      ),
    ],
  },
  {
    // Seed 21 path 20: a Sync with a one-byte body after a named Parse pgmux answers itself: PostgreSQL says 08P01
    // "invalid message format" before its ReadyForQuery, pgmux did not. (The byte it took from the next message then
    // leaves garbage, which both refuse and close on.)
    name: 'a Sync with a body after a deferred named Parse (seed 21)',
    parts: [hex('500000002361310073656c656374202778273a3a7465787420617320760000010000001753000000056400000008310932')],
    refusable: ['transaction', 'session'],
  },
  {
    // Long run seed 442 path 10: a simple-query COPY fails on its second line; the Sync the client sent after that
    // line (before the CopyInResponse came back) is then read outside the COPY and answered, where pgmux had taken it
    // for one the COPY ignores ("got 'Z' while owing message kind 1"). Transaction mode refuses the Parse sent into
    // the COPY (it cannot know the COPY failed before reading it).
    name: 'a Sync after the bad line of a failing COPY, sent before its CopyInResponse (seed 442)',
    parts: [hex(COPY_QUERY, '6400000006310a', '640000000d780a351914f7dd938b', SYNC, '500000001600434f4d4d49540000020000001700000019', '43000000065000', SYNC, ROLLBACK)],
    refusable: ['transaction'],
  },
  {
    // Long run seed 448: PostgreSQL refuses names that are not UTF-8 (22021) as it reads them. pgmux decoded them
    // (to U+FFFD) and answered the second Parse itself, as a statement it had deferred: a ParseComplete where
    // PostgreSQL said 22021.
    name: 'named Parses whose names are not UTF-8 and decode alike (seed 448)',
    parts: [Buffer.concat([parse(NOT_UTF8, 'select 1'), sync(), parse(ALSO_NOT_UTF8, 'select 2'), sync(), bind(ALSO_NOT_UTF8), execute(), sync()])],
  },
  {
    name: 'Describe and Close of a statement whose name is not UTF-8, after one of that decoded name',
    parts: [Buffer.concat([parse('s\uFFFD1', 'select 3'), sync(), describeStatement(NOT_UTF8), sync(), closeStatement(NOT_UTF8), sync(), bind('s\uFFFD1'), execute(), sync()])],
  },
  {
    // A Query or an unnamed Parse whose text is not UTF-8 is refused before it runs: the unnamed statement the
    // client had is still there for the Bind after it, directly.
    name: 'the unnamed statement outlives a Query and an unnamed Parse whose text is not UTF-8',
    parts: [
      Buffer.concat([parse('', 'select 4 as four'), sync()]),
      Buffer.concat([message('Q', cstr(Buffer.from([0x73, 0x65, 0x6c, 0x65, 0x63, 0x74, 0x20, 0x27, 0xc3, 0x28, 0x27]))), parse('', Buffer.from([0x73, 0x65, 0x6c, 0x65, 0x63, 0x74, 0x20, 0x27, 0x80, 0x27]))]),
      Buffer.concat([sync(), bind(''), execute(), sync()]),
    ],
  },
  {
    // Long run seed 1204 path 17: a malformed Describe of the unnamed statement, pipelined behind the Sync of the
    // segment that Parsed it, was held back (what it must do depends on that segment's answer) and decoded later
    // inside the server's handler: XX000 and a logged internal error. Refused at once now, as the client's (08P01).
    name: 'a malformed Describe of an unnamed statement Parsed in the segment before, pipelined (seed 1204)',
    parts: [Buffer.concat([parse('', 'select 1'), sync(), hex('4400000007530078'), sync()])],
    refusable: ['transaction'],
  },
  {
    // Long run seeds 1321 and 1415: a Close pgmux answers itself (CloseComplete), with no Flush or Sync after it, then
    // a message with an impossible length. PostgreSQL had buffered its CloseComplete and closes without sending it;
    // pgmux had sent its own at once. It now holds replies it makes up until the client asks for answers.
    name: 'a Close pgmux answers itself, then a message with length -1 (seed 1415)',
    parts: [Buffer.concat([closeStatement('nosuch_stmt'), hex('48ffffffff')])],
    refusable: ['transaction', 'session'],
  },
  {
    // Long run seed 1372: a Sync with a body sent during a simple-query COPY IN, after data the COPY fails on. The
    // server reads it after the COPY as any Sync (08P01 "invalid message format", then ReadyForQuery); pgmux took the
    // error for the next request's, released the server one ReadyForQuery early and the next client of that
    // server got it ("got 'Z' while owing message kind 1").
    name: 'a Sync with a body after the bad line of a failing COPY (seed 1372)',
    parts: [hex(COPY_QUERY), hex('6400000006310a', '4800000004', '6400000006780a', '530000000500', COPY_FAIL, SYNC, ROLLBACK)],
  },
  {
    name: 'a Sync with a body after a deferred named Parse, well framed',
    parts: [hex('500000002361310073656c656374202778273a3a74657874206173207600000100000017', '530000000578', ROLLBACK)],
  },
];

describe.each([
  ['transaction', 'tx'],
  ['session', 'sess'],
] as const)('%s mode', (mode, database) => {
  it.each(FINDINGS)('$name: answered as PostgreSQL answers it', async ({ parts, refusable }) => {
    const direct = await exchange(pgInfo().port, db, parts);
    const through = await exchange(px.port, database, parts);
    if (refusable?.includes(mode) === true) {
      const verdict = judgeSession(through, direct);
      expect(verdict.kind === 'pass' || verdict.kind === 'refused', verdict.report).toBe(true);
    } else {
      expect(through).toEqual(direct);
    }
  });
});
