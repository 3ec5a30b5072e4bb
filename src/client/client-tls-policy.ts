/** What client_tls_sslmode and cert authentication demand of a client's connection, checked at startup. */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { Errors, type PgmuxError } from '../errors.js';
import { verifyClientCertificate } from '../net/client-certificate.js';
import type { ClientTls } from '../net/tls-config.js';

/** client_tls_sslmode: refuse plaintext clients (require) or clients without a valid certificate (verify-*). */
export function checkTlsPolicy(socket: Socket, tls: ClientTls, user: string): PgmuxError | null {
  const mode = tls.mode;
  if ((mode === 'require' || mode === 'verify-ca' || mode === 'verify-full') && !(socket instanceof TLSSocket)) return Errors.tlsRequired(mode);
  if (mode === 'verify-ca' || mode === 'verify-full') return checkClientCertificate(socket, tls, user, mode === 'verify-full');
  return null;
}

/** A valid client certificate (chained to client_tls_ca_file), and with `matchUser` its CN equal to the user name. */
export function checkClientCertificate(socket: Socket, tls: ClientTls, user: string, matchUser: boolean): PgmuxError | null {
  if (!(socket instanceof TLSSocket)) return Errors.certificateAuthFailed(user, 'the connection does not use TLS');
  const peer = socket.getPeerCertificate();
  if (peer === null || Object.keys(peer).length === 0) return Errors.certificateAuthFailed(user, 'no client certificate was presented');
  const untrusted = verifyClientCertificate(socket, tls.clientCas);
  if (untrusted !== null) return Errors.certificateAuthFailed(user, untrusted);
  const cn = peer.subject?.CN;
  if (matchUser && cn !== user) return Errors.certificateAuthFailed(user, `the certificate is for "${String(cn)}"`);
  return null;
}
