/**
 * The batch's KV cache: one tensor per past input, each [batch, kvHeads, length, headDim], with every row's real
 * positions right-aligned (left padding masked out by the attention mask). Between membership changes the
 * cache only ever moves from `present` to `past` untouched; it is re-laid out only when rows join or leave.
 */

export type KvArray = Float32Array | Uint16Array;

export interface KvBlock {
  batch: number;
  length: number;
  tensors: KvArray[];
}

/** Destination row ← the last `keep` positions of `row` in `source`. */
export interface RowSource {
  source: KvBlock;
  row: number;
  keep: number;
}

/**
 * Builds a new cache whose row r holds rows[r]'s last `keep` positions, right-aligned in `length` positions.
 * Used both to add freshly prefilled sequences and to drop finished ones (trimming padding no row needs).
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
  const tensors: KvArray[] = [];
  for (let t = 0; t < tensorCount; t++) {
    const dst = alloc(batch * heads * length * headDim);
    rows.forEach(({ source, row, keep }, r) => {
      if (keep > length || keep > source.length) {
        throw new RangeError(`cannot keep ${keep} positions (source ${source.length}, target ${length})`);
      }
      const src = source.tensors[t]!;
      for (let h = 0; h < heads; h++) {
        const from = ((row * heads + h) * source.length + (source.length - keep)) * headDim;
        const to = ((r * heads + h) * length + (length - keep)) * headDim;
        dst.set(src.subarray(from, from + keep * headDim), to);
      }
    });
    tensors.push(dst);
  }
  return { batch, length, tensors };
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
