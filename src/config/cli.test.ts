import { describe, expect, it } from 'vitest';
import { cliKey, HELP_TEXT, parseCli } from './cli.js';
import { ConfigError } from './errors.js';

function errorOf(argv: string[]): ConfigError {
  try {
    parseCli(argv);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected ConfigError');
}

describe('parseCli', () => {
  it('returns nothing set for no arguments', () => {
    expect(parseCli([])).toEqual({ help: false, version: false, overrides: {} });
  });

  it('reads every setting flag, in both --flag value and --flag=value forms', () => {
    const cli = parseCli([
      '--listen-addr', '0.0.0.0',
      '--listen-port=7000',
      '--pool-mode', 'session',
      '--default-pool-size=5',
      '--max-client-conn', '100',
      '--log-level=debug',
    ]);
    expect(cli.overrides).toEqual({
      listen_addr: '0.0.0.0',
      listen_port: '7000',
      pool_mode: 'session',
      default_pool_size: '5',
      max_client_conn: '100',
      log_level: 'debug',
    });
  });

  it('reads short flags', () => {
    expect(parseCli(['-p', '7001', '-c', 'x.yaml'])).toMatchObject({ configPath: 'x.yaml', overrides: { listen_port: '7001' } });
    expect(parseCli(['-h']).help).toBe(true);
    expect(parseCli(['-V']).version).toBe(true);
  });

  it('reads --config both ways', () => {
    expect(parseCli(['--config', 'a.yaml']).configPath).toBe('a.yaml');
    expect(parseCli(['--config=b.yaml']).configPath).toBe('b.yaml');
  });

  it('reads --help and --version', () => {
    expect(parseCli(['--help'])).toMatchObject({ help: true, version: false });
    expect(parseCli(['--version'])).toMatchObject({ help: false, version: true });
  });

  it('reads repeated --set for any global setting, keeping "=" in values and accepting dashes in keys', () => {
    const cli = parseCli([
      '--set', 'server_idle_timeout=5min',
      '--set=server-reset-query=SET a = 1',
      '--set', 'server_check_query=',
    ]);
    expect(cli.overrides).toEqual({
      server_idle_timeout: '5min',
      server_reset_query: 'SET a = 1',
      server_check_query: '',
    });
  });

  it('lets the last occurrence win', () => {
    expect(parseCli(['-p', '1', '--set', 'listen_port=2', '--listen-port', '3']).overrides).toEqual({ listen_port: '3' });
  });

  it('takes a negative number as a value, so validation can explain it', () => {
    expect(parseCli(['-p', '-1']).overrides).toEqual({ listen_port: '-1' });
  });

  it('names an unknown flag, with a suggestion', () => {
    const err = errorOf(['--listen-prot', '1']);
    expect(err.key).toBe('--listen-prot');
    expect(err.message).toBe('--listen-prot: is not a known option; did you mean "--listen-port"? (see --help)');
    expect(errorOf(['-x']).key).toBe('-x');
    expect(errorOf(['--bogus=1']).key).toBe('--bogus');
  });

  it('refuses a missing value', () => {
    expect(errorOf(['--listen-port']).message).toBe('--listen-port: needs a value');
    expect(errorOf(['-c', '--pool-mode', 'session']).message).toBe('-c: needs a value');
    expect(errorOf(['--set']).message).toBe('--set: needs a value');
  });

  it('refuses a value for --help and --version', () => {
    expect(errorOf(['--help=yes']).message).toBe('--help: takes no value');
    expect(errorOf(['--version=1']).message).toBe('--version: takes no value');
  });

  it('refuses malformed and unknown --set', () => {
    expect(errorOf(['--set', 'listen_port']).message).toBe('--set: must be followed by key=value (got "listen_port")');
    expect(errorOf(['--set', '=1']).key).toBe('--set');
    const unknown = errorOf(['--set', 'listen_prot=1']);
    expect(unknown.key).toBe('--set listen_prot');
    expect(unknown.reason).toBe('is not a known setting; did you mean "listen_port"?');
    expect(errorOf(['--set', 'databases=x']).reason).toMatch(/set in the config file/);
  });

  it('reads --pgbouncer-ini both ways', () => {
    expect(parseCli(['--pgbouncer-ini', '/etc/pgbouncer/pgbouncer.ini']).pgbouncerIni).toBe('/etc/pgbouncer/pgbouncer.ini');
    expect(parseCli(['--pgbouncer-ini=p.ini']).pgbouncerIni).toBe('p.ini');
    expect(errorOf(['--pgbouncer-ini']).reason).toBe('needs a value');
  });

  it('refuses positional arguments', () => {
    const err = errorOf(['pgmux.yaml']);
    expect(err.key).toBe('pgmux.yaml');
    expect(err.reason).toMatch(/--config FILE/);
  });
});

describe('cliKey', () => {
  it('names the dedicated long flag, else --set', () => {
    expect(cliKey('listen_port')).toBe('--listen-port');
    expect(cliKey('log_level')).toBe('--log-level');
    expect(cliKey('server_lifetime')).toBe('--set server_lifetime');
  });
});

describe('HELP_TEXT', () => {
  it('lists every flag and points to the settings', () => {
    for (const flag of ['--config', '-c', '--listen-addr', '--listen-port', '-p', '--pool-mode', '--default-pool-size',
      '--max-client-conn', '--log-level', '--set', '--help', '-h', '--version', '-V', '--pgbouncer-ini', 'pgmux import']) {
      expect(HELP_TEXT).toContain(flag);
    }
    expect(HELP_TEXT).toMatch(/README/);
    expect(HELP_TEXT).toMatch(/DATABASE_URL/);
  });
});
