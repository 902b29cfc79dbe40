/**
 * Quota counters in this process: the default store, right for a single replica. The arithmetic is the same as
 * redis-store.ts's Lua, line for line (see store.ts for the model). Every method runs synchronously inside its
 * promise, which is what makes it atomic here.
 */
import { randomUUID } from 'node:crypto';
import {
  assertHit,
  assertSlotArgs,
  type BucketHit,
  type BucketState,
  type ConsumeResult,
  type QuotaStore,
} from './store.js';

/** How often idle buckets and expired slots are dropped, so memory follows active subjects only. */
export const SWEEP_INTERVAL_MS = 60_000; // 1 minute

export interface MemoryStoreOptions {
  /** Milliseconds on a monotonic clock (whole milliseconds are used, as in Redis); for tests. */
  now?: () => number;
  sweepIntervalMs?: number;
}

interface Bucket {
  /** Units in use × windowMs, as of `at`. */
  used: number;
  at: number;
  /** When `used` will have decayed to 0: the entry can go. */
  emptyAt: number;
}

export class MemoryStore implements QuotaStore {
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();
  /** key → slot id → expiry. */
  readonly #slots = new Map<string, Map<string, number>>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(options: MemoryStoreOptions = {}) {
    const clock = options.now ?? (() => performance.now());
    this.#now = () => Math.floor(clock());
    this.#sweeper = setInterval(() => this.#sweep(), options.sweepIntervalMs ?? SWEEP_INTERVAL_MS);
    this.#sweeper.unref();
  }

  /** Buckets and slot sets held; for tests of the sweep. */
  get size(): number {
    return this.#buckets.size + this.#slots.size;
  }

  async consume(hits: readonly BucketHit[]): Promise<ConsumeResult> {
    for (const hit of hits) assertHit(hit);
    const now = this.#now();
    const used = hits.map((hit) => this.#used(hit, now));
    const allowed = hits.every((hit, i) => used[i]! + hit.cost * hit.windowMs <= hit.limit * hit.windowMs);
    if (!allowed) {
      return {
        allowed,
        buckets: hits.map((hit, i) => bucketState(hit, used[i]!, retryAfterMs(hit, used[i]!))),
      };
    }
    const buckets = hits.map((hit, i) => {
      const after = used[i]! + hit.cost * hit.windowMs;
      this.#store(hit, after, now);
      return bucketState(hit, after, 0);
    });
    return { allowed, buckets };
  }

  async adjust(hit: BucketHit): Promise<BucketState> {
    assertHit(hit, true);
    const now = this.#now();
    const after = Math.max(0, this.#used(hit, now) + hit.cost * hit.windowMs);
    this.#store(hit, after, now);
    return bucketState(hit, after, 0);
  }

  async acquireSlot(key: string, limit: number, ttlMs: number): Promise<string | null> {
    assertSlotArgs(key, limit, ttlMs);
    const now = this.#now();
    const slots = this.#liveSlots(key, now);
    if (slots.size >= limit) return null;
    const id = randomUUID();
    slots.set(id, now + ttlMs);
    this.#slots.set(key, slots);
    return id;
  }

  async renewSlot(key: string, id: string, ttlMs: number): Promise<boolean> {
    assertSlotArgs(key, 1, ttlMs);
    const now = this.#now();
    const slots = this.#liveSlots(key, now);
    const held = slots.has(id);
    slots.set(id, now + ttlMs);
    this.#slots.set(key, slots);
    return held;
  }

  async releaseSlot(key: string, id: string): Promise<void> {
    const slots = this.#slots.get(key);
    if (!slots) return;
    slots.delete(id);
    if (slots.size === 0) this.#slots.delete(key);
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#buckets.clear();
    this.#slots.clear();
  }

  /** The bucket's use now: what was recorded, less what has refilled since. */
  #used(hit: BucketHit, now: number): number {
    const bucket = this.#buckets.get(hit.key);
    if (!bucket) return 0;
    return Math.max(0, bucket.used - Math.max(0, now - bucket.at) * hit.limit);
  }

  #store(hit: BucketHit, used: number, now: number): void {
    if (used === 0) this.#buckets.delete(hit.key);
    else this.#buckets.set(hit.key, { used, at: now, emptyAt: now + Math.ceil(used / hit.limit) });
  }

  #liveSlots(key: string, now: number): Map<string, number> {
    const slots = this.#slots.get(key) ?? new Map<string, number>();
    for (const [id, expiresAt] of slots) if (expiresAt <= now) slots.delete(id);
    return slots;
  }

  #sweep(): void {
    const now = this.#now();
    for (const [key, bucket] of this.#buckets) if (bucket.emptyAt <= now) this.#buckets.delete(key);
    for (const key of [...this.#slots.keys()]) {
      if (this.#liveSlots(key, now).size === 0) this.#slots.delete(key);
    }
  }
}

function retryAfterMs(hit: BucketHit, used: number): number {
  const excess = used + hit.cost * hit.windowMs - hit.limit * hit.windowMs;
  if (excess <= 0) return 0;
  if (hit.cost > hit.limit) return Number.POSITIVE_INFINITY;
  return Math.ceil(excess / hit.limit);
}

function bucketState(hit: BucketHit, used: number, retryAfter: number): BucketState {
  return {
    limit: hit.limit,
    remaining: Math.max(0, Math.floor((hit.limit * hit.windowMs - used) / hit.windowMs)),
    resetMs: Math.ceil(used / hit.limit),
    retryAfterMs: retryAfter,
  };
}
