/**
 * Prefix reuse in the scheduler (in-process, the real tiny model): a prompt that starts with an earlier prompt
 * and its answer (a conversation resent with one more turn) prefills only the new tokens, and generates exactly
 * what a scheduler without the prefix cache generates.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { BatchScheduler } from '../../service/engine/batch.js';
import type { DecoderModel } from '../../service/engine/onnx.js';
import { Sequence } from '../../service/engine/sequence.js';
import type { TextTokenizer } from '../../service/engine/tokenizer.js';
import { loadTinyInProcess } from '../helpers/in-process-model.js';
import { params } from '../helpers/model.js';

let model: DecoderModel;
let tokenizer: TextTokenizer;

beforeAll(async () => {
  ({ model, tokenizer } = await loadTinyInProcess());
});

/** Runs prompts one after another on one scheduler; returns each one's tokens and the tokens each prefill ran. */
async function runInTurn(prompts: (previous: number[][]) => number[][], cacheBytes?: number) {
  const prefillTokens: number[] = [];
  const counting: DecoderModel = {
    ...model,
    emptyCache: (b) => model.emptyCache(b),
    allocKv: (n) => model.allocKv(n),
    forward: (ids, mask, pos, tokens, cache) => {
      if (tokens > 1) prefillTokens.push(tokens); // decode steps run one token a row; these prompts have more
      return model.forward(ids, mask, pos, tokens, cache);
    },
  };
  const outputs: number[][] = [];
  let done: () => void = () => {};
  const scheduler = new BatchScheduler(
    counting,
    4,
    (batch) => {
      for (const [, events] of batch) {
        for (const event of events) {
          if (event.type === 'token') outputs.at(-1)!.push(event.tokenId);
          if (event.type === 'finish' || event.type === 'error') done();
        }
      }
    },
    undefined,
    undefined,
    cacheBytes,
  );
  const running = scheduler.run();
  const limits = { contextLength: 512, eosTokenIds: new Set<number>() };
  for (let turn = 0; turn < 2; turn++) {
    const promptIds = prompts(outputs)[turn]!;
    outputs.push([]);
    const finished = new Promise<void>((resolve) => {
      done = resolve;
    });
    scheduler.submit(
      new Sequence(
        turn,
        { promptIds, params: params({ maxTokens: 20, ignoreEos: true }) },
        tokenizer,
        limits,
      ),
    );
    await finished;
  }
  scheduler.close();
  await running;
  return { outputs, prefillTokens };
}

describe('prefix reuse', () => {
  it('a resent conversation prefills only its new turn, with the same tokens as without reuse', async () => {
    const first = tokenizer.encode('In the beginning God created the heaven and the earth.', false);
    const more = tokenizer.encode(' And the earth was without form', false);
    const prompts = (previous: number[][]) => [first, [...first, ...(previous[0] ?? []), ...more]];
    const reused = await runInTurn(prompts);
    const fresh = await runInTurn(prompts, 0);
    expect(reused.outputs).toEqual(fresh.outputs);
    expect(fresh.prefillTokens).toEqual([first.length, first.length + 20 + more.length]);
    // The first turn's prompt and 19 of its 20 tokens (the last was never fed back) come from the cache.
    expect(reused.prefillTokens).toEqual([first.length, 1 + more.length]);
  });

  it('the same prompt again, while another row decodes, rides in its decode step: no forward of its own', async () => {
    const prompt = tokenizer.encode('In the beginning God created the heaven and the earth.', false);
    const forwards: number[] = []; // the batch size of every forward
    const counting: DecoderModel = {
      ...model,
      emptyCache: (b) => model.emptyCache(b),
      allocKv: (n) => model.allocKv(n),
      forward: (ids, mask, pos, tokens, cache) => {
        forwards.push(cache.batch);
        return model.forward(ids, mask, pos, tokens, cache);
      },
    };
    const tokens = new Map<number, number[]>();
    let finished = 0;
    let allDone: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      allDone = resolve;
    });
    const limits = { contextLength: 512, eosTokenIds: new Set<number>() };
    const sequence = (id: number, maxTokens: number) =>
      new Sequence(
        id,
        { promptIds: prompt, params: params({ maxTokens, ignoreEos: true }) },
        tokenizer,
        limits,
      );
    let atJoin = -1;
    const scheduler: BatchScheduler = new BatchScheduler(counting, 4, (batch) => {
      for (const [id, events] of batch) {
        for (const event of events) {
          if (event.type === 'token') tokens.set(id, [...(tokens.get(id) ?? []), event.tokenId]);
          if (event.type !== 'token' && ++finished === 2) allDone();
        }
      }
      // Once the first sequence has 5 tokens, the same prompt arrives.
      if (id1Tokens() === 5 && atJoin === -1) {
        atJoin = forwards.length;
        scheduler.submit(sequence(2, 10));
      }
    });
    const id1Tokens = () => tokens.get(1)?.length ?? 0;
    const running = scheduler.run();
    scheduler.submit(sequence(1, 30));
    await done;
    scheduler.close();
    await running;
    // Every forward after the second request arrived was a decode step of both rows, until it finished.
    expect(forwards.slice(atJoin, atJoin + 10)).toEqual(Array(10).fill(2));
    expect(tokens.get(2)).toEqual(tokens.get(1)!.slice(0, 10));
  });
});
