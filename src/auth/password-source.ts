/**
 * Where a user's stored password comes from, in order: `users:` in the config, the `auth_file`,
 * then `auth_query` run upstream as `auth_user` (cached for `auth_query_cache_ttl`, concurrent
 * lookups for one user shared). The result may be plaintext, an md5 secret or a SCRAM verifier.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { DatabaseConfig, PgmuxConfig } from '../config/index.js';
import { ConfigError } from '../config/index.js';
import type { ServerTls } from '../net/tls-config.js';
import { runUpstreamQuery } from '../server/upstream-query.js';
import { AuthFileError, readAuthFile } from './auth-file.js';

interface CacheEntry {
  expires: number;
  value: Promise<string | undefined>;
}

const LOOKUP_TIMEOUT_MS = 10_000;

export class PasswordSource {
  private readonly authFile: ReadonlyMap<string, string>;
  private readonly cache = new Map<string, CacheEntry>();

  constructor(
    private readonly config: PgmuxConfig,
    private readonly serverTls: ServerTls,
    private readonly log: Logger,
  ) {
    this.authFile = new Map();
    if (config.auth_file !== '') {
      try {
        this.authFile = readAuthFile(config.auth_file);
      } catch (err) {
        if (err instanceof AuthFileError) throw new ConfigError('auth_file', err.message);
        throw new ConfigError('auth_file', `cannot read ${config.auth_file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
  }

  /** The stored password of `user` (undefined: unknown user), synchronously when no lookup is needed. */
  resolve(user: string, database: string, dbConfig: DatabaseConfig): string | undefined | Promise<string | undefined> {
    const known = this.local(user);
    if (known !== undefined) return known;
    const authUser = dbConfig.auth_user ?? (this.config.auth_user === '' ? undefined : this.config.auth_user);
    // auth_user '' (the admin console's entry): no auth_query.
    if (authUser === undefined || authUser === '' || authUser === user) return undefined;
    const key = `${database}\0${user}`;
    const now = Date.now();
    const cached = this.cache.get(key);
    if (cached !== undefined && cached.expires > now) return cached.value;
    const value = this.query(user, authUser, dbConfig);
    this.cache.set(key, { expires: now + this.config.auth_query_cache_ttl, value });
    // A failed lookup is not cached: the next login tries again.
    value.catch(() => this.cache.delete(key));
    if (this.cache.size > 10_000) this.prune(now);
    return value;
  }

  /**
   * A key that only this configuration's secrets give (its passwords and the auth_file's), for the salts
   * pgmux makes up (ScramSecretCache): the same on every restart and every instance with this
   * configuration, unknown to anyone who does not know those secrets. Null when there are none.
   */
  saltKey(): Buffer | null {
    const hash = createHash('sha256').update('pgmux SCRAM salt key\0');
    let secrets = 0;
    const add = (where: string, name: string, password: string | undefined): void => {
      if (password === undefined || password === '') return;
      hash.update(`${where}\0${name}\0${password}\0`);
      secrets++;
    };
    for (const name of Object.keys(this.config.users).sort()) add('users', name, this.config.users[name].password);
    for (const name of Object.keys(this.config.databases).sort()) add('databases', name, this.config.databases[name].password);
    for (const name of [...this.authFile.keys()].sort()) add('auth_file', name, this.authFile.get(name));
    return secrets === 0 ? null : hash.digest();
  }

  private local(user: string): string | undefined {
    const configured = Object.hasOwn(this.config.users, user) ? this.config.users[user].password : undefined;
    return configured ?? this.authFile.get(user);
  }

  private async query(user: string, authUser: string, dbConfig: DatabaseConfig): Promise<string | undefined> {
    const password = this.local(authUser);
    const rows = await runUpstreamQuery(
      {
        host: dbConfig.host,
        port: dbConfig.port,
        keepalive: false,
        keepidleMs: 0,
        maxPreparedStatements: 0,
        tls: this.serverTls,
        login: { user: authUser, database: dbConfig.dbname, password },
      },
      this.config.auth_query,
      [user],
      LOOKUP_TIMEOUT_MS,
    );
    const found = rows[0]?.[1] ?? undefined;
    this.log.debug({ user, found: found !== undefined }, 'auth_query lookup');
    return found ?? undefined;
  }

  private prune(now: number): void {
    for (const [key, entry] of this.cache) if (entry.expires <= now) this.cache.delete(key);
  }
}
