/**
 * `npx tsx test/grammar-bench.ts` — what constrained decoding costs. Engine tokens/s with and without a
 * json_schema constraint at batch 1 and 8 (same prompts, greedy, same max_tokens), their ratio, and the mask
 * overhead per token measured alone (mask + accept replayed over a real constrained generation). Prints
 * figures and ratios; asserts nothing (timings on shared machines are noisy).
 *
 * Model: SmolLM2-135M-Instruct int8 when built (a real 49,152-token vocabulary), else the bundled toy (2,048).
 * Env: BENCH_MODEL_DIR, BENCH_GRAPH (default onnx/model_quantized.onnx for SmolLM2), BENCH_NEW_TOKENS (64),
 * BENCH_THREADS (onnxruntime intra-op threads, 2).
 */
import '../service/engine/ort-env.js';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { GrammarBackend } from '../service/engine/grammar/backend.js';
import type { ConstraintSpec } from '../service/engine/grammar/constraint.js';
import { grammarVocabulary } from '../service/engine/grammar/vocabulary.js';
import { Engine } from '../service/engine/index.js';
import { loadModelFiles } from '../service/engine/model-files.js';
import { collect } from './helpers/collect.js';
import { params, TINY_MODEL_DIR } from './helpers/model.js';

const smol = join(
  process.env.CHATMIRROR_CACHE ?? join(homedir(), '.cache/chatmirror'),
  'models/smollm2-135m-instruct',
);
const modelDir =
  process.env.BENCH_MODEL_DIR ?? (existsSync(join(smol, 'SHA256SUMS')) ? smol : TINY_MODEL_DIR);
const graphFile =
  process.env.BENCH_GRAPH ?? (modelDir === TINY_MODEL_DIR ? 'onnx/model.onnx' : 'onnx/model_quantized.onnx');
const newTokens = Number(process.env.BENCH_NEW_TOKENS ?? 64);
const threads = Number(process.env.BENCH_THREADS ?? 2);

// Long enough that most rows run to max_tokens: a list of records.
const SCHEMA = {
  type: 'object',
  properties: {
    people: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string', maxLength: 16 },
          age: { type: 'integer', minimum: 0, maximum: 120 },
          city: { type: 'string', maxLength: 16 },
        },
        required: ['name', 'age', 'city'],
      },
      minItems: 8,
      maxItems: 8,
    },
  },
  required: ['people'],
};
const spec: ConstraintSpec = { kind: 'json_schema', schema: JSON.stringify(SCHEMA) };
const PROMPTS = [
  'List eight people with their age and city as JSON.',
  'Give me a JSON list of eight people.',
  'Eight people, JSON, please.',
  'Who lives where? Answer in JSON.',
  'Make up eight people as JSON.',
  'JSON: eight people, ages and cities.',
  'Describe eight people in JSON.',
  'Eight records of people as JSON.',
];

const engine = await Engine.load(modelDir, { graphFile, intraOpThreads: threads, maxBatchSize: 8 });
console.log(
  `model ${engine.info.name} (${graphFile}), vocab ${engine.info.vocabSize}, ${newTokens} new tokens`,
);

let t0 = performance.now();
await engine.prepareConstraint(spec);
console.log(`compile (first, cold): ${(performance.now() - t0).toFixed(0)} ms`);
t0 = performance.now();
await engine.prepareConstraint(spec);
console.log(`compile (cached): ${(performance.now() - t0).toFixed(2)} ms`);

async function run(batch: number, constrained: boolean): Promise<{ rate: number; tokens: number[][] }> {
  const jobs = PROMPTS.slice(0, batch).map((content) => ({
    promptIds: engine.encodeChat([{ role: 'user', content }]),
    params: params({ maxTokens: newTokens, ignoreEos: !constrained }),
    constraint: constrained ? spec : undefined,
  }));
  const start = performance.now();
  const outs = await Promise.all(jobs.map((job) => collect(engine.submit(job))));
  const seconds = (performance.now() - start) / 1000;
  const tokens = outs.reduce((sum, o) => sum + o.tokens.length, 0);
  return { rate: tokens / seconds, tokens: outs.map((o) => o.tokens) };
}

let replay: number[] = [];
for (const batch of [1, 8]) {
  await run(batch, false); // warm-up
  const rates: { free: number[]; json: number[] } = { free: [], json: [] };
  for (let i = 0; i < 3; i++) {
    rates.free.push((await run(batch, false)).rate);
    const constrained = await run(batch, true);
    rates.json.push(constrained.rate);
    replay = constrained.tokens[0]!;
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[1]!;
  const free = med(rates.free);
  const json = med(rates.json);
  console.log(
    `batch ${batch}: free ${free.toFixed(1)} tok/s, json_schema ${json.toFixed(1)} tok/s, ratio ${(json / free).toFixed(3)}`,
  );
}
await engine.close();

// The mask alone, on this thread: replay the constrained row's own tokens through a fresh matcher.
const files = await loadModelFiles(modelDir, graphFile);
const backend = new GrammarBackend(
  grammarVocabulary(files.tokenizerJson, engine.info.vocabSize),
  engine.info.eosTokenIds,
);
const logits = new Float32Array(engine.info.vocabSize);
const rounds = 20;
let steps = 0;
await backend.prepare(spec); // compiled outside the timing
t0 = performance.now();
for (let r = 0; r < rounds; r++) {
  const row = await backend.row(spec);
  for (const id of replay) {
    row.mask(logits);
    if (!row.accept(id)) break;
    steps++;
  }
  row.dispose();
}
const perToken = ((performance.now() - t0) * 1000) / steps;
console.log(
  `mask + accept: ${perToken.toFixed(1)} µs per token (${steps} steps, vocab ${engine.info.vocabSize})`,
);
