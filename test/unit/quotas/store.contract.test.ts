/**
 * One behavioural suite, run against MemoryStore and against RedisStore on a real redis-server: the two stores
 * must be interchangeable. Windows and slot TTLs are short where time has to pass (Redis's clock cannot be
 * faked); everything else is exact.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../../service/security/quotas/memory-store.js';
import { RedisStore } from '../../../service/security/quotas/redis-store.js';
import type { BucketHit, QuotaStore } from '../../../service/security/quotas/store.js';
import { SKIP_REDIS, startRedis, stopRedis, type TestRedis } from '../../helpers/redis-server.js';

const MINUTE = 60_000;

interface Backend {
  name: string;
  setup(): Promise<void>;
  create(): Promise<QuotaStore>;
  teardown(): Promise<void>;
}

let redis: TestRedis | undefined;

const allBackends: Backend[] = [
  {
    name: 'MemoryStore',
    setup: async () => {},
    create: async () => new MemoryStore(),
    teardown: async () => {},
  },
  {
    name: 'RedisStore',
    setup: async () => {
      redis = await startRedis();
    },
    create: async () => RedisStore.connect(redis!.url),
    teardown: async () => stopRedis(redis),
  },
];
const backends = allBackends.filter((b) => !(SKIP_REDIS && b.name === 'RedisStore'));

/** A key no other test uses, so tests need no cleanup between them. */
const fresh = (name: string) => `${name}:${randomUUID()}`;

const hit = (key: string, limit: number, cost = 1, windowMs = MINUTE): BucketHit => ({
  key,
  limit,
  windowMs,
  cost,
});

describe.each(backends)('$name', (backend) => {
  let store: QuotaStore;

  beforeAll(async () => {
    await backend.setup();
    store = await backend.create();
  });
  afterAll(async () => {
    await store?.close();
    await backend.teardown();
  });

  describe('buckets', () => {
    it('start full and report what a hit left: whole units remaining, time until full again', async () => {
      const result = await store.consume([hit(fresh('a'), 5)]);
      expect(result).toEqual({
        allowed: true,
        buckets: [{ limit: 5, remaining: 4, resetMs: 12_000, retryAfterMs: 0 }],
      });
    });

    it('refuse the hit that would overrun, without charging it', async () => {
      const key = fresh('a');
      for (let i = 0; i < 5; i++) expect((await store.consume([hit(key, 5)])).allowed).toBe(true);
      const refused = await store.consume([hit(key, 5)]);
      expect(refused.allowed).toBe(false);
      const [state] = refused.buckets;
      expect(state!.remaining).toBe(0);
      // One unit comes back every 12 s; a few milliseconds have passed since the bucket emptied.
      expect(state!.retryAfterMs).toBeGreaterThan(11_000);
      expect(state!.retryAfterMs).toBeLessThanOrEqual(12_000);
      expect(state!.resetMs).toBeGreaterThan(59_000);
      expect(state!.resetMs).toBeLessThanOrEqual(MINUTE);
      // The refusal took nothing: the wait did not grow.
      const again = await store.consume([hit(key, 5)]);
      expect(again.buckets[0]!.retryAfterMs).toBeLessThanOrEqual(state!.retryAfterMs);
    });

    it('report a cost larger than the whole bucket as never fitting', async () => {
      const result = await store.consume([hit(fresh('a'), 10, 11)]);
      expect(result.allowed).toBe(false);
      expect(result.buckets[0]).toEqual({ limit: 10, remaining: 10, resetMs: 0, retryAfterMs: Infinity });
    });

    it('a hit of cost 0 reads the state and charges nothing', async () => {
      const key = fresh('a');
      await store.consume([hit(key, 10, 3)]);
      const peek = await store.consume([hit(key, 10, 0)]);
      expect(peek.allowed).toBe(true);
      expect(peek.buckets[0]!.remaining).toBe(7);
    });

    it('charge several buckets all together or none of them', async () => {
      const requests = fresh('requests');
      const tokens = fresh('tokens');
      const tooMany = await store.consume([hit(requests, 10), hit(tokens, 5, 6)]);
      expect(tooMany.allowed).toBe(false);
      expect(tooMany.buckets.map((b) => b.remaining)).toEqual([10, 5]);
      expect(tooMany.buckets.map((b) => b.retryAfterMs)).toEqual([0, Infinity]);

      const fits = await store.consume([hit(requests, 10), hit(tokens, 5, 5)]);
      expect(fits.allowed).toBe(true);
      expect(fits.buckets.map((b) => b.remaining)).toEqual([9, 0]);

      const tokensGone = await store.consume([hit(requests, 10), hit(tokens, 5, 1)]);
      expect(tokensGone.allowed).toBe(false);
      expect(tokensGone.buckets[0]!.retryAfterMs).toBe(0);
      expect(tokensGone.buckets[1]!.retryAfterMs).toBeGreaterThan(0);
      // The request bucket was not charged for the refused hit.
      expect((await store.consume([hit(requests, 10, 0)])).buckets[0]!.remaining).toBe(9);
    });

    it('keep keys apart', async () => {
      const spent = fresh('a');
      await store.consume([hit(spent, 2, 2)]);
      expect((await store.consume([hit(spent, 2)])).allowed).toBe(false);
      expect((await store.consume([hit(fresh('b'), 2)])).allowed).toBe(true);
    });

    it('adjust: a positive cost may run into debt, a refund never past full', async () => {
      const key = fresh('tokens');
      await store.consume([hit(key, 10, 4)]);
      const debt = await store.adjust(hit(key, 10, 10));
      expect(debt.remaining).toBe(0);
      // 14 units in use at 10 a minute: full again in 84 s.
      expect(debt.resetMs).toBeGreaterThan(83_000);
      expect(debt.resetMs).toBeLessThanOrEqual(84_000);
      const refused = await store.consume([hit(key, 10)]);
      expect(refused.allowed).toBe(false);
      // 5 units over: 30 s.
      expect(refused.buckets[0]!.retryAfterMs).toBeGreaterThan(29_000);
      expect(refused.buckets[0]!.retryAfterMs).toBeLessThanOrEqual(30_000);
      expect(await store.adjust(hit(key, 10, -100))).toEqual({
        limit: 10,
        remaining: 10,
        resetMs: 0,
        retryAfterMs: 0,
      });
    });

    it('under 50 parallel hits, exactly the limit succeeds', async () => {
      const key = fresh('a');
      const results = await Promise.all(Array.from({ length: 50 }, () => store.consume([hit(key, 20)])));
      expect(results.filter((r) => r.allowed)).toHaveLength(20);
      expect((await store.consume([hit(key, 20, 0)])).buckets[0]!.remaining).toBe(0);
    });

    it('under 50 parallel hits on two buckets, the tighter one decides and the other is charged as often', async () => {
      const requests = fresh('requests');
      const tokens = fresh('tokens');
      const results = await Promise.all(
        Array.from({ length: 50 }, () => store.consume([hit(requests, 30), hit(tokens, 100, 5)])),
      );
      expect(results.filter((r) => r.allowed)).toHaveLength(20);
      const after = await store.consume([hit(requests, 30, 0), hit(tokens, 100, 0)]);
      expect(after.buckets.map((b) => b.remaining)).toEqual([10, 0]);
    });

    it('refuse malformed hits alike', async () => {
      await expect(store.consume([hit(fresh('a'), 0)])).rejects.toThrow(RangeError);
      await expect(store.consume([hit(fresh('a'), 5, -1)])).rejects.toThrow(RangeError);
      await expect(store.consume([hit(fresh('a'), 5, 1.5)])).rejects.toThrow(RangeError);
      await expect(store.adjust(hit(fresh('a'), 5, 1, 0))).rejects.toThrow(RangeError);
    });
  });

  describe('concurrency slots', () => {
    it('hand out up to the limit, and again once one is released', async () => {
      const key = fresh('slots');
      const ids = await Promise.all([1, 2, 3].map(() => store.acquireSlot(key, 3, MINUTE)));
      expect(new Set(ids).size).toBe(3);
      expect(ids.every((id) => typeof id === 'string')).toBe(true);
      expect(await store.acquireSlot(key, 3, MINUTE)).toBeNull();
      await store.releaseSlot(key, ids[0]!);
      await store.releaseSlot(key, ids[0]!); // twice: harmless
      await store.releaseSlot(key, 'not-a-slot');
      expect(await store.acquireSlot(key, 3, MINUTE)).toEqual(expect.any(String));
      expect(await store.acquireSlot(key, 3, MINUTE)).toBeNull();
    });

    it('under 50 parallel acquisitions, exactly the limit succeeds', async () => {
      const key = fresh('slots');
      const ids = await Promise.all(Array.from({ length: 50 }, () => store.acquireSlot(key, 10, MINUTE)));
      expect(ids.filter((id) => id !== null)).toHaveLength(10);
    });

    it('refuse malformed arguments alike', async () => {
      await expect(store.acquireSlot(fresh('slots'), 0, MINUTE)).rejects.toThrow(RangeError);
      await expect(store.acquireSlot(fresh('slots'), 1, 0)).rejects.toThrow(RangeError);
    });
  });

  // Each of these waits on real time (Redis's clock cannot be faked), on keys of its own: side by side.
  describe('over time', () => {
    it.concurrent('buckets refill continuously, a unit at a time, until full', async ({ expect }) => {
      const key = fresh('a');
      const windowMs = 2_000; // 4 units: one back every 500 ms
      for (let i = 0; i < 4; i++) await store.consume([hit(key, 4, 1, windowMs)]);
      expect((await store.consume([hit(key, 4, 1, windowMs)])).allowed).toBe(false);
      await sleep(600);
      const one = await store.consume([hit(key, 4, 1, windowMs)]);
      expect(one.allowed).toBe(true);
      expect(one.buckets[0]!.remaining).toBe(0);
      await sleep(2_100);
      expect((await store.consume([hit(key, 4, 0, windowMs)])).buckets[0]).toEqual({
        limit: 4,
        remaining: 4,
        resetMs: 0,
        retryAfterMs: 0,
      });
    });

    it.concurrent('slots free themselves after the TTL if never released (a crashed replica)', async ({
      expect,
    }) => {
      const key = fresh('slots');
      expect(await store.acquireSlot(key, 1, 500)).not.toBeNull();
      expect(await store.acquireSlot(key, 1, 500)).toBeNull();
      await sleep(600);
      expect(await store.acquireSlot(key, 1, 500)).not.toBeNull();
    });

    it.concurrent('slots stay held past the first TTL when renewed', async ({ expect }) => {
      const key = fresh('slots');
      // Margins of 250 ms on each side: a busy CI machine may stall timers that long.
      const id = await store.acquireSlot(key, 1, 1_000);
      await sleep(500);
      expect(await store.renewSlot(key, id!, 1_000)).toBe(true);
      await sleep(750); // past the first expiry, before the renewed one
      expect(await store.acquireSlot(key, 1, 1_000)).toBeNull();
      await store.releaseSlot(key, id!);
      expect(await store.acquireSlot(key, 1, 1_000)).not.toBeNull();
    });

    it.concurrent('renewing an expired slot says so and takes it again', async ({ expect }) => {
      const key = fresh('slots');
      const id = await store.acquireSlot(key, 1, 100);
      await sleep(150);
      expect(await store.renewSlot(key, id!, MINUTE)).toBe(false);
      expect(await store.acquireSlot(key, 1, MINUTE)).toBeNull();
    });
  });
});

describe('MemoryStore specifics', () => {
  let store: MemoryStore | undefined;
  afterEach(async () => store?.close());

  it('drops idle buckets and expired slots on its sweep', async () => {
    let clock = 0;
    store = new MemoryStore({ now: () => clock, sweepIntervalMs: 10 });
    await store.consume([hit('a', 5)]);
    await store.acquireSlot('s', 1, 1_000);
    expect(store.size).toBe(2);
    clock += 12_000; // the one unit has refilled; the slot has expired
    await sleep(50);
    expect(store.size).toBe(0);
  });
});

describe.skipIf(SKIP_REDIS)('RedisStore specifics', () => {
  let server: TestRedis;
  let store: RedisStore;
  let raw: Redis;

  beforeAll(async () => {
    server = await startRedis();
    store = await RedisStore.connect(server.url);
    raw = new Redis(server.url);
  });
  afterAll(async () => {
    await store?.close();
    raw?.disconnect();
    await stopRedis(server);
  });

  it('namespaces its keys under chatmirror:quota: and lets them expire when they would be full', async () => {
    await store.consume([hit('{alice}:tokens', 1_000, 100)]);
    await store.acquireSlot('{alice}:concurrent', 2, 5_000);
    expect((await raw.keys('*')).sort()).toEqual([
      'chatmirror:quota:{alice}:concurrent',
      'chatmirror:quota:{alice}:tokens',
    ]);
    const bucketTtl = await raw.pttl('chatmirror:quota:{alice}:tokens');
    expect(bucketTtl).toBeGreaterThan(5_000);
    expect(bucketTtl).toBeLessThanOrEqual(6_000); // 100 of 1000 a minute: 6 s
    const slotTtl = await raw.pttl('chatmirror:quota:{alice}:concurrent');
    expect(slotTtl).toBeGreaterThan(4_000);
    expect(slotTtl).toBeLessThanOrEqual(5_000);
  });

  it('still works after Redis loses its script cache', async () => {
    await raw.script('FLUSH');
    expect((await store.consume([hit(fresh('a'), 3)])).buckets[0]!.remaining).toBe(2);
    expect(await store.acquireSlot(fresh('slots'), 1, 1_000)).not.toBeNull();
  });

  it('fails at once, not after a hang, while Redis is unreachable (last: it stops the server)', async () => {
    await stopRedis(server);
    const started = performance.now();
    await expect(store.consume([hit(fresh('a'), 3)])).rejects.toThrow();
    await expect(store.acquireSlot(fresh('slots'), 1, 1_000)).rejects.toThrow();
    expect(performance.now() - started).toBeLessThan(3_000);
  });

  it('fails to connect quickly when nothing listens', async () => {
    const started = performance.now();
    await expect(RedisStore.connect('redis://127.0.0.1:1', { connectTimeoutMs: 1_000 })).rejects.toThrow();
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});
