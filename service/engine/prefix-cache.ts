/**
 * Reuse of prompt prefixes across requests: the KV cache a prefill produced, kept (least recently used first
 * out, within a byte budget) so that a later prompt starting with the same tokens prefills only the rest.
 *
 * Why: chat templates put the same system prompt in front of every conversation (SmolLM2's inserts one when
 * the client sends none), and multi-turn clients resend the whole history; without reuse every request pays
 * for those positions again. The KV of position i depends only on tokens 0..i, so any stored prompt's first k
 * positions serve any prompt that shares its first k tokens.
 */
import type { KvArray, KvBlock } from './kv-cache.js';

/** Prompt KV kept for prefix reuse: SmolLM2-135M holds 46 KB a position, so ~1400 positions. */
export const PREFIX_CACHE_BYTES = 64 * 1024 * 1024;

/** Below this many shared tokens a hit saves less than the copy costs. */
export const MIN_PREFIX_TOKENS = 8;

interface Entry {
  ids: readonly number[];
  /** One row, `ids.length` positions, no padding: a prefill's own output. */
  cache: KvBlock;
  bytes: number;
}

export interface PrefixHit {
  /** The shared positions, copied out of the stored entry ([1, heads, length, headDim] each). */
  cache: KvBlock;
  length: number;
}

export class PrefixCache {
  /** Most recently used last. */
  private readonly entries: Entry[] = [];
  private bytes = 0;

  constructor(
    private readonly budgetBytes: number,
    private readonly heads: number,
    private readonly headDim: number,
    private readonly alloc: (elements: number) => KvArray,
  ) {}

  /**
   * The longest stored prefix of `ids`, leaving at least one token to run (the step that yields the logits).
   * The returned cache is a copy: the stored entry stays as it was.
   */
  lookup(ids: readonly number[]): PrefixHit | undefined {
    let best: Entry | undefined;
    let bestLength = 0;
    for (const entry of this.entries) {
      const length = sharedLength(entry.ids, ids, ids.length - 1);
      if (length > bestLength) {
        best = entry;
        bestLength = length;
      }
    }
    if (!best || bestLength < MIN_PREFIX_TOKENS) return undefined;
    this.touch(best);
    return { cache: this.firstPositions(best.cache, bestLength), length: bestLength };
  }

  /** Whether `add` would keep these ids (so a caller can skip copying a cache out for nothing). */
  wants(ids: readonly number[]): boolean {
    if (ids.length < MIN_PREFIX_TOKENS) return false;
    return !this.entries.some(
      (e) => e.ids.length >= ids.length && sharedLength(e.ids, ids, ids.length) === ids.length,
    );
  }

  /** Keeps a prefill's or a finished row's cache for later prompts (not copied: nothing writes to it afterwards). */
  add(ids: readonly number[], cache: KvBlock): void {
    if (cache.batch !== 1 || cache.length !== ids.length || ids.length < MIN_PREFIX_TOKENS) return;
    const bytes = cache.tensors.reduce((sum, t) => sum + t.byteLength, 0);
    if (bytes > this.budgetBytes) return;
    // An entry that is a prefix of the new one is redundant (the new one serves every prompt it served).
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const old = this.entries[i]!;
      if (old.ids.length <= ids.length && sharedLength(old.ids, ids, old.ids.length) === old.ids.length) {
        this.remove(i);
      } else if (sharedLength(old.ids, ids, ids.length) === ids.length) {
        this.touch(old); // the new prompt is a prefix of one already kept
        return;
      }
    }
    while (this.entries.length > 0 && this.bytes + bytes > this.budgetBytes) this.remove(0);
    this.entries.push({ ids: [...ids], cache, bytes });
    this.bytes += bytes;
  }

  get size(): number {
    return this.entries.length;
  }

  private touch(entry: Entry): void {
    const i = this.entries.indexOf(entry);
    this.entries.splice(i, 1);
    this.entries.push(entry);
  }

  private remove(i: number): void {
    this.bytes -= this.entries[i]!.bytes;
    this.entries.splice(i, 1);
  }

  private firstPositions(block: KvBlock, length: number): KvBlock {
    const { heads, headDim } = this;
    const tensors = block.tensors.map((src) => {
      const dst = this.alloc(heads * length * headDim);
      for (let h = 0; h < heads; h++) {
        const from = h * block.length * headDim;
        dst.set(src.subarray(from, from + length * headDim), h * length * headDim);
      }
      return dst;
    });
    return { batch: 1, length, tensors };
  }
}

/** How many leading tokens `a` and `b` share, at most `limit`. */
function sharedLength(a: readonly number[], b: readonly number[], limit: number): number {
  const n = Math.min(a.length, b.length, limit);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}
