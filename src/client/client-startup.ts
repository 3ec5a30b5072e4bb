/**
 * The startup phase of a client connection: the bytes before the startup packet (SSLRequest and GSSENCRequest,
 * answered once each; direct TLS; CancelRequest; a startup packet that comes in pieces), the switch to TLS, and
 * the checks a startup packet must pass before any password is asked for.
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { resolveDatabase, type AuthType, type DatabaseConfig } from '../config/index.js';
import { Errors, PgmuxError } from '../errors.js';
import { prefixedStream } from '../net/prefixed-stream.js';
import type { ClientTls } from '../net/tls-config.js';
import { negotiateProtocolVersion, SSL_NOT_SUPPORTED, SSL_SUPPORTED } from '../protocol/backend-messages.js';
import { parseStartupPacket, startupPacketLength, StartupPacketError, type Negotiated, type StartupPacket } from '../protocol/startup.js';
import type { ClientHost } from './client-host.js';
import { checkClientCertificate, checkTlsPolicy } from './client-tls-policy.js';
import { startupSettings, type StartupSettings } from './startup-settings.js';

/** First byte of a TLS record carrying a handshake (a ClientHello, for direct TLS). */
const TLS_HANDSHAKE = 0x16;

export type StartupMessage = Extract<StartupPacket, { kind: 'startup' }>;

/** What the bytes read so far ask of the session. */
export type StartupStep =
  /** Nothing yet: the packet is incomplete, or an SSLRequest / GSSENCRequest was answered 'N'. */
  | { readonly kind: 'wait' }
  /** Continue over TLS: after the 'S' answer (`prefix` null), or at once for direct TLS (`prefix`: the ClientHello). */
  | { readonly kind: 'tls'; readonly prefix: Buffer | null }
  | { readonly kind: 'refused'; readonly error: PgmuxError }
  | Extract<StartupPacket, { kind: 'cancel' }>
  /** `rest`: bytes that came behind the startup packet (the first messages of a pipelining client). */
  | { readonly kind: 'startup'; readonly packet: StartupMessage; readonly rest: Buffer };

const WAIT: StartupStep = { kind: 'wait' };

/** Reads a connection's bytes up to its startup packet or cancel request. */
export class StartupReader {
  private pending: Buffer | null = null;
  /** SSLRequest / GSSENCRequest already answered on this connection. */
  private readonly negotiated: Negotiated = { ssl: false, gss: false };

  /** `tlsOffered`: TLS can still be negotiated (not yet encrypted, a certificate configured, not a unix socket). */
  read(chunk: Buffer, socket: Socket, tlsOffered: boolean): StartupStep {
    if (this.pending === null && chunk[0] === TLS_HANDSHAKE && tlsOffered) {
      // Direct TLS (PostgreSQL 17 sslnegotiation=direct): a ClientHello instead of a startup packet.
      return { kind: 'tls', prefix: chunk };
    }
    let buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = null;
    let packet: StartupPacket;
    let length: number;
    try {
      length = startupPacketLength(buf);
      if (length < 0 || buf.length < length) {
        this.pending = buf;
        return WAIT;
      }
      packet = parseStartupPacket(buf.subarray(0, length), this.negotiated);
    } catch (err) {
      if (err instanceof StartupPacketError) {
        return { kind: 'refused', error: new PgmuxError('BAD_STARTUP', err.sqlstate, err.message, { logLevel: 'info', protocol2: err.protocol2 }) };
      }
      throw err;
    }
    buf = buf.subarray(length);
    switch (packet.kind) {
      case 'ssl':
      case 'gssenc':
        if (buf.length > 0) {
          // Bytes sent before our answer would be read as if they were inside the encrypted channel.
          return { kind: 'refused', error: Errors.protocolViolation('received unencrypted data after SSL/GSSENC request') };
        }
        // Each is answered once, as PostgreSQL does (after TLS, a GSSENCRequest is not one either): a repeated
        // request is then read as a protocol version and refused. Before, pgmux answered every one of them.
        if (packet.kind === 'gssenc') this.negotiated.gss = true;
        else this.negotiated.ssl = true;
        if (packet.kind === 'ssl' && tlsOffered) {
          this.negotiated.gss = true;
          socket.write(SSL_SUPPORTED);
          return { kind: 'tls', prefix: null };
        }
        socket.write(SSL_NOT_SUPPORTED);
        return WAIT;
      case 'cancel':
        return packet;
      case 'startup':
        return { kind: 'startup', packet, rest: buf };
    }
  }
}

/** The TLS socket a connection continues on; `prefix`: bytes of the handshake already read from `tcp`. */
export function tlsSocketOver(tcp: Socket, prefix: Buffer | null, tls: ClientTls): TLSSocket {
  tcp.removeAllListeners('data');
  tcp.removeAllListeners('close');
  return new TLSSocket(prefix === null ? tcp : prefixedStream(tcp, prefix), {
    isServer: true,
    secureContext: tls.context ?? undefined,
    requestCert: tls.requestCert,
    rejectUnauthorized: false, // pgmux decides per sslmode/auth_type, with a clear error
    ALPNProtocols: ['postgresql'],
  });
}

/** The connection a startup packet came on (user and database are the packet's). */
export interface StartupClient {
  readonly socket: Socket;
  readonly user: string;
  readonly database: string;
  readonly label: string;
  readonly log: Logger;
  readonly encrypted: boolean;
  readonly viaUnixSocket: boolean;
}

/** A startup packet let through to authentication. */
export interface AdmittedStartup {
  /** Its database entry (or the admin console's stand-in). */
  readonly dbConfig: DatabaseConfig;
  readonly authType: AuthType;
  readonly settings: StartupSettings;
}

/**
 * The checks a startup packet must pass before a password is asked for, in this order (the client gets the first
 * refusal): a walsender, max_client_conn, the database, client_tls_sslmode, then what auth_type demands (a valid
 * certificate; TLS for a cleartext password). A client that asked for more than protocol 3.0 is sent
 * NegotiateProtocolVersion on the way.
 */
export function admitStartup(packet: StartupMessage, client: StartupClient, host: ClientHost): AdmittedStartup | PgmuxError {
  const config = host.config;
  // replication=off/no/0/false is an ordinary connection, as in PostgreSQL (these were refused before).
  if (packet.replication) return Errors.replicationRefused();
  if (host.tooManyClients()) return Errors.tooManyClients(config.max_client_conn);
  if (packet.minorVersion > 0 || packet.protocolOptions.length > 0) {
    client.socket.write(negotiateProtocolVersion(0, packet.protocolOptions));
  }
  // An entry of its own, else the wildcard "*" entry (same-named upstream database).
  const dbConfig = resolveDatabase(config, client.database) ?? host.adminConsole?.databaseFor(client.database);
  if (dbConfig === undefined) return Errors.unknownDatabase(client.database);
  // client_tls_sslmode does not apply to the unix socket, which never leaves the host (as in PgBouncer).
  const tlsRefusal = client.viaUnixSocket ? null : checkTlsPolicy(client.socket, host.clientTls, client.user);
  if (tlsRefusal !== null) return tlsRefusal;

  const settings = startupSettings(packet.params, config.application_name_add_host ? client.label : null, packet.repeated);
  if (settings.unsupported.length > 0) client.log.info({ options: settings.unsupported }, 'ignoring unsupported switches in the options startup parameter');

  const userConfig = Object.hasOwn(config.users, client.user) ? config.users[client.user] : undefined;
  const authType = userConfig?.auth_type ?? dbConfig.auth_type ?? config.auth_type;
  if (authType === 'cert') {
    const certError = checkClientCertificate(client.socket, host.clientTls, client.user, true);
    if (certError !== null) return certError;
  }
  if (authType === 'plain' && !client.encrypted && !client.viaUnixSocket && !config.auth_plain_without_tls) {
    return Errors.plainNeedsTls();
  }
  return { dbConfig, authType, settings };
}
