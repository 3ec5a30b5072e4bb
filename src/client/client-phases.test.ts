/** The session's phases that need no sockets or servers: startup bytes, message limits and screening, parameters. */
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { Attachment } from '../link/attachment.js';
import { FrontendCode } from '../protocol/codes.js';
import { ParamMap } from '../server/param-map.js';
import { resetTargets, resetToStartup } from './client-parameters.js';
import { StartupReader } from './client-startup.js';
import { ClientState } from './client-state.js';
import { messageLimit } from './message-limits.js';
import { Screened, screenMessage } from './message-screen.js';

function request(code: number): Buffer {
  const buf = Buffer.alloc(8);
  buf.writeInt32BE(8, 0);
  buf.writeInt32BE(code, 4);
  return buf;
}
const SSL_REQUEST = request(80877103);
const GSSENC_REQUEST = request(80877104);

function startupPacket(params: Record<string, string>): Buffer {
  const body = Buffer.from(Object.entries(params).map(([k, v]) => `${k}\0${v}\0`).join('') + '\0');
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(196608, 4);
  return Buffer.concat([head, body]);
}

function fakeSocket(): { socket: Socket; written: string[] } {
  const written: string[] = [];
  return { socket: { write: (b: Buffer) => written.push(b.toString()) } as unknown as Socket, written };
}

describe('StartupReader', () => {
  it('answers SSLRequest and GSSENCRequest once each, then reads the startup packet in pieces', () => {
    const reader = new StartupReader();
    const { socket, written } = fakeSocket();
    expect(reader.read(GSSENC_REQUEST, socket, false).kind).toBe('wait');
    expect(reader.read(SSL_REQUEST, socket, false).kind).toBe('wait');
    expect(written).toEqual(['N', 'N']);
    // A second SSLRequest is read as a protocol version, as PostgreSQL reads it.
    expect(reader.read(SSL_REQUEST, socket, false).kind).toBe('refused');
    const packet = startupPacket({ user: 'u', database: 'd' });
    const fresh = new StartupReader();
    expect(fresh.read(packet.subarray(0, 5), socket, false).kind).toBe('wait');
    const step = fresh.read(Buffer.concat([packet.subarray(5), Buffer.from('Q')]), socket, false);
    expect(step.kind === 'startup' && [step.packet.params.get('user'), step.rest.toString()]).toEqual(['u', 'Q']);
  });

  it('switches to TLS after SSLRequest when offered, and refuses bytes sent behind the request', () => {
    const { socket, written } = fakeSocket();
    expect(new StartupReader().read(SSL_REQUEST, socket, true)).toEqual({ kind: 'tls', prefix: null });
    expect(written).toEqual(['S']);
    expect(new StartupReader().read(Buffer.concat([SSL_REQUEST, Buffer.from('x')]), socket, true).kind).toBe('refused');
    const hello = Buffer.from([0x16, 3, 1]);
    expect(new StartupReader().read(hello, socket, true)).toEqual({ kind: 'tls', prefix: hello });
  });
});

describe('messageLimit', () => {
  it('lets only a password message through before login, capped lower for SASL', () => {
    expect(messageLimit(ClientState.Authenticating, FrontendCode.Query, null)).toBe(0);
    expect(messageLimit(ClientState.Authenticating, FrontendCode.PasswordMessage, null)).toBe(65535);
    expect(messageLimit(ClientState.Authenticating, FrontendCode.PasswordMessage, { sasl: true })).toBe(1024);
    expect(messageLimit(ClientState.Idle, FrontendCode.Sync, null)).toBe(10000);
    expect(messageLimit(ClientState.Idle, FrontendCode.PasswordMessage, null)).toBe(0);
  });
});

describe('screenMessage', () => {
  const skippingLink = { ledger: { skippingToSync: true }, copyIn: false } as unknown as Attachment;
  const copyInLink = { ledger: { skippingToSync: false }, copyIn: true } as unknown as Attachment;

  it('decides in order: unknown type, pgmux skipping, COPY after COPY, server skipping, broken COPY, Flush with a body', () => {
    expect(screenMessage(0x01, 5, ClientState.Idle, null, false, true)).toBe(Screened.UnknownType);
    expect(screenMessage(FrontendCode.Query, 6, ClientState.Idle, null, false, true)).toBe(Screened.Drop);
    expect(screenMessage(FrontendCode.Sync, 5, ClientState.Idle, null, false, true)).toBe(Screened.EndSkip);
    expect(screenMessage(FrontendCode.CopyDone, 5, ClientState.Idle, null, false, false)).toBe(Screened.Drop);
    expect(screenMessage(FrontendCode.Query, 6, ClientState.Active, skippingLink, true, false)).toBe(Screened.Drop);
    expect(screenMessage(FrontendCode.Sync, 5, ClientState.Active, skippingLink, true, false)).toBe(Screened.Pass);
    expect(screenMessage(FrontendCode.Query, 6, ClientState.Active, copyInLink, true, false)).toBe(Screened.BreaksCopy);
    expect(screenMessage(FrontendCode.Query, 6, ClientState.Active, copyInLink, false, false)).toBe(Screened.Pass);
    expect(screenMessage(FrontendCode.Flush, 6, ClientState.Idle, null, false, false)).toBe(Screened.FlushWithBody);
    expect(screenMessage(FrontendCode.Flush, 6, ClientState.Active, copyInLink, true, false)).toBe(Screened.Pass);
  });
});

describe('client parameters', () => {
  it('DISCARD ALL goes back to the pool defaults and the startup settings, reporting the reported ones that changed', () => {
    const params = new ParamMap([
      ['TimeZone', 'Asia/Tokyo'],
      ['application_name', 'app'],
      ['work_mem', '1MB'],
    ]);
    const defaults = new Map([
      ['TimeZone', 'UTC'],
      ['application_name', ''],
    ]);
    const changed = resetToStartup(params, new Map([['application_name', 'app']]), defaults);
    expect([...params]).toEqual([
      ['application_name', 'app'],
      ['TimeZone', 'UTC'],
    ]);
    expect(changed).toEqual([['TimeZone', 'UTC']]);
  });

  it('RESET returns a setting the server was opened with, and the client did not give, to the pool default', () => {
    const startup = new Map([['TimeZone', 'UTC']]);
    expect(resetTargets(startup, null, new Map())).toBe(startup);
    expect([...resetTargets(startup, new Map([['search_path', 'a']]), new Map([['search_path', '"$user", public']]))]).toEqual([
      ['TimeZone', 'UTC'],
      ['search_path', '"$user", public'],
    ]);
  });
});
