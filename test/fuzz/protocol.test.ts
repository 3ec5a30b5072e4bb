/** The fuzzer's own machinery, without Postgres: when a step counts as answered, and the transcript diff. */
import { describe, expect, it } from 'vitest';
import { diffLines } from './diff.js';
import { simulate, type BackendMessage, type Front } from './protocol.js';

const msgs = (codes: string): BackendMessage[] => [...codes].map((code) => ({ code, body: Buffer.alloc(0) }));
const Q: Front = { t: 'Q', sql: 'select 1' };
const P: Front = { t: 'P', name: '', sql: 'select 1' };
const B: Front = { t: 'B', portal: '', stmt: '', params: [], binary: false };
const DS: Front = { t: 'D', kind: 'S', name: '' };
const DP: Front = { t: 'D', kind: 'P', name: '' };
const E: Front = { t: 'E', portal: '', rows: 0 };
const S: Front = { t: 'S' };
const H: Front = { t: 'H' };
const d: Front = { t: 'd', data: Buffer.from('1\tx\n') };
const c: Front = { t: 'c' };

describe('simulate', () => {
  it('a simple query is answered by its ReadyForQuery, whatever comes before', () => {
    expect(simulate([Q], msgs('TDC'), false)).toMatchObject({ done: false, consumed: 3 });
    expect(simulate([Q], msgs('TDCZ'), false)).toEqual({ done: true, consumed: 4, skipping: false });
    expect(simulate([Q, Q], msgs('EZCZT'), false)).toEqual({ done: true, consumed: 4, skipping: false });
  });

  it('a batch up to Sync: completions, then ReadyForQuery', () => {
    expect(simulate([P, B, DP, E, S], msgs('12TDDCZ'), false)).toEqual({ done: true, consumed: 7, skipping: false });
    expect(simulate([P, DS, S], msgs('1tTZ'), false)).toMatchObject({ done: true, consumed: 4 });
    expect(simulate([P, DS, S], msgs('1tnZ'), false)).toMatchObject({ done: true, consumed: 4 });
  });

  it('after an error everything up to Sync is skipped, a Query too', () => {
    expect(simulate([P, B, E, S, P, S], msgs('1EZ1Z'), false)).toEqual({ done: true, consumed: 5, skipping: false });
    expect(simulate([B, E, H, Q], msgs('E'), false)).toEqual({ done: true, consumed: 1, skipping: true });
    expect(simulate([Q, P, S], msgs('Z'), true)).toEqual({ done: true, consumed: 1, skipping: false });
  });

  it('Flush without Sync: done when every message has its answer', () => {
    expect(simulate([P, B, E, H], msgs('12DD'), false)).toMatchObject({ done: false });
    expect(simulate([P, B, E, H], msgs('12DDC'), false)).toEqual({ done: true, consumed: 5, skipping: false });
    expect(simulate([P, DS, H, Q], msgs('1tTCZ'), false)).toMatchObject({ done: true, consumed: 5 });
  });

  it('COPY: out through Execute, in through a Query or Execute', () => {
    expect(simulate([P, B, E, S], msgs('12HddcCZ'), false)).toMatchObject({ done: true, consumed: 8 });
    expect(simulate([Q, d, c], msgs('GCZ'), false)).toMatchObject({ done: true, consumed: 3 });
    expect(simulate([P, B, E, d, c, S], msgs('12GCZ'), false)).toMatchObject({ done: true, consumed: 5 });
    expect(simulate([P, B, E, d, c, S], msgs('12GEZ'), false)).toEqual({ done: true, consumed: 5, skipping: false });
  });

  it('notices, parameter changes and notifications may come anywhere', () => {
    expect(simulate([P, B, E, S], msgs('N1S2ANCZ'), false)).toMatchObject({ done: true, consumed: 8 });
  });
});

describe('diffLines', () => {
  it('marks lines only expected with -, only actual with +', () => {
    expect(diffLines(['a', 'b', 'c'], ['a', 'x', 'c', 'd'])).toEqual(['  a', '- b', '+ x', '  c', '+ d']);
    expect(diffLines([], ['a'])).toEqual(['+ a']);
  });
});
