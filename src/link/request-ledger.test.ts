/** RequestLedger on its own: queue order, skip-to-Sync, COPY's ignored Syncs, storage reuse, and a model check. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { endsWithReady, isExtended, Owed, Reply, RequestLedger, type OwnStatements } from './request-ledger.js';

const ALL_KINDS = [Owed.Parse, Owed.Bind, Owed.DescribeStatement, Owed.DescribePortal, Owed.Execute, Owed.Close, Owed.Sync, Owed.Query, Owed.FunctionCall];

/** The ledger's parallel arrays, for the tests that check storage is reused rather than grown. */
interface Storage {
  kinds: Owed[];
  replies: Reply[];
  payloads: Array<Buffer | null>;
  names: Array<string | null>;
  clientNames: Array<string | null>;
  owned: Array<OwnStatements | null>;
  head: number;
}

function storage(ledger: RequestLedger): Storage {
  return ledger as unknown as Storage;
}

/** What is owed, head first (drains a copy: the ledger itself is left alone). */
function kindsOf(ledger: RequestLedger): Owed[] {
  const s = storage(ledger);
  return s.kinds.slice(s.head);
}

describe('isExtended / endsWithReady', () => {
  it('classify every kind', () => {
    expect(ALL_KINDS.filter(isExtended)).toEqual([Owed.Parse, Owed.Bind, Owed.DescribeStatement, Owed.DescribePortal, Owed.Execute, Owed.Close]);
    expect(ALL_KINDS.filter(endsWithReady)).toEqual([Owed.Sync, Owed.Query, Owed.FunctionCall]);
    // Each kind is exactly one of the two.
    for (const kind of ALL_KINDS) expect(isExtended(kind)).toBe(!endsWithReady(kind));
  });
});

describe('RequestLedger', () => {
  it('starts empty', () => {
    const ledger = new RequestLedger();
    expect(ledger.empty).toBe(true);
    expect(ledger.length).toBe(0);
    expect(ledger.next).toBeUndefined();
    expect(ledger.skippingToSync).toBe(false);
    for (const kind of ALL_KINDS) expect(ledger.owes(kind)).toBe(false);
    // Shifting nothing is harmless.
    ledger.shift();
    expect(ledger.empty).toBe(true);
    expect(ledger.length).toBe(0);
  });

  it('is a FIFO of kinds with their reply, payload and owned results', () => {
    const ledger = new RequestLedger();
    const error = Buffer.from('E-payload');
    const synth = Buffer.from('1-payload');
    ledger.push(Owed.Parse);
    ledger.push(Owed.Bind, Reply.ReplaceError, error);
    ledger.push(Owed.Parse, Reply.Synthesize, synth);
    ledger.push(Owed.Close, Reply.Swallow);
    ledger.push(Owed.Query, Reply.PartlyOwn, null, null, { results: [0, 2], insertions: [] });
    ledger.push(Owed.Sync);
    expect(ledger.length).toBe(6);
    expect(ledger.empty).toBe(false);
    expect(ledger.owes(Owed.Query)).toBe(true);
    expect(ledger.owes(Owed.Execute)).toBe(false);

    expect(ledger.next).toBe(Owed.Parse);
    expect(ledger.nextReply).toBe(Reply.Forward);
    expect(ledger.nextPayload).toBeNull();
    expect(ledger.nextOwnsResult(0)).toBe(false);
    ledger.shift();

    expect(ledger.next).toBe(Owed.Bind);
    expect(ledger.nextReply).toBe(Reply.ReplaceError);
    expect(ledger.nextPayload).toBe(error);
    ledger.shift();

    expect(ledger.next).toBe(Owed.Parse);
    expect(ledger.nextReply).toBe(Reply.Synthesize);
    expect(ledger.nextPayload).toBe(synth);
    ledger.shift();

    expect(ledger.next).toBe(Owed.Close);
    expect(ledger.nextReply).toBe(Reply.Swallow);
    ledger.shift();

    expect(ledger.next).toBe(Owed.Query);
    expect(ledger.nextReply).toBe(Reply.PartlyOwn);
    expect([0, 1, 2, 3].map((i) => ledger.nextOwnsResult(i))).toEqual([true, false, true, false]);
    expect(ledger.length).toBe(2);
    ledger.shift();

    expect(ledger.next).toBe(Owed.Sync);
    expect(ledger.owes(Owed.Query)).toBe(false);
    expect(ledger.owes(Owed.Sync)).toBe(true);
    ledger.shift();

    expect(ledger.empty).toBe(true);
    expect(ledger.next).toBeUndefined();
  });

  it('drops a payload as soon as its entry is answered (no buffer kept alive by the queue)', () => {
    const ledger = new RequestLedger();
    ledger.push(Owed.Bind, Reply.ReplaceError, Buffer.from('error'));
    ledger.push(Owed.Query, Reply.PartlyOwn, null, null, { results: [1], insertions: [] });
    ledger.push(Owed.Sync);
    ledger.shift();
    ledger.shift();
    const s = storage(ledger);
    expect(s.head).toBe(2);
    expect(s.payloads[0]).toBeNull();
    expect(s.owned[1]).toBeNull();
  });

  describe('dropToSync', () => {
    it('drops everything before the next Sync, reporting the Parses that never ran by server and client name', () => {
      const ledger = new RequestLedger();
      ledger.push(Owed.Parse, Reply.Forward, null, 'a', null, 'a'); // the client's, placed in the server's cache
      ledger.push(Owed.Bind);
      ledger.push(Owed.Parse, Reply.Swallow, null, 'b'); // injected by pgmux: no client statement
      ledger.push(Owed.Parse); // unnamed, or not tracked: no name
      ledger.push(Owed.Parse, Reply.Synthesize, Buffer.from('1'), null, null, 's'); // answered by pgmux: the server has it, the client would
      ledger.push(Owed.Parse, Reply.Forward, null, 'pgmux_0123', null, 'x'); // under an alias on the server
      ledger.push(Owed.Close, Reply.Swallow);
      ledger.push(Owed.Query); // a Query inside the batch is skipped by the server too
      ledger.push(Owed.Execute);
      ledger.push(Owed.Sync);
      ledger.push(Owed.Parse, Reply.Forward, null, 'c', null, 'c'); // after the Sync: runs
      ledger.push(Owed.Sync);
      const notCreated: Array<[string | null, string | null]> = [];
      expect(ledger.dropToSync((_kind, _reply, server, client) => notCreated.push([server, client]))).toBe(true);
      expect(notCreated).toEqual([
        ['a', 'a'],
        ['b', null],
        [null, 's'],
        ['pgmux_0123', 'x'],
      ]);
      expect(ledger.skippingToSync).toBe(false);
      expect(kindsOf(ledger)).toEqual([Owed.Sync, Owed.Parse, Owed.Sync]);
      expect(ledger.length).toBe(3);
      expect(ledger.next).toBe(Owed.Sync);
      expect(ledger.nextReply).toBe(Reply.Forward);

      // The Parse after the Sync keeps its names: a later failure reports them.
      ledger.shift();
      const later: Array<[string | null, string | null]> = [];
      expect(ledger.dropToSync((_kind, _reply, server, client) => later.push([server, client]))).toBe(true);
      expect(later).toEqual([['c', 'c']]);
      expect(kindsOf(ledger)).toEqual([Owed.Sync]);
    });

    it('with no Sync owed empties the ledger and skips what the client sends next, up to its Sync', () => {
      const ledger = new RequestLedger();
      ledger.push(Owed.Parse, Reply.Forward, null, 'x', null, 'x');
      ledger.push(Owed.DescribeStatement);
      const notCreated: Array<[string | null, string | null]> = [];
      expect(ledger.dropToSync((_kind, _reply, server, client) => notCreated.push([server, client]))).toBe(false);
      expect(notCreated).toEqual([['x', 'x']]);
      expect(ledger.empty).toBe(true);
      expect(ledger.length).toBe(0);
      expect(ledger.next).toBeUndefined();
      expect(ledger.skippingToSync).toBe(true);
      // Storage reset for the next batch.
      expect(storage(ledger).head).toBe(0);
      expect(storage(ledger).kinds.length).toBe(0);
    });

    it('is a no-op when the Sync is next (an error at Sync: its ReadyForQuery is still owed)', () => {
      const ledger = new RequestLedger();
      ledger.push(Owed.Sync);
      ledger.push(Owed.Parse, Reply.Forward, null, 'p', null, 'p');
      const notCreated: unknown[] = [];
      expect(ledger.dropToSync((_kind, _reply, server, client) => notCreated.push([server, client]))).toBe(true);
      expect(notCreated).toEqual([]);
      expect(kindsOf(ledger)).toEqual([Owed.Sync, Owed.Parse]);
    });

    it('on an empty ledger sets skippingToSync', () => {
      const ledger = new RequestLedger();
      expect(ledger.dropToSync(() => expect.unreachable())).toBe(false);
      expect(ledger.skippingToSync).toBe(true);
    });
  });

  describe('dropSyncsAfterNext', () => {
    it('removes the Syncs right after the next entry, and only those, keeping what follows intact', () => {
      const ledger = new RequestLedger();
      ledger.push(Owed.Parse);
      ledger.shift(); // head > 0: the splice must be relative to the head
      ledger.push(Owed.Execute);
      ledger.push(Owed.Sync);
      ledger.push(Owed.Sync);
      ledger.push(Owed.Parse, Reply.Forward, null, 'p', null, 'cp');
      ledger.push(Owed.Bind, Reply.ReplaceError, Buffer.from('err'));
      ledger.push(Owed.Sync);
      ledger.dropSyncsAfterNext();
      expect(kindsOf(ledger)).toEqual([Owed.Execute, Owed.Parse, Owed.Bind, Owed.Sync]);
      expect(ledger.next).toBe(Owed.Execute);
      ledger.shift();
      // The entries after the dropped Syncs kept their replies, payloads and names.
      expect(ledger.next).toBe(Owed.Parse);
      expect(ledger.nextReply).toBe(Reply.Forward);
      const names: Array<[string | null, string | null]> = [];
      expect(ledger.dropToSync((_kind, _reply, server, client) => names.push([server, client]))).toBe(true);
      expect(names).toEqual([['p', 'cp']]);
      expect(kindsOf(ledger)).toEqual([Owed.Sync]);

      const other = new RequestLedger();
      other.push(Owed.Query);
      other.push(Owed.Sync);
      other.push(Owed.Bind, Reply.ReplaceError, Buffer.from('err'));
      other.dropSyncsAfterNext();
      other.shift();
      expect(other.next).toBe(Owed.Bind);
      expect(other.nextReply).toBe(Reply.ReplaceError);
      expect(other.nextPayload?.toString()).toBe('err');
    });

    it('leaves the ledger alone when no Sync follows, or when the ledger is empty', () => {
      const ledger = new RequestLedger();
      ledger.dropSyncsAfterNext();
      expect(ledger.empty).toBe(true);
      ledger.push(Owed.Query);
      ledger.push(Owed.Query);
      ledger.push(Owed.Sync);
      ledger.dropSyncsAfterNext();
      expect(kindsOf(ledger)).toEqual([Owed.Query, Owed.Query, Owed.Sync]);
    });

    it('does not count the next entry itself, even when it is a Sync', () => {
      const ledger = new RequestLedger();
      ledger.push(Owed.Sync);
      ledger.push(Owed.Sync);
      ledger.dropSyncsAfterNext();
      expect(kindsOf(ledger)).toEqual([Owed.Sync]);
    });
  });

  it('clear forgets everything, skippingToSync included', () => {
    const ledger = new RequestLedger();
    ledger.push(Owed.Parse, Reply.Forward, null, 'x');
    ledger.dropToSync(() => {});
    expect(ledger.skippingToSync).toBe(true);
    ledger.push(Owed.Sync);
    ledger.push(Owed.Query);
    ledger.shift();
    ledger.clear();
    expect(ledger.empty).toBe(true);
    expect(ledger.length).toBe(0);
    expect(ledger.skippingToSync).toBe(false);
    expect(storage(ledger).head).toBe(0);
    ledger.push(Owed.Bind);
    expect(ledger.next).toBe(Owed.Bind);
    expect(ledger.length).toBe(1);
  });

  it('reuses its storage: the arrays never outgrow the longest batch', () => {
    const ledger = new RequestLedger();
    const s = storage(ledger);
    const arrays = [s.kinds, s.replies, s.payloads, s.names, s.clientNames, s.owned];
    let longest = 0;
    for (let batch = 0; batch < 600; batch++) {
      const n = 1 + (batch % 7);
      for (let i = 0; i < n - 1; i++) ledger.push(i === 0 ? Owed.Parse : Owed.Bind, Reply.Forward, null, 'x', null, 'x');
      ledger.push(Owed.Sync);
      for (const a of arrays) longest = Math.max(longest, a.length);
      switch (batch % 3) {
        case 0: // answered one by one
          for (let i = 0; i < n; i++) ledger.shift();
          break;
        case 1: // an error: skip to the Sync, then its ReadyForQuery
          ledger.dropToSync(() => {});
          ledger.shift();
          break;
        default: // the link is dropped
          ledger.clear();
          break;
      }
      expect(ledger.empty).toBe(true);
      expect(s.head).toBe(0);
    }
    expect(longest).toBe(7);
    // The very same arrays, emptied in place.
    const now = [s.kinds, s.replies, s.payloads, s.names, s.clientNames, s.owned];
    for (let i = 0; i < arrays.length; i++) expect(now[i]).toBe(arrays[i]);
    for (const a of arrays) expect(a.length).toBe(0);
  });

  it('behaves like a plain list under any sequence of operations (model check)', () => {
    interface Entry {
      kind: Owed;
      reply: Reply;
      payload: Buffer | null;
      name: string | null;
      owned: OwnStatements | null;
      clientName: string | null;
    }
    const entry = fc.record({
      kind: fc.constantFrom(...ALL_KINDS),
      reply: fc.constantFrom(Reply.Forward, Reply.Swallow, Reply.Synthesize, Reply.ReplaceError, Reply.PartlyOwn),
      payload: fc.option(fc.constantFrom(Buffer.from('a'), Buffer.from('b')), { nil: null }),
      name: fc.option(fc.constantFrom('s1', 's2', 's3'), { nil: null }),
      owned: fc.option(fc.uniqueArray(fc.nat(4), { maxLength: 3 }).map((results) => ({ results, insertions: [] })), { nil: null }),
      clientName: fc.option(fc.constantFrom('c1', 'c2'), { nil: null }),
    });
    const op = fc.oneof(
      { weight: 5, arbitrary: entry.map((e) => ({ op: 'push' as const, e })) },
      { weight: 3, arbitrary: fc.constant({ op: 'shift' as const }) },
      { weight: 1, arbitrary: fc.constant({ op: 'dropToSync' as const }) },
      { weight: 1, arbitrary: fc.constant({ op: 'dropSyncsAfterNext' as const }) },
      { weight: 1, arbitrary: fc.constant({ op: 'clear' as const }) },
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const ledger = new RequestLedger();
        let model: Entry[] = [];
        let skipping = false;
        for (const o of ops) {
          switch (o.op) {
            case 'push':
              ledger.push(o.e.kind, o.e.reply, o.e.payload, o.e.name, o.e.owned, o.e.clientName);
              model.push(o.e);
              break;
            case 'shift':
              ledger.shift();
              model.shift();
              break;
            case 'dropToSync': {
              const reported: Array<[string | null, string | null]> = [];
              const synced = ledger.dropToSync((_kind, _reply, server, client) => reported.push([server, client]));
              const at = model.findIndex((e) => e.kind === Owed.Sync);
              const dropped = at < 0 ? model : model.slice(0, at);
              // Every dropped entry that names a statement is reported (a Parse that never ran, a Close that did not close).
              expect(reported).toEqual(dropped.filter((e) => e.name !== null || e.clientName !== null).map((e) => [e.name, e.clientName]));
              expect(synced).toBe(at >= 0);
              model = at < 0 ? [] : model.slice(at);
              if (at < 0) skipping = true;
              break;
            }
            case 'dropSyncsAfterNext': {
              ledger.dropSyncsAfterNext();
              let i = 1;
              while (i < model.length && model[i].kind === Owed.Sync) i++;
              if (model.length > 0) model = [model[0], ...model.slice(i)];
              break;
            }
            case 'clear':
              ledger.clear();
              model = [];
              skipping = false;
              break;
          }
          expect(ledger.length).toBe(model.length);
          expect(ledger.empty).toBe(model.length === 0);
          expect(ledger.skippingToSync).toBe(skipping);
          expect(ledger.next).toBe(model[0]?.kind);
          for (const kind of ALL_KINDS) expect(ledger.owes(kind)).toBe(model.some((e) => e.kind === kind));
          if (model.length > 0) {
            expect(ledger.nextReply).toBe(model[0].reply);
            expect(ledger.nextPayload).toBe(model[0].payload);
            for (let r = 0; r < 5; r++) expect(ledger.nextOwnsResult(r)).toBe(model[0].owned?.results.includes(r) ?? false);
          }
        }
        // Whatever happened, the queue's storage is compact once it is empty.
        if (model.length === 0) expect(storage(ledger).head).toBe(0);
      }),
      { numRuns: 200 },
    );
  });
});
