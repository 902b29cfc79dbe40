/**
 * The scheduler in-process (no worker), so a test can act between two decode steps and see exactly what the
 * next step does: a cancelled row is gone from the very next batched step.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { BatchScheduler } from '../../service/engine/batch.js';
import type { DecoderModel } from '../../service/engine/onnx.js';
import { Sequence } from '../../service/engine/sequence.js';
import type { TextTokenizer } from '../../service/engine/tokenizer.js';
import type { GenerationEvent } from '../../service/engine/types.js';
import { loadTinyInProcess } from '../helpers/in-process-model.js';
import { params } from '../helpers/model.js';

let model: DecoderModel;
let tokenizer: TextTokenizer;

beforeAll(async () => {
  ({ model, tokenizer } = await loadTinyInProcess());
});

describe('BatchScheduler', () => {
  it('a cancelled row leaves before the next decode step; the others keep decoding', async () => {
    const log: { step: number; decodeRows: number; id: number; event: GenerationEvent }[] = [];
    let step = 0;
    let scheduler: BatchScheduler | undefined;
    let cancelledAtStep = -1;
    let finished = 0;
    scheduler = new BatchScheduler(model, 4, (batch, decodeRows) => {
      if (decodeRows > 0) step++;
      for (const [id, events] of batch) {
        for (const event of events) {
          log.push({ step, decodeRows, id, event });
          if (event.type === 'finish' && ++finished === 2) scheduler?.close();
        }
      }
      const tokensOfA = log.filter((l) => l.id === 1 && l.event.type === 'token').length;
      if (tokensOfA === 5 && cancelledAtStep === -1) {
        cancelledAtStep = step;
        scheduler?.cancel(1);
      }
    });
    const limits = { contextLength: 512, eosTokenIds: new Set<number>() };
    const long = params({ maxTokens: 30, ignoreEos: true });
    scheduler.submit(
      new Sequence(
        1,
        { promptIds: tokenizer.encode('In the beginning', false), params: long },
        tokenizer,
        limits,
      ),
    );
    scheduler.submit(
      new Sequence(
        2,
        { promptIds: tokenizer.encode('And God said', false), params: long },
        tokenizer,
        limits,
      ),
    );
    await scheduler.run();

    const ofA = log.filter((l) => l.id === 1);
    expect(ofA.filter((l) => l.event.type === 'token')).toHaveLength(5);
    const abort = ofA.find((l) => l.event.type === 'finish')!;
    expect(abort.event).toMatchObject({ finishReason: 'abort', completionTokens: 5 });
    // The abort is reported before any further decode step ran…
    expect(abort.step).toBe(cancelledAtStep);
    // …and every later step decoded only the remaining row.
    const later = log.filter((l) => l.step > cancelledAtStep && l.decodeRows > 0);
    expect(later.length).toBeGreaterThan(0);
    for (const l of later) expect(l.decodeRows).toBe(1);
    expect(log.filter((l) => l.id === 2 && l.event.type === 'token')).toHaveLength(30);
  });
});

describe('BatchScheduler cancel before the first token', () => {
  const limits = { contextLength: 512, eosTokenIds: new Set<number>() };
  const long = params({ maxTokens: 30, ignoreEos: true });
  const sequence = (id: number, prompt: string) =>
    new Sequence(id, { promptIds: tokenizer.encode(prompt, false), params: long }, tokenizer, limits);

  /** Runs the scheduler until every submitted sequence finished; `onScheduled` may cancel. */
  async function run(
    prompts: string[],
    onScheduled: (scheduler: BatchScheduler, id: number) => void,
  ): Promise<Map<number, GenerationEvent[]>> {
    const events = new Map<number, GenerationEvent[]>();
    let finished = 0;
    const scheduler: BatchScheduler = new BatchScheduler(
      model,
      4,
      (batch) => {
        for (const [id, list] of batch) {
          events.set(id, [...(events.get(id) ?? []), ...list]);
          for (const e of list) if (e.type === 'finish' && ++finished === prompts.length) scheduler.close();
        }
      },
      (id) => onScheduled(scheduler, id),
    );
    prompts.forEach((p, i) => {
      scheduler.submit(sequence(i + 1, p));
    });
    await scheduler.run();
    return events;
  }

  it('a sequence cancelled as its prefill starts ends as an abort with no tokens', async () => {
    const events = await run(['In the beginning', 'And God said'], (scheduler, id) => {
      if (id === 1) scheduler.cancel(1);
    });
    expect(events.get(1)).toEqual([expect.objectContaining({ type: 'finish', finishReason: 'abort' })]);
    expect(events.get(1)![0]).toMatchObject({ completionTokens: 0 });
    expect(events.get(2)!.filter((e) => e.type === 'token')).toHaveLength(30);
  });

  it('a sequence cancelled after its prefill, while it waits to join the batch, never decodes', async () => {
    // With no rows running, several newcomers are prefilled in one round: 1 is prefilled (one token) and
    // joining when 2's prefill starts.
    const events = await run(['In the beginning', 'And God said'], (scheduler, id) => {
      if (id === 2) scheduler.cancel(1);
    });
    const ofA = events.get(1)!;
    expect(ofA.filter((e) => e.type === 'token').length).toBeLessThanOrEqual(1);
    expect(ofA.at(-1)).toMatchObject({ type: 'finish', finishReason: 'abort' });
    expect(events.get(2)!.filter((e) => e.type === 'token')).toHaveLength(30);
  });
});

describe('BatchScheduler flow control (pause / resume)', () => {
  const limits = { contextLength: 512, eosTokenIds: new Set<number>() };
  const long = params({ maxTokens: 30, ignoreEos: true });
  const sequence = (id: number, prompt: string) =>
    new Sequence(id, { promptIds: tokenizer.encode(prompt, false), params: long }, tokenizer, limits);
  const tokens = (events: GenerationEvent[]) =>
    events.flatMap((e) => (e.type === 'token' ? [e.tokenId] : []));

  /**
   * Runs A (id 1) and B (id 2) together; `act` sees every emitted batch and may pause, resume or cancel.
   * Returns each id's events, with the decode batch size of the step that produced them.
   */
  async function run(
    act: (scheduler: BatchScheduler, events: Map<number, GenerationEvent[]>, decodeRows: number) => void,
  ) {
    const events = new Map<number, GenerationEvent[]>();
    const rowsOfA: number[] = [];
    const parkedLog: [number, boolean][] = [];
    let finished = 0;
    const scheduler: BatchScheduler = new BatchScheduler(
      model,
      4,
      (batch, decodeRows) => {
        for (const [id, list] of batch) {
          events.set(id, [...(events.get(id) ?? []), ...list]);
          if (id === 1 && decodeRows > 0) rowsOfA.push(decodeRows);
          for (const e of list) if (e.type !== 'token' && ++finished === 2) scheduler.close();
        }
        act(scheduler, events, decodeRows);
      },
      () => {},
      (id, parked) => parkedLog.push([id, parked]),
    );
    scheduler.submit(sequence(1, 'In the beginning'));
    scheduler.submit(sequence(2, 'And God said'));
    await scheduler.run();
    return { events, rowsOfA, parkedLog, scheduler };
  }

  it('a paused sequence leaves the batch, decodes nothing, and resumes with the same tokens', async () => {
    const reference = await run(() => {});
    let pausedAt = -1;
    let resumed = false;
    let decodedWhilePaused = 0;
    const { events, parkedLog } = await run((scheduler, all, decodeRows) => {
      const ofA = tokens(all.get(1) ?? []).length;
      const ofB = tokens(all.get(2) ?? []).length;
      if (ofA === 5 && pausedAt === -1) {
        pausedAt = ofB;
        scheduler.pause(1);
      } else if (pausedAt !== -1 && !resumed) {
        if (scheduler.stats().paused === 1 && decodeRows > 0) decodedWhilePaused++;
        // B decodes on alone for 10 steps, then A carries on where it stopped.
        if (ofB >= pausedAt + 10) {
          resumed = true;
          scheduler.resume(1);
        }
      }
    });
    expect(resumed).toBe(true);
    expect(parkedLog).toEqual([
      [1, true],
      [1, false],
    ]);
    // While parked, A got no tokens: it still has only what it had when paused (+ one step in flight at most).
    expect(decodedWhilePaused).toBeGreaterThanOrEqual(9);
    // Its cache row survived the trip out of the batch: greedy decoding gives exactly the unpaused tokens.
    expect(tokens(events.get(1)!)).toEqual(tokens(reference.events.get(1)!));
    expect(tokens(events.get(2)!)).toEqual(tokens(reference.events.get(2)!));
    expect(events.get(1)!.at(-1)).toMatchObject({
      type: 'finish',
      finishReason: 'length',
      completionTokens: 30,
    });
  });

  it('a parked sequence that is cancelled ends at once as an abort', async () => {
    let paused = false;
    let cancelled = false;
    let tokensWhenCancelled = -1;
    const { events, scheduler } = await run((s, all) => {
      const ofA = tokens(all.get(1) ?? []).length;
      if (ofA === 3 && !paused) {
        paused = true;
        s.pause(1);
      } else if (paused && !cancelled && s.stats().paused === 1) {
        cancelled = true;
        tokensWhenCancelled = ofA;
        s.cancel(1);
      }
    });
    expect(cancelled).toBe(true);
    const ofA = events.get(1)!;
    expect(tokens(ofA)).toHaveLength(tokensWhenCancelled);
    expect(ofA.at(-1)).toMatchObject({ type: 'finish', finishReason: 'abort' });
    expect(scheduler.stats().paused).toBe(0);
    expect(tokens(events.get(2)!)).toHaveLength(30);
  });
});
