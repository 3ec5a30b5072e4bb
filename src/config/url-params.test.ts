import { describe, expect, it } from 'vitest';
import { interpretUrlParameters, type UrlParameters } from './url-params.js';
import { InvalidValue, MAX_DURATION_MS } from './values.js';

function interpret(query: Record<string, string>): UrlParameters {
  return interpretUrlParameters(new Map(Object.entries(query)));
}

function reasonOf(query: Record<string, string>): string {
  try {
    interpret(query);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidValue);
    return (err as Error).message;
  }
  throw new Error('expected InvalidValue');
}

/** The global settings a query gives, by name. */
function settingsOf(query: Record<string, string>): Record<string, string | number> {
  return Object.fromEntries(interpret(query).settings.map((s) => [s.setting, s.value]));
}

describe('URL parameters: TLS (libpq meanings)', () => {
  it('maps every sslmode onto server_tls_sslmode', () => {
    for (const mode of ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']) {
      expect(settingsOf({ sslmode: mode })).toEqual({ server_tls_sslmode: mode });
    }
    expect(settingsOf({})).toEqual({});
  });

  it('refuses an sslmode libpq does not know, suggesting the near one', () => {
    expect(reasonOf({ sslmode: 'requir' })).toBe(
      'has sslmode="requir"; sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full; did you mean "require"?',
    );
    expect(reasonOf({ sslmode: 'true' })).toMatch(/^has sslmode="true"; sslmode must be one of/);
  });

  it('maps sslrootcert, sslcert and sslkey onto the server_tls_* files', () => {
    expect(settingsOf({ sslmode: 'verify-full', sslrootcert: '/ca.pem', sslcert: '/c.pem', sslkey: '/k.pem' })).toEqual({
      server_tls_sslmode: 'verify-full',
      server_tls_ca_file: '/ca.pem',
      server_tls_cert_file: '/c.pem',
      server_tls_key_file: '/k.pem',
    });
    expect(reasonOf({ sslcert: '/c.pem' })).toBe('has sslcert without sslkey; a client certificate needs both');
    expect(reasonOf({ sslkey: '/k.pem' })).toBe('has sslkey without sslcert; a client certificate needs both');
  });

  it('checks the chain for sslmode=require with a root certificate, as libpq does', () => {
    expect(settingsOf({ sslmode: 'require', sslrootcert: '/ca.pem' })).toEqual({ server_tls_sslmode: 'verify-ca', server_tls_ca_file: '/ca.pem' });
  });

  it('takes sslrootcert=system as the system roots with verify-full, and refuses it with a weaker sslmode', () => {
    expect(settingsOf({ sslrootcert: 'system' })).toEqual({ server_tls_sslmode: 'verify-full' });
    expect(settingsOf({ sslrootcert: 'system', sslmode: 'verify-full' })).toEqual({ server_tls_sslmode: 'verify-full' });
    expect(reasonOf({ sslrootcert: 'system', sslmode: 'require' })).toMatch(/sslrootcert=system needs sslmode=verify-full/);
  });

  it('accepts sslnegotiation=postgres and refuses direct, saying it is not supported', () => {
    expect(settingsOf({ sslnegotiation: 'postgres', sslmode: 'require' })).toEqual({ server_tls_sslmode: 'require' });
    expect(reasonOf({ sslnegotiation: 'direct', sslmode: 'require' })).toMatch(/^has sslnegotiation=direct, which pgmux does not support yet/);
    expect(reasonOf({ sslnegotiation: 'tls' })).toMatch(/sslnegotiation must be one of postgres, direct/);
  });
});

describe('URL parameters: other libpq parameters', () => {
  it('sends application_name and options as startup parameters (fallback_application_name when no application_name)', () => {
    expect(interpret({ application_name: 'web', options: '-c search_path=app' })).toEqual({ application_name: 'web', options: '-c search_path=app', settings: [] });
    expect(interpret({ fallback_application_name: 'fb' }).application_name).toBe('fb');
    expect(interpret({ fallback_application_name: 'fb', application_name: 'web' }).application_name).toBe('web');
  });

  it('maps connect_timeout onto server_connect_timeout: seconds, 0 or negative waits forever, 1 counts as 2', () => {
    expect(settingsOf({ connect_timeout: '10' })).toEqual({ server_connect_timeout: 10_000 });
    expect(settingsOf({ connect_timeout: '1' })).toEqual({ server_connect_timeout: 2_000 });
    expect(settingsOf({ connect_timeout: '0' })).toEqual({ server_connect_timeout: MAX_DURATION_MS });
    expect(settingsOf({ connect_timeout: '-5' })).toEqual({ server_connect_timeout: MAX_DURATION_MS });
    expect(reasonOf({ connect_timeout: '10s' })).toBe('has connect_timeout="10s"; connect_timeout must be a whole number of seconds');
  });

  it('accepts target_session_attrs=any and says the others are not supported yet', () => {
    expect(interpret({ target_session_attrs: 'any' }).settings).toEqual([]);
    for (const attrs of ['read-write', 'read-only', 'primary', 'standby', 'prefer-standby']) {
      expect(reasonOf({ target_session_attrs: attrs })).toMatch(new RegExp(`^has target_session_attrs=${attrs}, which pgmux does not support yet`));
    }
  });

  it('names any other parameter: a typo with a suggestion, a libpq one as unsupported, a driver\'s as not libpq\'s', () => {
    expect(reasonOf({ sslmdoe: 'require' })).toMatch(/^has parameter sslmdoe, which is not a libpq connection parameter; did you mean "sslmode"\?/);
    expect(reasonOf({ aplication_name: 'x' })).toMatch(/did you mean "application_name"\?/);
    expect(reasonOf({ gssencmode: 'disable' })).toMatch(/^has parameter gssencmode, a libpq parameter pgmux does not support/);
    expect(reasonOf({ ssl: 'true' })).toMatch(/^has parameter ssl, which pgmux does not read: .*sslmode=require/);
    expect(reasonOf({ schema: 'public' })).toMatch(/^has parameter schema, which pgmux does not read: it is Prisma's/);
    expect(reasonOf({ zzzzzz: '1' })).toMatch(/^has parameter zzzzzz, which is not a libpq connection parameter \(supported: sslmode, /);
  });
});
