/**
 * The listeners a client socket carries (TCP, or TLS once upgraded). They are the same three functions for every
 * client, which find the session on the socket, not closures made per connection: an idle client costs less memory.
 */
import type { Socket } from 'node:net';

/** What the listeners call on the session a socket carries. */
export interface SocketSession {
  /** Bytes from the client (the session is their error boundary). */
  onData(chunk: Buffer): void;
  /** The socket failed; its 'close' follows. */
  onSocketError(err: NodeJS.ErrnoException): void;
  onClose(): void;
}

const SESSION = Symbol('pgmux client session');
type SessionSocket = Socket & { [SESSION]: SocketSession };

/** From now on `socket` carries `session`: its data, error and close go to it. */
export function carrySession(socket: Socket, session: SocketSession): void {
  (socket as SessionSocket)[SESSION] = session;
  socket.on('data', onSocketData);
  socket.on('error', onSocketError);
  socket.on('close', onSocketClose);
}

function onSocketData(this: Socket, chunk: Buffer): void {
  (this as SessionSocket)[SESSION].onData(chunk);
}

function onSocketError(this: Socket, err: NodeJS.ErrnoException): void {
  (this as SessionSocket)[SESSION].onSocketError(err);
}

function onSocketClose(this: Socket): void {
  (this as SessionSocket)[SESSION].onClose();
}
