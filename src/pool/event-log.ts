/**
 * What happened to pgmux, for the status page: reloads (and what they changed), PAUSE/RESUME,
 * KILL/KILL_CLIENT, server logins starting and stopping to fail, pools losing every server
 * connection to the upstream. A bounded ring; an entry is written only when such a thing happens
 * (never per request).
 */

export type EventKind = 'reload' | 'reload-failed' | 'pause' | 'resume' | 'kill' | 'kill-client' | 'login-failing' | 'login-recovered' | 'upstream-lost';

export interface PgmuxEvent {
  /** Increasing id (the page asks for what is newer than the last it has). */
  id: number;
  /** ms since the epoch. */
  time: number;
  kind: EventKind;
  /** The database (or database/user pool) it concerns; "" for all of pgmux. */
  scope: string;
  message: string;
}

export const EVENT_CAPACITY = 200;

export class EventLog {
  private readonly ring: (PgmuxEvent | undefined)[];
  private written = 0;

  constructor(readonly capacity: number = EVENT_CAPACITY) {
    this.ring = new Array<PgmuxEvent | undefined>(capacity);
  }

  add(kind: EventKind, scope: string, message: string, time: number = Date.now()): void {
    this.ring[this.written % this.capacity] = { id: this.written + 1, time, kind, scope, message };
    this.written++;
  }

  /** The newest `limit` events, newest first. */
  recent(limit: number = this.capacity): PgmuxEvent[] {
    const out: PgmuxEvent[] = [];
    for (let i = this.written - 1; i >= 0 && i >= this.written - this.capacity && out.length < limit; i--) out.push(this.ring[i % this.capacity] as PgmuxEvent);
    return out;
  }
}
