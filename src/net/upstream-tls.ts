/**
 * TLS towards a PostgreSQL server, negotiated like libpq: SSLRequest, then a handshake if the
 * server answers 'S'. `server_tls_sslmode` decides what an 'N' or a bad certificate means.
 */
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import type { ServerTls } from './tls-config.js';

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/** A TLS failure towards a server, with the host and the reason in the message. */
export class UpstreamTlsError extends Error {}

/** Whether pgmux should ask for TLS at all in this mode. */
export function wantsTls(mode: ServerTls['mode']): boolean {
  return mode !== 'disable' && mode !== 'allow';
}

/**
 * On a connected socket, ask for TLS and return the socket to speak the protocol on: the TLS
 * socket, or the plain one when the server declined and the mode allows it.
 */
export function negotiateUpstreamTls(raw: Socket, host: string, options: ServerTls): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    const onClose = (): void => reject(new UpstreamTlsError(`server ${host} closed the connection during TLS negotiation`));
    raw.once('error', onError);
    raw.once('close', onClose);
    raw.once('data', (answer: Buffer) => {
      raw.off('close', onClose);
      raw.off('error', onError);
      if (answer.length !== 1) {
        reject(new UpstreamTlsError(`server ${host} sent ${answer.length} bytes in answer to SSLRequest (expected 1)`));
        return;
      }
      if (answer[0] === 0x4e /* N */) {
        if (options.mode === 'prefer') resolve(raw);
        else reject(new UpstreamTlsError(`server ${host} does not support TLS, and server_tls_sslmode is ${options.mode}`));
        return;
      }
      if (answer[0] !== 0x53 /* S */) {
        reject(new UpstreamTlsError(`server ${host} answered SSLRequest with unexpected byte 0x${answer[0].toString(16)}`));
        return;
      }
      const verify = options.mode === 'verify-ca' || options.mode === 'verify-full';
      const socket = tls.connect({
        socket: raw,
        servername: net.isIP(host) === 0 ? host : undefined,
        ca: options.ca,
        cert: options.cert,
        key: options.key,
        rejectUnauthorized: verify,
        // verify-ca checks the chain only; verify-full also the host name (Node's default check).
        checkServerIdentity: options.mode === 'verify-full' ? (_name, cert) => tls.checkServerIdentity(host, cert) : () => undefined,
        ALPNProtocols: ['postgresql'],
      });
      const onTlsError = (err: NodeJS.ErrnoException): void => {
        reject(new UpstreamTlsError(`TLS handshake with server ${host} failed: ${err.message}${err.code ? ` (${err.code})` : ''}`));
      };
      socket.once('error', onTlsError);
      socket.once('secureConnect', () => {
        socket.off('error', onTlsError);
        resolve(socket);
      });
    });
    raw.write(SSL_REQUEST);
  });
}
