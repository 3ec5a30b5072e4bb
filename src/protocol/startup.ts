import {
  CANCEL_REQUEST_CODE,
  GSSENC_REQUEST_CODE,
  MAX_STARTUP_PACKET_LENGTH,
  PROTOCOL_V3,
  SSL_REQUEST_CODE,
} from './codes.js';

/** What a client's first (untyped) packet asked for. */
export type StartupPacket =
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; processId: number; secretKey: number }
  | {
      kind: 'startup';
      minorVersion: number;
      /** Ordinary parameters (user, database, application_name, options, GUCs ...). */
      params: Map<string, string>;
      /** `_pq_.*` protocol options, which we must list back in NegotiateProtocolVersion. */
      protocolOptions: string[];
    };

/** A startup packet we cannot accept; `sqlstate` is what goes on the wire. */
export class StartupPacketError extends Error {
  constructor(
    readonly sqlstate: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Returns the total length of the startup packet at the front of `buf`, or -1 when fewer than 4
 * bytes are there yet. Throws before anything is allocated when the length is nonsense.
 */
export function startupPacketLength(buf: Buffer): number {
  if (buf.length < 4) return -1;
  const length = buf.readInt32BE(0);
  if (length < 8 || length > MAX_STARTUP_PACKET_LENGTH) {
    throw new StartupPacketError('08P01', `invalid length of startup packet (${length} bytes)`);
  }
  return length;
}

/** Decodes a complete startup packet (`buf` holds exactly its bytes). */
export function parseStartupPacket(buf: Buffer): StartupPacket {
  const code = buf.readInt32BE(4);
  if (code === SSL_REQUEST_CODE && buf.length === 8) return { kind: 'ssl' };
  if (code === GSSENC_REQUEST_CODE && buf.length === 8) return { kind: 'gssenc' };
  if (code === CANCEL_REQUEST_CODE && buf.length === 16) {
    return { kind: 'cancel', processId: buf.readInt32BE(8), secretKey: buf.readInt32BE(12) };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== PROTOCOL_V3 >>> 16) {
    throw new StartupPacketError(
      '0A000',
      `unsupported frontend protocol ${major}.${minor}: server supports 3.0 to 3.0`,
    );
  }
  const params = new Map<string, string>();
  const protocolOptions: string[] = [];
  let pos = 8;
  const end = buf.length;
  for (;;) {
    if (pos >= end) throw new StartupPacketError('08P01', 'invalid startup packet layout: expected terminator as last byte');
    if (buf[pos] === 0) {
      if (pos !== end - 1) throw new StartupPacketError('08P01', 'invalid startup packet layout: data after terminator');
      break;
    }
    const nameEnd = buf.indexOf(0, pos);
    if (nameEnd < 0 || nameEnd + 1 >= end) throw new StartupPacketError('08P01', 'invalid startup packet layout: unterminated parameter');
    const valueEnd = buf.indexOf(0, nameEnd + 1);
    if (valueEnd < 0) throw new StartupPacketError('08P01', 'invalid startup packet layout: unterminated parameter value');
    const name = buf.toString('utf8', pos, nameEnd);
    const value = buf.toString('utf8', nameEnd + 1, valueEnd);
    if (name.startsWith('_pq_.')) protocolOptions.push(name);
    else params.set(name, value);
    pos = valueEnd + 1;
  }
  const user = params.get('user');
  if (user === undefined || user === '') {
    throw new StartupPacketError('28000', 'no PostgreSQL user name specified in startup packet');
  }
  if (!params.get('database')) params.set('database', user);
  return { kind: 'startup', minorVersion: minor, params, protocolOptions };
}

/**
 * Splits the `options` startup parameter into `-c name=value` / `--name=value` settings, with
 * PostgreSQL's backslash escaping of spaces. Other switches are returned in `unsupported`.
 */
export function parseOptionsParameter(options: string): { settings: Map<string, string>; unsupported: string[] } {
  const words: string[] = [];
  let current = '';
  let inWord = false;
  for (let i = 0; i < options.length; i++) {
    const ch = options[i];
    if (ch === '\\' && i + 1 < options.length) {
      current += options[++i];
      inWord = true;
    } else if (ch === ' ' || ch === '\t' || ch === '\n') {
      if (inWord) words.push(current);
      current = '';
      inWord = false;
    } else {
      current += ch;
      inWord = true;
    }
  }
  if (inWord) words.push(current);

  const settings = new Map<string, string>();
  const unsupported: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    let assignment: string | undefined;
    if (w === '-c' && i + 1 < words.length) assignment = words[++i];
    else if (w.startsWith('-c') && w.length > 2) assignment = w.slice(2);
    else if (w.startsWith('--')) assignment = w.slice(2);
    else if (w === '-e') assignment = 'datestyle=euro'; // European date order, as postgres -e
    const eq = assignment === undefined ? -1 : assignment.indexOf('=');
    if (assignment !== undefined && eq > 0) {
      settings.set(assignment.slice(0, eq).replace(/-/g, '_'), assignment.slice(eq + 1));
    } else {
      unsupported.push(w);
    }
  }
  return { settings, unsupported };
}
