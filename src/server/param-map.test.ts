import { describe, expect, it } from 'vitest';
import { ParamMap } from './param-map.js';

describe('ParamMap', () => {
  it('has equal signatures for equal contents in the same order, and a new one after any change', () => {
    const a = new ParamMap([['application_name', 'app'], ['TimeZone', 'UTC']]);
    const b = new ParamMap([['application_name', 'app'], ['TimeZone', 'UTC']]);
    expect(a.signature).toBe(b.signature);
    const before = a.signature;
    a.set('TimeZone', 'Europe/Paris');
    expect(a.signature).not.toBe(before);
    a.set('TimeZone', 'UTC');
    expect(a.signature).toBe(before);
    a.delete('application_name');
    expect(a.signature).not.toBe(before);
  });

  it('counts a version only for real changes', () => {
    const m = new ParamMap();
    m.set('a', '1');
    const v = m.version;
    m.set('a', '1');
    m.delete('missing');
    expect(m.version).toBe(v);
    m.clear();
    expect(m.version).toBe(v + 1);
    m.clear();
    expect(m.version).toBe(v + 1);
  });

  it('cannot confuse a value containing separators with two entries', () => {
    const a = new ParamMap([['x', 'a\u0001y\u0000b']]);
    const b = new ParamMap([['x', 'a'], ['y', 'b']]);
    expect(a.signature).not.toBe(b.signature);
  });
});
