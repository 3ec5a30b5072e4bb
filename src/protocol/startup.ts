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
      /** The `replication` parameter asks for a walsender (true, on, database ...), which pgmux does not serve. */
      replication: boolean;
      /** Earlier values of parameters the packet gives again later (`params` holds the last), in packet order. */
      repeated: Array<[string, string]>;
    };

/** The SSL / GSSENC negotiations a connection has been through: a second request is not one any more. */
export interface Negotiated {
  ssl: boolean;
  gss: boolean;
}

const NOT_NEGOTIATED: Negotiated = Object.freeze({ ssl: false, gss: false });

/**
 * The `replication` startup parameter as PostgreSQL reads it: "database", or a boolean as parse_bool takes one
 * (a unique prefix of true/false/yes/no, on/off, 1/0, any case); null for anything else (PostgreSQL: 22023).
 */
export function replicationRequested(value: string): boolean | null {
  if (value === 'database') return true;
  const v = value.toLowerCase();
  if (v.length === 0) return null;
  const prefixOf = (word: string, min = 1): boolean => v.length >= min && word.startsWith(v);
  if (prefixOf('true') || prefixOf('yes') || prefixOf('on', 2) || v === '1') return true;
  if (prefixOf('false') || prefixOf('no') || prefixOf('off', 2) || v === '0') return false;
  return null;
}

/** A startup packet we cannot accept; `sqlstate` is what goes on the wire. */
export class StartupPacketError extends Error {
  constructor(
    readonly sqlstate: string,
    message: string,
    /** The client asked for a protocol below 3.0: the error goes in the version-2 format, as PostgreSQL sends it. */
    readonly protocol2 = false,
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

/**
 * Decodes a complete startup packet (`buf` holds exactly its bytes). `done`: the negotiations already made on
 * this connection; a repeated SSLRequest or GSSENCRequest is then read as a protocol version, as PostgreSQL
 * reads it ("unsupported frontend protocol 1234.5679").
 */
export function parseStartupPacket(buf: Buffer, done: Negotiated = NOT_NEGOTIATED): StartupPacket {
  const code = buf.readInt32BE(4);
  // A special request of another length is garbage; before, it was refused as a protocol version (0A000) or, inside
  // TLS, a second SSLRequest was answered again.
  if ((code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) && buf.length !== 8) throw new StartupPacketError('08P01', 'invalid length of startup packet');
  if (code === CANCEL_REQUEST_CODE && buf.length !== 16) throw new StartupPacketError('08P01', 'invalid length of cancel request packet');
  if (code === SSL_REQUEST_CODE && !done.ssl) return { kind: 'ssl' };
  if (code === GSSENC_REQUEST_CODE && !done.gss) return { kind: 'gssenc' };
  if (code === CANCEL_REQUEST_CODE) {
    return { kind: 'cancel', processId: buf.readInt32BE(8), secretKey: buf.readInt32BE(12) };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== PROTOCOL_V3 >>> 16) {
    throw new StartupPacketError(
      '0A000',
      `unsupported frontend protocol ${major}.${minor}: server supports 3.0 to 3.0`,
      // PostgreSQL answers a client below 3.0 in that client's own format (ErrorResponse without a length), except
      // version 0.0, which its elog.c takes for "not set yet" and answers in the current format.
      major < PROTOCOL_V3 >>> 16 && code !== 0,
    );
  }
  const params = new Map<string, string>();
  const protocolOptions: string[] = [];
  let replication = false;
  const repeated: Array<[string, string]> = [];
  // PostgreSQL's ProcessStartupPacket, step for step: the packet is read as if one more zero followed it, so a
  // string may run to the packet's end; a name with no room for a value ends the list; and the list must end exactly
  // at the last byte, which is then the terminator whatever its value (PostgreSQL never looks at it). Before, pgmux
  // refused a non-zero last byte (08P01 "unterminated parameter") where PostgreSQL logs the client in.
  const end = buf.length;
  const stringEnd = (from: number): number => {
    const nul = buf.indexOf(0, from);
    return nul < 0 ? end : nul;
  };
  let pos = 8;
  while (pos < end) {
    if (buf[pos] === 0) break;
    const nameEnd = stringEnd(pos);
    if (nameEnd + 1 >= end) break; // no value: refused below, unless this name is the last byte
    const valueEnd = stringEnd(nameEnd + 1);
    const name = buf.toString('utf8', pos, nameEnd);
    const value = buf.toString('utf8', nameEnd + 1, valueEnd);
    if (name === 'replication') {
      // Checked where PostgreSQL checks it, while reading the packet (before the user name is looked for).
      const requested = replicationRequested(value);
      if (requested === null) throw new StartupPacketError('22023', `invalid value for parameter "replication": "${value}"`);
      replication = requested;
    }
    if (name.startsWith('_pq_.')) protocolOptions.push(name);
    else {
      const earlier = params.get(name);
      if (earlier !== undefined) repeated.push([name, earlier]);
      params.set(name, value);
    }
    pos = valueEnd + 1;
  }
  if (pos !== end - 1) throw new StartupPacketError('08P01', 'invalid startup packet layout: expected terminator as last byte');
  const user = params.get('user');
  if (user === undefined || user === '') {
    throw new StartupPacketError('28000', 'no PostgreSQL user name specified in startup packet');
  }
  if (!params.get('database')) params.set('database', user);
  return { kind: 'startup', minorVersion: minor, params, protocolOptions, replication, repeated };
}

/**
 * Splits the `options` startup parameter into `-c name=value` / `--name=value` settings, with
 * PostgreSQL's backslash escaping of spaces. Other switches are returned in `unsupported`.
 */
export function parseOptionsParameter(options: string): { settings: Map<string, string>; unsupported: string[]; assignments: Array<[string, string]> } {
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
  const assignments: Array<[string, string]> = [];
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
      const setting: [string, string] = [assignment.slice(0, eq).replace(/-/g, '_'), assignment.slice(eq + 1)];
      settings.set(setting[0], setting[1]);
      assignments.push(setting);
    } else {
      unsupported.push(w);
    }
  }
  return { settings, unsupported, assignments };
}
