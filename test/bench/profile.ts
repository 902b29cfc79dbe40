/**
 * `npx tsx test/bench/profile.ts` — where one decode step's time goes, from onnxruntime's own profiler
 * (`enableProfiling`): kernel time per operator type over the decode steps of a greedy run at batch 1, the
 * kernels per step, and the step time outside kernels (session overhead, thread hand-offs, copies to JS).
 * Prints a table; asserts nothing.
 *
 * Options (env): PROFILE_MODEL_DIR (default ~/.cache/chatmirror/models/smollm2-135m-instruct), PROFILE_GRAPH
 * (onnx/model.onnx), PROFILE_STEPS (32 decode steps after a 37-token prefill), PROFILE_SPIN (0: the engine's
 * setting; 1: let onnxruntime's threads spin), PROFILE_THREADS (0: all cores). PROFILE_ROWS=16 profiles batched
 * steps instead, as the engine runs them for a graph built for generation (DecoderModel.decodeInPlace): that
 * many rows of PROFILE_POSITIONS (100) cached positions each, right-padded in a cache 32 positions longer, after
 * one unmeasured step.
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
const rows = Number(process.env.PROFILE_ROWS ?? 1);
const positions = Number(process.env.PROFILE_POSITIONS ?? 100);
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

/** Batch 1: a prefill, then `steps` greedy decode steps; returns each decode step's wall time. */
async function greedySteps(session: ort.InferenceSession): Promise<number[]> {
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
  return stepWall;
}

/**
 * `rows` rows of `positions` cached positions (values do not matter for time), one token each per step, fed as
 * the engine's decodeInPlace feeds them; the first step is unmeasured. Returns each measured step's wall time.
 */
async function batchedSteps(session: ort.InferenceSession): Promise<number[]> {
  const past = session.inputNames.filter((n) => n.startsWith('past_key_values.'));
  const added = past.map((n) => n.replace('past_key_values.', 'new_key_values.'));
  if (!added.every((n) => session.outputNames.includes(n))) {
    throw new Error(`PROFILE_ROWS needs a graph built for generation (new_key_values outputs): ${graphFile}`);
  }
  const meta = session.inputMetadata.find((m) => m.name === past[0]);
  const [, heads, , headDim] = meta?.isTensor ? (meta.shape as number[]) : [];
  const length = positions + 32;
  const mask = new BigInt64Array(rows * (length + 1));
  for (let r = 0; r < rows; r++) mask.fill(1n, r * (length + 1), r * (length + 1) + positions + 1);
  const cache = past.map(() => new Float32Array(rows * heads! * length * headDim!).fill(0.01));
  const stepWall: number[] = [];
  for (let step = 0; step <= steps; step++) {
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', new BigInt64Array(rows).fill(42n), [rows, 1]),
      attention_mask: new ort.Tensor('int64', mask, [rows, length + 1]),
      position_ids: new ort.Tensor('int64', new BigInt64Array(rows).fill(BigInt(positions)), [rows, 1]),
      num_logits_to_keep: new ort.Tensor('int64', BigInt64Array.of(1n), []),
    };
    past.forEach((name, i) => {
      feeds[name] = new ort.Tensor('float32', cache[i]!, [rows, heads!, length, headDim!]);
    });
    const t0 = performance.now();
    await session.run(feeds, ['logits', ...added]);
    if (step > 0) stepWall.push(performance.now() - t0);
  }
  return stepWall;
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
  const stepWall = rows > 1 ? await batchedSteps(session) : await greedySteps(session);
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
    `${modelDir}/${graphFile}: ${steps} decode steps ` +
      (rows > 1
        ? `of ${rows} rows at ${positions} positions; `
        : `at batch 1 after a ${PROMPT_TOKENS}-token prefill; `) +
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
