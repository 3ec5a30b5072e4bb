/**
 * Logs a new server connection in: answers the upstream's authentication requests (trust,
 * cleartext, md5, SCRAM-SHA-256) and collects ParameterStatus and BackendKeyData until the
 * first ReadyForQuery. Runs once per server connection, so it decodes freely.
 */
import { serialize } from 'pg-protocol';
import { md5Response } from '../auth/md5.js';
import type { TLSSocket } from 'node:tls';
import { tlsServerEndPoint, SCRAM_SHA_256_PLUS } from '../auth/channel-binding.js';
import { parseScramVerifier, ScramClientSession, SCRAM_SHA_256, type ScramClientCredentials } from '../auth/scram.js';
import { UpstreamError, PgmuxError } from '../errors.js';
import { AuthRequest, BackendCode } from '../protocol/codes.js';
import { readErrorFields, readParameterStatus } from '../protocol/fields.js';
import { SqlState } from '../protocol/sqlstate.js';

/** Credentials and target of a server connection. */
export interface UpstreamLogin {
  user: string;
  database: string;
  /**
   * Plaintext password, an md5 secret (usable for md5 auth only), or a SCRAM verifier (usable
   * for SCRAM only, with `scramKeys`). Absent for trust.
   */
  password?: string;
  /** ClientKey recovered from a client's SCRAM proof (SCRAM passthrough), with the verifier's ServerKey. */
  scramKeys?: { clientKey: Buffer; serverKey: Buffer };
  /**
   * The database's own startup parameters (application_name, options: from its URL), sent on every login as libpq
   * sends them; the client's settings, sent after them, win.
   */
  parameters?: Readonly<Record<string, string>>;
}

export interface LoginResult {
  params: Map<string, string>;
  processId: number;
  secretKey: number;
}

export class ServerLogin {
  private scram: ScramClientSession | null = null;
  readonly params = new Map<string, string>();
  processId = 0;
  secretKey = 0;

  constructor(
    private readonly login: UpstreamLogin,
    private readonly send: (buf: Buffer) => void,
    /** The TLS socket to the server, for SCRAM-SHA-256-PLUS channel binding. */
    private readonly tlsSocket: TLSSocket | null = null,
    /** Settings for the startup packet (they become the session's RESET values). */
    private readonly settings: ReadonlyMap<string, string> | null = null,
  ) {}

  start(): void {
    const packet: Record<string, string> = { ...this.login.parameters };
    if (this.settings !== null) for (const [name, value] of this.settings) packet[name] = value;
    packet.user = this.login.user;
    packet.database = this.login.database;
    this.send(serialize.startup(packet));
  }

  /** Handles one message; returns true once the server is ready. Throws PgmuxError on failure. */
  onMessage(code: number, buf: Buffer, start: number, end: number): boolean {
    switch (code) {
      case BackendCode.Authentication:
        this.onAuthentication(buf, start, end);
        return false;
      case BackendCode.ParameterStatus: {
        const [name, value] = readParameterStatus(buf, start, end);
        this.params.set(name, value);
        return false;
      }
      case BackendCode.BackendKeyData:
        this.processId = buf.readInt32BE(start + 5);
        this.secretKey = buf.readInt32BE(start + 9);
        return false;
      case BackendCode.ErrorResponse:
        throw new UpstreamError(readErrorFields(buf, start, end));
      case BackendCode.ReadyForQuery:
        return true;
      case BackendCode.NoticeResponse:
      case BackendCode.NegotiateProtocolVersion:
        return false;
      default:
        throw new PgmuxError('SERVER_LOGIN_PROTOCOL', SqlState.ProtocolViolation, `unexpected message '${String.fromCharCode(code)}' from server during login`);
    }
  }

  private onAuthentication(buf: Buffer, start: number, end: number): void {
    const kind = buf.readInt32BE(start + 5);
    const data = buf.subarray(start + 9, end);
    switch (kind) {
      case AuthRequest.Ok:
        return;
      case AuthRequest.CleartextPassword:
        this.send(serialize.password(this.plaintext('password')));
        return;
      case AuthRequest.MD5Password: {
        const secret = this.requirePassword('md5');
        if (parseScramVerifier(secret) !== null) throw this.unsupported('md5 authentication for a user pgmux only has a SCRAM verifier for');
        this.send(serialize.password(md5Response(this.login.user, secret, data.subarray(0, 4))));
        return;
      }
      case AuthRequest.SASL: {
        const mechanisms = data.toString('utf8').split('\0').filter((m) => m !== '');
        if (!mechanisms.includes(SCRAM_SHA_256)) {
          throw this.unsupported(`SASL mechanisms ${mechanisms.join(', ')}`);
        }
        const binding = this.channelBinding(mechanisms.includes(SCRAM_SHA_256_PLUS));
        this.scram = new ScramClientSession(this.scramCredentials(), {
          channelBinding: binding ?? undefined,
          serverSupportsBinding: this.tlsSocket !== null && mechanisms.includes(SCRAM_SHA_256_PLUS),
        });
        this.send(serialize.sendSASLInitialResponseMessage(this.scram.mechanism, this.scram.clientFirst()));
        return;
      }
      case AuthRequest.SASLContinue:
        if (this.scram === null) throw this.unsupported('SASLContinue before SASL');
        this.send(serialize.sendSCRAMClientFinalMessage(this.scram.handleServerFirst(data)));
        return;
      case AuthRequest.SASLFinal:
        if (this.scram === null) throw this.unsupported('SASLFinal before SASL');
        this.scram.handleServerFinal(data);
        return;
      default:
        throw this.unsupported(`authentication request type ${kind}`);
    }
  }

  /** tls-server-end-point data of the server's certificate, when the server offers PLUS over TLS. */
  private channelBinding(offered: boolean): Buffer | null {
    if (!offered || this.tlsSocket === null) return null;
    const certificate = this.tlsSocket.getPeerX509Certificate();
    if (certificate === undefined) return null;
    try {
      return tlsServerEndPoint(certificate.raw);
    } catch {
      return null; // e.g. an Ed25519 certificate: no binding possible, plain SCRAM-SHA-256 it is
    }
  }

  private scramCredentials(): ScramClientCredentials {
    const password = this.requirePassword('SCRAM-SHA-256');
    const secret = parseScramVerifier(password);
    if (secret === null) return { password: this.plaintext('SCRAM-SHA-256') };
    const keys = this.login.scramKeys;
    if (keys === undefined) {
      throw new PgmuxError(
        'NO_SCRAM_KEYS',
        SqlState.InvalidAuthorizationSpecification,
        `pgmux only has a SCRAM verifier for user "${this.login.user}" and no client has logged in with SCRAM yet to pass its proof through`,
        { hint: 'Clients of this user must authenticate with SCRAM (auth_type scram-sha-256), or give pgmux the plaintext password.', logLevel: 'error' },
      );
    }
    return { clientKey: keys.clientKey, serverKey: keys.serverKey, salt: secret.salt, iterations: secret.iterations };
  }

  private requirePassword(method: string): string {
    const password = this.login.password;
    if (password === undefined) {
      throw new PgmuxError(
        'NO_UPSTREAM_PASSWORD',
        SqlState.InvalidAuthorizationSpecification,
        `server asked for ${method} authentication of user "${this.login.user}" but pgmux has no password for it`,
        { hint: `Set users.${this.login.user}.password, or databases.<name>.password.`, logLevel: 'error' },
      );
    }
    return password;
  }

  private plaintext(method: string): string {
    const password = this.requirePassword(method);
    if (parseScramVerifier(password) !== null) {
      throw new PgmuxError(
        'NO_UPSTREAM_PASSWORD',
        SqlState.InvalidAuthorizationSpecification,
        `server asked for ${method} authentication of user "${this.login.user}" but pgmux only has a SCRAM verifier for it`,
        { hint: `Use scram-sha-256 authentication on the server for this user, or give pgmux the plaintext password.`, logLevel: 'error' },
      );
    }
    if (/^md5[0-9a-f]{32}$/.test(password)) {
      throw new PgmuxError(
        'NO_UPSTREAM_PASSWORD',
        SqlState.InvalidAuthorizationSpecification,
        `server asked for ${method} authentication of user "${this.login.user}" but pgmux only has an md5 secret for it`,
        { hint: `Give users.${this.login.user}.password in plain text, or use md5 authentication on the server.`, logLevel: 'error' },
      );
    }
    return password;
  }

  private unsupported(what: string): PgmuxError {
    return new PgmuxError('SERVER_AUTH_UNSUPPORTED', SqlState.FeatureNotSupported, `server requested unsupported ${what}`, { logLevel: 'error' });
  }
}
