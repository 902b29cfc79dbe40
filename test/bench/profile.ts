/**
 * `npx tsx test/bench/profile.ts` — where one decode step's time goes, from onnxruntime's own profiler
 * (`enableProfiling`): kernel time per operator type over the decode steps of a greedy run at batch 1, the
 * kernels per step, and the step time outside kernels (session overhead, thread hand-offs, copies to JS).
 * Prints a table; asserts nothing.
 *
 * Options (env): PROFILE_MODEL_DIR (default ~/.cache/chatmirror/models/smollm2-135m-instruct), PROFILE_GRAPH
 * (onnx/model.onnx), PROFILE_STEPS (32 decode steps after a 37-token prefill), PROFILE_SPIN (0: the engine's
 * setting; 1: let onnxruntime's threads spin), PROFILE_THREADS (0: all cores).
 */
import '../../service/engine/ort-env.js';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { homedir, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { argmax } from '../../service/engine/sampler.js';
import { RawDecoder } from './runners.js';

const cache = process.env.CHATMIRROR_CACHE ?? join(homedir(), '.cache/chatmirror');
const modelDir = process.env.PROFILE_MODEL_DIR ?? join(cache, 'models/smollm2-135m-instruct');
const graphFile = process.env.PROFILE_GRAPH ?? 'onnx/model.onnx';
const steps = Number(process.env.PROFILE_STEPS ?? 32);
const spin = process.env.PROFILE_SPIN ?? '0';
const threads = Number(process.env.PROFILE_THREADS ?? 0);
const PROMPT_TOKENS = 37;
// onnxruntime writes <prefix>_<date>.json when profiling ends; the Node binding does not return the name.
const profilePrefix = `chatmirror-profile-${process.pid}`;

interface TraceEvent {
  cat: string;
  name: string;
  dur: number;
  ts: number;
  args?: { op_name?: string };
}

async function main(): Promise<void> {
  const session = await ort.InferenceSession.create(join(modelDir, graphFile), {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    enableProfiling: true,
    profileFilePrefix: join(tmpdir(), profilePrefix),
    extra: { session: { intra_op: { allow_spinning: spin }, inter_op: { allow_spinning: spin } } },
  });
  const decoder = new RawDecoder(session);
  let ids = Array.from({ length: PROMPT_TOKENS }, (_, i) => BigInt(100 + i * 37));
  let past = decoder.emptyPast();
  let length = 0;
  const stepWall: number[] = [];
  for (let step = 0; step <= steps; step++) {
    const feeds = decoder.feeds(ids, length, past);
    const t0 = performance.now();
    const out = await session.run(feeds, decoder.fetches);
    if (step > 0) stepWall.push(performance.now() - t0);
    length += ids.length;
    ids = [BigInt(argmax(decoder.lastLogits(out)))];
    past = decoder.presents(out);
  }
  session.endProfiling();
  const name = readdirSync(tmpdir()).find((f) => f.startsWith(profilePrefix) && f.endsWith('.json'));
  if (!name) throw new Error(`onnxruntime wrote no profile ${profilePrefix}_*.json in ${tmpdir()}`);
  const file = join(tmpdir(), name);
  const events = JSON.parse(readFileSync(file, 'utf8')) as TraceEvent[];
  rmSync(file, { force: true });

  // Runs in order: the first model_run is the prefill; the rest are decode steps.
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
  const decodeStart = runs[1]!.ts;
  const kernels = events.filter(
    (e) => e.cat === 'Node' && e.name.endsWith('_kernel_time') && e.ts >= decodeStart,
  );
  const byOp = new Map<string, { us: number; count: number }>();
  for (const k of kernels) {
    const op = k.args?.op_name ?? '?';
    const entry = byOp.get(op) ?? { us: 0, count: 0 };
    entry.us += k.dur;
    entry.count += 1;
    byOp.set(op, entry);
  }
  const runUs = runs.slice(1).reduce((s, r) => s + r.dur, 0);
  const kernelUs = kernels.reduce((s, k) => s + k.dur, 0);
  const wall = stepWall.reduce((s, x) => s + x, 0);
  console.log(
    `${modelDir}/${graphFile}: ${steps} decode steps at batch 1 after a ${PROMPT_TOKENS}-token prefill; ` +
      `intra-op threads ${threads || 'all'}, spinning ${spin}; load average ${loadavg()[0]!.toFixed(2)}`,
  );
  console.log(
    `per step: wall ${(wall / steps).toFixed(2)} ms, session run ${(runUs / steps / 1000).toFixed(2)} ms, ` +
      `kernels ${(kernelUs / steps / 1000).toFixed(2)} ms in ${(kernels.length / steps).toFixed(0)} kernels`,
  );
  console.log('\nop type                          ms/step   share  kernels/step');
  for (const [op, { us, count }] of [...byOp].sort((a, b) => b[1].us - a[1].us)) {
    console.log(
      `${op.padEnd(30)} ${(us / steps / 1000).toFixed(3).padStart(9)} ${((100 * us) / kernelUs).toFixed(1).padStart(6)}%` +
        `${(count / steps).toFixed(0).padStart(12)}`,
    );
  }
}

await main();
