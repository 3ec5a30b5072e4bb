/**
 * A client's login after its startup packet was admitted: the password lookup, the exchange auth_type asks for
 * (ClientAuth), joining a pool (or the admin console), and the greeting: at once when the pool knows every value
 * the client must be told, else through a server (logging-in), so the client is told what a server really has and
 * a bad setting fails the login, as it would against PostgreSQL.
 */
import type { Logger } from 'pino';
import { tlsServerEndPoint } from '../auth/channel-binding.js';
import type { AuthType, DatabaseConfig } from '../config/index.js';
import { Errors, PgmuxError } from '../errors.js';
import type { Pool, PoolClient } from '../pool/pool.js';
import { AUTHENTICATION_OK, backendKeyData, parameterStatus, readyForQuery } from '../protocol/backend-messages.js';
import { FrontendCode, TxStatus } from '../protocol/codes.js';
import type { ParamMap } from '../server/param-map.js';
import type { ServerConnection } from '../server/server-connection.js';
import { ClientAuth, type AuthStep } from './client-auth.js';
import type { AdminConnection, ClientHost } from './client-host.js';
import type { RegisteredClient } from './client-info.js';
import { expectKnownValues, learnStartupValues } from './client-parameters.js';
import { ClientState } from './client-state.js';

type ScramKeys = { clientKey: Buffer; serverKey: Buffer };

/** What a login reads and sets of its session. */
export interface LoginSession extends RegisteredClient, PoolClient {
  state: ClientState;
  readonly params: ParamMap;
  readonly server: ServerConnection | null;
  readonly waitLink: PoolClient['waitLink'];
  readonly waitingSince: number;
  readonly startupParams: ReadonlyMap<string, string>;
  /** Logged in to the admin console: its session takes the client's messages. */
  admin: AdminConnection | null;
  /** Messages wait to be sent to a server. */
  readonly holding: boolean;
  /** Close the client for an exception raised while handling it. */
  failOn(err: unknown): void;
  /** Become the pool's client (and, in transaction mode, take on its session machinery). */
  joinPool(pool: Pool): void;
  /** The client was greeted (or handed to the admin console): the login and what it kept can go. */
  loginFinished(): void;
  /** Read nothing more of the client's for now, not even the rest of the data at hand (see FrameReader.hold). */
  holdInput(): void;
  /** Read on: what came since holdInput() is handled now, as if it had just arrived. */
  resumeInput(): void;
}

export class ClientLogin {
  private auth: ClientAuth | null = null;
  /** The user's stored password as found (config, auth_file or auth_query): what pgmux logs in upstream with. */
  private storedPassword: string | undefined = undefined;

  constructor(
    private readonly session: LoginSession,
    private readonly host: ClientHost,
    /** The session's own logger (its `log` makes a child logger on first use). */
    private readonly baseLog: Logger,
    private readonly dbConfig: DatabaseConfig,
    /** Startup values PostgreSQL would apply and then override: checked on the server at login (overriddenCheckQuery). */
    private overriddenCheck: string | null,
    /** DER of the certificate pgmux presented, when the client is on TLS (channel binding). */
    private readonly certificate: Buffer | null,
    /** The client's `options` as PostgreSQL refuses them: the login fails once authenticated, as there. */
    private readonly optionsRefusal: PgmuxError | null = null,
  ) {}

  /** The exchange under way is SASL (SCRAM), whose messages PostgreSQL caps lower (message-limits.ts). */
  get sasl(): boolean {
    return this.auth?.sasl === true;
  }

  /** Look the stored password up (auth_query may take a while) and start the exchange `authType` asks for. */
  begin(authType: AuthType): void {
    const session = this.session;
    session.state = ClientState.Authenticating;
    // Even without a password exchange (trust, cert) the stored password is what pgmux logs in upstream with.
    const password = this.host.passwords.resolve(session.user, session.database, this.dbConfig);
    if (!(password instanceof Promise)) return this.challenge(authType, password);
    password.then(
      (found) => {
        try {
          this.challenge(authType, found);
        } catch (err) {
          session.failOn(err);
        }
      },
      (err: Error) => session.fail(Errors.passwordLookupFailed(session.user, err.message)),
    );
  }

  private challenge(authType: AuthType, password: string | undefined): void {
    if (this.session.state !== ClientState.Authenticating) return; // gone while the password was looked up
    this.storedPassword = password;
    if (authType === 'trust' || authType === 'cert') return this.loggedIn([], undefined);
    let binding: Buffer | null = null;
    if (this.certificate !== null) {
      try {
        binding = tlsServerEndPoint(this.certificate);
      } catch {
        binding = null; // certificate type without a binding hash: SCRAM-SHA-256-PLUS not offered
      }
    }
    // mayWait: a password that must be derived with PBKDF2 (plaintext in the auth source) is derived in libuv's
    // threadpool, not on the event loop every client shares.
    this.auth = new ClientAuth(this.session.user, password, authType, this.host.secrets, binding, { mayWait: true });
    this.session.socket.write(this.auth.start());
  }

  /** A message while authenticating: only password messages belong to the exchange. */
  onMessage(code: number, buf: Buffer, start: number, end: number): void {
    const session = this.session;
    const auth = this.auth;
    if (auth === null) return session.fail(Errors.authProtocol('message sent before the authentication request'));
    if (code !== FrontendCode.PasswordMessage) return session.fail(Errors.authProtocol(`expected a password message, got '${String.fromCharCode(code)}'`));
    this.onStep(auth, auth.onMessage(buf, start, end));
  }

  private onStep(auth: ClientAuth, step: AuthStep): void {
    const session = this.session;
    switch (step.kind) {
      case 'pending':
        // PostgreSQL checks the password before it reads on: what the client sent behind it is read after the
        // check's answer, and judged in the state that leads to (a message the exchange did not expect fails it,
        // as PostgreSQL's would; after the greeting they are the client's first requests).
        session.holdInput();
        step.next.then(
          (next) => {
            // Gone (or failed) meanwhile: nothing more to say.
            if (session.state !== ClientState.Authenticating || this.auth !== auth) return;
            try {
              this.onStep(auth, next);
              if ((session.state as ClientState) !== ClientState.Closed) session.resumeInput();
            } catch (err) {
              session.failOn(err);
            }
          },
          (err: unknown) => session.failOn(err),
        );
        return;
      case 'send':
        session.socket.write(step.message);
        return;
      case 'fail':
        this.host.loginFailed(session, step.error);
        return session.fail(step.error);
      case 'ok':
        this.auth = null;
        this.loggedIn(step.messages, step.scramKeys);
        return;
    }
  }

  /** Authenticated: join the pool, then greet the client (after a server told us the parameters, if needed). */
  private loggedIn(authMessages: Buffer[], scramKeys: ScramKeys | undefined): void {
    const session = this.session;
    const host = this.host;
    host.loginEnded(session);
    if (this.optionsRefusal !== null) {
      // PostgreSQL reads the options after authentication: AuthenticationOk, then the FATAL.
      for (const m of authMessages) session.socket.write(m);
      session.socket.write(AUTHENTICATION_OK);
      return session.fail(this.optionsRefusal);
    }
    if (this.dbConfig === host.adminConsole?.database) {
      session.state = ClientState.Idle;
      session.admin = host.adminConsole.open(session, authMessages);
      session.loginFinished();
      return;
    }
    let pool: Pool;
    try {
      pool = host.poolFor(session.database, this.dbConfig, session.user, this.storedPassword, scramKeys);
    } catch (err) {
      if (err instanceof PgmuxError) return session.fail(err);
      throw err;
    }
    session.joinPool(pool);
    const needServer = !expectKnownValues(session.params, session.startupParams, pool) || this.overriddenCheck !== null;
    host.clientLoggedIn(session);
    if (!needServer) {
      // One write for the whole welcome (SASL final, AuthenticationOk, settings, key, ReadyForQuery): in a login
      // storm every write is a syscall that can wake another process, and they used to be three.
      this.sendWelcome(pool.defaultParams as ReadonlyMap<string, string>, authMessages);
      return;
    }
    for (const m of authMessages) session.socket.write(m);
    session.socket.write(AUTHENTICATION_OK);
    // The first client of a pool, or one asking for non-default settings: log in through a
    // server so the client is told the values the server really has (and bad settings fail now).
    session.state = ClientState.LoggingIn;
    pool.acquire(session);
  }

  /**
   * Logging in, and a server is attached: check the overridden startup values on it, learn its values and greet the
   * client. True when the session goes on as for any server it is given; false while the login still uses the server
   * (its own queries run, then onServerReady comes again) or gave it back.
   */
  serverReady(server: ServerConnection): boolean {
    const session = this.session;
    if (this.overriddenCheck !== null) {
      // A setting given twice: PostgreSQL applies the earlier value too, and a bad one fails the login.
      const check = this.overriddenCheck;
      this.overriddenCheck = null;
      server.runOwnQuery(check, (error) => {
        if (error !== null) return session.fail(error);
        session.onServerReady(server);
      });
      return false;
    }
    const pool = session.pool as Pool;
    learnStartupValues(session.params, session.startupParams, pool, server);
    this.sendWelcome(server.reportedParams());
    if (pool.transactionMode && !session.holding) {
      pool.serverReleased(server);
      return false;
    }
    if (!server.inStepWith(session)) {
      // The defaults just filled in may differ from what the server has.
      session.state = ClientState.Waiting;
      server.bringInStep(session, () => session.onServerReady(server));
      return false;
    }
    return true;
  }

  /** ParameterStatus for each setting, BackendKeyData, ReadyForQuery; with `authMessages` and AuthenticationOk first when given. */
  private sendWelcome(serverParams: ReadonlyMap<string, string>, authMessages: Buffer[] | null = null): void {
    const session = this.session;
    const parts: Buffer[] = authMessages === null ? [] : [...authMessages, AUTHENTICATION_OK];
    for (const [name, value] of serverParams) parts.push(parameterStatus(name, session.params.get(name) ?? value));
    parts.push(backendKeyData(session.processId, session.secretKey), readyForQuery(TxStatus.Idle));
    session.socket.write(Buffer.concat(parts)); // small fresh buffers: one copy, one plain write (no cork/writev)
    session.state = ClientState.Idle;
    session.loginFinished();
    // Not through session.log unless debug is on: it would make the client a pino child logger for nothing.
    if (this.baseLog.isLevelEnabled('debug')) session.log.debug('client logged in');
  }
}
