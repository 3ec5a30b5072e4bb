/**
 * Throwaway certificates for TLS tests, made with the `openssl` CLI: a CA, a second unrelated CA
 * (for "unknown issuer" cases), a server certificate for localhost / 127.0.0.1, and client
 * certificates on demand. EC P-256 keys (fast to make), SHA-256 signatures, valid for 2 days.
 * Certificates are world-readable, keys 0600. An explicit OpenSSL config is written next to
 * them, so the system's openssl.cnf does not change what comes out.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const VALID_DAYS = '2';
/** File names the CA and server use; a client CN must not overwrite them. */
const RESERVED = new Set(['ca', 'wrong-ca', 'server']);
const KEY_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

export interface CertPair {
  /** Absolute path of the PEM certificate. */
  certFile: string;
  /** Absolute path of the PEM private key (mode 0600). */
  keyFile: string;
}

export interface ClientCertOptions {
  /** Sign with the unrelated CA instead, so a server trusting `caFile` rejects it. */
  untrusted?: boolean;
}

export interface TestCerts {
  /** Directory holding every file below (absolute). */
  dir: string;
  /** CA certificate that signed the server and client certificates. */
  caFile: string;
  caKeyFile: string;
  /** A second, unrelated CA: trusting it instead of `caFile` must fail verification. */
  wrongCaFile: string;
  wrongCaKeyFile: string;
  /** Certificate for CN=localhost with SAN DNS:localhost, IP:127.0.0.1. */
  serverCertFile: string;
  serverKeyFile: string;
  /**
   * A client certificate (extendedKeyUsage clientAuth) with this CN, signed by the CA:
   * `<cn>.crt`/`<cn>.key`, or `<cn>.untrusted.crt`/`.key` when signed by the wrong CA.
   * The CN must be a plain name ([A-Za-z0-9_.@-], not ca/wrong-ca/server): it becomes a file name.
   */
  clientCert(commonName: string, options?: ClientCertOptions): Promise<CertPair>;
  /** Removes `dir` and everything in it. */
  remove(): Promise<void>;
}

const OPENSSL_CONFIG = `# Written by test/harness/certs.ts
[req]
distinguished_name = dn
prompt = no

[dn]

[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer

[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
`;

async function openssl(dir: string, args: string[]): Promise<void> {
  try {
    await execFileAsync('openssl', args, { cwd: dir });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args.join(' ')} failed: ${(err as Error).message}\n${stderr}`);
  }
}

/** Makes (or refreshes) the CA, wrong CA and server certificate in `dir` (default: a new temp dir). */
export async function makeCertificates(dir?: string): Promise<TestCerts> {
  const root = dir === undefined ? await fsp.mkdtemp(path.join(os.tmpdir(), 'pgmux-certs-')) : path.resolve(dir);
  await fsp.mkdir(root, { recursive: true });
  // Readable by the OS user a test Postgres runs as; keys are protected by their own mode.
  await fsp.chmod(root, 0o755);
  const config = path.join(root, 'openssl.cnf');
  await fsp.writeFile(config, OPENSSL_CONFIG, { mode: 0o644 });
  const file = (name: string): string => path.join(root, name);

  const makeCa = async (name: string, subject: string): Promise<void> => {
    await openssl(root, [
      'req', '-x509', ...KEY_ARGS, '-keyout', file(`${name}.key`), '-out', file(`${name}.crt`),
      '-days', VALID_DAYS, '-sha256', '-subj', subject, '-config', config, '-extensions', 'ca',
    ]);
    await fixModes(file(`${name}.crt`), file(`${name}.key`));
  };

  /** A key and CSR for `subject`, signed by `ca` with the extensions of `section`. */
  const issue = async (name: string, subject: string, ca: string, section: string): Promise<CertPair> => {
    const pair = { certFile: file(`${name}.crt`), keyFile: file(`${name}.key`) };
    const csr = file(`${name}.csr`);
    await openssl(root, ['req', '-new', ...KEY_ARGS, '-keyout', pair.keyFile, '-out', csr, '-subj', subject, '-config', config]);
    await openssl(root, [
      'x509', '-req', '-in', csr, '-CA', file(`${ca}.crt`), '-CAkey', file(`${ca}.key`),
      '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', VALID_DAYS, '-sha256',
      '-extfile', config, '-extensions', section, '-out', pair.certFile,
    ]);
    await fsp.rm(csr, { force: true });
    await fixModes(pair.certFile, pair.keyFile);
    return pair;
  };

  await makeCa('ca', '/CN=pgmux test CA');
  await makeCa('wrong-ca', '/CN=pgmux unrelated test CA');
  const server = await issue('server', '/CN=localhost', 'ca', 'server');

  return {
    dir: root,
    caFile: file('ca.crt'),
    caKeyFile: file('ca.key'),
    wrongCaFile: file('wrong-ca.crt'),
    wrongCaKeyFile: file('wrong-ca.key'),
    serverCertFile: server.certFile,
    serverKeyFile: server.keyFile,
    clientCert(commonName, options = {}) {
      if (!/^[A-Za-z0-9_.@-]+$/.test(commonName) || commonName.startsWith('.') || RESERVED.has(commonName)) {
        return Promise.reject(
          new Error(`client certificate CN "${commonName}" must match [A-Za-z0-9_.@-]+ and not be ${[...RESERVED].join('/')}`),
        );
      }
      const untrusted = options.untrusted === true;
      return issue(untrusted ? `${commonName}.untrusted` : commonName, `/CN=${commonName}`, untrusted ? 'wrong-ca' : 'ca', 'client');
    },
    remove: () => fsp.rm(root, { recursive: true, force: true }),
  };
}

async function fixModes(certFile: string, keyFile: string): Promise<void> {
  await fsp.chmod(certFile, 0o644);
  await fsp.chmod(keyFile, 0o600);
}
