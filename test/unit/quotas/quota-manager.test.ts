/**
 * QuotaManager over a MemoryStore on a hand-driven clock, so every header value is exact. (The store contract
 * test shows RedisStore behaves the same; the load test runs the manager on both.)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiError } from '../../../service/errors.js';
import { MemoryStore } from '../../../service/security/quotas/memory-store.js';
import {
  formatDuration,
  type QuotaLimits,
  QuotaManager,
} from '../../../service/security/quotas/quota-manager.js';

const DEFAULTS: QuotaLimits = { requestsPerMinute: 20, tokensPerMinute: 1_000, concurrentRequests: 100 };

let clock: number;
let quotas: QuotaManager;

function manager(defaults: QuotaLimits = DEFAULTS, options = {}) {
  quotas = new QuotaManager(new MemoryStore({ now: () => clock }), defaults, options);
  return quotas;
}

async function refusal(promise: Promise<unknown>): Promise<ApiError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

beforeEach(() => {
  clock = 1_000_000;
});
afterEach(async () => quotas?.close());

describe('formatDuration (OpenAI x-ratelimit-reset-* format)', () => {
  it.each([
    [0, '0s'],
    [20, '20ms'],
    [0.2, '1ms'],
    [999, '999ms'],
    [1_000, '1s'],
    [1_500, '1.5s'],
    [8_640, '8.64s'],
    [60_000, '1m0s'],
    [86_400, '1m26.4s'],
    [360_000, '6m0s'],
    [3_600_000, '1h0m0s'],
    [3_723_500, '1h2m3.5s'],
  ])('%d ms → %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe('admit', () => {
  it('returns the six x-ratelimit headers, counted down by this request', async () => {
    const admission = await manager().admit('alice', undefined, 100);
    expect(admission.headers).toEqual({
      'x-ratelimit-limit-requests': '20',
      'x-ratelimit-limit-tokens': '1000',
      'x-ratelimit-remaining-requests': '19',
      'x-ratelimit-remaining-tokens': '900',
      'x-ratelimit-reset-requests': '3s',
      'x-ratelimit-reset-tokens': '6s',
    });
  });

  it('refuses the request past the limit with 429 rate_limit_exceeded, Retry-After and the headers', async () => {
    manager();
    for (let i = 0; i < 20; i++) await quotas.admit('alice', undefined, 10);
    const err = await refusal(quotas.admit('alice', undefined, 10));
    expect(err.status).toBe(429);
    expect(err.toBody().error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded' });
    expect(err.message).toBe(
      'Rate limit reached on requests per min (RPM): Limit 20, Used 20, Requested 1. Please try again in 3s.',
    );
    expect(err.headers).toEqual({
      'retry-after': '3',
      'retry-after-ms': '3000',
      'x-ratelimit-limit-requests': '20',
      'x-ratelimit-limit-tokens': '1000',
      'x-ratelimit-remaining-requests': '0',
      'x-ratelimit-remaining-tokens': '800',
      'x-ratelimit-reset-requests': '1m0s',
      'x-ratelimit-reset-tokens': '12s',
    });
  });

  it('replenishes continuously: one request back every 3 s at 20 a minute', async () => {
    manager();
    for (let i = 0; i < 20; i++) await quotas.admit('alice', undefined, 0);
    clock += 2_999;
    expect((await refusal(quotas.admit('alice', undefined, 0))).headers['retry-after-ms']).toBe('1');
    clock += 1;
    const admission = await quotas.admit('alice', undefined, 0);
    expect(admission.headers['x-ratelimit-remaining-requests']).toBe('0');
    await refusal(quotas.admit('alice', undefined, 0));
  });

  it('refuses on tokens when the estimate does not fit, without charging a request', async () => {
    manager();
    await quotas.admit('alice', undefined, 600);
    const err = await refusal(quotas.admit('alice', undefined, 600));
    expect(err.message).toBe(
      'Rate limit reached on tokens per min (TPM): Limit 1000, Used 600, Requested 600. ' +
        'Please try again in 12s.',
    );
    expect(err.headers).toMatchObject({
      'retry-after': '12',
      'x-ratelimit-remaining-requests': '19',
      'x-ratelimit-remaining-tokens': '400',
    });
  });

  it('refuses a request larger than the whole token budget, with no Retry-After (waiting would not help)', async () => {
    manager();
    const err = await refusal(quotas.admit('alice', undefined, 1_001));
    expect(err.status).toBe(429);
    expect(err.message).toMatch(/^Request too large on tokens per min \(TPM\): Limit 1000, Requested 1001/);
    expect(err.headers['retry-after']).toBeUndefined();
    expect(err.headers['x-ratelimit-remaining-tokens']).toBe('1000');
    expect(err.headers['x-ratelimit-remaining-requests']).toBe('20');
  });

  it('keeps subjects apart', async () => {
    manager();
    for (let i = 0; i < 20; i++) await quotas.admit('alice', undefined, 0);
    await refusal(quotas.admit('alice', undefined, 0));
    const bob = await quotas.admit('bob', undefined, 0);
    expect(bob.headers['x-ratelimit-remaining-requests']).toBe('19');
  });

  it("takes the subject's own limits field by field over the defaults", async () => {
    manager();
    expect(quotas.limitsFor({ requestsPerMinute: 2 })).toEqual({ ...DEFAULTS, requestsPerMinute: 2 });
    expect(quotas.limitsFor(undefined)).toEqual(DEFAULTS);
    const own = { requestsPerMinute: 2, concurrentRequests: 50 };
    const first = await quotas.admit('carol', own, 10);
    expect(first.headers['x-ratelimit-limit-requests']).toBe('2');
    expect(first.headers['x-ratelimit-limit-tokens']).toBe('1000');
    await quotas.admit('carol', own, 10);
    await refusal(quotas.admit('carol', own, 10));
    // The same subject under the defaults would have had 18 more.
    expect((await quotas.admit('dave', undefined, 10)).headers['x-ratelimit-remaining-requests']).toBe('19');
  });

  it('treats 0 as no limit: nothing counted, no headers for that dimension', async () => {
    manager({ requestsPerMinute: 0, tokensPerMinute: 0, concurrentRequests: 0 });
    const held = [];
    for (let i = 0; i < 500; i++) held.push(await quotas.admit('erin', undefined, 1_000_000));
    expect(held.at(-1)!.headers).toEqual({});
    const onlyTokens = await quotas.admit('erin', { tokensPerMinute: 100 }, 10);
    expect(onlyTokens.headers).toEqual({
      'x-ratelimit-limit-tokens': '100',
      'x-ratelimit-remaining-tokens': '90',
      'x-ratelimit-reset-tokens': '6s',
    });
  });
});

describe('recordTokens', () => {
  it('replaces the estimate with the real usage: a refund when less was used', async () => {
    manager();
    const admission = await quotas.admit('alice', undefined, 500);
    await admission.recordTokens(100);
    await admission.recordTokens(0); // only the first call counts
    const next = await quotas.admit('alice', undefined, 50);
    expect(next.headers['x-ratelimit-remaining-tokens']).toBe('850');
  });

  it('charges the excess when more was used than estimated', async () => {
    manager();
    const admission = await quotas.admit('alice', undefined, 100);
    await admission.recordTokens(700);
    const err = await refusal(quotas.admit('alice', undefined, 400));
    expect(err.headers['x-ratelimit-remaining-tokens']).toBe('300');
  });

  it('refuses a nonsensical count', async () => {
    const admission = await manager().admit('alice', undefined, 10);
    await expect(admission.recordTokens(Number.NaN)).rejects.toThrow(RangeError);
    await expect(admission.recordTokens(-1)).rejects.toThrow(RangeError);
  });
});

describe('concurrency', () => {
  it('refuses with 429 and Retry-After 1 while every slot is taken, and admits again after release', async () => {
    manager({ ...DEFAULTS, concurrentRequests: 2 });
    const first = await quotas.admit('alice', undefined, 10);
    await quotas.admit('alice', undefined, 10);
    const err = await refusal(quotas.admit('alice', undefined, 10));
    expect(err.status).toBe(429);
    expect(err.code).toBe('rate_limit_exceeded');
    expect(err.message).toMatch(/^Too many concurrent requests: Limit 2 in flight/);
    expect(err.headers).toMatchObject({ 'retry-after': '1', 'x-ratelimit-remaining-requests': '18' });
    await first.release();
    await first.release(); // only the first call counts
    await quotas.admit('alice', undefined, 10);
    await refusal(quotas.admit('alice', undefined, 10));
    // Another subject has its own slots.
    await quotas.admit('bob', undefined, 10);
  });

  it('gives the slot back when the rate refuses the request', async () => {
    manager({ requestsPerMinute: 1, tokensPerMinute: 0, concurrentRequests: 1 });
    const first = await quotas.admit('alice', undefined, 0);
    await first.release();
    expect((await refusal(quotas.admit('alice', undefined, 0))).message).toMatch(/^Rate limit reached/);
    clock += 60_000;
    // Had the refused request kept its slot, this would be a concurrency refusal.
    await quotas.admit('alice', undefined, 0);
  });

  it('renews the slot of a long request, so it outlives the slot TTL; close stops the renewals', async () => {
    // A real clock: the renewal timer must actually run.
    const store = new MemoryStore();
    let renewals = 0;
    const renewSlot = store.renewSlot.bind(store);
    store.renewSlot = (...args) => {
      renewals++;
      return renewSlot(...args);
    };
    quotas = new QuotaManager(store, { ...DEFAULTS, concurrentRequests: 1 }, { slotTtlMs: 600 });
    const longRequest = await quotas.admit('alice', undefined, 0);
    await sleep(1_000);
    await refusal(quotas.admit('alice', undefined, 0));
    await longRequest.release();
    await quotas.admit('alice', undefined, 0);
    expect(renewals).toBeGreaterThanOrEqual(3);

    await quotas.close();
    const before = renewals;
    await sleep(300);
    expect(renewals).toBe(before);
  });
});

describe('arguments', () => {
  it('refuses negative defaults and estimates', async () => {
    expect(() => manager({ ...DEFAULTS, tokensPerMinute: -1 })).toThrow(/quotas.default.tokensPerMinute/);
    await expect(manager().admit('alice', undefined, -5)).rejects.toThrow(RangeError);
  });
});

describe('admitRequest (staged: the request before tokenizing, its tokens once known)', () => {
  it('charges the request at once and the tokens when chargeTokens says how many', async () => {
    manager();
    const staged = await quotas.admitRequest('alice', undefined);
    expect(staged.headers).toMatchObject({
      'x-ratelimit-remaining-requests': '19',
      'x-ratelimit-remaining-tokens': '1000',
    });
    expect(await staged.chargeTokens(300)).toEqual({
      'x-ratelimit-limit-tokens': '1000',
      'x-ratelimit-remaining-tokens': '700',
      'x-ratelimit-reset-tokens': '18s',
    });
    await staged.recordTokens(100);
    expect((await quotas.admit('alice', undefined, 0)).headers['x-ratelimit-remaining-tokens']).toBe('900');
  });

  it('a tokens refusal after admission still counts the request', async () => {
    manager();
    const staged = await quotas.admitRequest('alice', undefined);
    const tooLarge = await refusal(staged.chargeTokens(1_001));
    expect(tooLarge.message).toMatch(/^Request too large on tokens per min/);
    await (await quotas.admit('alice', undefined, 900)).release();
    const refused = await refusal((await quotas.admitRequest('alice', undefined)).chargeTokens(200));
    expect(refused.message).toMatch(/^Rate limit reached on tokens per min/);
    expect(refused.headers['retry-after']).toBeDefined();
    // Three requests were counted, though only one ran.
    expect((await quotas.admit('alice', undefined, 0)).headers['x-ratelimit-remaining-requests']).toBe('16');
  });

  it('records nothing for a request refused before its tokens were charged', async () => {
    manager();
    const staged = await quotas.admitRequest('alice', undefined);
    await staged.recordTokens(500);
    expect((await quotas.admit('alice', undefined, 0)).headers['x-ratelimit-remaining-tokens']).toBe('1000');
  });
});
