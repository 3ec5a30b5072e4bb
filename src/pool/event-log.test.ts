import { describe, expect, it } from 'vitest';
import { EventLog } from './event-log.js';

describe('EventLog', () => {
  it('keeps the newest `capacity` events, newest first, with increasing ids', () => {
    const log = new EventLog(3);
    expect(log.recent()).toEqual([]);
    for (let i = 1; i <= 5; i++) log.add('pause', `db${i}`, `PAUSE db${i}`, i);
    expect(log.recent().map((e) => [e.id, e.scope, e.time])).toEqual([
      [5, 'db5', 5],
      [4, 'db4', 4],
      [3, 'db3', 3],
    ]);
    expect(log.recent(2).map((e) => e.id)).toEqual([5, 4]);
  });
});
