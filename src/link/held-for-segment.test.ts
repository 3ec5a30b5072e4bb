import { describe, expect, it } from 'vitest';
import { PendingChange } from '../client/statement-router.js';
import { FrontendCode } from '../protocol/codes.js';
import { HeldMessages, PendingChanges } from './held-for-segment.js';

describe('PendingChanges', () => {
  it('a later segment waits for the segment that changed the name, until it is answered', () => {
    const changes = new PendingChanges();
    changes.note('s1', 0, PendingChange.Replaced);
    expect(changes.waitFor(FrontendCode.Bind, 's1', 0, 1)).toBe(0);
    expect(changes.waitFor(FrontendCode.Bind, 's1', 0, 0)).toBe(-1); // same segment: skipped or run with it
    expect(changes.waitFor(FrontendCode.Bind, 's1', 1, 1)).toBe(-1); // answered
    expect(changes.waitFor(FrontendCode.Bind, 's2', 0, 1)).toBe(-1);
    expect(changes.allAnswered(0)).toBe(false);
    expect(changes.allAnswered(1)).toBe(true);
  });

  it('a new name makes only a later Parse of it wait; a Close or unnamed Parse also what uses it', () => {
    const changes = new PendingChanges();
    changes.note('new', 0, PendingChange.Parsed);
    expect(changes.waitFor(FrontendCode.Parse, 'new', 0, 1)).toBe(0);
    expect(changes.waitFor(FrontendCode.Bind, 'new', 0, 1)).toBe(-1);
    changes.note('', 1, PendingChange.Use);
    expect(changes.waitFor(FrontendCode.Describe, '', 0, 2)).toBe(1);
    expect(changes.waitFor(FrontendCode.Parse, '', 0, 2)).toBe(-1);
  });

  it('changes of one name in one segment add up; a later segment’s replaces them', () => {
    const changes = new PendingChanges();
    changes.note('s1', 0, PendingChange.Parsed);
    changes.note('s1', 0, PendingChange.Use);
    expect(changes.waitFor(FrontendCode.Bind, 's1', 0, 1)).toBe(0);
    changes.note('s1', 1, PendingChange.Parsed);
    expect(changes.waitFor(FrontendCode.Bind, 's1', 0, 2)).toBe(-1);
    expect(changes.waitFor(FrontendCode.Parse, 's1', 0, 2)).toBe(1);
  });
});

describe('HeldMessages', () => {
  it('says when the bound is passed', () => {
    const held = new HeldMessages(0);
    const chunk = Buffer.alloc(HeldMessages.MAX_BYTES);
    expect(held.push(FrontendCode.CopyData, chunk, 0, chunk.length, null)).toBe(true);
    expect(held.push(FrontendCode.Sync, chunk, 0, 1, null)).toBe(false);
    expect(held.codes).toEqual([FrontendCode.CopyData, FrontendCode.Sync]);
  });
});
