// Checks that span several settings, run once everything is merged.
import { ConfigError, ConfigProblems } from './errors.js';
import { passwordKind } from './password.js';
import type { DatabaseConfig, PgmuxConfig, UserConfig } from './schema.js';

/** Database names that reach the admin console instead of a server. */
export const ADMIN_DATABASES: readonly string[] = ['pgbouncer', 'pgmux'];

/** Maps a dotted path to the key to report: the env var or flag that set it, else the path itself. */
export type Blame = (path: string) => string;

/** Runs every check, each database and user on its own, and throws all the problems found together. */
export function checkConfig(config: PgmuxConfig, blame: Blame): void {
  const problems = new ConfigProblems();
  problems.attempt(() => {
    if (config.min_pool_size > config.default_pool_size) {
      throw new ConfigError(
        blame('min_pool_size'),
        `must not exceed default_pool_size (${config.default_pool_size}) (got ${config.min_pool_size})`,
      );
    }
  });
  problems.attempt(() => {
    if (config.metrics_port !== 0 && config.metrics_port === config.listen_port) {
      throw new ConfigError(
        blame('metrics_port'),
        `must differ from listen_port (both are ${config.listen_port}); 0 turns the metrics endpoint off`,
      );
    }
  });
  problems.attempt(() => checkTls(config, blame));
  for (const [name, db] of Object.entries(config.databases)) problems.attempt(() => checkDatabase(name, db, config, blame));
  for (const [name, user] of Object.entries(config.users)) problems.attempt(() => checkUser(name, user, config, blame));
  problems.throwIfAny();
}

function checkTls(config: PgmuxConfig, blame: Blame): void {
  const hasCert = config.client_tls_cert_file !== '' || config.client_tls_key_file !== '';
  if (hasCert && (config.client_tls_cert_file === '' || config.client_tls_key_file === '')) {
    const missing = config.client_tls_cert_file === '' ? 'client_tls_cert_file' : 'client_tls_key_file';
    throw new ConfigError(blame(missing), 'must be set too: a TLS certificate needs its key and the key its certificate');
  }
  const mode = config.client_tls_sslmode;
  if ((mode === 'require' || mode === 'verify-ca' || mode === 'verify-full') && !hasCert) {
    throw new ConfigError(blame('client_tls_sslmode'), `is ${mode}, which needs client_tls_cert_file and client_tls_key_file`);
  }
  const certAuth =
    config.auth_type === 'cert' || Object.values(config.users).some((u) => u.auth_type === 'cert') || Object.values(config.databases).some((d) => d.auth_type === 'cert');
  if ((mode === 'verify-ca' || mode === 'verify-full' || certAuth) && config.client_tls_ca_file === '') {
    throw new ConfigError(blame('client_tls_ca_file'), `is needed to check client certificates (client_tls_sslmode ${mode}${config.auth_type === 'cert' ? ', auth_type cert' : ''})`);
  }
  if ((config.server_tls_cert_file === '') !== (config.server_tls_key_file === '')) {
    const missing = config.server_tls_cert_file === '' ? 'server_tls_cert_file' : 'server_tls_key_file';
    throw new ConfigError(blame(missing), 'must be set too: a TLS certificate needs its key and the key its certificate');
  }
}

function checkDatabase(name: string, db: DatabaseConfig, config: PgmuxConfig, blame: Blame): void {
  const path = `databases.${name}`;
  if (ADMIN_DATABASES.includes(name)) {
    throw new ConfigError(
      blame(path),
      `the name is reserved for the admin console; use another name (with dbname: ${name} if the server database is called that)`,
    );
  }
  const minSize = db.min_pool_size ?? config.min_pool_size;
  const size = db.pool_size ?? config.default_pool_size;
  if (minSize > size) {
    if (db.min_pool_size !== undefined) {
      throw new ConfigError(blame(`${path}.min_pool_size`), `must not exceed the pool size (${size}) (got ${minSize})`);
    }
    throw new ConfigError(blame(`${path}.pool_size`), `must be at least min_pool_size (${minSize}) (got ${size})`);
  }
  if (db.password !== undefined && db.user === undefined) {
    throw new ConfigError(blame(`${path}.password`), 'needs user as well: a forced password goes with a forced user');
  }
  if (db.password !== undefined && passwordKind(db.password) === 'scram-sha-256') {
    throw new ConfigError(
      blame(`${path}.password`),
      'must be the plaintext password (or an md5 hash for md5 servers); a SCRAM verifier cannot log in to a server',
    );
  }
}

function checkUser(name: string, user: UserConfig, config: PgmuxConfig, blame: Blame): void {
  const path = `users.${name}.password`;
  const key = blame(path);
  const authType = user.auth_type ?? config.auth_type;
  if (user.password === undefined) {
    // Without a password here it may come from auth_file or auth_query, or not be needed (trust, cert).
    const elsewhere = config.auth_file !== '' || config.auth_user !== '' || Object.values(config.databases).some((d) => d.auth_user !== undefined);
    if (authType !== 'trust' && authType !== 'cert' && !elsewhere) {
      // The key may be DATABASE_URL or DB_PASSWORD rather than the path: then the reason names the password and user.
      const what = key === path ? 'is required' : `a password for user ${JSON.stringify(name)} is required`;
      const give = key === 'DATABASE_URL' ? 'give it in the URL (postgres://user:password@host/db)' : 'give it';
      throw new ConfigError(key, `${what} with auth_type ${authType}: ${give}, or let auth_file or auth_user/auth_query supply it, or use auth_type trust or cert`);
    }
    return;
  }
  // md5 with a SCRAM verifier is fine: as in PgBouncer, that user is asked for SCRAM instead.
  if (authType === 'scram-sha-256' && passwordKind(user.password) === 'md5') {
    throw new ConfigError(
      key,
      'is an md5 hash, which cannot answer SCRAM authentication; give the plaintext password or a SCRAM verifier, or set auth_type: md5',
    );
  }
}
