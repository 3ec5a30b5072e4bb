/** Links a member of a {@link WaitQueue}; embed one in each queued object. */
export interface QueueLink<T> {
  prev: QueueLink<T> | null;
  next: QueueLink<T> | null;
  readonly value: T;
  queued: boolean;
}

export function queueLink<T>(value: T): QueueLink<T> {
  return { prev: null, next: null, value, queued: false };
}

/**
 * The link of a member that has never been queued: shared, so a member can make its own link the first time it is
 * queued. Frozen: pushing it fails loudly instead of linking every such member at once.
 */
export const NOT_QUEUED: QueueLink<never> = Object.freeze({ prev: null, next: null, value: undefined as never, queued: false });

/**
 * FIFO queue of waiting clients: O(1) push, shift and removal from anywhere (a client that
 * disconnects or is cancelled while it waits), with an exact length. Intrusive, so queueing
 * allocates nothing.
 */
export class WaitQueue<T> {
  private head: QueueLink<T> | null = null;
  private tail: QueueLink<T> | null = null;
  private count = 0;

  get length(): number {
    return this.count;
  }

  peek(): T | undefined {
    return this.head?.value;
  }

  push(link: QueueLink<T>): void {
    if (link.queued) return;
    link.queued = true;
    link.prev = this.tail;
    link.next = null;
    if (this.tail) this.tail.next = link;
    else this.head = link;
    this.tail = link;
    this.count++;
  }

  shift(): T | undefined {
    const link = this.head;
    if (link === null) return undefined;
    this.remove(link);
    return link.value;
  }

  remove(link: QueueLink<T>): void {
    if (!link.queued) return;
    if (link.prev) link.prev.next = link.next;
    else this.head = link.next;
    if (link.next) link.next.prev = link.prev;
    else this.tail = link.prev;
    link.prev = link.next = null;
    link.queued = false;
    this.count--;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let l = this.head; l !== null; l = l.next) yield l.value;
  }
}
