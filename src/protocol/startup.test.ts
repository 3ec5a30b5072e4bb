import { describe, expect, it } from 'vitest';

import {
  CANCEL_REQUEST_CODE,
  GSSENC_REQUEST_CODE,
  MAX_STARTUP_PACKET_LENGTH,
  PROTOCOL_V3,
  SSL_REQUEST_CODE,
} from './codes.js';
import { StartupPacketError, parseOptionsParameter, parseStartupPacket, replicationRequested, startupPacketLength } from './startup.js';

/** Length, code, then `rest` as is. */
function packet(code: number, rest: Buffer = Buffer.alloc(0)): Buffer {
  const buf = Buffer.alloc(8 + rest.length);
  buf.writeInt32BE(buf.length, 0);
  buf.writeInt32BE(code, 4);
  rest.copy(buf, 8);
  return buf;
}

/** A startup packet with name/value pairs and the final terminator. */
function startup(params: Array<[string, string]>, version = PROTOCOL_V3): Buffer {
  return packet(version, Buffer.from(params.map(([n, v]) => `${n}\0${v}\0`).join('') + '\0'));
}

/** Calls `fn` and returns the StartupPacketError it throws. */
function startupError(fn: () => unknown): StartupPacketError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(StartupPacketError);
    return err as StartupPacketError;
  }
  throw new Error('expected a StartupPacketError');
}

function version(major: number, minor: number): number {
  return (major << 16) | minor;
}

describe('startupPacketLength', () => {
  it('waits for the 4 length bytes', () => {
    expect(startupPacketLength(Buffer.alloc(0))).toBe(-1);
    expect(startupPacketLength(Buffer.from([0, 0, 0]))).toBe(-1);
  });

  it('returns the declared length before the rest has arrived', () => {
    const p = startup([['user', 'alice']]);
    expect(startupPacketLength(p.subarray(0, 4))).toBe(p.length);
    expect(startupPacketLength(p)).toBe(p.length);
    expect(startupPacketLength(packet(SSL_REQUEST_CODE))).toBe(8);
  });

  it('accepts lengths from 8 to the cap', () => {
    for (const n of [8, 9, 1000, MAX_STARTUP_PACKET_LENGTH]) {
      const b = Buffer.alloc(4);
      b.writeInt32BE(n);
      expect(startupPacketLength(b)).toBe(n);
    }
  });

  it('rejects lengths below 8 or above 10000 with 08P01', () => {
    expect(MAX_STARTUP_PACKET_LENGTH).toBe(10000);
    for (const n of [-1, -2147483648, 0, 4, 7, 10001, 0x7fffffff]) {
      const b = Buffer.alloc(4);
      b.writeInt32BE(n);
      const err = startupError(() => startupPacketLength(b));
      expect(err.sqlstate).toBe('08P01');
      expect(err.message).toContain(String(n));
    }
  });
});

describe('parseStartupPacket: special requests', () => {
  it('recognises SSLRequest and GSSENCRequest', () => {
    expect(SSL_REQUEST_CODE).toBe((1234 << 16) | 5679);
    expect(GSSENC_REQUEST_CODE).toBe((1234 << 16) | 5680);
    expect(parseStartupPacket(packet(SSL_REQUEST_CODE))).toEqual({ kind: 'ssl' });
    expect(parseStartupPacket(packet(GSSENC_REQUEST_CODE))).toEqual({ kind: 'gssenc' });
  });

  it('decodes CancelRequest process id and secret key', () => {
    expect(CANCEL_REQUEST_CODE).toBe((1234 << 16) | 5678);
    const rest = Buffer.alloc(8);
    rest.writeInt32BE(4242, 0);
    rest.writeInt32BE(0x12345678, 4);
    expect(parseStartupPacket(packet(CANCEL_REQUEST_CODE, rest))).toEqual({
      kind: 'cancel',
      processId: 4242,
      secretKey: 0x12345678,
    });
  });

  it('decodes a secret key with the high bit set as the same signed value backendKeyData writes', () => {
    const rest = Buffer.alloc(8);
    rest.writeUInt32BE(7, 0);
    rest.writeUInt32BE(0xdeadbeef, 4);
    const p = parseStartupPacket(packet(CANCEL_REQUEST_CODE, rest));
    expect(p).toEqual({ kind: 'cancel', processId: 7, secretKey: 0xdeadbeef | 0 });
  });

  it('refuses a special code with the wrong length for that request as a protocol violation', () => {
    // Protocol fuzzer finding: these were refused as protocol "1234.5679" with 0A000, where PostgreSQL takes an
    // SSLRequest of any length (answers it, ignores the rest) and drops a cancel request of the wrong length.
    for (const code of [SSL_REQUEST_CODE, GSSENC_REQUEST_CODE, CANCEL_REQUEST_CODE]) {
      const err = startupError(() => parseStartupPacket(packet(code, Buffer.alloc(4))));
      expect(err.sqlstate).toBe('08P01');
      expect(err.message).toMatch(/invalid length/);
    }
  });

  it('a repeated SSLRequest or GSSENCRequest is read as a protocol version, as PostgreSQL reads it', () => {
    const ssl = startupError(() => parseStartupPacket(packet(SSL_REQUEST_CODE, Buffer.alloc(0)), { ssl: true, gss: true }));
    expect(ssl.sqlstate).toBe('0A000');
    expect(ssl.message).toBe('unsupported frontend protocol 1234.5679: server supports 3.0 to 3.0');
    const gss = startupError(() => parseStartupPacket(packet(GSSENC_REQUEST_CODE, Buffer.alloc(0)), { ssl: false, gss: true }));
    expect(gss.message).toContain('1234.5680');
    expect(parseStartupPacket(packet(SSL_REQUEST_CODE, Buffer.alloc(0)), { ssl: false, gss: true })).toEqual({ kind: 'ssl' });
  });
});

describe('replicationRequested', () => {
  it('reads the value as PostgreSQL does: "database" or a boolean, else invalid', () => {
    // Protocol fuzzer finding: replication=off / no were refused as replication connections.
    for (const v of ['database', 'true', 'TRUE', 't', 'tr', 'yes', 'y', 'on', 'ON', '1']) expect(replicationRequested(v), v).toBe(true);
    for (const v of ['false', 'f', 'fal', 'no', 'n', 'off', 'of', 'OFF', '0']) expect(replicationRequested(v), v).toBe(false);
    for (const v of ['', 'o', 'onx', 'truex', 'garbage', '01', ' on', 'Database']) expect(replicationRequested(v), v).toBe(null);
  });

  it('an invalid value fails while the packet is read (22023), before the missing user name (28000)', () => {
    const body = Buffer.from('replication\0garbage\0\0');
    const err = startupError(() => parseStartupPacket(packet(PROTOCOL_V3, body)));
    expect(err.sqlstate).toBe('22023');
    expect(err.message).toBe('invalid value for parameter "replication": "garbage"');
  });
});

describe('parseStartupPacket: protocol 3', () => {
  it('decodes the parameters of a v3.0 startup packet', () => {
    const p = parseStartupPacket(
      startup([
        ['user', 'alice'],
        ['database', 'shop'],
        ['application_name', 'psql'],
        ['options', '-c search_path=app'],
        ['client_encoding', 'UTF8'],
      ]),
    );
    expect(p.kind).toBe('startup');
    if (p.kind !== 'startup') return;
    expect(p.minorVersion).toBe(0);
    expect(Object.fromEntries(p.params)).toEqual({
      user: 'alice',
      database: 'shop',
      application_name: 'psql',
      options: '-c search_path=app',
      client_encoding: 'UTF8',
    });
    expect(p.protocolOptions).toEqual([]);
  });

  it('defaults the database to the user name, also when it is empty', () => {
    for (const params of [[['user', 'bob']], [['user', 'bob'], ['database', '']], [['database', ''], ['user', 'bob']]] as Array<
      Array<[string, string]>
    >) {
      const p = parseStartupPacket(startup(params));
      if (p.kind !== 'startup') throw new Error(p.kind);
      expect(p.params.get('database')).toBe('bob');
    }
  });

  it('keeps empty values and UTF-8 text', () => {
    const p = parseStartupPacket(
      startup([
        ['user', 'zoë'],
        ['application_name', ''],
        ['database', 'データ'],
      ]),
    );
    if (p.kind !== 'startup') throw new Error(p.kind);
    expect(p.params.get('user')).toBe('zoë');
    expect(p.params.get('application_name')).toBe('');
    expect(p.params.get('database')).toBe('データ');
  });

  it('collects _pq_. protocol options separately, in order', () => {
    const p = parseStartupPacket(
      startup([
        ['_pq_.compression', 'on'],
        ['user', 'alice'],
        ['_pq_.other', ''],
      ]),
    );
    if (p.kind !== 'startup') throw new Error(p.kind);
    expect(p.protocolOptions).toEqual(['_pq_.compression', '_pq_.other']);
    expect([...p.params.keys()].sort()).toEqual(['database', 'user']);
  });

  it('reports the minor version (3.2)', () => {
    const p = parseStartupPacket(startup([['user', 'alice']], version(3, 2)));
    if (p.kind !== 'startup') throw new Error(p.kind);
    expect(p.minorVersion).toBe(2);
  });

  it('refuses other major versions with 0A000', () => {
    const err = startupError(() => parseStartupPacket(startup([['user', 'alice']], version(4, 0))));
    expect(err.sqlstate).toBe('0A000');
    expect(err.message).toContain('4.0');
    const old = startupError(() => parseStartupPacket(startup([['user', 'alice']], version(2, 0))));
    expect(old.sqlstate).toBe('0A000');
    expect(old.message).toContain('2.0');
  });

  it('requires a user name (28000)', () => {
    for (const params of [[], [['database', 'shop']], [['user', '']]] as Array<Array<[string, string]>>) {
      const err = startupError(() => parseStartupPacket(startup(params)));
      expect(err.sqlstate).toBe('28000');
      expect(err.message).toMatch(/user name/);
    }
  });

  it('rejects a packet with no terminator (08P01)', () => {
    const cases = [
      packet(PROTOCOL_V3), // nothing after the version
      packet(PROTOCOL_V3, Buffer.from('user\0alice\0')), // pairs but no final NUL
    ];
    for (const p of cases) expect(startupError(() => parseStartupPacket(p)).sqlstate).toBe('08P01');
  });

  it('rejects unterminated names and values (08P01)', () => {
    const cases = [
      'user', // name without NUL
      'user\0', // name, then nothing
      'user\0alice', // value without NUL
      'user\0alice\0database', // second name without NUL
      'user\0alice\0database\0', // second value missing entirely
    ];
    for (const rest of cases) {
      const err = startupError(() => parseStartupPacket(packet(PROTOCOL_V3, Buffer.from(rest))));
      expect(err.sqlstate, JSON.stringify(rest)).toBe('08P01');
    }
  });

  it('rejects bytes after the terminator (08P01)', () => {
    const p = Buffer.concat([startup([['user', 'alice']]), Buffer.from('x')]);
    p.writeInt32BE(p.length, 0);
    expect(startupError(() => parseStartupPacket(p)).sqlstate).toBe('08P01');
  });

  // Fuzzer seed 11 path 8: PostgreSQL's ProcessStartupPacket reads the packet as if a zero followed it and only
  // checks that the list ends at the last byte, never that byte's value: a client whose last byte is not zero logs
  // in. pgmux refused it ("unterminated parameter").
  it('takes any last byte as the terminator where the list ends just before it, as PostgreSQL does', () => {
    for (const last of [0xf9, 0x41, 0x01]) {
      const p = packet(PROTOCOL_V3, Buffer.concat([Buffer.from('user\0alice\0application_name\0x\0'), Buffer.from([last])]));
      const parsed = parseStartupPacket(p);
      if (parsed.kind !== 'startup') throw new Error(parsed.kind);
      expect([...parsed.params]).toEqual([['user', 'alice'], ['application_name', 'x'], ['database', 'alice']]);
    }
  });

  it('keeps the earlier values of a parameter given twice (PostgreSQL applies each)', () => {
    const p = parseStartupPacket(startup([['user', 'a'], ['DateStyle', 'garbage'], ['x', '1'], ['DateStyle', 'ISO'], ['DateStyle', 'SQL']]));
    if (p.kind !== 'startup') throw new Error(p.kind);
    expect(p.params.get('DateStyle')).toBe('SQL');
    expect(p.repeated).toEqual([['DateStyle', 'garbage'], ['DateStyle', 'ISO']]);
  });

  it('says what PostgreSQL says for every layout it refuses', () => {
    for (const rest of ['user', 'user\0', 'user\0alice', 'user\0alice\0db', 'user\0alice\0\0x', 'user\0alice\0']) {
      const err = startupError(() => parseStartupPacket(packet(PROTOCOL_V3, Buffer.from(rest))));
      expect(err.message, JSON.stringify(rest)).toBe('invalid startup packet layout: expected terminator as last byte');
    }
  });

  // Fuzzer seed 3 path 6: PostgreSQL answers a version below 3.0 in the version-2 format (it sets FrontendProtocol
  // to the client's before it refuses), which the fuzzer (and a v3 reader) sees as no message at all.
  it('marks a refusal of a version below 3.0 for the version-2 format, and only that', () => {
    for (const major of [1, 2]) expect(startupError(() => parseStartupPacket(startup([['user', 'a']], version(major, 0)))).protocol2).toBe(true);
    expect(startupError(() => parseStartupPacket(startup([['user', 'a']], version(0, 5)))).protocol2).toBe(true);
    expect(startupError(() => parseStartupPacket(startup([['user', 'a']], version(4, 0)))).protocol2).toBe(false);
    // Fuzzer seed 3 path 7: 0.0 is answered in the v3 format (elog.c: FrontendProtocol 0 is "not set yet").
    expect(startupError(() => parseStartupPacket(startup([['user', 'a']], version(0, 0)))).protocol2).toBe(false);
  });

  it('StartupPacketError is an Error with a message', () => {
    const err = new StartupPacketError('08P01', 'bad');
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toBe('bad');
    expect(err.sqlstate).toBe('08P01');
  });
});

describe('parseOptionsParameter', () => {
  it('parses -c and -- settings with escaped spaces, turning dashes in names into underscores', () => {
    const { settings, unsupported } = parseOptionsParameter('-c a=b -c x=y\\ z --foo-bar=1');
    expect(Object.fromEntries(settings)).toEqual({ a: 'b', x: 'y z', foo_bar: '1' });
    expect(unsupported).toEqual([]);
  });

  it('accepts -cname=value and keeps dashes in values', () => {
    const { settings } = parseOptionsParameter('-csearch-path=a-b,c --statement-timeout=5s');
    expect(Object.fromEntries(settings)).toEqual({ search_path: 'a-b,c', statement_timeout: '5s' });
  });

  it('keeps "=" inside values and lets a later setting win', () => {
    const { settings } = parseOptionsParameter('-c opt=a=b -c x=1 -c x=2');
    expect(settings.get('opt')).toBe('a=b');
    expect(settings.get('x')).toBe('2');
  });

  it('unescapes backslashes and ignores runs of whitespace', () => {
    const { settings, unsupported } = parseOptionsParameter('  -c\tp=a\\\\b \n -c q=\\ lead  ');
    expect(Object.fromEntries(settings)).toEqual({ p: 'a\\b', q: ' lead' });
    expect(unsupported).toEqual([]);
  });

  it('keeps a trailing lone backslash', () => {
    expect(parseOptionsParameter('-c a=b\\').settings.get('a')).toBe('b\\');
  });

  it('allows an empty value', () => {
    expect(parseOptionsParameter('-c a=').settings.get('a')).toBe('');
  });

  it('parses nothing from an empty or blank string', () => {
    for (const s of ['', '   ', '\t\n']) {
      const { settings, unsupported } = parseOptionsParameter(s);
      expect(settings.size).toBe(0);
      expect(unsupported).toEqual([]);
    }
  });

  it('takes the switches that stand for a setting as that setting, and reports the others of PostgreSQL, with their arguments', () => {
    const { settings, unsupported, refusal } = parseOptionsParameter('-B 100 -c a=1 -P -S2048 -tpa -e -W 5 -F');
    expect(Object.fromEntries(settings)).toEqual({ shared_buffers: '100', a: '1', work_mem: '2048', log_parser_stats: 'true', datestyle: 'euro', fsync: 'false' });
    expect(unsupported).toEqual(['-P', '-W', '5']);
    expect(refusal).toBeNull();
  });

  it("refuses what PostgreSQL refuses at login, with its SQLSTATE and message (process_postgres_switches)", () => {
    const invalid = (word: string) => ({ sqlstate: '42601', message: `invalid command-line argument for server process: ${word}`, hint: 'Try "postgres --help" for more information.' });
    const cases: Array<[string, object]> = [
      ['-c statement_timeout', { sqlstate: '42601', message: '-c statement_timeout requires a value' }],
      ['-cstatement_timeoutL5s', { sqlstate: '42601', message: '-c statement_timeoutL5s requires a value' }],
      ['--statement_timeout', { sqlstate: '42601', message: '--statement_timeout requires a value' }],
      ['-c =5', { sqlstate: '42704', message: 'unrecognized configuration parameter ""' }],
      ['-c a=1 -c', invalid('-c')],
      ['-X', invalid('-X')],
      ['-t zz', invalid('zz')],
      ['-tzz', invalid('-tzz')],
      ['-f q', invalid('q')],
      // Words that are no switch are complained about after the switches (glibc's getopt moves them last).
      ['statement_timeout=5s', invalid('statement_timeout=5s')],
      ['extra -c work_mem=1MB -c b', { sqlstate: '42601', message: '-c b requires a value' }],
      ['-c a=1 first second', invalid('first')],
      ['-c a=1 -- -c b=2', invalid('-c')],
      ['-', invalid('-')],
    ];
    for (const [options, refusal] of cases) expect(parseOptionsParameter(options).refusal, options).toEqual(refusal);
  });

  it('refuses nothing in well-formed options', () => {
    for (const s of ['', '-c a=1', '-ca=1 --b-c=2', '-c a=', '-e', '-c a=1 --']) expect(parseOptionsParameter(s).refusal, s).toBeNull();
  });
});
