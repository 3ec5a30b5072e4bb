import {
  CANCEL_REQUEST_CODE,
  GSSENC_REQUEST_CODE,
  MAX_STARTUP_PACKET_LENGTH,
  PROTOCOL_V3,
  SSL_REQUEST_CODE,
} from './codes.js';
import { SqlState } from './sqlstate.js';

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
    throw new StartupPacketError(SqlState.ProtocolViolation, `invalid length of startup packet (${length} bytes)`);
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
  // TLS, a second SSLRequest was answered again. One already answered is a protocol version whatever its length, as
  // PostgreSQL reads it (protocol fuzzer seed 1919719991: a long GSSENCRequest inside TLS).
  const negotiation = (code === SSL_REQUEST_CODE && !done.ssl) || (code === GSSENC_REQUEST_CODE && !done.gss);
  if (negotiation && buf.length !== 8) throw new StartupPacketError(SqlState.ProtocolViolation, 'invalid length of startup packet');
  if (code === CANCEL_REQUEST_CODE && buf.length !== 16) throw new StartupPacketError(SqlState.ProtocolViolation, 'invalid length of cancel request packet');
  if (code === SSL_REQUEST_CODE && !done.ssl) return { kind: 'ssl' };
  if (code === GSSENC_REQUEST_CODE && !done.gss) return { kind: 'gssenc' };
  if (code === CANCEL_REQUEST_CODE) {
    return { kind: 'cancel', processId: buf.readInt32BE(8), secretKey: buf.readInt32BE(12) };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== PROTOCOL_V3 >>> 16) {
    throw new StartupPacketError(
      SqlState.FeatureNotSupported,
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
  if (pos !== end - 1) throw new StartupPacketError(SqlState.ProtocolViolation, 'invalid startup packet layout: expected terminator as last byte');
  const user = params.get('user');
  if (user === undefined || user === '') {
    throw new StartupPacketError('28000', 'no PostgreSQL user name specified in startup packet');
  }
  if (!params.get('database')) params.set('database', user);
  return { kind: 'startup', minorVersion: minor, params, protocolOptions, replication, repeated };
}

/** Why PostgreSQL would refuse a client's `options`: FATAL with this SQLSTATE, message and hint, after authentication. */
export interface OptionsRefusal {
  sqlstate: string;
  message: string;
  hint?: string;
}

/** The switches of PostgreSQL's process_postgres_switches (getopt's optstring there), with an argument and without. */
const SWITCHES_WITH_ARGUMENT = new Set('BcCDdfhkNprStvW-');
const SWITCHES_WITHOUT_ARGUMENT = new Set('bEeFijlnOPsT');
/** Switches that stand for a setting (SetConfigOption there): without an argument, the setting and its value... */
const FLAG_SETTINGS = new Map<string, [string, string]>([
  ['e', ['datestyle', 'euro']],
  ['F', ['fsync', 'false']],
  ['i', ['listen_addresses', '*']],
  ['l', ['ssl', 'true']],
  ['O', ['allow_system_table_mods', 'true']],
  ['s', ['log_statement_stats', 'true']],
]);
/** ...and with one, the setting it gives the value of. */
const ARGUMENT_SETTINGS = new Map<string, string>([
  ['B', 'shared_buffers'],
  ['h', 'listen_addresses'],
  ['k', 'unix_socket_directories'],
  ['N', 'max_connections'],
  ['p', 'port'],
  ['S', 'work_mem'],
]);
/** -t's argument names a statistics setting by its first letters (get_stats_option_name); anything else is an error. */
function statsSetting(argument: string): string | null {
  if (argument.startsWith('pa')) return 'log_parser_stats';
  if (argument.startsWith('pl')) return 'log_planner_stats';
  if (argument.startsWith('e')) return 'log_executor_stats';
  return null;
}
/** -f's arguments (set_plan_disabling_options); anything else is an error. */
const PLAN_OPTIONS = /^[siobtnmh]/;

/**
 * Splits the `options` startup parameter as PostgreSQL does (pg_split_opts: whitespace separates, a backslash
 * escapes the next character), then reads it with process_postgres_switches' rules: `-c name=value`, `-cname=value`
 * and `--name=value` are settings (dashes in the name become underscores), and so are the switches that stand for
 * one (`-S 4096` is work_mem, `-e` DateStyle euro, `-B` shared_buffers, which the server then refuses as it would
 * directly); PostgreSQL's other switches (-P, -W, -d, -f and those it ignores) are not applied (`unsupported`,
 * logged). What PostgreSQL refuses at login, pgmux
 * refuses the same way (`refusal`, the first as PostgreSQL meets them): a setting without a value, an unknown
 * switch, a switch missing its argument, a word that is no switch (`statement_timeout=5s` without `-c`).
 */
export function parseOptionsParameter(options: string): {
  settings: Map<string, string>;
  unsupported: string[];
  assignments: Array<[string, string]>;
  refusal: OptionsRefusal | null;
} {
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
  const invalid = (word: string): OptionsRefusal => ({
    sqlstate: SqlState.SyntaxError,
    message: `invalid command-line argument for server process: ${word}`,
    hint: 'Try "postgres --help" for more information.',
  });
  const done = (refusal: OptionsRefusal | null) => ({ settings, unsupported, assignments, refusal });
  const set = (name: string, value: string): void => {
    settings.set(name, value);
    assignments.push([name, value]);
  };
  // glibc's getopt moves words that are no switch behind the switches: they are complained about after all switches.
  let firstOperand: string | null = null;
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    if (word === '--') {
      // The end of the switches: whatever follows is an operand.
      if (i + 1 < words.length) firstOperand ??= words[i + 1];
      break;
    }
    if (!word.startsWith('-') || word.length === 1) {
      firstOperand ??= word;
      continue;
    }
    // A word may bundle switches (-Pe); one taking an argument takes the rest of the word, or the next word.
    for (let j = 1; j < word.length; j++) {
      const flag = word[j];
      if (SWITCHES_WITHOUT_ARGUMENT.has(flag)) {
        const setting = FLAG_SETTINGS.get(flag);
        if (setting !== undefined) set(setting[0], setting[1]);
        else unsupported.push(`-${flag}`);
        continue;
      }
      if (!SWITCHES_WITH_ARGUMENT.has(flag)) return done(invalid(word));
      let argument: string;
      let named: string;
      if (j + 1 < word.length) {
        argument = word.slice(j + 1);
        named = word;
      } else if (i + 1 < words.length) {
        argument = words[++i];
        named = argument;
      } else {
        return done(invalid(word));
      }
      if (flag === 'c' || flag === '-') {
        const eq = argument.indexOf('=');
        if (eq < 0) return done({ sqlstate: SqlState.SyntaxError, message: flag === '-' ? `--${argument} requires a value` : `-c ${argument} requires a value` });
        const name = argument.slice(0, eq).replace(/-/g, '_');
        if (name === '') return done({ sqlstate: SqlState.UndefinedObject, message: 'unrecognized configuration parameter ""' });
        set(name, argument.slice(eq + 1));
      } else if (flag === 't') {
        const stats = statsSetting(argument);
        if (stats === null) return done(invalid(named));
        set(stats, 'true');
      } else if (flag === 'f' && !PLAN_OPTIONS.test(argument)) {
        return done(invalid(named));
      } else {
        const setting = ARGUMENT_SETTINGS.get(flag);
        if (setting !== undefined) set(setting, argument);
        else unsupported.push(`-${flag}`, argument);
      }
      break;
    }
  }
  return done(firstOperand === null ? null : invalid(firstOperand));
}
