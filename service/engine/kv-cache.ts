/**
 * KV caches: one tensor per past input, each [batch, kvHeads, length, headDim]. A row holds fewer positions
 * than `length` in one of two ways: right-aligned after left padding that the attention mask hides (graphs that
 * take one length for every row, such as Optimum's exports), or from position 0 with unused positions after it
 * (`rightPadded`: graphs that read each row's own length from the mask, see batch-kv.ts).
 */

export type KvArray = Float32Array | Uint16Array;

export interface KvBlock {
  batch: number;
  length: number;
  tensors: KvArray[];
  /** Each row's positions start at 0 (and unused ones follow), instead of ending at `length`. */
  rightPadded?: boolean;
}

/** Destination row ← `keep` positions of `row` in `source` (its last ones, or its first if right-padded). */
export interface RowSource {
  source: KvBlock;
  row: number;
  keep: number;
}

/**
 * Builds a new cache whose row r holds rows[r]'s `keep` positions (its last ones, or its first in a right-padded
 * source), right-aligned in `length` positions. Used both to add freshly prefilled sequences and to drop
 * finished ones (trimming padding no row needs), and to copy one row out.
 */
export function gatherRows(
  rows: readonly RowSource[],
  length: number,
  heads: number,
  headDim: number,
  alloc: (elements: number) => KvArray,
): KvBlock {
  const batch = rows.length;
  const tensorCount = rows[0]?.source.tensors.length ?? 0;
  const tensors = Array.from({ length: tensorCount }, () => alloc(batch * heads * length * headDim));
  const out: KvBlock = { batch, length, tensors };
  rows.forEach(({ source, row, keep }, r) => {
    copyPositions(source, row, out, r, keep, heads, headDim);
  });
  return out;
}

/**
 * Copies `keep` positions of row `srcRow` of `src` into row `dstRow` of `dst`, in every tensor: a row's positions
 * are its last ones, or its first in a right-padded block.
 */
export function copyPositions(
  src: KvBlock,
  srcRow: number,
  dst: KvBlock,
  dstRow: number,
  keep: number,
  heads: number,
  headDim: number,
): void {
  if (keep > dst.length || keep > src.length) {
    throw new RangeError(`cannot keep ${keep} positions (source ${src.length}, target ${dst.length})`);
  }
  const srcFirst = src.rightPadded ? 0 : src.length - keep;
  const dstFirst = dst.rightPadded ? 0 : dst.length - keep;
  src.tensors.forEach((from, t) => {
    const to = dst.tensors[t]!;
    for (let h = 0; h < heads; h++) {
      const at = ((srcRow * heads + h) * src.length + srcFirst) * headDim;
      to.set(
        from.subarray(at, at + keep * headDim),
        ((dstRow * heads + h) * dst.length + dstFirst) * headDim,
      );
    }
  });
}

/** attention_mask for one decode step: per row, zeros over its left padding, ones over its tokens and the new one. */
export function decodeAttentionMask(rowLengths: readonly number[], cacheLength: number): BigInt64Array {
  const width = cacheLength + 1;
  const mask = new BigInt64Array(rowLengths.length * width);
  rowLengths.forEach((len, r) => {
    mask.fill(1n, r * width + (cacheLength - len), (r + 1) * width);
  });
  return mask;
}

/**
 * Positions allocated past a grown cache's length: a decode step adds one position a row, so the storage of a
 * cache two steps old still fits the next one for this many steps.
 */
const GROWTH_SLACK = 32;

/**
 * `cache` grown by `tokens` positions a row, for graphs that return only the new positions (`added[t]` is
 * [batch, heads, tokens, headDim]): each row's old positions, then the new ones. The storage of `recycle`, a
 * cache nothing refers to any more, is reused when it is large enough, so that a decode step does not allocate
 * (and fault in) a fresh copy of the whole cache.
 */
export function appendPositions(
  cache: KvBlock,
  added: readonly KvArray[],
  tokens: number,
  heads: number,
  headDim: number,
  alloc: (elements: number) => KvArray,
  recycle?: KvBlock,
): KvBlock {
  const { batch, length } = cache;
  const grown = length + tokens;
  const rows = batch * heads;
  const tensors = cache.tensors.map((src, t) => {
    const need = rows * grown * headDim;
    const dst =
      reuse(recycle?.tensors[t], need, src) ?? alloc(need + rows * GROWTH_SLACK * headDim).subarray(0, need);
    const fresh = added[t]!;
    for (let r = 0; r < rows; r++) {
      dst.set(src.subarray(r * length * headDim, (r + 1) * length * headDim), r * grown * headDim);
      dst.set(
        fresh.subarray(r * tokens * headDim, (r + 1) * tokens * headDim),
        (r * grown + length) * headDim,
      );
    }
    return dst;
  });
  return { batch, length: grown, tensors };
}

/** A view of `elements` over old's whole buffer, when it holds that many and is not the one being read. */
function reuse(old: KvArray | undefined, elements: number, reading: KvArray): KvArray | undefined {
  if (!old || old.buffer === reading.buffer) return undefined;
  if (old.buffer.byteLength < elements * old.BYTES_PER_ELEMENT) return undefined;
  return old instanceof Float32Array
    ? new Float32Array(old.buffer, 0, elements)
    : new Uint16Array(old.buffer, 0, elements);
}
