/**
 * SlotBatch's data movement: rows join, leave, move into freed slots, and the storage grows and shrinks, and
 * every decode step must still see each sequence's own positions from 0. The model here is a stand-in that keeps
 * DecoderModel.decodeInPlace's contract (write each row's new position at its length) with values that name the
 * sequence and position, so that any misplaced copy shows; the real graph's side of the contract is checked by
 * the builder (right-padded batch vs alone) and by smollm2.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { batchKv, type Member, SLOT_SLACK } from '../../../service/engine/batch-kv.js';
import type { KvBlock } from '../../../service/engine/kv-cache.js';
import type { DecoderModel } from '../../../service/engine/onnx.js';

const heads = 2;
const headDim = 2;
const value = (seq: number, pos: number, h: number, d: number, t: number) =>
  (t % 2 === 0 ? 1 : -1) * (seq * 100000 + pos * 100 + h * 10 + d + 1);

/** What each step saw: for row r, the sequence id its positions named (or a mismatch). */
function fakeModel(contextLength = 4096) {
  const seen: { rows: number; length: number }[] = [];
  const allocations: number[] = [];
  const model = {
    contextLength,
    numLayers: 1,
    numKeyValueHeads: heads,
    headDim,
    vocabSize: 1,
    allocKv: (n: number) => {
      allocations.push(n);
      return new Float32Array(n);
    },
    emptyCache: (batch: number) => ({
      batch,
      length: 0,
      tensors: [new Float32Array(0), new Float32Array(0)],
    }),
    forward: () => Promise.reject(new Error('not used')),
    async decodeInPlace(tokens: BigInt64Array, lengths: readonly number[], cache: KvBlock) {
      expect(cache.rightPadded).toBe(true);
      seen.push({ rows: cache.batch, length: cache.length });
      lengths.forEach((len, r) => {
        const seq = Number(tokens[r]);
        expect(len).toBeLessThan(cache.length);
        cache.tensors.forEach((tensor, t) => {
          for (let h = 0; h < heads; h++) {
            const base = (r * heads + h) * cache.length * headDim;
            for (let pos = 0; pos < len; pos++)
              for (let d = 0; d < headDim; d++)
                expect(tensor[base + pos * headDim + d], `seq ${seq} pos ${pos}`).toBe(
                  value(seq, pos, h, d, t),
                );
            for (let d = 0; d < headDim; d++) tensor[base + len * headDim + d] = value(seq, len, h, d, t);
          }
        });
      });
      return new Float32Array(lengths.length);
    },
    runtime: 'onnxruntime-node',
  } satisfies DecoderModel;
  return { model, seen, allocations };
}

/** A one-row cache of `length` positions of sequence `seq`, as a prefill returns it. */
function prefilled(seq: number, length: number): KvBlock {
  const tensors = [0, 1].map((t) => {
    const data = new Float32Array(heads * length * headDim);
    for (let h = 0; h < heads; h++)
      for (let pos = 0; pos < length; pos++)
        for (let d = 0; d < headDim; d++) data[(h * length + pos) * headDim + d] = value(seq, pos, h, d, t);
    return data;
  });
  return { batch: 1, length, tensors };
}

/** Drives a SlotBatch the way the scheduler does, keeping which sequence each row holds and its length. */
function driver(contextLength?: number) {
  const { model, seen, allocations } = fakeModel(contextLength);
  const kv = batchKv(model, 4);
  let rows: { seq: number; length: number }[] = [];
  return {
    kv,
    seen,
    allocations,
    get rows() {
      return rows;
    },
    regroup(leaving: number[], joining: [seq: number, length: number][]) {
      const next: { seq: number; length: number; member: Member }[] = [];
      rows.forEach((r, row) => {
        if (!leaving.includes(r.seq)) next.push({ ...r, member: { row, keep: r.length } });
      });
      for (const [seq, length] of joining)
        next.push({ seq, length, member: { cache: prefilled(seq, length), keep: length } });
      const order = kv.regroup(next.map((n) => n.member));
      rows = order.map((i) => ({ seq: next[i]!.seq, length: next[i]!.length }));
    },
    async step() {
      await kv.decode(
        BigInt64Array.from(rows, (r) => BigInt(r.seq)),
        rows.map((r) => r.length),
      );
      for (const r of rows) r.length++;
    },
  };
}

describe('SlotBatch (in-place KV for graphs that take each row its own length)', () => {
  it('keeps every row its own positions through joins, leaves and steps', async () => {
    const b = driver();
    b.regroup(
      [],
      [
        [1, 5],
        [2, 9],
        [3, 2],
      ],
    );
    for (let i = 0; i < 3; i++) await b.step();
    // 2 leaves: the last row moves into its slot; 4 and 5 join, the first into the slot left free.
    b.regroup(
      [2],
      [
        [4, 7],
        [5, 1],
      ],
    );
    expect(b.rows.map((r) => r.seq)).toEqual([1, 4, 3, 5]);
    for (let i = 0; i < 3; i++) await b.step();
    b.regroup([1, 5], []);
    expect(new Set(b.rows.map((r) => r.seq))).toEqual(new Set([3, 4]));
    await b.step();
    // A row copied out (parking, prefix cache) is the sequence's positions from 0, and later steps leave it alone.
    const row = b.rows.findIndex((r) => r.seq === 4);
    const copy = b.kv.copyRow(row, b.rows[row]!.length);
    await b.step();
    expect(copy.batch).toBe(1);
    expect(copy.length).toBe(7 + 4);
    expect(copy.tensors[1]![(1 * copy.length + 10) * headDim + 1]).toBe(value(4, 10, 1, 1, 1));
  });

  it('moves only the rows that change slot: the rows that stay keep theirs', () => {
    const b = driver();
    b.regroup(
      [],
      [
        [1, 3],
        [2, 3],
        [3, 3],
        [4, 3],
      ],
    );
    expect(b.rows.map((r) => r.seq)).toEqual([1, 2, 3, 4]);
    b.regroup([2], [[5, 3]]);
    expect(b.rows.map((r) => r.seq)).toEqual([1, 5, 3, 4]);
    b.regroup([1], []);
    expect(b.rows.map((r) => r.seq)).toEqual([4, 5, 3]);
  });

  it('grows the positions ahead of the longest row, and shrinks when the long rows have left', async () => {
    const b = driver();
    b.regroup([], [[1, 4]]);
    await b.step();
    expect(b.seen.at(-1)!.length).toBe(4 + SLOT_SLACK);
    for (let i = 0; i < SLOT_SLACK; i++) await b.step();
    // Row 1 now holds 4 + 1 + SLOT_SLACK positions: the storage grew once to make room for the next.
    expect(b.seen.at(-1)!.length).toBeGreaterThan(b.rows[0]!.length);
    const grown = b.seen.at(-1)!.length;
    expect(grown).toBe(4 + 2 * SLOT_SLACK);
    b.regroup([], [[2, 1]]);
    await b.step();
    expect(b.seen.at(-1)).toEqual({ rows: 2, length: grown });
    // Row 2 (2 positions) is all that is left: the next step reads a cache of its length plus the slack.
    b.regroup([1], []);
    await b.step();
    expect(b.seen.at(-1)).toEqual({ rows: 1, length: 2 + SLOT_SLACK });
  });

  it('re-strides rows of different lengths within its buffers as they grow and shrink', async () => {
    const b = driver();
    b.regroup(
      [],
      [
        [1, 5],
        [2, 100],
        [3, 12],
      ],
    );
    // One buffer per tensor (two here), for 4 rows at twice the positions first needed.
    const first = 4 * heads * 2 * (100 + SLOT_SLACK) * headDim;
    expect(b.allocations).toEqual([first, first]);
    for (let i = 0; i < 2 * SLOT_SLACK + 1; i++) await b.step();
    // Grown twice, both times within the same buffers.
    expect([...new Set(b.seen.map((s) => s.length))]).toEqual([1, 2, 3].map((k) => 100 + k * SLOT_SLACK));
    expect(b.allocations).toHaveLength(2);
    // The longest row leaves: the others re-stride down, in place, and the newcomer lands at the new stride.
    b.regroup([2], [[4, 3]]);
    await b.step();
    expect(b.seen.at(-1)).toEqual({ rows: 3, length: 12 + 2 * SLOT_SLACK + 1 + SLOT_SLACK });
    expect(b.allocations).toHaveLength(2);
    // A row longer than the buffers hold: new buffers, and every row copied over.
    b.regroup([], [[5, 300]]);
    await b.step();
    expect(b.allocations).toHaveLength(4);
    for (let i = 0; i < 3; i++) await b.step();
  });

  it('never asks the graph for more positions than the context holds', async () => {
    const b = driver(40);
    b.regroup([], [[1, 30]]);
    for (let i = 0; i < 8; i++) await b.step();
    expect(Math.max(...b.seen.map((s) => s.length))).toBe(39);
  });

  it('holds no storage once the batch is empty', () => {
    const b = driver();
    b.regroup([], [[1, 3]]);
    expect(b.kv.rows).toBe(1);
    b.regroup([1], []);
    expect(b.kv.rows).toBe(0);
  });
});
