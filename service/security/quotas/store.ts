/**
 * The method set every quota store provides: `MemoryStore` (this process) and `RedisStore` (shared by replicas)
 * behave the same, and one contract test (test/unit/quotas/store.contract.test.ts) runs against both.
 *
 * Rates are token buckets, not fixed windows. OpenAI's limits replenish continuously ("x-ratelimit-reset-*:
 * the time until the rate limit resets to its initial state"): a subject with 60 requests per minute that used
 * them all gets one back each second, not all 60 at the top of the next minute. A fixed window would let a
 * client spend 2 × the limit across a window boundary and then lock it out for up to a minute; a sliding log
 * would store one entry per request (or per token). A bucket is two numbers per key and gives the exact
 * "remaining" and "reset" values the headers need.
 *
 * A bucket of `limit` units refills at `limit / windowMs` units per millisecond and starts full. The state is
 * the budget in use, scaled by `windowMs` (`used × windowMs`), so that it stays an integer that decays by
 * `limit` per millisecond: no rounding drift, and the same arithmetic in JavaScript and in Redis's Lua.
 *
 * Concurrency is a set of slots, each with an expiry: a replica that dies holding slots cannot lock its
 * subjects out for longer than `ttlMs`. Requests that outlive `ttlMs` renew their slot (QuotaManager does).
 */

/** One bucket to charge. All hits given to `consume` are charged together or not at all. */
export interface BucketHit {
  key: string;
  /** Budget of a full bucket, in units (requests, tokens); at least 1. */
  limit: number;
  /** Time for an empty bucket to refill completely, in milliseconds. */
  windowMs: number;
  /** Units to take: a non-negative integer for `consume`; any integer for `adjust` (negative refunds). */
  cost: number;
}

export interface BucketState {
  limit: number;
  /** Whole units left after this call (0 when the bucket is empty or in debt). */
  remaining: number;
  /** Until the bucket is full again, in milliseconds (OpenAI's x-ratelimit-reset-*). */
  resetMs: number;
  /**
   * Until this hit's cost would fit, in milliseconds: 0 when it fits now, `Infinity` when it never can
   * (cost > limit).
   */
  retryAfterMs: number;
}

export interface ConsumeResult {
  /** Whether every hit fitted; when false nothing was charged. */
  allowed: boolean;
  /** One per hit, in order: after the charge when allowed, else as they stand. */
  buckets: BucketState[];
}

export interface QuotaStore {
  /** Atomically: if every hit fits its bucket, charge them all; otherwise charge none. */
  consume(hits: readonly BucketHit[]): Promise<ConsumeResult>;
  /**
   * Charges `cost` unconditionally (a correction once the real usage is known): a positive cost may push the
   * bucket into debt (later hits wait longer), a negative one refunds but never past a full bucket.
   */
  adjust(hit: BucketHit): Promise<BucketState>;
  /** Takes one of `limit` slots for `ttlMs`; resolves to the slot's id, or null when all are taken. */
  acquireSlot(key: string, limit: number, ttlMs: number): Promise<string | null>;
  /** Extends a slot to `ttlMs` from now; false if it had already expired or been released (it is held again). */
  renewSlot(key: string, id: string, ttlMs: number): Promise<boolean>;
  /** Frees a slot; releasing one that expired or was released already does nothing. */
  releaseSlot(key: string, id: string): Promise<void>;
  /** Stops timers and connections; the store is not used afterwards. */
  close(): Promise<void>;
}

/** Both stores check their arguments the same way, so misuse fails alike whichever is configured. */
export function assertHit(hit: BucketHit, allowNegativeCost = false): void {
  if (!Number.isSafeInteger(hit.limit) || hit.limit < 1)
    throw new RangeError(`quota bucket ${hit.key}: limit must be a positive integer, got ${hit.limit}`);
  if (!Number.isSafeInteger(hit.windowMs) || hit.windowMs < 1)
    throw new RangeError(`quota bucket ${hit.key}: windowMs must be a positive integer, got ${hit.windowMs}`);
  if (!Number.isSafeInteger(hit.cost) || (!allowNegativeCost && hit.cost < 0))
    throw new RangeError(`quota bucket ${hit.key}: cost must be a non-negative integer, got ${hit.cost}`);
}

export function assertSlotArgs(key: string, limit: number, ttlMs: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1)
    throw new RangeError(`quota slots ${key}: limit must be a positive integer, got ${limit}`);
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1)
    throw new RangeError(`quota slots ${key}: ttlMs must be a positive integer, got ${ttlMs}`);
}
