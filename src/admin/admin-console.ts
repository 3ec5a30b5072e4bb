/**
 * The admin console: the virtual databases `pgbouncer` and `pgmux`, speaking PgBouncer's commands
 * over the simple query protocol, so pgbouncer_exporter, psql runbooks and scripts work unchanged.
 *
 * A client whose startup names one of those databases (and no configured database of that name)
 * logs in with the same password check as any client; it must then be in `admin_users` (every
 * command) or `stats_users` (SHOW only). Its ClientSession hands every message after login to an
 * AdminSession, which answers each Query with a result set or an ERROR and ReadyForQuery 'I'.
 * Commands run one at a time per session, in order (PAUSE and WAIT_CLOSE wait before answering).
 */
import type { Logger } from 'pino';
import type { ClientInfo } from '../client/client-info.js';
import { ClientState } from '../client/client-state.js';
import { ADMIN_DATABASES } from '../config/checks.js';
import { checkConfig } from '../config/checks.js';
import { ConfigError, resolveDatabase, SETTINGS_BY_NAME, type DatabaseConfig, type PgmuxConfig } from '../config/index.js';
import { closest } from '../config/suggest.js';
import { InvalidValue } from '../config/values.js';
import { Errors, PgmuxError } from '../errors.js';
import {
  AUTHENTICATION_OK,
  backendKeyData,
  commandComplete,
  errorResponse,
  noticeResponse,
  parameterStatus,
  readyForQuery,
} from '../protocol/backend-messages.js';
import { BackendCode, FrontendCode, TxStatus } from '../protocol/codes.js';
import { readQuery } from '../protocol/frontend-messages.js';
import { RESTART_SETTINGS, type AdminHost } from './admin-host.js';
import { ResultSet, text } from './result-set.js';
import { showConfig } from './show-config.js';
import { showDatabases, showUsers } from './show-databases.js';
import { showHelp, showLists, showState, showVersion } from './show-misc.js';
import { showPools } from './show-pools.js';
import { showClients, showServers } from './show-sockets.js';
import { showStats, showStatsAverages, showStatsTotals, showTotals } from './show-stats.js';

export type AdminRole = 'admin' | 'stats';

/**
 * Stands for the admin console during login, where a client's database entry is expected; it is
 * never connected to. `auth_user: ''` keeps auth_query out: console users come from `users:` or
 * the auth_file.
 */
const ADMIN_DATABASE: DatabaseConfig = Object.freeze({ host: '', port: 0, dbname: ADMIN_DATABASES[0], auth_user: '' });

/** How often PAUSE and WAIT_CLOSE look whether they are done. */
const WAIT_POLL_MS = 50;

/** Parameters some drivers SET or SHOW without checking: answered, not applied (as PgBouncer's fake_param_list). */
const FAKE_PARAMS: ReadonlyMap<string, string> = new Map([
  ['client_encoding', 'UTF8'],
  ['default_transaction_isolation', 'read committed'],
  ['standard_conforming_strings', 'on'],
  ['datestyle', 'ISO'],
  ['timezone', 'GMT'],
  ['application_name', ''],
  ['extra_float_digits', '3'],
]);

const EMPTY_QUERY_RESPONSE = Buffer.from([BackendCode.EmptyQueryResponse, 0, 0, 0, 4]);

// PgBouncer's grammar (admin.c): `CMD [arg][;]`, `SET key = value`, `SET key TO 'string'`.
const WORD = String.raw`("(?:[^"]|"")*"|[0-9a-z_]+)`;
const COMMAND_RX = new RegExp(String.raw`^\s*${WORD}(?:\s+${WORD})?\s*(?:;\s*)?$`, 'i');
const SET_RX = new RegExp(String.raw`^\s*set\s+${WORD}\s*(?:=|\s+to\s)\s*('(?:[^']|'')*'|[^\s;']+)\s*(?:;\s*)?$`, 'i');

function unquote(word: string | undefined, quote: string): string | undefined {
  if (word === undefined || !word.startsWith(quote)) return word;
  return word.slice(1, -1).replaceAll(quote + quote, quote);
}

export class AdminConsole {
  readonly database: DatabaseConfig = ADMIN_DATABASE;

  constructor(
    readonly host: AdminHost,
    readonly log: Logger,
  ) {}

  /** The stand-in entry for `pgbouncer` / `pgmux`, or undefined for any other name. */
  databaseFor(name: string): DatabaseConfig | undefined {
    return ADMIN_DATABASES.includes(name) ? ADMIN_DATABASE : undefined;
  }

  /**
   * The client proved its password: admit it with its role and greet it, or refuse it (42501, as
   * PostgreSQL refuses a user without CONNECT privilege) when it is in neither admin_users nor stats_users.
   */
  open(client: ClientInfo, authMessages: Buffer[]): AdminSession | null {
    const config = this.host.config;
    const role: AdminRole | null = config.admin_users.includes(client.user) ? 'admin' : config.stats_users.includes(client.user) ? 'stats' : null;
    if (role === null) {
      client.fail(Errors.adminNotAllowed(client.user, client.database));
      return null;
    }
    const parts = [...authMessages, AUTHENTICATION_OK];
    // What PgBouncer tells console clients; server_version is pgmux's own ("<version>/pgmux").
    for (const [name, value] of [
      ['server_version', `${this.host.version}/pgmux`],
      ['client_encoding', 'UTF8'],
      ['server_encoding', 'UTF8'],
      ['DateStyle', 'ISO'],
      ['TimeZone', 'GMT'],
      ['standard_conforming_strings', 'on'],
      ['integer_datetimes', 'on'],
      ['is_superuser', role === 'admin' ? 'on' : 'off'],
      ['application_name', client.applicationName],
    ]) {
      parts.push(parameterStatus(name, value));
    }
    parts.push(backendKeyData(client.processId, client.secretKey), readyForQuery(TxStatus.Idle));
    client.socket.write(Buffer.concat(parts));
    client.log.info({ role }, 'admin console login');
    return new AdminSession(this, client, role);
  }
}

type Handler = (session: AdminSession, arg: string | undefined) => Buffer | Promise<Buffer>;

interface Command {
  /** Whether stats_users may run it too. */
  readonly stats: boolean;
  readonly run: Handler;
}

export class AdminSession {
  /** Commands run one after the other; a PAUSE that waits holds back what the client sent next. */
  private queue: Promise<void> = Promise.resolve();
  /** After an extended-protocol message: ignore the rest of that batch, up to Sync. */
  private skipUntilSync = false;

  constructor(
    readonly console: AdminConsole,
    readonly client: ClientInfo,
    readonly role: AdminRole,
  ) {}

  get host(): AdminHost {
    return this.console.host;
  }

  get closed(): boolean {
    return this.client.state === ClientState.Closed;
  }

  /** A message from the client (after login); `buf[start, end)` is the whole message. */
  onFrame(code: number, buf: Buffer, start: number, end: number): void {
    this.client.lastActive = Date.now(); // client_idle_timeout counts from the last command
    switch (code) {
      case FrontendCode.Query: {
        let sql: string;
        try {
          sql = readQuery(buf, start, end);
        } catch {
          this.client.fail(Errors.protocolViolation('malformed Query message'));
          return;
        }
        this.enqueue(() => this.execute(sql));
        return;
      }
      case FrontendCode.Parse:
      case FrontendCode.Bind:
      case FrontendCode.Describe:
      case FrontendCode.Execute:
      case FrontendCode.Close:
      case FrontendCode.FunctionCall:
        if (this.skipUntilSync) return;
        this.skipUntilSync = code !== FrontendCode.FunctionCall;
        this.enqueue(async () => this.write(errorBuffer(Errors.adminExtendedProtocol()), code === FrontendCode.FunctionCall));
        return;
      case FrontendCode.Sync:
        this.skipUntilSync = false;
        this.enqueue(async () => this.write(Buffer.alloc(0), true));
        return;
      case FrontendCode.Flush:
        return;
      default:
        this.client.fail(Errors.protocolViolation(`unexpected message '${String.fromCharCode(code)}' in the admin console`));
    }
  }

  private enqueue(task: () => Promise<void>): void {
    // A task that throws closes this session only: a rejection nobody handles would end the process.
    const guarded = (): Promise<void> =>
      task().catch((err: unknown) => {
        this.console.log.error({ err: (err as Error).stack ?? String(err), client: this.client.id }, 'admin session failed; closing it');
        this.client.fail(Errors.internal((err as Error).message ?? String(err)));
      });
    this.queue = this.queue.then(guarded, guarded);
  }

  private write(reply: Buffer, ready: boolean): void {
    if (this.closed || !this.client.socket.writable) return;
    this.client.socket.write(ready ? Buffer.concat([reply, readyForQuery(TxStatus.Idle)]) : reply);
  }

  private async execute(sql: string): Promise<void> {
    let reply: Buffer;
    try {
      reply = await this.run(sql);
    } catch (err) {
      if (err instanceof SessionGone) return;
      if (!(err instanceof PgmuxError)) {
        this.console.log.error({ err: (err as Error).stack ?? String(err), query: sql }, 'admin command failed');
        err = new PgmuxError('ADMIN_INTERNAL', 'XX000', `internal error: ${(err as Error).message}`, { severity: 'ERROR' });
      }
      const error = err as PgmuxError;
      this.console.log[error.logLevel]({ client: this.client.id, sqlstate: error.sqlstate, query: sql }, error.message);
      reply = errorBuffer(error);
    }
    this.write(reply, true);
  }

  /** One query: a command, a SET, or nothing (empty query). */
  private async run(sql: string): Promise<Buffer> {
    if (/^[\s;]*$/.test(sql)) return EMPTY_QUERY_RESPONSE;
    const set = SET_RX.exec(sql);
    if (set !== null) return this.set(unquote(set[1], '"') as string, unquote(set[2], "'") as string);
    const m = COMMAND_RX.exec(sql);
    if (m === null) throw Errors.adminUnknownCommand(sql.trim());
    const name = (unquote(m[1], '"') as string).toLowerCase();
    const arg = unquote(m[2], '"');
    const command = own(COMMANDS, name);
    if (command === undefined) throw Errors.adminUnknownCommand(sql.trim());
    if (!command.stats && this.role !== 'admin') throw Errors.adminNeedsAdmin(name.toUpperCase(), this.client.user);
    if (name !== 'show') this.console.log.info({ client: this.client.id, user: this.client.user, command: sql.trim() }, 'admin command');
    return command.run(this, arg);
  }

  /** SET key = value: a runtime-changeable global setting, validated by its own parser. */
  private set(key: string, raw: string): Buffer {
    const fake = FAKE_PARAMS.has(key.toLowerCase());
    if (fake) return Buffer.concat([noticeResponse({ severity: 'NOTICE', code: '00000', message: 'SET ignored' }), commandComplete('SET')]);
    if (this.role !== 'admin') throw Errors.adminNeedsAdmin('SET', this.client.user);
    const setting = SETTINGS_BY_NAME.get(key.toLowerCase());
    if (setting === undefined) {
      const suggestion = closest(key, SETTINGS_BY_NAME.keys());
      throw Errors.adminSetRejected(key, `is not a pgmux setting${suggestion === undefined ? '' : `; did you mean ${suggestion}?`}`, '42704');
    }
    if (RESTART_SETTINGS.includes(setting.name)) {
      throw Errors.adminSetRejected(setting.name, 'cannot be changed while pgmux runs; change it in the configuration and restart', '55P02');
    }
    let value;
    try {
      value = setting.parse(raw);
    } catch (err) {
      if (err instanceof InvalidValue) throw Errors.adminSetRejected(setting.name, err.message, '22023');
      throw err;
    }
    const current = this.host.config;
    const next = Object.freeze({ ...current, [setting.name]: value }) as PgmuxConfig;
    try {
      checkConfig(next, (path) => path);
    } catch (err) {
      if (err instanceof ConfigError) throw Errors.adminSetRejected(setting.name, err.key === setting.name ? err.reason : err.message, '22023');
      throw err;
    }
    const result = this.host.applyConfig(next, `SET ${setting.name}`);
    if (!result.ok) throw Errors.adminSetRejected(setting.name, result.error, '22023');
    return commandComplete(`SET ${setting.name}=${raw}`);
  }

  // ---- helpers for commands ----

  /** A database a command may act on: configured (or served by "*"), or with pools still draining. */
  database(name: string, verb: string): string {
    if (ADMIN_DATABASES.includes(name)) throw Errors.adminCommandFailed(`cannot ${verb} admin db: ${name}`);
    if (resolveDatabase(this.host.config, name) === undefined && this.host.registry.poolsOf(name).length === 0) {
      throw Errors.adminNoSuchDatabase(name);
    }
    return name;
  }

  /** Polls until `done()`; throws when the client left or `interrupted()` says the wait is moot. */
  async waitUntil(done: () => boolean, interrupted: () => string | null): Promise<void> {
    for (;;) {
      if (done()) return;
      if (this.closed) throw new SessionGone();
      const why = interrupted();
      if (why !== null) throw Errors.adminCommandFailed(why);
      await new Promise((r) => setTimeout(r, WAIT_POLL_MS));
    }
  }
}

/** The admin client went away while its command waited. */
class SessionGone extends Error {}

/** An error for the console: always ERROR (the session goes on). */
function errorBuffer(error: PgmuxError): Buffer {
  return errorResponse({ ...error.toFields(), severity: 'ERROR' });
}

/**
 * `table[key]` for the table's own entries only: a command named `constructor` or `__proto__` must
 * not find Object's (`SHOW constructor` once answered with the session object and crashed pgmux).
 */
function own<T>(table: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

function noArgument(arg: string | undefined, command: string): void {
  if (arg !== undefined) throw Errors.adminUnknownCommand(`${command} ${arg}`);
}

function requireArgument(arg: string | undefined, what: string): string {
  if (arg === undefined || arg === '') throw Errors.adminCommandFailed(`${what} is required`);
  return arg;
}

const SHOW: Readonly<Record<string, (s: AdminSession) => Buffer>> = {
  pools: (s) => showPools(s.host.registry),
  stats: (s) => showStats(s.host.registry),
  stats_totals: (s) => showStatsTotals(s.host.registry),
  stats_averages: (s) => showStatsAverages(s.host.registry),
  totals: (s) => showTotals(s.host.registry),
  clients: (s) => showClients(s.host.registry, Date.now(), s.client),
  servers: (s) => showServers(s.host.registry),
  databases: (s) => showDatabases(s.host),
  users: (s) => showUsers(s.host),
  config: (s) => showConfig(s.host.config),
  lists: (s) => showLists(s.host),
  version: (s) => showVersion(s.host),
  state: (s) => showState(s.host),
  help: () => showHelp(),
};

const COMMANDS: Readonly<Record<string, Command>> = {
  show: {
    stats: true,
    run: (s, arg) => {
      const what = requireArgument(arg, 'what to SHOW (see SHOW HELP)');
      const show = own(SHOW, what.toLowerCase());
      if (show !== undefined) return show(s);
      const fake = FAKE_PARAMS.get(what.toLowerCase());
      if (fake !== undefined) return new ResultSet([text(what.toLowerCase())]).row([fake]).finish();
      throw Errors.adminUnknownCommand(`SHOW ${what}`);
    },
  },

  pause: {
    stats: false,
    run: async (s, arg) => {
      const registry = s.host.registry;
      const db = arg === undefined ? undefined : s.database(arg, 'pause');
      if (db === undefined && registry.pausedDatabases().includes('*')) throw Errors.adminCommandFailed('already paused');
      registry.pause(db);
      await s.waitUntil(
        () => registry.pauseDone(db),
        () => (db === undefined ? !registry.pausedDatabases().includes('*') : !registry.isPaused(db)) ? 'PAUSE was interrupted by RESUME' : null,
      );
      s.console.log.info({ db: db ?? '*' }, 'paused');
      return commandComplete('PAUSE');
    },
  },

  resume: {
    stats: false,
    run: (s, arg) => {
      const registry = s.host.registry;
      if (arg === undefined) {
        if (registry.pausedDatabases().length === 0) throw Errors.adminCommandFailed('pooler is not paused');
        registry.resume();
      } else {
        const db = s.database(arg, 'resume');
        if (!registry.isPaused(db)) throw Errors.adminCommandFailed(`database ${db} is not paused`);
        if (registry.pausedDatabases().includes('*')) throw Errors.adminCommandFailed('every database is paused', 'Use RESUME without a database name.');
        registry.resume(db);
      }
      return commandComplete('RESUME');
    },
  },

  reconnect: {
    stats: false,
    run: (s, arg) => {
      s.host.registry.reconnect(arg === undefined ? undefined : s.database(arg, 'reconnect'));
      return commandComplete('RECONNECT');
    },
  },

  kill: {
    stats: false,
    run: (s, arg) => {
      s.host.registry.kill(arg === undefined ? undefined : s.database(arg, 'kill'));
      return commandComplete('KILL');
    },
  },

  kill_client: {
    stats: false,
    run: (s, arg) => {
      const id = Number(requireArgument(arg, 'a client id (SHOW CLIENTS, column id)'));
      if (!Number.isSafeInteger(id) || id <= 0) throw Errors.adminCommandFailed(`invalid client id: ${arg}`);
      if (!s.host.registry.killClient(id)) throw Errors.adminCommandFailed(`client not found: ${id}`, 'SHOW CLIENTS lists the clients with their id.');
      return commandComplete('KILL_CLIENT');
    },
  },

  disable: {
    stats: false,
    run: (s, arg) => {
      s.host.registry.setDisabled(s.database(requireArgument(arg, 'a database'), 'disable'), true);
      return commandComplete('DISABLE');
    },
  },

  enable: {
    stats: false,
    run: (s, arg) => {
      s.host.registry.setDisabled(s.database(requireArgument(arg, 'a database'), 'enable'), false);
      return commandComplete('ENABLE');
    },
  },

  reload: {
    stats: false,
    run: (s, arg) => {
      noArgument(arg, 'RELOAD');
      const result = s.host.reload();
      if (!result.ok) throw Errors.reloadFailed(result.error);
      const notices = result.restartNeeded.map((key) =>
        noticeResponse({ severity: 'WARNING', code: '01000', message: `${key} changed in the configuration: restart pgmux to apply it`, detail: 'pgmux keeps running with the previous value.' }),
      );
      return Buffer.concat([...notices, commandComplete('RELOAD')]);
    },
  },

  wait_close: {
    stats: false,
    run: async (s, arg) => {
      const db = arg === undefined ? undefined : s.database(arg, 'wait in');
      await s.waitUntil(() => s.host.registry.closeDone(db), () => null);
      return commandComplete('WAIT_CLOSE');
    },
  },

  shutdown: {
    stats: false,
    run: (s, arg) => {
      // WAIT_FOR_CLIENTS / WAIT_FOR_SERVERS are accepted: pgmux's shutdown always lets transactions finish.
      if (arg !== undefined && !/^wait_for_(clients|servers)$/i.test(arg)) throw Errors.adminUnknownCommand(`SHUTDOWN ${arg}`);
      s.console.log.info({ client: s.client.id, user: s.client.user }, 'SHUTDOWN from the admin console');
      setImmediate(() => s.host.shutdown());
      return commandComplete('SHUTDOWN');
    },
  },

  suspend: {
    stats: false,
    run: () => {
      throw new PgmuxError('ADMIN_SUSPEND', '0A000', 'SUSPEND is not supported by pgmux (there is no online restart to suspend for)', {
        severity: 'ERROR',
        hint: 'Use PAUSE to stop traffic to the servers.',
      });
    },
  },
};
