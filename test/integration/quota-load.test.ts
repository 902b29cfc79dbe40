/**
 * Load: 50 concurrent clients, each on its own connection, against a small real Fastify app that admits every
 * request through QuotaManager (no model: the quota path is what is measured). Subject A may make 20 requests a
 * minute, subject B thousands; A must get its 20 through and 429s for the rest, B no 429 at all. Run with
 * the in-process store and with Redis. The in-process store runs on a frozen clock, so A gets exactly 20
 * however long the burst takes; Redis's clock cannot be frozen, so there A may get the 20 plus what the bucket
 * refills over the time the burst really took (one per 3 s), which is all a continuous bucket promises.
 */
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SubjectLimits } from '../../service/config/schema.js';
import { ApiError } from '../../service/errors.js';
import { MemoryStore } from '../../service/security/quotas/memory-store.js';
import { QuotaManager } from '../../service/security/quotas/quota-manager.js';
import { RedisStore } from '../../service/security/quotas/redis-store.js';
import type { QuotaStore } from '../../service/security/quotas/store.js';
import { SKIP_REDIS, startRedis, stopRedis, type TestRedis } from '../helpers/redis-server.js';

const CLIENTS_PER_SUBJECT = 25; // 50 in all
const REQUESTS_PER_CLIENT = 4;
const WORK_MS = 20; // time a "generation" holds its request open
const ESTIMATED_TOKENS = 60;
const ACTUAL_TOKENS = 25;

/** The subjects' own limits, as they would come from their credentials. */
const LIMITS: Record<string, SubjectLimits> = {
  throttled: { requestsPerMinute: 20, concurrentRequests: 50 },
  generous: { requestsPerMinute: 100_000, tokensPerMinute: 10_000_000, concurrentRequests: 50 },
  single: { concurrentRequests: 1 },
};
const DEFAULTS = { requestsPerMinute: 60, tokensPerMinute: 40_000, concurrentRequests: 4 };

interface LoadApp {
  app: FastifyInstance;
  port: number;
  inFlight: () => number;
  peakInFlight: () => number;
  released: () => number;
}

/** Wired as the real routes should be: admit after auth, headers on the reply, release when the response ends. */
async function startLoadApp(quotas: QuotaManager): Promise<LoadApp> {
  const app = Fastify();
  app.setErrorHandler((err, _request, reply) => {
    if (err instanceof ApiError) return reply.code(err.status).headers(err.headers).send(err.toBody());
    return reply.send(err);
  });
  let inFlight = 0;
  let peak = 0;
  let released = 0;
  app.post('/v1/work', async (request, reply) => {
    const subject = String(request.headers['x-subject']);
    const admission = await quotas.admit(subject, LIMITS[subject], ESTIMATED_TOKENS);
    // 'close' fires when the response has been sent and when the client went away first.
    reply.raw.once('close', () => {
      released++;
      void admission.release();
    });
    reply.headers(admission.headers);
    inFlight++;
    peak = Math.max(peak, inFlight);
    try {
      await sleep(Number(request.headers['x-work-ms'] ?? WORK_MS));
      return { ok: true };
    } finally {
      inFlight--;
      await admission.recordTokens(ACTUAL_TOKENS);
    }
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (typeof address !== 'object' || address === null) throw new Error('not listening');
  return {
    app,
    port: address.port,
    inFlight: () => inFlight,
    peakInFlight: () => peak,
    released: () => released,
  };
}

interface Outcome {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function post(port: number, agent: Agent, subject: string, workMs = WORK_MS): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        path: '/v1/work',
        method: 'POST',
        agent,
        headers: { 'x-subject': subject, 'x-work-ms': String(workMs), 'content-length': 0 },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** One client: its own keep-alive connection, requests one after another. */
async function client(port: number, subject: string): Promise<Outcome[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const outcomes: Outcome[] = [];
    for (let i = 0; i < REQUESTS_PER_CLIENT; i++) outcomes.push(await post(port, agent, subject));
    return outcomes;
  } finally {
    agent.destroy();
  }
}

interface Backend {
  name: string;
  /** Whether time stands still for the store (no refill during the test). */
  frozenClock: boolean;
  setup(): Promise<void>;
  store(): Promise<QuotaStore>;
  teardown(): Promise<void>;
}

let redis: TestRedis | undefined;
const allBackends: Backend[] = [
  {
    name: 'memory',
    frozenClock: true,
    setup: async () => {},
    store: async () => new MemoryStore({ now: () => 1_000_000 }),
    teardown: async () => {},
  },
  {
    name: 'redis',
    frozenClock: false,
    setup: async () => {
      redis = await startRedis();
    },
    store: () => RedisStore.connect(redis!.url),
    teardown: () => stopRedis(redis),
  },
];
const backends = allBackends.filter((b) => !(SKIP_REDIS && b.name === 'redis'));

describe.each(backends)('per-subject quotas under load ($name store)', (backend) => {
  let quotas: QuotaManager;
  let load: LoadApp;

  beforeAll(async () => {
    await backend.setup();
    quotas = new QuotaManager(await backend.store(), DEFAULTS);
    load = await startLoadApp(quotas);
  });
  afterAll(async () => {
    await load?.app.close();
    await quotas?.close();
    await backend.teardown();
  });

  it('50 concurrent clients: the throttled subject gets exactly its 20, the generous one no 429', async () => {
    const started = performance.now();
    const results = await Promise.all([
      ...Array.from({ length: CLIENTS_PER_SUBJECT }, () => client(load.port, 'throttled')),
      ...Array.from({ length: CLIENTS_PER_SUBJECT }, () => client(load.port, 'generous')),
    ]);
    const elapsed = performance.now() - started;
    const throttled = results.slice(0, CLIENTS_PER_SUBJECT).flat();
    const generous = results.slice(CLIENTS_PER_SUBJECT).flat();

    const total = CLIENTS_PER_SUBJECT * REQUESTS_PER_CLIENT;
    const admitted = throttled.filter((o) => o.status === 200).length;
    const refill = backend.frozenClock ? 0 : Math.floor((elapsed * 20) / 60_000);
    expect(admitted).toBeGreaterThanOrEqual(20);
    expect(admitted).toBeLessThanOrEqual(20 + refill);
    const refused = throttled.filter((o) => o.status === 429);
    expect(refused).toHaveLength(total - admitted);
    for (const o of refused) {
      expect(JSON.parse(o.body).error.code).toBe('rate_limit_exceeded');
      expect(Number(o.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(o.headers['x-ratelimit-limit-requests']).toBe('20');
      expect(o.headers['x-ratelimit-remaining-requests']).toBe('0');
    }
    for (const o of throttled.filter((o) => o.status === 200)) {
      expect(o.headers['x-ratelimit-limit-requests']).toBe('20');
      // Tokens fall back to the default budget, field by field.
      expect(o.headers['x-ratelimit-limit-tokens']).toBe('40000');
    }

    expect(generous.map((o) => o.status)).toEqual(Array(total).fill(200));
    expect(generous.every((o) => o.headers['x-ratelimit-limit-requests'] === '100000')).toBe(true);

    // The requests really overlapped.
    expect(load.peakInFlight()).toBeGreaterThanOrEqual(10);
  });

  it('a client that disconnects mid-request frees its concurrency slot', async () => {
    const agent = new Agent();
    const req = httpRequest({
      host: '127.0.0.1',
      port: load.port,
      path: '/v1/work',
      method: 'POST',
      agent,
      headers: { 'x-subject': 'single', 'x-work-ms': '2000', 'content-length': 0 },
    });
    req.on('error', () => {});
    req.end();
    while (load.inFlight() === 0) await sleep(5);
    const releasedBefore = load.released();
    const other = new Agent();
    // While it runs, the subject's one slot is taken.
    const busy = await post(load.port, other, 'single', 1);
    expect(busy.status).toBe(429);
    expect(JSON.parse(busy.body).error.message).toMatch(/^Too many concurrent requests/);

    req.destroy();
    while (load.released() === releasedBefore) await sleep(5);
    await sleep(20); // the release itself is a store round trip
    expect((await post(load.port, other, 'single', 1)).status).toBe(200);
    agent.destroy();
    other.destroy();
  });
});
