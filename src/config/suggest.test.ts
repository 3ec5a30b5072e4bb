import { describe, expect, it } from 'vitest';
import { closest, didYouMean } from './suggest.js';

const KEYS = ['listen_port', 'listen_addr', 'pool_mode', 'default_pool_size', 'min_pool_size', 'users'];

describe('closest', () => {
  it('finds typos, swapped letters and other spellings', () => {
    expect(closest('listen_prot', KEYS)).toBe('listen_port');
    expect(closest('pool_mod', KEYS)).toBe('pool_mode');
    expect(closest('LISTEN_PORT', KEYS)).toBe('listen_port');
    expect(closest('listen-port', KEYS)).toBe('listen_port');
    expect(closest('--listen-port', ['--listen-port', '--pool-mode'])).toBe('--listen-port');
    expect(closest('user', KEYS)).toBe('users');
  });

  it('suggests nothing for unrelated words', () => {
    expect(closest('frobnicate', KEYS)).toBeUndefined();
    expect(closest('x', KEYS)).toBeUndefined();
  });
});

describe('didYouMean', () => {
  it('formats a suggestion ready to append', () => {
    expect(didYouMean('listen_prot', KEYS)).toBe('; did you mean "listen_port"?');
    expect(didYouMean('zzz', KEYS)).toBe('');
  });
});
