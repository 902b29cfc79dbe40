import { describe, expect, it } from 'vitest';
import type { KvBlock } from '../../../service/engine/kv-cache.js';
import { MIN_PREFIX_TOKENS, PrefixCache } from '../../../service/engine/prefix-cache.js';

const HEADS = 2;
const DIM = 3;
const alloc = (n: number) => new Float32Array(n);

/** A one-row cache whose value at (tensor t, head h, position p, d) encodes the token at p, so copies can be read back. */
function block(ids: number[], tensors = 2): KvBlock {
  const n = ids.length;
  return {
    batch: 1,
    length: n,
    tensors: Array.from({ length: tensors }, (_, t) => {
      const a = new Float32Array(HEADS * n * DIM);
      for (let h = 0; h < HEADS; h++)
        for (let p = 0; p < n; p++)
          for (let d = 0; d < DIM; d++) a[(h * n + p) * DIM + d] = t * 1e6 + h * 1e4 + ids[p]! * 10 + d;
      return a;
    }),
  };
}

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
const bytesOf = (ids: number[]) => 2 * HEADS * ids.length * DIM * 4;

describe('PrefixCache', () => {
  it('returns the shared leading positions of a stored prompt, copied head by head', () => {
    const cache = new PrefixCache(1 << 20, HEADS, DIM, alloc);
    const stored = range(100, 20);
    cache.add(stored, block(stored));
    const prompt = [...range(100, 12), 7, 8, 9];
    const hit = cache.lookup(prompt)!;
    expect(hit.length).toBe(12);
    expect(hit.cache).toMatchObject({ batch: 1, length: 12 });
    // Exactly what a prefill of the 12 shared tokens would hold.
    expect(hit.cache.tensors).toEqual(block(range(100, 12)).tensors);
    // A copy: the stored entry is untouched by whatever the caller does with it.
    hit.cache.tensors[0]!.fill(0);
    expect(cache.lookup(prompt)!.cache.tensors).toEqual(block(range(100, 12)).tensors);
  });

  it('always leaves at least one token to run, and ignores prefixes shorter than the minimum', () => {
    const cache = new PrefixCache(1 << 20, HEADS, DIM, alloc);
    const stored = range(0, 16);
    cache.add(stored, block(stored));
    expect(cache.lookup(stored)!.length).toBe(15);
    expect(cache.lookup([...range(0, MIN_PREFIX_TOKENS - 1), 999])).toBeUndefined();
    expect(cache.lookup([...range(0, MIN_PREFIX_TOKENS), 999])!.length).toBe(MIN_PREFIX_TOKENS);
  });

  it('picks the longest match among entries', () => {
    const cache = new PrefixCache(1 << 20, HEADS, DIM, alloc);
    const a = [...range(0, 10), ...range(500, 10)];
    const b = [...range(0, 14), ...range(900, 6)];
    cache.add(a, block(a));
    cache.add(b, block(b));
    expect(cache.lookup([...range(0, 14), 1, 2])!.length).toBe(14);
    expect(cache.lookup([...range(0, 10), ...range(500, 5), 3])!.length).toBe(15);
  });

  it('evicts the least recently used entry to stay within its byte budget', () => {
    const one = range(0, 10);
    const cache = new PrefixCache(2 * bytesOf(one), HEADS, DIM, alloc);
    const a = range(0, 10);
    const b = range(100, 10);
    const c = range(200, 10);
    cache.add(a, block(a));
    cache.add(b, block(b));
    expect(cache.lookup([...a.slice(0, 9), 1])).toBeDefined(); // a is now the most recent
    cache.add(c, block(c));
    expect(cache.size).toBe(2);
    expect(cache.lookup([...b.slice(0, 9), 1])).toBeUndefined();
    expect(cache.lookup([...a.slice(0, 9), 1])).toBeDefined();
    expect(cache.lookup([...c.slice(0, 9), 1])).toBeDefined();
    // An entry larger than the whole budget is not kept.
    const big = range(300, 30);
    cache.add(big, block(big));
    expect(cache.lookup([...big.slice(0, 20), 1])).toBeUndefined();
  });

  it('keeps one entry for prompts that extend each other (a conversation growing turn by turn)', () => {
    const cache = new PrefixCache(1 << 20, HEADS, DIM, alloc);
    const turn1 = range(0, 10);
    const turn2 = range(0, 20);
    cache.add(turn1, block(turn1));
    cache.add(turn2, block(turn2));
    expect(cache.size).toBe(1);
    cache.add(turn1, block(turn1)); // a prefix of what is kept: nothing new
    expect(cache.size).toBe(1);
    expect(cache.lookup(range(0, 25))!.length).toBe(20);
  });

  it('wants only what it would keep: not a prefix of a kept entry, not a too short one', () => {
    const cache = new PrefixCache(1 << 20, HEADS, DIM, alloc);
    const kept = range(0, 20);
    cache.add(kept, block(kept));
    expect(cache.wants(range(0, 12))).toBe(false);
    expect(cache.wants(range(0, MIN_PREFIX_TOKENS - 1).map((x) => x + 500))).toBe(false);
    expect(cache.wants(range(0, 30))).toBe(true);
    expect(cache.wants(range(100, 10))).toBe(true);
  });
});
