// Command-line flags. Values stay strings here; loadConfig validates them like any other source.
import { ConfigError } from './errors.js';
import { SETTINGS_BY_NAME, type SettingName } from './schema.js';
import { didYouMean } from './suggest.js';

export interface CliOptions {
  help: boolean;
  version: boolean;
  configPath?: string;
  /** --pgbouncer-ini: a PgBouncer configuration to run with instead of a YAML file. */
  pgbouncerIni?: string;
  /** Global settings given on the command line, by setting name (`listen_port`), values unparsed. */
  overrides: Record<string, string>;
}

/** Flags that set one global setting each; every other setting is reachable with --set. */
const SETTING_FLAGS: ReadonlyMap<string, SettingName> = new Map<string, SettingName>([
  ['--listen-addr', 'listen_addr'],
  ['--listen-port', 'listen_port'],
  ['-p', 'listen_port'],
  ['--pool-mode', 'pool_mode'],
  ['--default-pool-size', 'default_pool_size'],
  ['--max-client-conn', 'max_client_conn'],
  ['--log-level', 'log_level'],
]);

const FLAGS = ['--config', '-c', '--pgbouncer-ini', '--set', '--help', '-h', '--version', '-V', ...SETTING_FLAGS.keys()];

export const HELP_TEXT = `Usage: pgmux [options]
       pgmux import PGBOUNCER_INI [-o OUT.yaml]   convert a pgbouncer.ini to pgmux YAML (stdout without -o)

pgmux is a PostgreSQL connection pooler: many client connections share a small set of server connections.

Options:
  -c, --config FILE          YAML config file (default: $PGMUX_CONFIG, else config/pgmux.yaml if it exists)
      --pgbouncer-ini FILE   run from a PgBouncer configuration instead (pgbouncer.ini, auth_file, %include);
                             settings pgmux does not support are listed in a warning at startup
      --listen-addr ADDR     address to accept clients on; "*" means all interfaces (default 127.0.0.1)
  -p, --listen-port PORT     port to accept clients on (default 6543)
      --pool-mode MODE       session, transaction or statement (default transaction)
      --default-pool-size N  server connections per (database, user) pool (default 20)
      --max-client-conn N    client connections accepted in total (default 5000)
      --log-level LEVEL      trace, debug, info, warn, error or fatal (default info)
      --set KEY=VALUE        set any global setting, e.g. --set server_idle_timeout=5min (repeatable)
  -h, --help                 print this help and exit
  -V, --version              print the version and exit

Each flag also accepts the form --flag=value.

Settings are read from, in increasing precedence: built-in defaults, the config file, environment variables
named after the setting in upper case (LISTEN_PORT=6543, ADMIN_USERS=a,b), and flags. DATABASE_URL=
postgres://user:password@host:5432/db defines a database and a user with those credentials; so do
DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD (DB_NAME default "*": any database) as in PgBouncer images.
DATABASE_URL's libpq parameters are honoured (sslmode, sslrootcert, sslcert, sslkey, connect_timeout,
application_name, options); any other is an error.
Durations take a unit (500ms, 30s, 5min, 1h); a bare number means seconds.

Every setting, with its default and meaning, is listed in the README and in config/pgmux.example.yaml (copy it
to config/pgmux.yaml to use it: the example itself is never read). The startup log names the file and the
variables the configuration came from.
`;

/** The flag to name in an error about a setting given on the command line. */
export function cliKey(name: string): string {
  for (const [flag, setting] of SETTING_FLAGS) if (setting === name && flag.startsWith('--')) return flag;
  return `--set ${name}`;
}

function looksLikeFlag(arg: string): boolean {
  return /^--?[A-Za-z]/.test(arg);
}

/** Parses the arguments after the script name (`process.argv.slice(2)`). */
export function parseCli(argv: readonly string[]): CliOptions {
  const result: CliOptions = { help: false, version: false, overrides: {} };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!looksLikeFlag(arg)) {
      throw new ConfigError(arg, 'is not an option; pgmux takes no positional arguments (use --config FILE for a config file, or pgmux import FILE to convert a pgbouncer.ini)');
    }
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const inline = eq === -1 ? undefined : arg.slice(eq + 1);
    const takeValue = (): string => {
      if (inline !== undefined) return inline;
      const next = argv[i + 1];
      if (next === undefined || looksLikeFlag(next)) throw new ConfigError(flag, 'needs a value');
      i++;
      return next;
    };
    const noValue = (): true => {
      if (inline !== undefined) throw new ConfigError(flag, 'takes no value');
      return true;
    };

    const setting = SETTING_FLAGS.get(flag);
    if (setting !== undefined) {
      result.overrides[setting] = takeValue();
      continue;
    }
    switch (flag) {
      case '--config':
      case '-c':
        result.configPath = takeValue();
        break;
      case '--pgbouncer-ini':
        result.pgbouncerIni = takeValue();
        break;
      case '--set': {
        const [name, value] = parseAssignment(takeValue());
        result.overrides[name] = value;
        break;
      }
      case '--help':
      case '-h':
        result.help = noValue();
        break;
      case '--version':
      case '-V':
        result.version = noValue();
        break;
      default:
        throw new ConfigError(flag, `is not a known option${didYouMean(flag, FLAGS)} (see --help)`);
    }
  }
  return result;
}

/** `key=value` for --set; the key may be spelt with dashes (`server-idle-timeout`). */
function parseAssignment(text: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new ConfigError('--set', `must be followed by key=value (got ${JSON.stringify(text)})`);
  const name = text.slice(0, eq).trim().toLowerCase().replaceAll('-', '_');
  if (!SETTINGS_BY_NAME.has(name)) {
    const hint = name === 'databases' || name === 'users' ? '; databases and users are set in the config file' : didYouMean(name, SETTINGS_BY_NAME.keys());
    throw new ConfigError(`--set ${name}`, `is not a known setting${hint}`);
  }
  return [name, text.slice(eq + 1)];
}
