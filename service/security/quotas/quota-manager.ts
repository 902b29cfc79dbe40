/**
 * Per-subject quotas, as OpenAI applies them: requests per minute, tokens per minute (prompt + completion) and
 * requests in flight. `admit` is called once a request is authenticated and before the engine is asked; it
 * refuses with 429 `rate_limit_exceeded` (Retry-After and OpenAI's six x-ratelimit-* headers) or returns an
 * `Admission` whose headers go on the response and whose `recordTokens`/`release` are called when it ends.
 *
 * Tokens are charged twice: an estimate up front (prompt tokens + n × max_tokens, so a request that may overrun
 * the budget is refused before it runs, as OpenAI does), then corrected to the real usage by `recordTokens`.
 * Charging only the prompt up front would let many concurrent long completions overspend the budget many times.
 *
 * A limit of 0 means "no limit" for that dimension, and its headers are left out (there is nothing to count
 * down). An operator who wants a subject to have no access removes its key or scope instead.
 *
 * When the store fails (Redis unreachable), admission fails closed with 503 `quota_store_unavailable` rather
 * than letting requests run unmetered; `release` and `recordTokens`, which run after the response, never
 * reject: their failures go to the StoreHealth (a metric, one log line per outage), and a slot that could not
 * be freed expires by itself after its TTL.
 */
import type { SubjectLimits } from '../../config/schema.js';
import { ApiError } from '../../errors.js';
import type { BucketHit, BucketState, ConsumeResult, QuotaStore } from './store.js';
import { StoreHealth, type StoreOperation } from './store-health.js';

/** Every rate is per minute. */
export const QUOTA_WINDOW_MS = 60_000; // 1 minute
/** A concurrency slot held by a replica that died frees itself after this long. */
export const DEFAULT_SLOT_TTL_MS = 30_000; // 30 seconds
/** Slots of running requests are renewed this many times per TTL, so a late timer never loses one. */
const RENEWALS_PER_TTL = 3;
/** Retry-After for a concurrency refusal: a slot frees when some request ends, which cannot be predicted. */
export const CONCURRENCY_RETRY_AFTER_SECONDS = 1;

export type QuotaLimits = Required<SubjectLimits>;

export interface QuotaManagerOptions {
  slotTtlMs?: number;
  /** Told of every store failure and success; `available` feeds /ready. Default: a silent one. */
  health?: StoreHealth;
  /** Retry-After of the 503 sent while the store is unreachable. */
  retryAfterSeconds?: number;
}

export interface Admission {
  /** x-ratelimit-* headers as of this admission, for the response (streamed or not). */
  readonly headers: Record<string, string>;
  /**
   * Replaces the up-front estimate with the real prompt + completion tokens (usage.total_tokens, all choices).
   * Only the first call counts. Rejects only for a count that is not a non-negative number (a bug); a store
   * failure is reported to the StoreHealth instead.
   */
  recordTokens(actual: number): Promise<void>;
  /**
   * Frees the concurrency slot; call once the response ends, however it ends. Only the first call counts.
   * Never rejects: a store failure is reported to the StoreHealth, and the slot expires after its TTL.
   */
  release(): Promise<void>;
}

/**
 * An admission made before the prompt is tokenized (its size is not known yet): the request and its
 * concurrency slot are charged, tokens are charged once the estimate is known. A request refused after this,
 * by validation or by the tokens quota, has used one of its subject's requests, as OpenAI counts them.
 */
export interface StagedAdmission extends Admission {
  /**
   * Charges the estimate (prompt + n × max_tokens), or throws the tokens-per-minute 429. Resolves to the
   * x-ratelimit-*-tokens headers as they stand after the charge. Call it once.
   */
  chargeTokens(estimatedTokens: number): Promise<Record<string, string>>;
}

interface Keys {
  requests: string;
  tokens: string;
  concurrent: string;
}

/** Which quota refused a request, for the rate-limited metric. */
export type QuotaDimension = 'requests_per_minute' | 'tokens_per_minute' | 'concurrent_requests';

/** A 429 that says which quota refused it. */
export class QuotaExceededError extends ApiError {
  constructor(
    readonly dimension: QuotaDimension,
    message: string,
    headers: Record<string, string>,
  ) {
    super('rate_limit_exceeded', message, null, headers);
  }
}

export class QuotaManager {
  readonly #store: QuotaStore;
  readonly #defaults: QuotaLimits;
  readonly #slotTtlMs: number;
  readonly #health: StoreHealth;
  readonly #retryAfterSeconds: number;
  /** Renewal timers of admitted requests still holding a slot, cleared on close. */
  readonly #renewals = new Set<NodeJS.Timeout>();

  constructor(store: QuotaStore, defaults: QuotaLimits, options: QuotaManagerOptions = {}) {
    for (const [name, value] of Object.entries(defaults)) {
      if (!Number.isSafeInteger(value) || value < 0)
        throw new RangeError(`quotas.default.${name} must be a non-negative integer, got ${value}`);
    }
    this.#store = store;
    this.#defaults = { ...defaults };
    this.#slotTtlMs = options.slotTtlMs ?? DEFAULT_SLOT_TTL_MS;
    this.#health = options.health ?? new StoreHealth();
    this.#retryAfterSeconds = options.retryAfterSeconds ?? CONCURRENCY_RETRY_AFTER_SECONDS;
  }

  /** False while the store is unreachable (since a call failed, until one succeeds or it reconnects). */
  get storeAvailable(): boolean {
    return this.#health.available;
  }

  /**
   * A store call made while admitting: a failure becomes the 503 (programming errors, RangeError, stay as
   * they are: they are bugs, not outages).
   */
  async #admitting<T>(call: () => Promise<T>): Promise<T> {
    try {
      const result = await call();
      this.#health.succeeded();
      return result;
    } catch (err) {
      if (err instanceof RangeError) throw err;
      this.#health.failed('admit', err);
      throw new ApiError(
        'quota_store_unavailable',
        'The quota store is unreachable, so the request cannot be metered; retry later.',
        null,
        { 'retry-after': String(this.#retryAfterSeconds) },
      );
    }
  }

  /** A store call made after admission, whose failure the request must not see. */
  async #background(operation: StoreOperation, call: () => Promise<unknown>): Promise<void> {
    try {
      await call();
      this.#health.succeeded();
    } catch (err) {
      this.#health.failed(operation, err);
    }
  }

  /** The subject's own limits (from its key or token), field by field over the configured defaults. */
  limitsFor(own?: SubjectLimits): QuotaLimits {
    return {
      requestsPerMinute: own?.requestsPerMinute ?? this.#defaults.requestsPerMinute,
      tokensPerMinute: own?.tokensPerMinute ?? this.#defaults.tokensPerMinute,
      concurrentRequests: own?.concurrentRequests ?? this.#defaults.concurrentRequests,
    };
  }

  /**
   * Admits one request of `subject` that may use `estimatedTokens` (prompt + n × max_tokens), or throws
   * ApiError('rate_limit_exceeded'). `subject` must be unique across credential kinds (e.g. `key:<id>`,
   * `jwt:<sub>`).
   */
  async admit(subject: string, own: SubjectLimits | undefined, estimatedTokens: number): Promise<Admission> {
    if (!Number.isFinite(estimatedTokens) || estimatedTokens < 0)
      throw new RangeError(`estimatedTokens must be a non-negative number, got ${estimatedTokens}`);
    return this.#admit(subject, own, Math.ceil(estimatedTokens));
  }

  /**
   * Admits one request of `subject` before its size is known: the request and concurrency quotas are checked
   * and charged now (tokens only checked for debt), the tokens by `chargeTokens` once the prompt is tokenized.
   */
  admitRequest(subject: string, own: SubjectLimits | undefined): Promise<StagedAdmission> {
    return this.#admit(subject, own, undefined);
  }

  /** `estimate` undefined: a staged admission, whose tokens are only peeked at now. */
  async #admit(
    subject: string,
    own: SubjectLimits | undefined,
    estimate: number | undefined,
  ): Promise<StagedAdmission> {
    const limits = this.limitsFor(own);
    const keys = keysFor(subject);
    const requestHit =
      limits.requestsPerMinute > 0 ? bucket(keys.requests, limits.requestsPerMinute, 1) : null;
    const tokenHit =
      limits.tokensPerMinute > 0 ? bucket(keys.tokens, limits.tokensPerMinute, estimate ?? 0) : null;
    const hits = [requestHit, tokenHit].filter((hit) => hit !== null);

    if (tokenHit && tokenHit.cost > tokenHit.limit) {
      throw await this.#tooLarge(tokenHit, () => this.#currentHeaders(requestHit, tokenHit));
    }

    let slot: string | null = null;
    if (limits.concurrentRequests > 0) {
      slot = await this.#admitting(() =>
        this.#store.acquireSlot(keys.concurrent, limits.concurrentRequests, this.#slotTtlMs),
      );
      if (slot === null) {
        throw new QuotaExceededError(
          'concurrent_requests',
          `Too many concurrent requests: Limit ${limits.concurrentRequests} in flight. ` +
            'Retry when one of them has finished.',
          {
            'retry-after': String(CONCURRENCY_RETRY_AFTER_SECONDS),
            ...(await this.#admitting(() => this.#currentHeaders(requestHit, tokenHit))),
          },
        );
      }
    }

    const freeSlot = () =>
      this.#background('release', async () => {
        if (slot !== null) await this.#store.releaseSlot(keys.concurrent, slot);
      });
    let result: ConsumeResult;
    try {
      result = await this.#admitting(() => this.#store.consume(hits));
    } catch (err) {
      await freeSlot();
      throw err;
    }
    const requests = requestHit ? result.buckets[0] : undefined;
    const tokens = tokenHit ? result.buckets[requestHit ? 1 : 0] : undefined;
    if (!result.allowed) {
      await freeSlot();
      throw refusal(requestHit, requests, tokenHit, tokens);
    }

    const renewal = slot === null ? undefined : this.#startRenewal(keys.concurrent, slot);
    let recorded = false;
    let released = false;
    // What the tokens bucket was charged for this request, to be corrected to the real usage.
    let charged = estimate;
    return {
      headers: rateLimitHeaders(requests, tokens),
      chargeTokens: async (estimatedTokens: number) => {
        if (!Number.isFinite(estimatedTokens) || estimatedTokens < 0)
          throw new RangeError(`estimatedTokens must be a non-negative number, got ${estimatedTokens}`);
        if (charged !== undefined) throw new Error('chargeTokens: the tokens are charged already');
        if (!tokenHit) return {};
        const hit = { ...tokenHit, cost: Math.ceil(estimatedTokens) };
        if (hit.cost > hit.limit) throw await this.#tooLarge(hit, () => this.#currentHeaders(null, hit));
        const charge = await this.#admitting(() => this.#store.consume([hit]));
        if (!charge.allowed) throw refusal(null, undefined, hit, charge.buckets[0]);
        charged = hit.cost;
        return rateLimitHeaders(undefined, charge.buckets[0]);
      },
      recordTokens: async (actual: number) => {
        if (!Number.isFinite(actual) || actual < 0)
          throw new RangeError(`actual tokens must be a non-negative number, got ${actual}`);
        if (recorded || !tokenHit || charged === undefined) return;
        recorded = true;
        const correction = Math.ceil(actual) - charged;
        if (correction !== 0)
          await this.#background('record_tokens', () =>
            this.#store.adjust({ ...tokenHit, cost: correction }),
          );
      },
      release: async () => {
        if (released) return;
        released = true;
        if (renewal) {
          clearInterval(renewal);
          this.#renewals.delete(renewal);
        }
        await freeSlot();
      },
    };
  }

  /** The 429 for an estimate over the whole budget: no Retry-After, since waiting would not help. */
  async #tooLarge(hit: BucketHit, headers: () => Promise<Record<string, string>>) {
    return new QuotaExceededError(
      'tokens_per_minute',
      `Request too large on tokens per min (TPM): Limit ${hit.limit}, Requested ${hit.cost} ` +
        '(prompt + max_tokens). Lower max_tokens or shorten the prompt.',
      await this.#admitting(headers),
    );
  }

  /** Stops slot renewals and closes the store. */
  async close(): Promise<void> {
    for (const timer of this.#renewals) clearInterval(timer);
    this.#renewals.clear();
    await this.#store.close();
  }

  /** A slot outlives its TTL only while its request runs: renew it until `release`. */
  #startRenewal(key: string, slot: string): NodeJS.Timeout {
    const timer = setInterval(
      () => {
        void this.#background('renew', () => this.#store.renewSlot(key, slot, this.#slotTtlMs));
      },
      Math.max(1, Math.floor(this.#slotTtlMs / RENEWALS_PER_TTL)),
    );
    timer.unref();
    this.#renewals.add(timer);
    return timer;
  }

  /** The headers as the buckets stand, charging nothing (for refusals that are not about the rates). */
  async #currentHeaders(requestHit: BucketHit | null, tokenHit: BucketHit | null) {
    const peeks = [requestHit, tokenHit].filter((hit) => hit !== null).map((hit) => ({ ...hit, cost: 0 }));
    const { buckets } = await this.#store.consume(peeks);
    return rateLimitHeaders(requestHit ? buckets[0] : undefined, tokenHit ? buckets.at(-1) : undefined);
  }
}

function keysFor(subject: string): Keys {
  // The braces make a Redis Cluster hash tag: one subject's keys share a slot, as a multi-key script needs.
  const tag = `{${subject}}`;
  return { requests: `${tag}:requests`, tokens: `${tag}:tokens`, concurrent: `${tag}:concurrent` };
}

function bucket(key: string, limit: number, cost: number): BucketHit {
  return { key, limit, windowMs: QUOTA_WINDOW_MS, cost };
}

function refusal(
  requestHit: BucketHit | null,
  requests: BucketState | undefined,
  tokenHit: BucketHit | null,
  tokens: BucketState | undefined,
): QuotaExceededError {
  const refused = [
    {
      hit: requestHit,
      state: requests,
      name: 'requests per min (RPM)',
      dimension: 'requests_per_minute' as const,
    },
    { hit: tokenHit, state: tokens, name: 'tokens per min (TPM)', dimension: 'tokens_per_minute' as const },
  ].filter((b) => b.hit !== null && b.state !== undefined && b.state.retryAfterMs > 0);
  const waitMs = Math.max(...refused.map((b) => b.state!.retryAfterMs));
  const { hit, state, name, dimension } = refused[0]!;
  return new QuotaExceededError(
    dimension,
    `Rate limit reached on ${name}: Limit ${hit!.limit}, Used ${hit!.limit - state!.remaining}, ` +
      `Requested ${hit!.cost}. Please try again in ${formatDuration(waitMs)}.`,
    {
      'retry-after': String(Math.max(1, Math.ceil(waitMs / 1000))),
      // The openai SDKs prefer this to Retry-After's whole seconds.
      'retry-after-ms': String(waitMs),
      ...rateLimitHeaders(requests, tokens),
    },
  );
}

/** OpenAI's x-ratelimit-* headers; a dimension without a limit has none. */
export function rateLimitHeaders(requests?: BucketState, tokens?: BucketState): Record<string, string> {
  const headers: Record<string, string> = {};
  if (requests) headers['x-ratelimit-limit-requests'] = String(requests.limit);
  if (tokens) headers['x-ratelimit-limit-tokens'] = String(tokens.limit);
  if (requests) headers['x-ratelimit-remaining-requests'] = String(requests.remaining);
  if (tokens) headers['x-ratelimit-remaining-tokens'] = String(tokens.remaining);
  if (requests) headers['x-ratelimit-reset-requests'] = formatDuration(requests.resetMs);
  if (tokens) headers['x-ratelimit-reset-tokens'] = formatDuration(tokens.resetMs);
  return headers;
}

/**
 * A duration as OpenAI writes it in x-ratelimit-reset-* (Go's time.Duration format, to the millisecond):
 * `0s`, `20ms`, `1s`, `8.64s`, `6m0s`, `1h2m3.5s`. Rounded up, so a client never retries too early.
 */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.ceil(ms));
  if (total === 0) return '0s';
  if (total < 1000) return `${total}ms`;
  const hours = Math.floor(total / 3_600_000);
  const minutes = Math.floor((total % 3_600_000) / 60_000);
  const seconds = `${(total % 60_000) / 1000}s`;
  if (hours > 0) return `${hours}h${minutes}m${seconds}`;
  if (minutes > 0) return `${minutes}m${seconds}`;
  return seconds;
}
