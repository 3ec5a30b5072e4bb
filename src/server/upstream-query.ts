/**
 * A one-off query on its own upstream connection (connect, TLS, login, extended-protocol query
 * with text parameters, Terminate). Used off the hot path: auth_query lookups.
 */
import net from 'node:net';
import { TLSSocket } from 'node:tls';
import { serialize } from 'pg-protocol';
import { UpstreamError } from '../errors.js';
import { BackendCode } from '../protocol/codes.js';
import { readDataRow, readErrorFields } from '../protocol/fields.js';
import { FrameReader } from '../protocol/frame-reader.js';
import { negotiateUpstreamTls, wantsTls } from '../net/upstream-tls.js';
import type { ServerTarget } from './server-connection.js';
import { ServerLogin } from './server-login.js';

/** Rows as arrays of text values (null for SQL NULL). */
export type TextRows = Array<Array<string | null>>;

export function runUpstreamQuery(target: ServerTarget, sql: string, params: string[], timeoutMs: number): Promise<TextRows> {
  return new Promise<TextRows>((resolve, reject) => {
    const raw = net.connect({ host: target.host, port: target.port, noDelay: true });
    let socket: net.Socket = raw;
    const rows: TextRows = [];
    let error: Error | null = null;
    let settled = false;
    const finish = (err: Error | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err === null) {
        if (socket.writable) socket.end(serialize.end());
        resolve(rows);
      } else {
        socket.destroy();
        raw.destroy();
        reject(err);
      }
    };
    const timer = setTimeout(() => finish(new Error(`no answer from ${target.host}:${target.port} within ${timeoutMs} ms`)), timeoutMs);
    raw.on('error', (err) => finish(err));
    raw.on('close', () => finish(error ?? new Error(`server ${target.host}:${target.port} closed the connection`)));

    const start = (s: net.Socket): void => {
      socket = s;
      if (s !== raw) s.on('error', (err) => finish(err));
      const login = new ServerLogin(target.login, (buf) => s.write(buf), s instanceof TLSSocket ? s : null);
      let loggedIn = false;
      const reader = new FrameReader({
        canStream: () => false,
        onPiece: () => {},
        onProtocolError: (reason) => finish(new Error(`protocol error from server: ${reason}`)),
        onFrame: (code, buf, from, to) => {
          try {
            if (!loggedIn) {
              if (!login.onMessage(code, buf, from, to)) return;
              loggedIn = true;
              s.write(
                Buffer.concat([
                  serialize.parse({ text: sql }),
                  serialize.bind({ values: params }),
                  serialize.execute({}),
                  serialize.sync(),
                ]),
              );
              return;
            }
          } catch (err) {
            finish(err as Error);
            return;
          }
          if (code === BackendCode.DataRow) rows.push(readDataRow(buf, from));
          else if (code === BackendCode.ErrorResponse) error = new UpstreamError(readErrorFields(buf, from, to));
          else if (code === BackendCode.ReadyForQuery) finish(error);
        },
      });
      s.on('data', (chunk: Buffer) => reader.push(chunk));
      login.start();
    };

    raw.once('connect', () => {
      if (!wantsTls(target.tls.mode)) return start(raw);
      negotiateUpstreamTls(raw, target.host, target.tls).then(start, (err: Error) => finish(err));
    });
  });
}
