/**
 * Errors pgmux sends to clients. Each knows its stable `code` (for logs and tests), the SQLSTATE
 * and severity put on the wire, an optional HINT naming the setting to change, and the level at
 * which it is logged. One factory per cause, so the wire text for a cause lives in one place.
 */
import { errorResponse, errorResponseV2, type ErrorFields } from './protocol/backend-messages.js';
import { SqlState } from './protocol/sqlstate.js';
import type { OptionsRefusal } from './protocol/startup.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export class PgmuxError extends Error {
  constructor(
    readonly code: string,
    readonly sqlstate: string,
    message: string,
    readonly options: {
      severity?: 'ERROR' | 'FATAL';
      hint?: string;
      detail?: string;
      logLevel?: LogLevel;
      /** Sent in the version-2 protocol's format (a startup packet asking for a protocol below 3.0). */
      protocol2?: boolean;
    } = {},
  ) {
    super(message);
    this.name = 'PgmuxError';
  }

  get severity(): 'ERROR' | 'FATAL' {
    return this.options.severity ?? 'FATAL';
  }

  get logLevel(): LogLevel {
    return this.options.logLevel ?? 'info';
  }

  get fatal(): boolean {
    return this.severity === 'FATAL';
  }

  toFields(): ErrorFields {
    return {
      severity: this.severity,
      code: this.sqlstate,
      message: this.message,
      hint: this.options.hint,
      detail: this.options.detail,
    };
  }

  toWire(): Buffer {
    return this.options.protocol2 === true ? errorResponseV2(this.toFields()) : errorResponse(this.toFields());
  }
}

/** An error the upstream server sent (during login or a pgmux-issued query), passed on as it was. */
export class UpstreamError extends PgmuxError {
  constructor(readonly fields: ReadonlyMap<string, string>) {
    super('UPSTREAM_ERROR', fields.get('C') ?? SqlState.InternalError, fields.get('M') ?? 'server error', {
      severity: 'FATAL',
      hint: fields.get('H'),
      detail: fields.get('D'),
      logLevel: 'warn',
    });
  }
}

export const Errors = {
  tooManyClients: (max: number) =>
    new PgmuxError('MAX_CLIENT_CONN', SqlState.TooManyConnections, `too many client connections: pgmux allows ${max} (max_client_conn)`, {
      hint: 'Raise max_client_conn, or make clients close connections they do not use.',
      logLevel: 'warn',
    }),
  unknownDatabase: (db: string) =>
    new PgmuxError('UNKNOWN_DATABASE', SqlState.InvalidCatalogName, `database "${db}" does not exist in pgmux`, {
      hint: 'pgmux serves the databases listed under "databases" in its configuration (or DATABASE_URL).',
    }),
  /** The `options` startup parameter as PostgreSQL refuses it (parseOptionsParameter), after authentication. */
  optionsRefused: (refusal: OptionsRefusal) =>
    new PgmuxError('STARTUP_OPTIONS', refusal.sqlstate, refusal.message, { hint: refusal.hint }),
  authFailed: (user: string) =>
    new PgmuxError('AUTH_FAILED', SqlState.InvalidPassword, `password authentication failed for user "${user}"`, {
      logLevel: 'warn',
    }),
  authProtocol: (reason: string) =>
    new PgmuxError('AUTH_PROTOCOL', SqlState.ProtocolViolation, `invalid authentication exchange: ${reason}`, { logLevel: 'warn' }),
  noUpstreamPassword: (user: string, db: string) =>
    new PgmuxError(
      'NO_UPSTREAM_PASSWORD',
      SqlState.InvalidAuthorizationSpecification,
      `pgmux has no password to log in to database "${db}" as user "${user}"`,
      { hint: `Give users.${user}.password in plain text, or set databases.${db}.user and databases.${db}.password.`, logLevel: 'error' },
    ),
  tlsRequired: (mode: string) =>
    new PgmuxError('TLS_REQUIRED', SqlState.InvalidAuthorizationSpecification, 'SSL required: pgmux accepts only TLS connections', {
      hint: `client_tls_sslmode is ${mode}; connect with sslmode=require (or verify-ca/verify-full).`,
      logLevel: 'warn',
    }),
  certificateAuthFailed: (user: string, reason: string) =>
    new PgmuxError('CERT_AUTH_FAILED', SqlState.InvalidAuthorizationSpecification, `certificate authentication failed for user "${user}": ${reason}`, {
      hint: 'The client certificate must be signed by client_tls_ca_file and, for cert authentication, have the user name as its common name (CN).',
      logLevel: 'warn',
    }),
  plainNeedsTls: () =>
    new PgmuxError('PLAIN_NEEDS_TLS', SqlState.InvalidAuthorizationSpecification, 'cleartext password authentication is refused on a connection without TLS', {
      hint: 'Connect with sslmode=require, use auth_type scram-sha-256, or set auth_plain_without_tls: true.',
      logLevel: 'warn',
    }),
  passwordLookupFailed: (user: string, reason: string) =>
    new PgmuxError('AUTH_QUERY_FAILED', SqlState.InvalidAuthorizationSpecification, `pgmux could not look up the password of user "${user}": ${reason}`, {
      hint: 'Check auth_user (and its password in users: or auth_file) and auth_query.',
      logLevel: 'error',
    }),
  protocolViolation: (reason: string) =>
    new PgmuxError('PROTOCOL_VIOLATION', SqlState.ProtocolViolation, `protocol violation: ${reason}`, { logLevel: 'warn' }),
  /**
   * A request sent in the middle of COPY IN: PostgreSQL's ERROR (copyfromparse.c CopyGetData), which it follows with
   * copySyncLost and a close. `code`: the message's type byte.
   */
  unexpectedDuringCopy: (code: number) =>
    new PgmuxError('COPY_BROKEN', SqlState.ProtocolViolation, `unexpected message type 0x${code.toString(16).toUpperCase().padStart(2, '0')} during COPY from stdin`, {
      severity: 'ERROR',
      logLevel: 'info',
    }),
  copySyncLost: () => new PgmuxError('COPY_BROKEN', SqlState.ProtocolViolation, 'terminating connection because protocol synchronization was lost', { logLevel: 'info' }),
  /** A malformed message from a client: it is closed, nobody else is affected. */
  malformedMessage: (reason: string) =>
    new PgmuxError('MALFORMED_MESSAGE', SqlState.ProtocolViolation, `invalid message from the client: ${reason}`, { logLevel: 'warn' }),
  /** A bug in pgmux while handling one connection: that connection is closed, the process goes on. */
  internal: (reason: string) =>
    new PgmuxError('INTERNAL_ERROR', SqlState.InternalError, `pgmux internal error: ${reason}`, {
      detail: 'The connection was closed; other connections are not affected.',
      logLevel: 'error',
    }),
  loginTimeout: (ms: number) =>
    new PgmuxError('CLIENT_LOGIN_TIMEOUT', SqlState.ProtocolViolation, `client did not complete login within ${ms} ms (client_login_timeout)`),
  idleTransactionTimeout: (ms: number) =>
    new PgmuxError(
      'IDLE_TRANSACTION_TIMEOUT',
      '25P03',
      `terminating connection: idle in transaction for more than ${ms} ms (idle_transaction_timeout)`,
      { hint: 'Commit or roll back transactions promptly; a transaction left open holds a server connection for everyone.', logLevel: 'warn' },
    ),
  transactionInStatementMode: (pool: string) =>
    new PgmuxError(
      'TRANSACTION_IN_STATEMENT_MODE',
      '25000',
      `transaction blocks are not allowed in statement pooling mode (pool ${pool}); the transaction was rolled back`,
      { hint: 'Send each transaction as one request, or set pool_mode to transaction for this database or user.', logLevel: 'warn' },
    ),
  clientIdleTimeout: (ms: number) =>
    new PgmuxError('CLIENT_IDLE_TIMEOUT', SqlState.AdminShutdown, `closing connection idle for more than ${ms} ms (client_idle_timeout)`),
  poolWaitTimeout: (pool: string, ms: number, fatal: boolean) =>
    new PgmuxError(
      'QUERY_WAIT_TIMEOUT',
      SqlState.QueryCanceled,
      `canceling statement: no server connection in pool "${pool}" became free within ${ms} ms (query_wait_timeout)`,
      {
        severity: fatal ? 'FATAL' : 'ERROR',
        hint: 'Raise default_pool_size (or the pool\'s pool_size) or query_wait_timeout, or shorten long transactions that hold server connections.',
        logLevel: 'warn',
      },
    ),
  /** The pool's queue holds max_queued_clients_per_pool clients already. */
  poolQueueFull: (pool: string, max: number, fatal: boolean) =>
    new PgmuxError(
      'POOL_QUEUE_FULL',
      SqlState.TooManyConnections,
      `too many clients waiting for a server connection in pool "${pool}": ${max} are queued already (max_queued_clients_per_pool)`,
      {
        severity: fatal ? 'FATAL' : 'ERROR',
        hint: 'Retry later, raise max_queued_clients_per_pool, or raise default_pool_size (or the pool\'s pool_size) if the server can take more connections.',
        logLevel: 'warn',
      },
    ),
  /** query_timeout passed, pgmux sent a cancel, and the server did not answer for another query_timeout. */
  queryTimeoutUnanswered: (pool: string, ms: number) =>
    new PgmuxError(
      'QUERY_TIMEOUT_UNANSWERED',
      SqlState.QueryCanceled,
      `terminating connection: the query ran longer than query_timeout (${ms} ms) and the server of pool "${pool}" did not answer the cancel request within another ${ms} ms`,
      {
        detail: 'The server connection was closed; the transaction in progress, if any, did not complete.',
        hint: 'The server may be unreachable or overloaded. query_timeout sets how long a query may run.',
        logLevel: 'warn',
      },
    ),
  canceledWhileWaiting: () =>
    new PgmuxError('CANCELED_WHILE_WAITING', SqlState.QueryCanceled, 'canceling statement due to user request', { severity: 'ERROR' }),
  serverConnectFailed: (pool: string, target: string, reason: string) =>
    new PgmuxError('SERVER_CONNECT_FAILED', SqlState.ConnectionFailure, `pgmux could not connect to server ${target} for pool "${pool}": ${reason}`, {
      hint: 'Check that the database\'s host and port in the pgmux configuration are right and the server is up.',
      logLevel: 'error',
    }),
  serverConnectionLost: (pool: string, reason: string) =>
    new PgmuxError('SERVER_CONNECTION_LOST', SqlState.ConnectionFailure, `server connection for pool "${pool}" was lost: ${reason}`, {
      detail: 'The transaction in progress, if any, did not complete.',
      logLevel: 'warn',
    }),
  adminShutdown: () =>
    new PgmuxError('SHUTDOWN', SqlState.AdminShutdown, 'terminating connection due to administrator command: pgmux is shutting down'),
  unsupportedCopyBoth: () =>
    new PgmuxError('COPY_BOTH', SqlState.FeatureNotSupported, 'replication and COPY BOTH are not supported through pgmux', {
      hint: 'Connect to the server directly for replication.',
    }),
  replicationRefused: () =>
    new PgmuxError('REPLICATION', SqlState.FeatureNotSupported, 'replication connections are not supported through pgmux', {
      hint: 'Connect to the server directly for replication.',
    }),

  // ---- admin console (virtual databases pgbouncer / pgmux) and pool control ----
  /** As PostgreSQL refuses a user without CONNECT privilege: authenticated, but not allowed in (42501). */
  adminNotAllowed: (user: string, db: string) =>
    new PgmuxError('ADMIN_NOT_ALLOWED', '42501', `permission denied for database "${db}": user "${user}" is not allowed to use the admin console`, {
      detail: 'Only admin_users and stats_users may log in to the admin console.',
      hint: `Add "${user}" to admin_users (all commands) or stats_users (SHOW commands only).`,
      logLevel: 'warn',
    }),
  adminNeedsAdmin: (command: string, user: string) =>
    new PgmuxError('ADMIN_STATS_USER', '42501', `${command} needs admin access: user "${user}" may only run SHOW commands (stats_users)`, {
      severity: 'ERROR',
      hint: `Add "${user}" to admin_users.`,
      logLevel: 'warn',
    }),
  adminUnknownCommand: (query: string) =>
    new PgmuxError('ADMIN_UNKNOWN_COMMAND', '42601', `invalid command '${query.length > 200 ? `${query.slice(0, 197)}...` : query}', use SHOW HELP;`, {
      severity: 'ERROR',
      hint: 'The admin console understands PgBouncer\'s commands: SHOW POOLS|STATS|CLIENTS|SERVERS|DATABASES|..., PAUSE, RESUME, RECONNECT, KILL, SET, RELOAD, SHUTDOWN. SHOW HELP lists them.',
    }),
  adminExtendedProtocol: () =>
    new PgmuxError('ADMIN_EXTENDED_PROTOCOL', SqlState.FeatureNotSupported, 'extended query protocol not supported by admin console', {
      severity: 'ERROR',
      hint: 'Send admin commands with the simple query protocol (psql does; with drivers, run the query without parameters or use their "simple" mode).',
    }),
  adminNoSuchDatabase: (db: string) =>
    new PgmuxError('ADMIN_NO_SUCH_DATABASE', SqlState.InvalidCatalogName, `no such database: ${db}`, { severity: 'ERROR' }),
  adminCommandFailed: (message: string, hint?: string) =>
    new PgmuxError('ADMIN_COMMAND_FAILED', '55000', message, { severity: 'ERROR', hint }),
  /** sqlstate: 42704 unknown setting, 55P02 not changeable at run time, 22023 bad value. */
  adminSetRejected: (key: string, reason: string, sqlstate: '42704' | '55P02' | '22023') =>
    new PgmuxError('ADMIN_SET_REJECTED', sqlstate, `SET ${key}: ${reason}`, {
      severity: 'ERROR',
      hint: sqlstate === '22023' ? undefined : 'SHOW CONFIG lists the settings and whether each can be changed while running (changeable).',
    }),
  reloadFailed: (reason: string) =>
    new PgmuxError('RELOAD_FAILED', 'F0000', `RELOAD failed: ${reason}; the previous configuration stays in effect`, {
      severity: 'ERROR',
      hint: 'Fix the configuration file (the key is named above) and run RELOAD again.',
      logLevel: 'error',
    }),
  databaseDisabled: (db: string) =>
    new PgmuxError('DATABASE_DISABLED', SqlState.CannotConnectNow, `database "${db}" does not allow new connections: it was disabled with DISABLE`, {
      hint: `An administrator can allow connections again with ENABLE ${db} in the admin console.`,
      logLevel: 'info',
    }),
  databaseKilled: (db: string) =>
    new PgmuxError('DATABASE_KILLED', SqlState.AdminShutdown, `terminating connection due to administrator command: KILL of database "${db}"`, {
      hint: `New transactions on "${db}" wait until RESUME ${db} is run in the admin console.`,
    }),
  clientKilled: (id: number) =>
    new PgmuxError('CLIENT_KILLED', SqlState.AdminShutdown, `terminating connection due to administrator command: KILL_CLIENT ${id}`),
};
