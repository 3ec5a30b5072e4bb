import type { Socket } from 'node:net';

import { describe, expect, it } from 'vitest';

import { WriteBatch } from './write-batch.js';

type Call = { op: 'cork' } | { op: 'uncork' } | { op: 'write'; buf: Buffer };

/** Records what a WriteBatch does to its socket; write() answers from `results` (true once they run out). */
class FakeSocket {
  readonly calls: Call[] = [];
  constructor(private readonly results: boolean[] = []) {}

  write(buf: Buffer): boolean {
    this.calls.push({ op: 'write', buf });
    return this.results.shift() ?? true;
  }

  cork(): void {
    this.calls.push({ op: 'cork' });
  }

  uncork(): void {
    this.calls.push({ op: 'uncork' });
  }

  get socket(): Socket {
    return this as unknown as Socket;
  }

  /** The calls in a readable form: 'cork', 'uncork', or the written bytes as text. */
  trace(): string[] {
    return this.calls.map((c) => (c.op === 'write' ? c.buf.toString('latin1') : c.op));
  }

  writes(): Buffer[] {
    return this.calls.flatMap((c) => (c.op === 'write' ? [c.buf] : []));
  }
}

const A = Buffer.from('0123456789abcdefghij');
const B = Buffer.from('KLMNOPQRST');

describe('WriteBatch', () => {
  it('starts empty and flushing nothing writes nothing', () => {
    const batch = new WriteBatch();
    const fake = new FakeSocket([false]);
    expect(batch.empty).toBe(true);
    expect(batch.flush(fake.socket)).toBe(true);
    expect(fake.calls).toEqual([]);
  });

  it('merges adjacent ranges of the same buffer into one write of a view, without corking', () => {
    const batch = new WriteBatch();
    batch.add(A, 2, 5);
    batch.add(A, 5, 9);
    batch.add(A, 9, 15);
    expect(batch.empty).toBe(false);
    const fake = new FakeSocket();
    batch.flush(fake.socket);
    expect(fake.trace()).toEqual(['23456789abcde']);
    const [written] = fake.writes();
    // A view of A, not a copy.
    expect(written.buffer).toBe(A.buffer);
    expect(written.byteOffset).toBe(A.byteOffset + 2);
    expect(batch.empty).toBe(true);
  });

  it('writes a whole buffer as itself', () => {
    const batch = new WriteBatch();
    batch.add(A, 0, 7);
    batch.add(A, 7, A.length);
    const fake = new FakeSocket();
    batch.flush(fake.socket);
    expect(fake.writes()).toHaveLength(1);
    expect(fake.writes()[0]).toBe(A);

    batch.addBuffer(B);
    batch.flush(fake.socket);
    expect(fake.writes()[1]).toBe(B);
  });

  it('writes non-adjacent ranges of one buffer separately inside cork/uncork', () => {
    const batch = new WriteBatch();
    batch.add(A, 0, 3);
    batch.add(A, 4, 6); // gap at 3
    batch.add(A, 6, 8); // adjacent to the previous range: merged with it
    batch.add(A, 2, 4); // backwards: not adjacent
    const fake = new FakeSocket();
    batch.flush(fake.socket);
    expect(fake.trace()).toEqual(['cork', '012', '4567', '23', 'uncork']);
    for (const w of fake.writes()) expect(w.buffer).toBe(A.buffer);
  });

  it('writes ranges of different buffers in order inside cork/uncork', () => {
    const batch = new WriteBatch();
    batch.add(A, 0, 4);
    batch.add(B, 0, 3);
    batch.add(B, 3, 5);
    batch.add(A, 4, 6); // adjacent to the first A range, but another range came between
    batch.addBuffer(B);
    const fake = new FakeSocket();
    batch.flush(fake.socket);
    expect(fake.trace()).toEqual(['cork', '0123', 'KLMNO', '45', 'KLMNOPQRST', 'uncork']);
  });

  it('treats equal bytes in a different buffer as a different buffer', () => {
    const copy = Buffer.from(A);
    const batch = new WriteBatch();
    batch.add(A, 0, 5);
    batch.add(copy, 5, 10);
    const fake = new FakeSocket();
    batch.flush(fake.socket);
    expect(fake.trace()).toEqual(['cork', '01234', '56789', 'uncork']);
  });

  it('merges a subarray with the rest of the buffer it views: one write, whichever comes first', () => {
    const chunk = Buffer.from('PARSE|BIND|SYNC');
    const held = chunk.subarray(0, 6); // held on its own while the client waited for a server
    const batch = new WriteBatch();
    batch.addBuffer(held);
    batch.add(chunk, 6, chunk.length);
    const fake = new FakeSocket();
    batch.flush(fake.socket);
    expect(fake.trace()).toEqual(['PARSE|BIND|SYNC']);

    const tail = chunk.subarray(6, 11);
    batch.add(chunk, 0, 6);
    batch.addBuffer(tail);
    batch.add(chunk, 11, chunk.length);
    batch.flush(fake.socket);
    expect(fake.trace()).toEqual(['PARSE|BIND|SYNC', 'PARSE|BIND|SYNC']);
  });

  it('does not merge views of one memory that are not contiguous', () => {
    const chunk = Buffer.from('0123456789');
    const batch = new WriteBatch();
    batch.addBuffer(chunk.subarray(0, 3));
    batch.addBuffer(chunk.subarray(4, 6));
    const fake = new FakeSocket();
    batch.flush(fake.socket);
    expect(fake.trace()).toEqual(['cork', '012', '45', 'uncork']);
  });

  it("returns the socket's write() result for a single write", () => {
    for (const result of [true, false]) {
      const batch = new WriteBatch();
      batch.add(A, 0, 5);
      expect(batch.flush(new FakeSocket([result]).socket)).toBe(result);
    }
  });

  it('returns the result of the last write when there are several', () => {
    for (const result of [true, false]) {
      const batch = new WriteBatch();
      batch.add(A, 0, 5);
      batch.add(B, 0, 5);
      const fake = new FakeSocket([true, result]);
      expect(batch.flush(fake.socket)).toBe(result);
      expect(fake.trace()).toEqual(['cork', '01234', 'KLMNO', 'uncork']);
    }
  });

  it('is empty after a flush and does not merge with ranges already written', () => {
    const batch = new WriteBatch();
    const fake = new FakeSocket();
    batch.add(A, 0, 5);
    batch.flush(fake.socket);
    batch.add(A, 5, 10);
    batch.flush(fake.socket);
    expect(batch.flush(fake.socket)).toBe(true);
    expect(fake.trace()).toEqual(['01234', '56789']);
  });

  it('hands its ranges to drainTo and forgets them', () => {
    const batch = new WriteBatch();
    batch.add(A, 0, 3);
    batch.add(A, 3, 6);
    batch.add(B, 1, 2);
    const held: Buffer[] = [Buffer.from('x')];
    batch.drainTo(held);
    expect(held.map((b) => b.toString())).toEqual(['x', '012345', 'L']);
    expect(held[1].buffer).toBe(A.buffer);
    expect(batch.empty).toBe(true);
    const fake = new FakeSocket();
    expect(batch.flush(fake.socket)).toBe(true);
    expect(fake.calls).toEqual([]);
  });

  it('drops everything on clear', () => {
    const batch = new WriteBatch();
    batch.add(A, 0, 3);
    batch.add(B, 0, 3);
    batch.add(A, 3, 4);
    batch.clear();
    expect(batch.empty).toBe(true);
    batch.add(A, 4, 6); // adjacent to a cleared range: must not bring it back
    const fake = new FakeSocket();
    batch.flush(fake.socket);
    expect(fake.trace()).toEqual(['45']);
  });

  it('can be reused for many rounds', () => {
    const batch = new WriteBatch();
    const fake = new FakeSocket();
    for (let i = 0; i < A.length; i += 2) {
      batch.add(A, i, i + 1);
      batch.add(A, i + 1, i + 2);
      batch.flush(fake.socket);
    }
    expect(fake.trace().join('|')).toBe('01|23|45|67|89|ab|cd|ef|gh|ij');
  });
});
