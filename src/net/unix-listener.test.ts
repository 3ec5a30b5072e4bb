import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { groupId, parseSocketMode, socketDirectory, socketPath } from './unix-listener.js';

describe('unix socket settings', () => {
  it('reads unix_socket_mode as octal, as PgBouncer writes it', () => {
    expect(parseSocketMode('0777')).toBe(0o777);
    expect(parseSocketMode('777')).toBe(0o777);
    expect(parseSocketMode('0o770')).toBe(0o770);
    expect(parseSocketMode('0700')).toBe(0o700);
    expect(parseSocketMode('0778')).toBeNull();
    expect(parseSocketMode('rwx')).toBeNull();
    expect(parseSocketMode('')).toBeNull();
  });

  it("names the socket as PostgreSQL does, and picks the directory: '' none, auto the first writable, else as given", () => {
    expect(socketPath('/tmp', 6543)).toBe('/tmp/.s.PGSQL.6543');
    expect(socketDirectory('')).toBeNull();
    expect(socketDirectory('/some/dir')).toBe('/some/dir');
    expect(['/var/run/postgresql', '/tmp']).toContain(socketDirectory('auto'));
  });

  it('finds a group by name in the group file, or takes a gid', () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'pgmux-group-')), 'group');
    writeFileSync(file, 'root:x:0:\npostgres:x:113:\nssl-cert:x:112:postgres\n');
    expect(groupId('postgres', file)).toBe(113);
    expect(groupId('ssl-cert', file)).toBe(112);
    expect(groupId('1234', file)).toBe(1234);
    expect(groupId('nobody-here', file)).toBeNull();
  });
});
