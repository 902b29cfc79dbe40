import { describe, expect, it } from 'vitest';
import {
  appendPositions,
  decodeAttentionMask,
  gatherRows,
  type KvBlock,
} from '../../../service/engine/kv-cache.js';

const heads = 2;
const headDim = 3;
const alloc = (n: number) => new Float32Array(n);

/** A block whose element at (b, h, t, d) encodes its coordinates, so misplaced copies show. */
function block(batch: number, length: number, tag: number): KvBlock {
  const data = new Float32Array(batch * heads * length * headDim);
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < heads; h++)
      for (let t = 0; t < length; t++)
        for (let d = 0; d < headDim; d++)
          data[((b * heads + h) * length + t) * headDim + d] =
            tag * 10000 + b * 1000 + h * 100 + t * 10 + d + 1;
  return { batch, length, tensors: [data, data.map((x) => -x)] };
}

function at(b: KvBlock, t: number, row: number, h: number, pos: number, d: number): number {
  return b.tensors[t]![((row * heads + h) * b.length + pos) * headDim + d]!;
}

describe('gatherRows', () => {
  it('right-aligns each row and zero-fills the left padding', () => {
    const batch = block(2, 4, 1);
    const fresh = block(1, 6, 2);
    const out = gatherRows(
      [
        { source: batch, row: 1, keep: 3 },
        { source: fresh, row: 0, keep: 6 },
      ],
      6,
      heads,
      headDim,
      alloc,
    );
    expect(out.batch).toBe(2);
    expect(out.length).toBe(6);
    // Row 0 took batch row 1's last three positions (1..3) into positions 3..5.
    for (let pos = 0; pos < 3; pos++) expect(at(out, 0, 0, 1, pos, 2)).toBe(0);
    expect(at(out, 0, 0, 1, 3, 2)).toBe(at(batch, 0, 1, 1, 1, 2));
    expect(at(out, 1, 0, 0, 5, 0)).toBe(at(batch, 1, 1, 0, 3, 0));
    // Row 1 is the fresh sequence unchanged.
    expect(at(out, 0, 1, 1, 0, 1)).toBe(at(fresh, 0, 0, 1, 0, 1));
    expect(at(out, 1, 1, 0, 5, 2)).toBe(at(fresh, 1, 0, 0, 5, 2));
  });

  it('trims padding that no remaining row needs', () => {
    const batch = block(3, 5, 1);
    const out = gatherRows([{ source: batch, row: 2, keep: 2 }], 2, heads, headDim, alloc);
    expect(out.length).toBe(2);
    expect(at(out, 0, 0, 0, 0, 0)).toBe(at(batch, 0, 2, 0, 3, 0));
  });

  it('refuses to keep more positions than exist', () => {
    expect(() => gatherRows([{ source: block(1, 2, 1), row: 0, keep: 3 }], 3, heads, headDim, alloc)).toThrow(
      RangeError,
    );
  });
});

describe('decodeAttentionMask', () => {
  it('masks each row’s left padding and covers the new token', () => {
    expect([...decodeAttentionMask([2, 4], 4)]).toEqual([0n, 0n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n]);
  });
});

describe('appendPositions', () => {
  it("puts each row's new positions after its old ones, as the whole present would hold them", () => {
    const cache = block(2, 3, 1);
    const added = block(2, 1, 2);
    const out = appendPositions(cache, added.tensors, 1, heads, headDim, alloc);
    expect(out.length).toBe(4);
    for (let t = 0; t < 2; t++)
      for (let row = 0; row < 2; row++)
        for (let h = 0; h < heads; h++)
          for (let d = 0; d < headDim; d++) {
            for (let pos = 0; pos < 3; pos++)
              expect(at(out, t, row, h, pos, d)).toBe(at(cache, t, row, h, pos, d));
            expect(at(out, t, row, h, 3, d)).toBe(at(added, t, row, h, 0, d));
          }
  });

  it("reuses a spare cache's storage when it is large enough, never the storage it reads", () => {
    const first = appendPositions(block(1, 2, 1), block(1, 1, 2).tensors, 1, heads, headDim, alloc);
    const second = appendPositions(first, block(1, 1, 3).tensors, 1, heads, headDim, alloc, first);
    expect(second.tensors[0]!.buffer).not.toBe(first.tensors[0]!.buffer); // first is being read
    const third = appendPositions(second, block(1, 1, 4).tensors, 1, heads, headDim, alloc, first);
    expect(third.tensors[0]!.buffer).toBe(first.tensors[0]!.buffer); // the slack holds 5 positions
    expect(at(third, 0, 0, 1, 4, 2)).toBe(at(block(1, 1, 4), 0, 0, 1, 0, 2));
    expect(at(third, 0, 0, 1, 1, 2)).toBe(at(block(1, 2, 1), 0, 0, 1, 1, 2));
    const tooSmall = block(1, 1, 5);
    const fourth = appendPositions(third, block(1, 1, 6).tensors, 1, heads, headDim, alloc, tooSmall);
    expect(fourth.tensors[0]!.buffer).not.toBe(tooSmall.tensors[0]!.buffer);
  });
});
