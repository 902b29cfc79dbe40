/**
 * How the running batch keeps its KV cache between decode steps. The scheduler (batch.ts) decides which
 * sequences are in the batch; a BatchKv holds their positions, changes the membership and runs the step. Which
 * one a model gets depends on its graph: `SlotBatch` for graphs that write each row's new position in place
 * (DecoderModel.decodeInPlace), `PackedBatch` for the others (Optimum's exports).
 */
import { copyPositions, decodeAttentionMask, gatherRows, type KvArray, type KvBlock } from './kv-cache.js';
import type { DecoderModel } from './onnx.js';

/** A row of the next batch, with the positions it keeps: a row of the current batch, or a one-row cache. */
export type Member = { row: number; keep: number } | { cache: KvBlock; keep: number };

export interface BatchKv {
  readonly rows: number;
  /** Sets the batch's rows to `next` (none: the batch holds no storage); batch row r is next[order[r]]. */
  regroup(next: readonly Member[]): number[];
  /** One decode step: each row's next token and cached positions; returns the logits (rows × vocab). */
  decode(tokens: BigInt64Array, lengths: readonly number[]): Promise<Float32Array>;
  /** A one-row copy of row `row`'s `keep` positions, which later steps leave alone (parking, prefix cache). */
  copyRow(row: number, keep: number): KvBlock;
}

/** The BatchKv for `model`'s graph, for batches of up to `maxRows` rows. */
export function batchKv(model: DecoderModel, maxRows: number): BatchKv {
  return model.decodeInPlace ? new SlotBatch(model, model.decodeInPlace, maxRows) : new PackedBatch(model);
}

function source(member: Member, batch: KvBlock): { block: KvBlock; row: number } {
  return 'cache' in member ? { block: member.cache, row: 0 } : { block: batch, row: member.row };
}

/**
 * Every row right-aligned after left padding, as graphs that take one length for all rows need: a step returns
 * the whole grown cache, and any change of membership re-lays every row out.
 */
class PackedBatch implements BatchKv {
  private cache: KvBlock;
  /** The input cache of the last decode step: nothing refers to it, so the next step may reuse its storage. */
  private spare: KvBlock | undefined;

  constructor(private readonly model: DecoderModel) {
    this.cache = model.emptyCache(0);
  }

  get rows(): number {
    return this.cache.batch;
  }

  regroup(next: readonly Member[]): number[] {
    const { numKeyValueHeads, headDim, allocKv } = this.model;
    const length = next.reduce((max, m) => Math.max(max, m.keep), 0);
    // An idle batch holds no KV storage for a next step that may not come.
    if (next.length === 0) this.spare = undefined;
    this.cache =
      next.length === 0
        ? this.model.emptyCache(0)
        : gatherRows(
            next.map((m) => {
              const { block, row } = source(m, this.cache);
              return { source: block, row, keep: m.keep };
            }),
            length,
            numKeyValueHeads,
            headDim,
            allocKv,
          );
    return next.map((_, i) => i);
  }

  async decode(tokens: BigInt64Array, lengths: readonly number[]): Promise<Float32Array> {
    const { logits, cache } = await this.model.forward(
      tokens,
      decodeAttentionMask(lengths, this.cache.length),
      BigInt64Array.from(lengths, BigInt),
      1,
      this.cache,
      this.spare,
    );
    // copyRow and regroup only ever read the newest cache, never a step's input.
    this.spare = this.cache;
    this.cache = cache;
    return logits;
  }

  copyRow(row: number, keep: number): KvBlock {
    const { numKeyValueHeads, headDim, allocKv } = this.model;
    return gatherRows([{ source: this.cache, row, keep }], keep, numKeyValueHeads, headDim, allocKv);
  }
}

/**
 * Positions kept past the longest row: the cache's row length grows once every this many steps, and shrinks
 * once rows this much shorter than it are all that is left.
 */
export const SLOT_SLACK = 32;

/**
 * Rows right-padded in one buffer per tensor. The graph sees [rows, heads, positions, headDim]: `positions` a
 * row, a few more than the longest row holds. A step writes each row's new position in place; a row that
 * leaves is replaced by another moved into its slot; a newcomer is copied into a free slot. So a step copies
 * nothing of the cache, and a change of membership copies only the rows that move.
 *
 * The buffers are allocated for the batch's largest size and for twice the positions needed, and only the part
 * in use is ever written: untouched pages cost no memory, and re-laying into a fresh buffer meant faulting in
 * the whole cache (SmolLM2 int8, 16 rows: 52 ms of a 53 ms step). When the rows outgrow `positions` (every
 * SLOT_SLACK steps), they are re-strided within the same buffer; a new buffer is needed only when they outgrow
 * the buffer. `positions` also shrinks when the long rows have left, because the graph's attention clears
 * every position of the cache each step, so room no row needs costs time.
 */
class SlotBatch implements BatchKv {
  private storage: KvArray[] = [];
  private rowCapacity = 0;
  /** Positions a row of the buffers can hold; `positions` (what the graph sees) is at most this. */
  private positionCapacity = 0;
  private positions = 0;
  private count = 0;

  constructor(
    private readonly model: DecoderModel,
    private readonly step: NonNullable<DecoderModel['decodeInPlace']>,
    private readonly maxRows: number,
  ) {}

  get rows(): number {
    return this.count;
  }

  /** The batch's rows as one right-padded block (views of the buffers). */
  private block(): KvBlock {
    const elements = this.count * this.model.numKeyValueHeads * this.positions * this.model.headDim;
    return {
      batch: this.count,
      length: this.positions,
      tensors: this.storage.map((t) => t.subarray(0, elements)),
      rightPadded: true,
    };
  }

  regroup(next: readonly Member[]): number[] {
    const n = next.length;
    if (n === 0) {
      // An idle batch holds no KV storage for a next step that may not come.
      this.storage = [];
      this.rowCapacity = this.positionCapacity = this.positions = this.count = 0;
      return [];
    }
    // Rows of the batch that stay in their slot; the others, and newcomers, fill the slots left free below n.
    const order = new Array<number>(n).fill(-1);
    const moving: number[] = [];
    next.forEach((m, i) => {
      if ('row' in m && m.row < n) order[m.row] = i;
      else moving.push(i);
    });
    for (let slot = 0; slot < n; slot++) if (order[slot] === -1) order[slot] = moving.shift()!;
    const positions = this.fit(next.reduce((max, m) => Math.max(max, m.keep), 0));
    if (n > this.rowCapacity || positions > this.positionCapacity) {
      this.allocate(
        order.map((i) => next[i]!),
        Math.max(n, this.maxRows),
        positions,
      );
      return order;
    }
    if (positions !== this.positions) {
      // The rows that stay keep their positions; the slots of those leaving are left as they are.
      const keep = new Array<number>(this.count).fill(0);
      for (const m of next) if ('row' in m) keep[m.row] = m.keep;
      this.restride(keep, positions);
    }
    const batch = this.block();
    const into: KvBlock = { ...batch, batch: n, tensors: this.storage };
    order.forEach((i, slot) => {
      const m = next[i]!;
      if ('row' in m && m.row === slot) return;
      const { block, row } = source(m, batch);
      copyPositions(block, row, into, slot, m.keep, this.model.numKeyValueHeads, this.model.headDim);
    });
    this.count = n;
    return order;
  }

  async decode(tokens: BigInt64Array, lengths: readonly number[]): Promise<Float32Array> {
    const longest = lengths.reduce((max, len) => Math.max(max, len), 0);
    // No room for the new positions: the same rows, in the same slots, regrouped to a longer row length.
    if (longest + 1 > this.positions) this.regroup(lengths.map((keep, row) => ({ row, keep })));
    return this.step(tokens, lengths, this.block());
  }

  copyRow(row: number, keep: number): KvBlock {
    const { numKeyValueHeads, headDim, allocKv } = this.model;
    return gatherRows([{ source: this.block(), row, keep }], keep, numKeyValueHeads, headDim, allocKv);
  }

  /**
   * Positions a row needs room for when the longest holds `longest`: one more for the next step's new one,
   * within the context (the graph's rotary table ends there). The current length while that fits.
   */
  private fit(longest: number): number {
    const limit = this.model.contextLength - 1;
    if (longest + 1 <= this.positions && this.positions <= longest + 2 * SLOT_SLACK) return this.positions;
    if (longest + 1 > limit)
      throw new RangeError(`${longest} positions leave no room in a ${limit}-position cache`);
    return Math.min(longest + SLOT_SLACK, limit);
  }

  /**
   * Re-lays the current rows (row r keeping its first keep[r] positions) at `positions` a row, within the
   * buffers. Growing moves blocks from the last one back, shrinking from the first one on, so that no block is
   * overwritten before it has moved.
   */
  private restride(keep: readonly number[], positions: number): void {
    const { numKeyValueHeads: heads, headDim } = this.model;
    const from = this.positions;
    const blocks = keep.length * heads;
    const move = (b: number) => {
      const len = keep[Math.floor(b / heads)]! * headDim;
      if (len === 0) return;
      for (const t of this.storage)
        t.copyWithin(b * positions * headDim, b * from * headDim, b * from * headDim + len);
    };
    if (positions > from) for (let b = blocks - 1; b >= 0; b--) move(b);
    else for (let b = 0; b < blocks; b++) move(b);
    this.positions = positions;
  }

  /**
   * Moves `rows` (in batch order) into new buffers of `rowCapacity` rows, `positions` a row, with room for
   * twice that many positions.
   */
  private allocate(rows: readonly Member[], rowCapacity: number, positions: number): void {
    const { numKeyValueHeads: heads, headDim, allocKv } = this.model;
    const positionCapacity = Math.min(2 * positions, this.model.contextLength - 1);
    const old = this.block();
    const storage = Array.from({ length: 2 * this.model.numLayers }, () =>
      allocKv(rowCapacity * heads * positionCapacity * headDim),
    );
    const fresh: KvBlock = { batch: rows.length, length: positions, tensors: storage, rightPadded: true };
    rows.forEach((m, slot) => {
      const { block, row } = source(m, old);
      copyPositions(block, row, fresh, slot, m.keep, heads, headDim);
    });
    this.storage = storage;
    this.rowCapacity = rowCapacity;
    this.positionCapacity = positionCapacity;
    this.positions = positions;
    this.count = rows.length;
  }
}
