/**
 * `npx tsx test/bench/latency.ts` — the engine's gaps between tokens as a caller sees them (the token events),
 * beside the raw onnxruntime-node loop's on the same graph (test/bench/runners.ts: session.run and argmax,
 * nothing else): one request at a time, then CLIENTS clients in a closed loop on one engine, as the servers
 * level of bench:compare loads it. Percentiles and throughput, the load average beside them; asserts nothing.
 *
 * Why (issue 12): the median gap says whether the engine adds work to a step; the tail says what it loses to
 * peers whose step has no garbage collector beside it (onnxruntime-genai's loop) and, under load, to
 * llama-server's ITL p99.
 *
 * Options (env): LATENCY_MODEL_DIR (default ~/.cache/chatmirror/models/smollm2-135m-instruct), LATENCY_GRAPH
 * (onnx/model_quantized.onnx), LATENCY_REQUESTS (8 one at a time), LATENCY_CLIENTS (16), LATENCY_LOOP_REQUESTS
 * (4 × the clients), LATENCY_TOKENS (64 a request).
 */
import { homedir, loadavg } from 'node:os';
import { join } from 'node:path';
import { percentile } from '../../service/bench/stats.js';
import { Engine } from '../../service/engine/index.js';
import { collect } from '../helpers/collect.js';
import { params } from '../helpers/model.js';
import { comparePrompt } from './compare/prompt.js';
import { rawLoop } from './runners.js';

const cache = process.env.CHATMIRROR_CACHE ?? join(homedir(), '.cache/chatmirror');
const modelDir = process.env.LATENCY_MODEL_DIR ?? join(cache, 'models/smollm2-135m-instruct');
const graphFile = process.env.LATENCY_GRAPH ?? 'onnx/model_quantized.onnx';
const requests = Number(process.env.LATENCY_REQUESTS ?? 8);
const clients = Number(process.env.LATENCY_CLIENTS ?? 16);
const loopRequests = Number(process.env.LATENCY_LOOP_REQUESTS ?? 4 * clients);
const tokens = Number(process.env.LATENCY_TOKENS ?? 64);

/** Generates `tokens` greedy tokens for `ids` on `engine`; the gaps between its token events, in ms. */
async function engineGaps(engine: Engine, ids: number[]): Promise<number[]> {
  const gaps: number[] = [];
  let last = 0;
  const request = {
    promptIds: ids,
    params: params({ maxTokens: tokens, ignoreEos: true, minTokens: tokens }),
  };
  const out = await collect(engine.submit(request), () => {
    const now = performance.now();
    if (last !== 0) gaps.push(now - last);
    last = now;
  });
  if (out.error !== undefined) throw new Error(out.error);
  return gaps;
}

/** Percentiles as chatmirror bench (and so bench:compare's ITL p99) computes them. */
function row(label: string, gaps: number[], wallMs: number, generated: number): string {
  const q = (p: number) => percentile(gaps, p)!.toFixed(1).padStart(6);
  return (
    `${label.padEnd(34)} ${String(gaps.length).padStart(5)} ${q(50)} ${q(90)} ${q(95)} ${q(99)} ${q(100)}` +
    ` ${((generated / wallMs) * 1000).toFixed(1).padStart(7)}`
  );
}

const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

async function main(): Promise<void> {
  const prompt = await comparePrompt(modelDir);
  console.log(
    `${graphFile}: ${prompt.ids.length} prompt tokens, ${tokens} new tokens a request, greedy; load average ${load()}`,
  );
  console.log(`${'gaps between tokens, ms'.padEnd(34)}     n    p50    p90    p95    p99    max   tok/s`);

  // One request at a time: the raw loop, then the engine, each after one unmeasured request.
  const raw = await rawLoop(join(modelDir, graphFile), prompt.eosTokenIds);
  await raw(prompt.ids, tokens);
  let gaps: number[] = [];
  let t0 = performance.now();
  for (let r = 0; r < requests; r++) gaps.push(...((await raw(prompt.ids, tokens)).gapsMs ?? []));
  console.log(row('raw onnxruntime-node loop, batch 1', gaps, performance.now() - t0, requests * tokens));

  const engine = await Engine.load(modelDir, { graphFile, maxBatchSize: clients });
  try {
    await engineGaps(engine, [...prompt.ids].reverse());
    gaps = [];
    t0 = performance.now();
    for (let r = 0; r < requests; r++) gaps.push(...(await engineGaps(engine, prompt.ids)));
    console.log(row('engine, one request at a time', gaps, performance.now() - t0, requests * tokens));

    // Closed loop: each client sends its next request when the last one ends.
    let left = loopRequests;
    gaps = [];
    const client = async () => {
      while (left-- > 0) gaps.push(...(await engineGaps(engine, prompt.ids)));
    };
    t0 = performance.now();
    await Promise.all(Array.from({ length: clients }, client));
    console.log(
      row(`engine, ${clients} clients, closed loop`, gaps, performance.now() - t0, loopRequests * tokens),
    );
  } finally {
    await engine.close();
  }
  console.log(`load average after: ${load()}`);
}

await main();
