/**
 * Continuous batching must be invisible in the output: every sequence gets exactly the tokens it gets alone,
 * while sequences of different lengths join and leave the running batch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../service/engine/index.js';
import { type Collected, collect } from '../helpers/collect.js';
import { params, TINY_MODEL_DIR } from '../helpers/model.js';
import { RAW_PROMPTS } from '../helpers/prompts.js';

let engine: Engine;

beforeAll(async () => {
  engine = await Engine.load(TINY_MODEL_DIR, { maxBatchSize: 4, maxQueue: 8 });
});

afterAll(async () => {
  await engine?.close();
});

/** Prompts of different lengths, each with its own output length (ignoring EOS so lengths are controlled). */
const jobs = [
  { prompt: RAW_PROMPTS[0]!, maxTokens: 40 },
  { prompt: RAW_PROMPTS[9]! + RAW_PROMPTS[6]!, maxTokens: 12 },
  { prompt: RAW_PROMPTS[10]!, maxTokens: 30 },
  { prompt: 'A', maxTokens: 5 },
  { prompt: RAW_PROMPTS[1]! + RAW_PROMPTS[2]! + RAW_PROMPTS[3]!, maxTokens: 25 },
  { prompt: RAW_PROMPTS[12]!, maxTokens: 18 },
];

function request(job: (typeof jobs)[number]) {
  return {
    promptIds: engine.encodeText(job.prompt),
    params: params({ maxTokens: job.maxTokens, ignoreEos: true }),
  };
}

describe('continuous batching', () => {
  it('gives each sequence exactly its solo greedy tokens while others join and leave', async () => {
    const alone: Collected[] = [];
    for (const job of jobs) alone.push(await collect(engine.submit(request(job))));
    const before = { ...engine.counters };

    // Staggered arrivals: each job is submitted when the previous one has produced a few tokens, so it joins
    // a batch already decoding; short jobs leave while long ones continue; the 5th and 6th wait in the queue.
    const together: Promise<Collected>[] = [];
    const launch = (i: number) => {
      if (i >= jobs.length) return;
      let launched = false;
      together[i] = collect(engine.submit(request(jobs[i]!)), (n) => {
        if (n === 3 && !launched) {
          launched = true;
          launch(i + 1);
        }
      });
    };
    launch(0);
    await new Promise((r) => setTimeout(r, 0));
    const results: Collected[] = [];
    for (let i = 0; i < jobs.length; i++) {
      while (!together[i]) await new Promise((r) => setTimeout(r, 5));
      results.push(await together[i]!);
    }

    results.forEach((r, i) => {
      expect(r.error).toBeUndefined();
      expect(r.finish?.finishReason).toBe('length');
      expect(r.tokens).toHaveLength(jobs[i]!.maxTokens);
      expect(r.tokens, `job ${i}`).toEqual(alone[i]!.tokens);
      expect(r.text).toBe(alone[i]!.text);
    });
    // The decode steps really were shared: batches of up to the configured maximum ran.
    expect(engine.counters.maxDecodeBatch).toBe(4);
    const steps = engine.counters.decodeSteps - before.decodeSteps;
    const rows = engine.counters.decodedRows - before.decodedRows;
    expect(rows / steps).toBeGreaterThan(1.5);
  });

  it('refuses at once when batch and queue are full, and recovers', async () => {
    const small = await Engine.load(TINY_MODEL_DIR, { maxBatchSize: 1, maxQueue: 1 });
    try {
      const long = params({ maxTokens: 200, ignoreEos: true });
      const ids = small.encodeText('And God said');
      const a = collect(small.submit({ promptIds: ids, params: long }));
      const b = collect(small.submit({ promptIds: ids, params: long }));
      expect(() => small.submit({ promptIds: ids, params: long })).toThrow(/at capacity/);
      expect(small.stats().running + small.stats().waiting).toBe(2);
      await Promise.all([a, b]);
      const c = await collect(small.submit({ promptIds: ids, params: params({ maxTokens: 3 }) }));
      expect(c.tokens.length).toBeGreaterThan(0);
    } finally {
      await small.close();
    }
  });

  it('an aborted sequence stops within one decode step and frees its slot', async () => {
    const controller = new AbortController();
    const ids = engine.encodeText('In the beginning');
    let atAbort = 0;
    const aborted = collect(
      engine.submit(
        { promptIds: ids, params: params({ maxTokens: 400, ignoreEos: true }) },
        controller.signal,
      ),
      (n) => {
        if (n === 5) {
          atAbort = n;
          controller.abort();
        }
      },
    );
    const result = await aborted;
    expect(result.finish?.finishReason).toBe('abort');
    // Tokens already in flight when abort() ran: at most the one step that was running.
    expect(result.tokens.length - atAbort).toBeLessThanOrEqual(1);
    expect(engine.stats()).toEqual({ running: 0, waiting: 0 });
  });

  it('leaving the loop early cancels the generation', async () => {
    const stream = engine.submit({
      promptIds: engine.encodeText('The LORD'),
      params: params({ maxTokens: 400, ignoreEos: true }),
    });
    let n = 0;
    for await (const event of stream) {
      if (event.type === 'token' && ++n === 2) break;
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(engine.stats()).toEqual({ running: 0, waiting: 0 });
  });
});
