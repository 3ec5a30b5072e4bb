import { describe, expect, it } from 'vitest';

import { NOT_QUEUED, WaitQueue, queueLink, type QueueLink } from './wait-queue.js';

function filled(n: number): { queue: WaitQueue<number>; links: Array<QueueLink<number>> } {
  const queue = new WaitQueue<number>();
  const links: Array<QueueLink<number>> = [];
  for (let i = 0; i < n; i++) {
    const link = queueLink(i);
    links.push(link);
    queue.push(link);
  }
  return { queue, links };
}

/** Checks that iteration order, length and head all agree with `expected`. */
function expectConsistent<T>(queue: WaitQueue<T>, expected: T[]): void {
  expect([...queue]).toEqual(expected);
  expect(queue.length).toBe(expected.length);
  expect(queue.peek()).toBe(expected[0]);
}

describe('queueLink', () => {
  it('makes an unqueued link around a value', () => {
    const value = { id: 1 };
    const link = queueLink(value);
    expect(link).toEqual({ prev: null, next: null, value, queued: false });
    expect(link.value).toBe(value);
  });
});

describe('NOT_QUEUED', () => {
  it('stands for a member never queued: removing it does nothing, pushing it fails loudly', () => {
    const { queue } = filled(2);
    queue.remove(NOT_QUEUED);
    expectConsistent(queue, [0, 1]);
    expect(() => queue.push(NOT_QUEUED)).toThrow(TypeError);
    expectConsistent(queue, [0, 1]);
    expect(NOT_QUEUED.queued).toBe(false);
  });
});

describe('WaitQueue', () => {
  it('is empty to begin with', () => {
    const queue = new WaitQueue<string>();
    expect(queue.length).toBe(0);
    expect(queue.peek()).toBeUndefined();
    expect(queue.shift()).toBeUndefined();
    expect([...queue]).toEqual([]);
  });

  it('is first in, first out', () => {
    const { queue } = filled(5);
    expectConsistent(queue, [0, 1, 2, 3, 4]);
    expect(queue.shift()).toBe(0);
    expect(queue.shift()).toBe(1);
    queue.push(queueLink(5));
    expect(queue.shift()).toBe(2);
    expect(queue.shift()).toBe(3);
    expect(queue.shift()).toBe(4);
    expect(queue.shift()).toBe(5);
    expect(queue.shift()).toBeUndefined();
    expect(queue.length).toBe(0);
  });

  it('marks links as queued and unqueued', () => {
    const queue = new WaitQueue<string>();
    const link = queueLink('a');
    queue.push(link);
    expect(link.queued).toBe(true);
    queue.shift();
    expect(link.queued).toBe(false);
    expect(link.prev).toBeNull();
    expect(link.next).toBeNull();
  });

  it('removes the head', () => {
    const { queue, links } = filled(4);
    queue.remove(links[0]);
    expectConsistent(queue, [1, 2, 3]);
    expect(links[0].queued).toBe(false);
    expect(queue.shift()).toBe(1);
  });

  it('removes from the middle', () => {
    const { queue, links } = filled(5);
    queue.remove(links[2]);
    expectConsistent(queue, [0, 1, 3, 4]);
    queue.remove(links[1]);
    queue.remove(links[3]);
    expectConsistent(queue, [0, 4]);
  });

  it('removes the tail, and pushes after it correctly', () => {
    const { queue, links } = filled(3);
    queue.remove(links[2]);
    expectConsistent(queue, [0, 1]);
    queue.push(queueLink(9));
    expectConsistent(queue, [0, 1, 9]);
  });

  it('removes the only member and is then empty and reusable', () => {
    const { queue, links } = filled(1);
    queue.remove(links[0]);
    expectConsistent(queue, []);
    expect(queue.peek()).toBeUndefined();
    queue.push(links[0]);
    expectConsistent(queue, [0]);
  });

  it('ignores a second push of a queued link', () => {
    const { queue, links } = filled(3);
    queue.push(links[0]);
    queue.push(links[1]);
    queue.push(links[2]);
    expectConsistent(queue, [0, 1, 2]);
  });

  it('ignores a second remove, and removing a link that was never queued', () => {
    const { queue, links } = filled(3);
    queue.remove(links[1]);
    queue.remove(links[1]);
    expectConsistent(queue, [0, 2]);
    queue.remove(queueLink(7));
    expectConsistent(queue, [0, 2]);
    queue.shift();
    queue.remove(links[0]); // already shifted
    expectConsistent(queue, [2]);
  });

  it('takes a removed link back, at the tail', () => {
    const { queue, links } = filled(3);
    queue.remove(links[0]);
    queue.push(links[0]);
    expectConsistent(queue, [1, 2, 0]);
  });

  it('iterates without consuming', () => {
    const { queue } = filled(4);
    expect([...queue]).toEqual([0, 1, 2, 3]);
    expect([...queue]).toEqual([0, 1, 2, 3]);
    expect(queue.length).toBe(4);
    const seen: number[] = [];
    for (const v of queue) seen.push(v);
    expect(seen).toEqual([0, 1, 2, 3]);
  });

  it('holds object values by identity', () => {
    const queue = new WaitQueue<{ name: string }>();
    const a = { name: 'a' };
    const b = { name: 'b' };
    queue.push(queueLink(a));
    queue.push(queueLink(b));
    expect(queue.shift()).toBe(a);
    expect(queue.peek()).toBe(b);
  });

  it('stays correct over 100k pushes and shifts', () => {
    const n = 100_000;
    const { queue } = filled(n);
    expect(queue.length).toBe(n);
    let bad = 0;
    for (let i = 0; i < n; i++) if (queue.shift() !== i) bad++;
    expect(bad).toBe(0);
    expect(queue.length).toBe(0);
    expect(queue.shift()).toBeUndefined();
  });

  it('matches an array model under 100k random pushes, shifts and removals', () => {
    let seed = 12345;
    const rand = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 4294967296;
    };
    const queue = new WaitQueue<number>();
    const model: number[] = [];
    const links = new Map<number, QueueLink<number>>();
    let next = 0;
    for (let step = 0; step < 100_000; step++) {
      const r = rand();
      if (r < 0.5) {
        const link = queueLink(next);
        links.set(next, link);
        model.push(next++);
        queue.push(link);
      } else if (r < 0.75) {
        const got = queue.shift();
        const want = model.shift();
        if (got !== want) throw new Error(`step ${step}: shift gave ${got}, expected ${want}`);
        if (want !== undefined) links.delete(want);
      } else if (model.length > 0) {
        const i = Math.floor(rand() * model.length);
        const [value] = model.splice(i, 1);
        queue.remove(links.get(value)!);
        // A stale remove of the same link must change nothing.
        if (rand() < 0.1) queue.remove(links.get(value)!);
        links.delete(value);
      }
      if (queue.length !== model.length) throw new Error(`step ${step}: length ${queue.length}, expected ${model.length}`);
      if (queue.peek() !== model[0]) throw new Error(`step ${step}: peek ${queue.peek()}, expected ${model[0]}`);
    }
    expectConsistent(queue, model);
  });

  it('is fast: 100k removals from the middle are O(1) each', () => {
    const n = 100_000;
    const { queue, links } = filled(n);
    const started = performance.now();
    for (let i = 1; i < n; i += 2) queue.remove(links[i]);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(queue.length).toBe(n / 2);
    let expected = 0;
    let bad = 0;
    for (const v of queue) {
      if (v !== expected) bad++;
      expected += 2;
    }
    expect(bad).toBe(0);
  });
});
