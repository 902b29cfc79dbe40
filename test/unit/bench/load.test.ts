/**
 * The level driver's bookkeeping with an instant request (a deliberate double: this is about counting and the
 * in-flight cap, not HTTP, which test/integration/bench.test.ts covers against the real server). An infinite rate
 * sends without sleeping, so nothing here depends on the clock.
 */
import { describe, expect, it } from 'vitest';
import type { RequestResult } from '../../../service/bench/client.js';
import { runLevel } from '../../../service/bench/load.js';

function instant(): { send: (i: number) => Promise<RequestResult>; seen: number[]; peak: () => number } {
  let inFlight = 0;
  let peak = 0;
  const seen: number[] = [];
  return {
    seen,
    peak: () => peak,
    send: async (i) => {
      seen.push(i);
      inFlight += 1;
      peak = Math.max(peak, inFlight);
      await new Promise((resolve) => setImmediate(resolve));
      inFlight -= 1;
      return { ok: true, status: 200, ttft: 0, e2e: 0, itl: [], outputTokens: 1 };
    },
  };
}

describe('runLevel', () => {
  it('closed loop: exactly N requests, numbered 0..N-1, never more than c in flight', async () => {
    const s = instant();
    const run = await runLevel({
      shape: { kind: 'concurrency', concurrency: 3 },
      stop: { requests: 10 },
      seed: 0,
      send: s.send,
    });
    expect(run.results).toHaveLength(10);
    expect([...s.seen].sort((a, b) => a - b)).toEqual([...Array(10).keys()]);
    expect(run.maxInFlight).toBe(3);
    expect(s.peak()).toBe(3);
  });

  it('open loop at an infinite rate: the --max-concurrency cap holds', async () => {
    const s = instant();
    const run = await runLevel({
      shape: { kind: 'rate', rate: Number.POSITIVE_INFINITY, burstiness: 1, maxConcurrency: 4 },
      stop: { requests: 25 },
      seed: 0,
      send: s.send,
    });
    expect(run.results).toHaveLength(25);
    expect(run.maxInFlight).toBe(4);
  });

  it('open loop without a cap sends all at once', async () => {
    const s = instant();
    const run = await runLevel({
      shape: { kind: 'rate', rate: Number.POSITIVE_INFINITY, burstiness: 1 },
      stop: { requests: 12 },
      seed: 0,
      send: s.send,
    });
    expect(run.maxInFlight).toBe(12);
  });
});
