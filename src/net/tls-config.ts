/**
 * TLS material loaded from the configuration once (at start and reload): the context pgmux
 * presents to clients, and the options it uses towards servers. Errors name the file and key.
 */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import type { PgmuxConfig, TlsMode } from '../config/index.js';
import { ConfigError } from '../config/index.js';
import { parseCaBundle } from './client-certificate.js';

export interface ClientTls {
  mode: TlsMode;
  /** Null when no certificate is configured: SSLRequest is answered 'N'. */
  context: tls.SecureContext | null;
  /** DER of pgmux's own certificate, for SCRAM-SHA-256-PLUS (tls-server-end-point). */
  certificateDer: Buffer | null;
  /** Whether a client certificate is requested (cert auth, verify-ca, verify-full). */
  requestCert: boolean;
  /** CAs client certificates must chain to. */
  clientCas: X509Certificate[];
}

export interface ServerTls {
  mode: TlsMode;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

function read(path: string, key: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(key, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export function loadClientTls(config: PgmuxConfig): ClientTls {
  const mode = config.client_tls_sslmode;
  const requestCert =
    mode === 'verify-ca' ||
    mode === 'verify-full' ||
    config.auth_type === 'cert' ||
    Object.values(config.users).some((u) => u.auth_type === 'cert') ||
    Object.values(config.databases).some((d) => d.auth_type === 'cert');
  if (mode === 'disable' || config.client_tls_cert_file === '') return { mode, context: null, certificateDer: null, requestCert: false, clientCas: [] };
  const cert = read(config.client_tls_cert_file, 'client_tls_cert_file');
  const key = read(config.client_tls_key_file, 'client_tls_key_file');
  const ca = config.client_tls_ca_file === '' ? undefined : read(config.client_tls_ca_file, 'client_tls_ca_file');
  let context: tls.SecureContext;
  let certificateDer: Buffer;
  try {
    context = tls.createSecureContext({ cert, key, ca, minVersion: 'TLSv1.2' });
    certificateDer = new X509Certificate(cert).raw;
  } catch (err) {
    throw new ConfigError('client_tls_cert_file', `is not a usable certificate/key pair: ${(err as Error).message}`);
  }
  return { mode, context, certificateDer, requestCert, clientCas: ca === undefined ? [] : parseCaBundle(ca) };
}

export function loadServerTls(config: PgmuxConfig): ServerTls {
  const tlsOptions: ServerTls = { mode: config.server_tls_sslmode };
  if (config.server_tls_ca_file !== '') tlsOptions.ca = read(config.server_tls_ca_file, 'server_tls_ca_file');
  if (config.server_tls_cert_file !== '') {
    tlsOptions.cert = read(config.server_tls_cert_file, 'server_tls_cert_file');
    tlsOptions.key = read(config.server_tls_key_file, 'server_tls_key_file');
  }
  return tlsOptions;
}
