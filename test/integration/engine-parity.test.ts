/**
 * Greedy output of our engine against Transformers.js on the same ONNX file: token for token. This is what
 * proves the KV-cache handling, position ids and attention mask are those the export expects.
 */

import { basename, dirname } from 'node:path';
import { AutoModelForCausalLM, AutoTokenizer, env, Tensor } from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../service/engine/index.js';
import { collect } from '../helpers/collect.js';
import { params, TINY_MODEL_DIR } from '../helpers/model.js';
import { CHAT_PROMPTS, RAW_PROMPTS } from '../helpers/prompts.js';

const NEW_TOKENS = 24;

let engine: Engine;
// biome-ignore lint/suspicious/noExplicitAny: Transformers.js's model classes are not exported as types.
let reference: any;
// biome-ignore lint/suspicious/noExplicitAny: as above
let referenceTokenizer: any;

beforeAll(async () => {
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = dirname(TINY_MODEL_DIR);
  const name = basename(TINY_MODEL_DIR);
  reference = await AutoModelForCausalLM.from_pretrained(name, { dtype: 'fp32', local_files_only: true });
  referenceTokenizer = await AutoTokenizer.from_pretrained(name, { local_files_only: true });
  engine = await Engine.load(TINY_MODEL_DIR, { maxBatchSize: 1 });
});

afterAll(async () => {
  await engine?.close();
  await reference?.dispose();
});

async function referenceGreedy(ids: number[]): Promise<number[]> {
  const input = new Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]);
  const mask = new Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]);
  const out = await reference.generate({
    input_ids: input,
    attention_mask: mask,
    max_new_tokens: NEW_TOKENS,
    do_sample: false,
  });
  return (out.tolist()[0] as bigint[]).slice(ids.length).map(Number);
}

const cases = [
  ...RAW_PROMPTS.map((p) => ({ label: `raw ${JSON.stringify(p)}`, ids: () => engine.encodeText(p) })),
  ...CHAT_PROMPTS.map((m) => ({
    label: `chat ${JSON.stringify(m.at(-1)!.content)}`,
    ids: () => engine.encodeChat(m),
  })),
];

describe('greedy parity with Transformers.js', () => {
  it('covers at least 20 prompts, with CJK and emoji', () => {
    expect(cases.length).toBeGreaterThanOrEqual(20);
    expect(RAW_PROMPTS.some((p) => /\p{Script=Han}/u.test(p))).toBe(true);
    expect(RAW_PROMPTS.some((p) => /\p{Extended_Pictographic}/u.test(p))).toBe(true);
  });

  it.each(cases)('$label', async ({ ids }) => {
    const promptIds = ids();
    // Both sides must start from the same ids: our tokenizer and template agree with Transformers.js's.
    const theirs = referenceTokenizer.encode(engine.tokenizer.decode(promptIds, false), {
      add_special_tokens: false,
    });
    expect(promptIds).toEqual(theirs);
    const ours = await collect(engine.submit({ promptIds, params: params({ maxTokens: NEW_TOKENS }) }));
    expect(ours.error).toBeUndefined();
    expect(ours.tokens).toEqual(await referenceGreedy(promptIds));
  });
});
