/**
 * Per-subject limits under load, on the real app and model: 50 concurrent clients over real connections, two
 * subjects; the throttled one gets its budget and no more than the bucket refills meanwhile, the other is never
 * refused. The app's store runs on the real clock, so the count is checked against what a continuously
 * refilling bucket promises over the time the burst really took (on a loaded machine that can be seconds,
 * and each 3 s refills one request at 20 a minute), not against exactly 20.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, stopApp, type TestApp } from '../../helpers/app.js';

const CLIENTS = 50;
const REQUESTS_PER_CLIENT = 2;
const THROTTLED_RPM = 20;

let t: TestApp;
let base: string;

beforeAll(async () => {
  t = await startApp({}, { maxBatchSize: 16, maxQueue: 64 });
  base = await t.app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => stopApp(t));

describe('per-subject quotas under 50 concurrent clients', () => {
  it('hold for the throttled subject and never touch the other', async () => {
    const throttled = await t.token({ subject: 'throttled', limits: { requestsPerMinute: THROTTLED_RPM } });
    const free = await t.token({ subject: 'free' });
    const body = JSON.stringify({
      model: t.engine.info.name,
      messages: [{ role: 'user', content: 'Continue: And God said' }],
      max_tokens: 2,
    });
    const statuses = { throttled: [] as number[], free: [] as number[] };
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, i) => {
        const who = i % 2 === 0 ? 'throttled' : 'free';
        for (let r = 0; r < REQUESTS_PER_CLIENT; r++) {
          const response = await fetch(`${base}/v1/chat/completions`, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              authorization: `Bearer ${who === 'throttled' ? throttled : free}`,
              connection: 'close',
            },
            body,
          });
          await response.arrayBuffer();
          statuses[who].push(response.status);
        }
      }),
    );
    const elapsedMs = performance.now() - started;
    const count = (list: number[], status: number) => list.filter((s) => s === status).length;
    expect(statuses.throttled).toHaveLength(CLIENTS);
    // The bucket starts full (20) and refills 20 per 60 s: over elapsedMs at most that many more fit.
    const mostAdmitted = THROTTLED_RPM + Math.floor((elapsedMs * THROTTLED_RPM) / 60_000);
    const admitted = count(statuses.throttled, 200);
    expect(admitted).toBeGreaterThanOrEqual(THROTTLED_RPM);
    expect(admitted).toBeLessThanOrEqual(mostAdmitted);
    expect(count(statuses.throttled, 429)).toBe(CLIENTS - admitted);
    expect(count(statuses.free, 200)).toBe(CLIENTS);
  });
});
