/**
 * `npx tsx test/bench/perplexity.ts` — perplexity of the fp32 and int8 graphs of a model on a fixed public-domain
 * text, and their ratio. A figure for the note, never a pass/fail: issue 11 asks that int8 lose at most 5%.
 *
 * Text: test/fixtures/models/perplexity-kjv-ruth-1.txt, the book of Ruth, chapter 1 (King James Version, public
 * domain), as Debian's bible-kjv 4.38 prints it (`bible -f Ruth 1:1-1:22`, verse references removed, one verse a
 * line). Tokenized with the engine's tokenizer (equal to Python transformers'), no BOS; one forward pass over the
 * whole text (it fits the context), every token after the first scored: exp(mean negative log-likelihood).
 *
 * Options (env): PPL_MODEL_DIR (default ~/.cache/chatmirror/models/smollm2-135m-instruct), PPL_TEXT (a text file),
 * PPL_THREADS (onnxruntime intra-op threads, default 0 = one per core).
 */
import '../../service/engine/ort-env.js';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { Engine } from '../../service/engine/index.js';
import { RawDecoder } from './runners.js';

const cache = process.env.CHATMIRROR_CACHE ?? join(homedir(), '.cache/chatmirror');
const modelDir = process.env.PPL_MODEL_DIR ?? join(cache, 'models/smollm2-135m-instruct');
const textFile =
  process.env.PPL_TEXT ??
  fileURLToPath(new URL('../fixtures/models/perplexity-kjv-ruth-1.txt', import.meta.url));
const threads = Number(process.env.PPL_THREADS ?? 0);
const GRAPHS: [string, string][] = [
  ['fp32', 'onnx/model.onnx'],
  ['int8', 'onnx/model_quantized.onnx'],
];

async function perplexity(graphFile: string, ids: number[]): Promise<{ ppl: number; nll: number }> {
  const session = await ort.InferenceSession.create(join(modelDir, graphFile), {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
  const decoder = new RawDecoder(session);
  const n = ids.length;
  // keep 0: logits for every position (a graph with num_logits_to_keep otherwise gives only the last ones).
  const feeds = decoder.feeds(ids.map(BigInt), 0, decoder.emptyPast(), 0);
  const out = await session.run(feeds, ['logits']);
  const logits = out.logits!.data as Float32Array;
  const vocab = logits.length / n;
  let total = 0;
  for (let t = 0; t < n - 1; t++) {
    const row = logits.subarray(t * vocab, (t + 1) * vocab);
    let max = -Infinity;
    for (const x of row) if (x > max) max = x;
    let sum = 0;
    for (const x of row) sum += Math.exp(x - max);
    total += max + Math.log(sum) - row[ids[t + 1]!]!; // -log softmax(row)[next]
  }
  await session.release();
  const nll = total / (n - 1);
  return { ppl: Math.exp(nll), nll };
}

const text = readFileSync(textFile, 'utf8');
const engine = await Engine.load(modelDir, { graphFile: 'onnx/model_quantized.onnx', intraOpThreads: 1 });
const ids = engine.encodeText(text);
await engine.close();
console.log(
  `model ${modelDir}\ntext ${textFile}: ${text.length} characters, ${ids.length} tokens (${ids.length - 1} scored)`,
);
const results = new Map<string, number>();
for (const [label, graph] of GRAPHS) {
  const t0 = performance.now();
  const { ppl, nll } = await perplexity(graph, ids);
  results.set(label, ppl);
  console.log(
    `${label.padEnd(5)} ${graph.padEnd(28)} perplexity ${ppl.toFixed(3).padStart(9)}  (mean NLL ${nll.toFixed(4)} nats, ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );
}
const ratio = results.get('int8')! / results.get('fp32')!;
console.log(
  `int8 / fp32 perplexity ratio ${ratio.toFixed(4)} (${((ratio - 1) * 100).toFixed(2)}%; issue 11 allows ≤ 5%)`,
);
