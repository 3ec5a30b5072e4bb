/**
 * A logged-in client's path to its server: frames are forwarded to the attached server as views through its link
 * (one write per chunk), or held (views, no copies) while no server is ready or pgmux's own queries run on it, the
 * client's socket paused meanwhile; and the server's backpressure on the client. Made the first time the client
 * forwards anything (ClientSession.forwarder): a client that logged in and has sent nothing holds none of it.
 */
import { Errors, type PgmuxError } from '../errors.js';
import type { Pool, PoolClient } from '../pool/pool.js';
import { FrontendCode } from '../protocol/codes.js';
import { buildQuery, readQuery } from '../protocol/frontend-messages.js';
import { MalformedMessage } from '../protocol/malformed.js';
import type { ServerConnection } from '../server/server-connection.js';
import { resetTargets } from './client-parameters.js';
import { ClientState } from './client-state.js';
import { failedRequestsReply, type HeldRequestsReply } from './held-requests.js';
import { queryWithStartupValues } from './reset-to-startup.js';
import type { Refusal } from './transaction-intercepts.js';

/** What the forwarding needs of the client session (it is the pool's client that waits for a server). */
export interface ForwardingHost extends PoolClient {
  state: ClientState;
  readonly pool: Pool | null;
  lastActive: number;
  /** The client's startup settings: what RESET returns to. */
  readonly startupParams: ReadonlyMap<string, string>;
  /** The pool's reported parameter defaults. */
  readonly poolDefaults: ReadonlyMap<string, string> | null;
  /** Inside onData: the chunk's messages are being handled and will be flushed together at its end. */
  readonly inChunk: boolean;
  /** Shutting down: no new transaction starts. */
  readonly draining: boolean;
  /** A Query may RESET a startup setting, so must be read for it (transaction mode: only one seen to set something). */
  readonly queryMayReset: boolean;
  /** Transaction mode: the refusal a replacement message stands for, if it is one (taken: each is sent once). */
  takeRefusal(buf: Buffer): Refusal | undefined;
  /** Close the client for an exception raised while handling it. */
  failOn(err: unknown): void;
  /** What was held has gone to the server (a cancel that came for it meanwhile can follow it now). */
  heldSent(): void;
}

export class ServerForwarding {
  /** Frames held while no server is ready; views into received chunks. */
  private readonly held: Buffer[] = [];
  private pausedForServer = false;
  /** The link settled while a client message was being streamed to this server: released after its last piece. */
  private releaseAfterStream: ServerConnection | null = null;
  /** Reading paused while queued for a server. */
  private pausedForWait = false;
  /** The 'drain' listener of a server that pushed back: made the first time one does (most clients never see it). */
  private resumeFromServer: (() => void) | null = null;

  constructor(private readonly host: ForwardingHost) {}

  /** Messages wait to be sent to a server. */
  get holding(): boolean {
    return this.held.length > 0;
  }

  forward(buf: Buffer, start: number, end: number): void {
    const host = this.host;
    if (host.state === ClientState.Active && !(host.server as ServerConnection).ownQueryRunning) {
      this.sendToServer(buf, start, end);
      return;
    }
    if (host.state === ClientState.Idle && host.draining) {
      // Between transactions, asking for a server to start another: the answer is that pgmux is stopping.
      host.fail(Errors.adminShutdown());
      return;
    }
    // Waiting for a server, or pgmux's own queries are running on it: held (views, no copies).
    this.held.push(start === 0 && end === buf.length ? buf : buf.subarray(start, end));
    if (host.state === ClientState.Idle) {
      host.state = ClientState.Waiting;
      (host.pool as Pool).acquire(host);
      // Usually an idle server was free and the client is active already; only a client left
      // queued stops reading (what it sends meanwhile would pile up in `held`).
      if (host.state === ClientState.Waiting && !this.pausedForWait) {
        this.pausedForWait = true;
        host.socket.pause();
      }
    }
  }

  /** To the attached server, through the link (which routes statements and records what is owed). */
  private sendToServer(buf: Buffer, start: number, end: number): void {
    const host = this.host;
    const link = (host.server as ServerConnection).link;
    if (link === null) return;
    // A Flush with a body is refused (see onFrame) unless a COPY IN, which ignores it, may be in progress.
    if (buf[start] === FrontendCode.Flush && end - start !== 5 && !link.copyMayBeOpen) throw new MalformedMessage('Flush message with a body');
    const refusal = start === 0 ? host.takeRefusal(buf) : undefined;
    if (refusal !== undefined) return link.injectFailure(refusal.kind, buf, refusal.error);
    // RESET needs the client's startup values put back (reset-to-startup.ts). In transaction mode the classifier
    // has seen the query already: only one that set something is decoded again (a RESET counts as setting).
    if (buf[start] === FrontendCode.Query && host.queryMayReset) {
      const server = host.server as ServerConnection;
      const targets = resetTargets(host.startupParams, server.startupSettings, host.poolDefaults);
      if (targets.size > 0) {
        const query = queryWithStartupValues(readQuery(buf, start, end), targets, server.startupSettings);
        if (query !== null) return link.sendExtendedQuery(buildQuery(query.sql), query.own);
      }
    }
    link.fromClient(buf[start], buf, start, end);
  }

  /**
   * Send what was held while no server was ready (or pgmux's own queries ran). Called from the
   * server's side too, so a malformed held message is this client's failure, caught here.
   */
  sendHeld(): void {
    try {
      for (const buf of this.held) this.sendToServer(buf, 0, buf.length);
    } catch (err) {
      this.held.length = 0;
      this.host.failOn(err);
      return;
    }
    this.held.length = 0;
    // Inside onData the rest of the chunk is still to come: it goes out with these, in one write.
    if (!this.host.inChunk) this.flush();
    this.host.heldSent();
  }

  /** The server is attached and ready (the client is active): send what was held, and read again. */
  serverReady(server: ServerConnection): void {
    // Still running pgmux's own queries (a check at the server's login): the held messages go when they are done.
    if (!server.ownQueryRunning) this.sendHeld();
    if (this.pausedForWait) {
      this.pausedForWait = false;
      if (!this.pausedForServer) this.host.socket.resume();
    }
  }

  /** Nothing held reached a server (no server came): the answers pgmux gives instead, and nothing is held any more. */
  failHeld(error: PgmuxError): HeldRequestsReply {
    const reply = failedRequestsReply(this.held, error);
    this.held.length = 0;
    return reply;
  }

  /** No longer queued: read again (after failHeld). */
  resumeAfterWait(): void {
    this.pausedForWait = false;
    this.host.socket.resume();
  }

  /** What the link has for the server goes out: one write, pausing the client if the server pushes back. */
  flush(): void {
    const host = this.host;
    const server = host.server;
    if (server === null || host.state !== ClientState.Active) return;
    const link = server.link;
    if (link === null) return;
    // pgmux's own replies, when it answered without the server: once the client asked for answers (Attachment.ownRepliesDue).
    if (link.ownRepliesDue) server.flushToClient();
    if (link.toServer.empty) return;
    host.lastActive = Date.now();
    if (!link.toServer.flush(server.socket) && !this.pausedForServer) {
      this.pausedForServer = true;
      host.socket.pause();
      this.resumeFromServer ??= () => this.resumeReading();
      server.socket.once('drain', this.resumeFromServer);
    }
  }

  private resumeReading(): void {
    if (!this.pausedForServer) return;
    this.pausedForServer = false;
    if (this.host.state !== ClientState.Closed) this.host.socket.resume();
  }

  /** The server goes (released, or the client closed): its backpressure no longer holds the client back. */
  dropBackpressure(): void {
    if (!this.pausedForServer) return;
    this.pausedForServer = false;
    if (this.resumeFromServer !== null) this.host.server?.socket.off('drain', this.resumeFromServer);
    if (this.host.state !== ClientState.Closed) this.host.socket.resume();
  }

  /** The client closed: nothing it held goes to a server, and no server holds it back. */
  drop(): void {
    this.dropBackpressure();
    this.held.length = 0;
  }

  /** The link settled in the middle of a client message streamed to `server`: it goes back after the last piece. */
  releaseAfterLastPiece(server: ServerConnection): void {
    this.releaseAfterStream = server;
  }

  /** A piece of a client message streamed through (FrameHandler.onPiece: COPY data while a server is attached). */
  onPiece(buf: Buffer, start: number, end: number, last: boolean): void {
    // COPY data streamed through while a server is attached (see canStream): the server stays attached until the
    // message's last piece (transactionEnded waits for it).
    const host = this.host;
    const server = host.server as ServerConnection;
    server.link?.fromClient(FrontendCode.CopyData, buf, start, end);
    if (last && this.releaseAfterStream === server) {
      this.releaseAfterStream = null;
      this.flush(); // the message's last bytes go out before the server can go back to the pool
      if (host.state === ClientState.Active && host.server === server) host.transactionEnded(server);
    }
  }
}
