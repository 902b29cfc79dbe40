import { setImmediate as nextTurn } from 'node:timers/promises';
import { type BatchKv, batchKv, type Member } from './batch-kv.js';
import type { KvBlock } from './kv-cache.js';
import type { DecoderModel } from './onnx.js';
import { PREFIX_CACHE_BYTES, PrefixCache, type PrefixHit } from './prefix-cache.js';
import type { Sequence } from './sequence.js';
import type { GenerationEvent } from './types.js';

/** `decodeRows` is the batch size of the decode step that produced the events (0 for prefill and cancels). */
export type EmitEvents = (batch: [id: number, events: GenerationEvent[]][], decodeRows: number) => void;

/** A sequence out of the batch with its own KV cache (one row): parked while paused, or about to rejoin. */
interface Parked {
  seq: Sequence;
  cache: KvBlock;
}

/**
 * Continuous batching. Each new sequence is prefilled alone, then joins the running batch; every step runs one
 * `forward` for all running rows; a finished or cancelled row leaves before the next step. When rows are
 * running, at most one newcomer is prefilled per step, so a burst of arrivals cannot stall the streams that
 * are already going by more than one prefill each step.
 *
 * A sequence is in one of three places: `waiting`, being prefilled or prefilled and about to join (`joining`,
 * a local of `run`), or `rows`. A cancel must reach it in any of them, so every live sequence is also kept by
 * id in `live` until its final event: one cancelled mid-prefill is aborted once its prefill returns, and one
 * that is joining never takes a batch slot.
 *
 * Flow control: a paused sequence (its client's socket is full) leaves the batch at the next regroup with its
 * own row of the KV cache and is `parked`: it decodes nothing, so nothing piles up for a client that does not
 * read, and its batch row is free for others. Resumed, it rejoins like a freshly prefilled sequence (no prefill
 * again), ahead of the waiting queue. A cancel ends a parked sequence at once.
 */
export class BatchScheduler {
  private readonly waiting: Sequence[] = [];
  /** Every sequence submitted and not yet ended (finish or error emitted), wherever it is. */
  private readonly live = new Map<number, Sequence>();
  private rows: Sequence[] = [];
  /** Ids asked to pause (wherever the sequence is); one in the batch is parked at the next regroup. */
  private readonly pausing = new Set<number>();
  private readonly parked = new Map<number, Parked>();
  /** Parked sequences resumed, waiting for a batch row (before any newcomer). */
  private resumed: Parked[] = [];
  /** The running rows' KV cache, row r being `rows[r]`'s. */
  private readonly kv: BatchKv;
  private pending: [number, GenerationEvent[]][] = [];
  private wake: (() => void) | undefined;
  private closed = false;
  private readonly prefixes: PrefixCache;

  constructor(
    private readonly model: DecoderModel,
    private readonly maxBatchSize: number,
    private readonly emit: EmitEvents,
    /** A sequence left the waiting queue and its prefill starts now (queue-time metrics). */
    private readonly onScheduled: (id: number) => void = () => {},
    /** A sequence left the batch because it is paused (true), or rejoined it (false). */
    private readonly onParked: (id: number, parked: boolean) => void = () => {},
    prefixCacheBytes = PREFIX_CACHE_BYTES,
  ) {
    this.kv = batchKv(model, maxBatchSize);
    this.prefixes = new PrefixCache(prefixCacheBytes, model.numKeyValueHeads, model.headDim, model.allocKv);
  }

  submit(seq: Sequence): void {
    this.live.set(seq.id, seq);
    this.waiting.push(seq);
    this.wake?.();
  }

  /**
   * Cancels a sequence wherever it is: one still waiting ends at once; one being prefilled, joining or
   * running is marked and leaves before the next decode step.
   */
  cancel(id: number): void {
    const seq = this.live.get(id);
    if (!seq) return;
    this.pausing.delete(id);
    const queued = this.waiting.indexOf(seq);
    const resumed = this.resumed.findIndex((r) => r.seq === seq);
    if (queued !== -1 || this.parked.has(id) || resumed !== -1) {
      if (queued !== -1) this.waiting.splice(queued, 1);
      if (resumed !== -1) this.resumed.splice(resumed, 1);
      this.parked.delete(id);
      this.live.delete(id);
      this.emit([[id, [seq.abort()]]], 0);
      return;
    }
    seq.cancelled = true;
  }

  /** Stops decoding a sequence until `resume`: it leaves the batch at the next regroup (see the class comment). */
  pause(id: number): void {
    if (this.live.has(id)) this.pausing.add(id);
  }

  resume(id: number): void {
    this.pausing.delete(id);
    const parked = this.parked.get(id);
    if (!parked) return;
    this.parked.delete(id);
    this.resumed.push(parked);
    this.wake?.();
  }

  close(): void {
    this.closed = true;
    this.wake?.();
  }

  async run(): Promise<void> {
    while (!this.closed) {
      if (this.rows.length === 0 && this.waiting.length === 0 && this.resumed.length === 0) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        this.wake = undefined;
        continue;
      }
      const joining = await this.admit();
      this.regroup(joining);
      this.flush();
      if (this.rows.length > 0) this.flush(await this.decodeStep());
      // Lets cancel and submit messages in before the next step.
      await nextTurn();
    }
  }

  private async admit(): Promise<{ seq: Sequence; cache: KvBlock }[]> {
    const joining: { seq: Sequence; cache: KvBlock }[] = [];
    // Resumed sequences need no prefill: they take free rows first, within the same bound.
    while (this.resumed.length > 0 && this.rows.length + joining.length < this.maxBatchSize) {
      const resumed = this.resumed.shift()!;
      this.onParked(resumed.seq.id, false);
      joining.push(resumed);
    }
    const budget = this.rows.length === 0 ? this.maxBatchSize : 1;
    let prefilled = 0;
    while (
      this.waiting.length > 0 &&
      prefilled < budget &&
      this.rows.length + joining.length < this.maxBatchSize
    ) {
      const seq = this.waiting.shift()!;
      this.onScheduled(seq.id);
      // Positions a previous prompt shares with this one come from the prefix cache; only the rest runs.
      const hit = this.prefixes.lookup(seq.promptIds);
      if (hit && hit.length === seq.promptIds.length - 1) {
        // All but the last token are cached (the same prompt again: a retry, a regenerated answer): that token
        // is fed by the next decode step, with the batch, instead of a forward of its own.
        seq.cached = hit.length;
        seq.nextToken = seq.promptIds[hit.length]!;
        joining.push({ seq, cache: hit.cache });
        continue;
      }
      prefilled++;
      const cache = await this.prefill(seq, hit);
      if (cache) joining.push({ seq, cache });
      this.flush();
    }
    return joining;
  }

  private async prefill(seq: Sequence, hit: PrefixHit | undefined): Promise<KvBlock | undefined> {
    const ids = seq.promptIds;
    const n = ids.length;
    try {
      const start = hit?.length ?? 0;
      const { logits, cache } = await this.model.forward(
        BigInt64Array.from(ids.slice(start), BigInt),
        new BigInt64Array(n).fill(1n),
        BigInt64Array.from(ids.slice(start), (_, i) => BigInt(start + i)),
        n - start,
        hit?.cache ?? this.model.emptyCache(1),
      );
      seq.cached = n;
      this.prefixes.add(ids, cache);
      if (seq.cancelled) {
        this.pending.push([seq.id, [seq.abort()]]);
        return undefined;
      }
      this.pending.push([seq.id, seq.step(logits)]);
      return seq.finished ? undefined : cache;
    } catch (err) {
      this.pending.push([seq.id, [{ type: 'error', message: `prefill failed: ${(err as Error).message}` }]]);
      return undefined;
    }
  }

  /** Drops finished and cancelled rows, adds the newly prefilled ones, and tells the KV cache if that changed it. */
  private regroup(joining: { seq: Sequence; cache: KvBlock }[]): void {
    const staying: { seq: Sequence; member: Member }[] = [];
    this.rows.forEach((seq, row) => {
      if (seq.cancelled && !seq.finished) this.pending.push([seq.id, [seq.abort()]]);
      else if (!seq.finished && this.pausing.has(seq.id)) this.park(seq, this.kv.copyRow(row, seq.cached));
      else if (!seq.finished) staying.push({ seq, member: { row, keep: seq.cached } });
    });
    // Cancelled while a later newcomer was being prefilled: it ends here, without taking a row.
    const joined = joining.filter(({ seq, cache }) => {
      if (seq.cancelled) {
        this.pending.push([seq.id, [seq.abort()]]);
        return false;
      }
      if (this.pausing.has(seq.id)) {
        this.park(seq, cache);
        return false;
      }
      return true;
    });
    if (staying.length === this.rows.length && joined.length === 0) return;
    const next = [
      ...staying,
      ...joined.map(({ seq, cache }) => ({ seq, member: { cache, keep: seq.cached } })),
    ];
    const order = this.kv.regroup(next.map((r) => r.member));
    this.rows = order.map((i) => next[i]!.seq);
  }

  /** Offers a row's cache (prompt and generated tokens, without padding) to the prefix cache. */
  private keepPrefix(seq: Sequence, row: number): void {
    const ids = seq.cachedIds();
    if (this.prefixes.wants(ids)) this.prefixes.add(ids, this.kv.copyRow(row, seq.cached));
  }

  /** Moves a paused sequence out of the batch with its own one-row cache (its `cached` positions). */
  private park(seq: Sequence, cache: KvBlock): void {
    this.parked.set(seq.id, { seq, cache });
    this.onParked(seq.id, true);
  }

  /** Runs one batched step; returns how many rows it decoded. */
  private async decodeStep(): Promise<number> {
    const rows = this.rows;
    try {
      const logits = await this.kv.decode(
        BigInt64Array.from(rows, (s) => BigInt(s.nextToken)),
        rows.map((s) => s.cached),
      );
      const vocab = logits.length / rows.length;
      rows.forEach((seq, r) => {
        seq.cached += 1;
        if (seq.cancelled) return;
        this.pending.push([seq.id, seq.step(logits.subarray(r * vocab, (r + 1) * vocab))]);
        // A finished conversation is often sent again with one more turn: keep its prompt and answer's KV,
        // before its client hears it finished (and can send that turn).
        if (seq.finished === 'stop' || seq.finished === 'length') this.keepPrefix(seq, r);
      });
      return rows.length;
    } catch (err) {
      const message = `decode step failed: ${(err as Error).message}`;
      for (const seq of rows) {
        seq.finished = 'abort';
        this.pending.push([seq.id, [{ type: 'error', message }]]);
      }
      this.rows = [];
      this.kv.regroup([]);
      return 0;
    }
  }

  private flush(decodeRows = 0): void {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    for (const [id, events] of batch) {
      if (events.some((e) => e.type === 'finish' || e.type === 'error')) this.live.delete(id);
    }
    this.emit(batch, decodeRows);
  }

  stats(): { running: number; waiting: number; paused: number } {
    return { running: this.rows.length, waiting: this.waiting.length, paused: this.parked.size };
  }
}
