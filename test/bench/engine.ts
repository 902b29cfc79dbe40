/**
 * `npm run bench:engine` — engine throughput on the bench model against two baselines measured in the same
 * run: a bare onnxruntime-node greedy loop (the floor of what any JS engine can do) and Transformers.js
 * `generate`. Prints figures and ratios; nothing here asserts, because timings on shared machines are noisy.
 *
 * Options (env): BENCH_MODEL_DIR (default ~/.cache/chatmirror/models/bench-llama, built on demand),
 * BENCH_GRAPH (onnx/model.onnx or onnx/model_quantized.onnx), BENCH_NEW_TOKENS (64), BENCH_REPEATS (3).
 */
import '../../service/engine/ort-env.js';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from '../../service/engine/index.js';
import { collect } from '../helpers/collect.js';
import { params } from '../helpers/model.js';
import { rawLoop, transformersJs } from './runners.js';

const cache = process.env.CHATMIRROR_CACHE ?? join(homedir(), '.cache/chatmirror');
const modelDir = process.env.BENCH_MODEL_DIR ?? join(cache, 'models/bench-llama');
const graphFile = process.env.BENCH_GRAPH ?? 'onnx/model.onnx';
const newTokens = Number(process.env.BENCH_NEW_TOKENS ?? 64);
const repeats = Number(process.env.BENCH_REPEATS ?? 3);
const concurrencies = [1, 4, 8, 16];
const PROMPT =
  'In the beginning God created the heaven and the earth. And the earth was without form, and void;';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Runs `fn` once to warm up, then `repeats` times; returns the median tokens/s. */
async function measure(tokens: number, fn: () => Promise<void>): Promise<number> {
  await fn();
  const rates: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await fn();
    rates.push(tokens / ((performance.now() - t0) / 1000));
  }
  return median(rates);
}

async function main(): Promise<void> {
  if (!existsSync(join(modelDir, graphFile))) {
    const build = fileURLToPath(new URL('../fixtures/models/build.sh', import.meta.url));
    console.log(`bench model missing at ${modelDir}; building it with ${build} bench`);
    execFileSync('bash', [build, 'bench', modelDir], { stdio: 'inherit' });
  }
  const engine = await Engine.load(modelDir, { graphFile, maxBatchSize: 16, maxQueue: 16 });
  const promptIds = engine.encodeText(PROMPT);
  const request = { promptIds, params: params({ maxTokens: newTokens, ignoreEos: true }) };
  console.log(
    `model ${modelDir} (${graphFile}): ${engine.info.numLayers} layers, vocab ${engine.info.vocabSize}; ` +
      `prompt ${promptIds.length} tokens, ${newTokens} new tokens, median of ${repeats}`,
  );

  const loop = await rawLoop(join(modelDir, graphFile));
  const raw = await measure(newTokens, async () => {
    await loop(promptIds, newTokens);
  });
  const rows: [string, number][] = [['raw onnxruntime-node loop, batch 1', raw]];
  const engineRates = new Map<number, number>();
  for (const c of concurrencies) {
    const rate = await measure(c * newTokens, async () => {
      await Promise.all(Array.from({ length: c }, () => collect(engine.submit(request))));
    });
    engineRates.set(c, rate);
    rows.push([`chatmirror engine, concurrency ${c} (aggregate)`, rate]);
  }
  await engine.close();
  const generate = await transformersJs(modelDir, graphFile.includes('quantized') ? 'q8' : 'fp32');
  const tjs = await measure(newTokens, async () => {
    await generate(promptIds, newTokens);
  });
  rows.push(['Transformers.js generate, batch 1', tjs]);

  for (const [label, rate] of rows)
    console.log(`${label.padEnd(48)} ${rate.toFixed(1).padStart(8)} tokens/s`);
  const b1 = engineRates.get(1)!;
  console.log('\nratios (targets in brackets):');
  console.log(`  engine batch 1 / raw loop          ${(b1 / raw).toFixed(3)}  [≥ 0.95]`);
  console.log(`  engine concurrency 16 / batch 1    ${(engineRates.get(16)! / b1).toFixed(2)}  [≥ 4]`);
  console.log(`  engine batch 1 / Transformers.js   ${(b1 / tjs).toFixed(2)}  [≥ 1.5]`);
  // Transformers.js has no continuous batching: a server on it answers concurrent requests one after another.
  console.log(
    `  engine concurrency 16 / Transformers.js (one request at a time)  ${(engineRates.get(16)! / tjs).toFixed(2)}`,
  );
  for (const c of concurrencies.slice(1)) {
    console.log(`  engine concurrency ${c} / batch 1`.padEnd(38) + (engineRates.get(c)! / b1).toFixed(2));
  }
}

await main();
