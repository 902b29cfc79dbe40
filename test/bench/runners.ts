/**
 * The in-process baselines that bench:engine and bench:compare measure the engine against, on one prompt at a
 * time: a bare onnxruntime-node greedy loop (the floor of what any JS engine can do on the graph) and
 * Transformers.js `generate` on the same ONNX files. Each returns the tokens it generated, so a caller can
 * check greedy parity as well as time it.
 */
import '../../service/engine/ort-env.js';
import { basename, dirname } from 'node:path';
import { AutoModelForCausalLM, env, Tensor } from '@huggingface/transformers';
import * as ort from 'onnxruntime-node';
import { ENGINE_DEFAULTS } from '../../service/engine/index.js';
import { argmax } from '../../service/engine/sampler.js';

export interface GreedyRun {
  tokens: number[];
  /** From the call to the first generated token (prefill and one sampling step), in ms. */
  firstTokenMs: number;
  /** The time between each generated token and the next, in ms, where the runner measures it. */
  gapsMs?: number[];
}

/** Generates `newTokens` greedy tokens after `promptIds`; EOS is masked, so every run is `newTokens` long. */
export type GreedyRunner = (promptIds: number[], newTokens: number) => Promise<GreedyRun>;

/**
 * One row of a raw decoder session (an Optimum-layout graph, or chatmirror's GGUF builds), its inputs read once:
 * what a step is fed, what it fetches, and the present that becomes the next step's past. For the baselines and
 * the bench scripts that drive a session without the engine.
 */
export class RawDecoder {
  readonly pastNames: string[];
  /** Only what a loop reads: a graph may offer more outputs, and onnxruntime-node copies each one it returns. */
  readonly fetches: string[];
  private readonly presentNames: string[];
  private readonly heads: number;
  private readonly headDim: number;
  private readonly hasPositions: boolean;
  /** Newer exports take how many trailing positions get logits. */
  private readonly hasLogitsToKeep: boolean;

  constructor(session: ort.InferenceSession) {
    this.pastNames = session.inputNames.filter((n) => n.startsWith('past_key_values.'));
    this.presentNames = this.pastNames.map((n) => n.replace('past_key_values.', 'present.'));
    this.fetches = ['logits', ...this.presentNames];
    const meta = session.inputMetadata.find((m) => m.name === this.pastNames[0]);
    const [, heads, , headDim] = meta?.isTensor ? (meta.shape as number[]) : [];
    this.heads = heads!;
    this.headDim = headDim!;
    this.hasPositions = session.inputNames.includes('position_ids');
    this.hasLogitsToKeep = session.inputNames.includes('num_logits_to_keep');
  }

  emptyPast(): ort.Tensor[] {
    return this.pastNames.map(
      () => new ort.Tensor('float32', new Float32Array(0), [1, this.heads, 0, this.headDim]),
    );
  }

  /** `ids` after `length` cached positions; `keep` trailing positions get logits (0: all; the last by default). */
  feeds(ids: readonly bigint[], length: number, past: ort.Tensor[], keep = 1): Record<string, ort.Tensor> {
    const n = ids.length;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids), [1, n]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(length + n).fill(1n), [1, length + n]),
    };
    if (this.hasPositions) {
      feeds.position_ids = new ort.Tensor(
        'int64',
        BigInt64Array.from(ids, (_, i) => BigInt(length + i)),
        [1, n],
      );
    }
    if (this.hasLogitsToKeep)
      feeds.num_logits_to_keep = new ort.Tensor('int64', BigInt64Array.of(BigInt(keep)), []);
    this.pastNames.forEach((name, i) => {
      feeds[name] = past[i]!;
    });
    return feeds;
  }

  /** The last position's logits, whatever positions the graph returned. */
  lastLogits(out: ort.InferenceSession.OnnxValueMapType): Float32Array {
    const logits = out.logits!.data as Float32Array;
    return logits.subarray(logits.length - Number(out.logits!.dims.at(-1)));
  }

  presents(out: ort.InferenceSession.OnnxValueMapType): ort.Tensor[] {
    return this.presentNames.map((name) => out[name] as ort.Tensor);
  }
}

/**
 * Prefill, then feed each argmax token back with present → past, nothing else. `suppress` (the EOS ids) are
 * never chosen, as min_tokens / ignore_eos do in the other systems. The session is set up as the engine's is
 * by default (threads that spin between kernels or not), so that the two differ only in what the engine adds.
 */
export async function rawLoop(
  graphPath: string,
  suppress: readonly number[] = [],
  spinThreads: boolean = ENGINE_DEFAULTS.spinThreads,
): Promise<GreedyRunner> {
  const spin = spinThreads ? '1' : '0';
  const session = await ort.InferenceSession.create(graphPath, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    interOpNumThreads: 1,
    extra: { session: { intra_op: { allow_spinning: spin }, inter_op: { allow_spinning: spin } } },
  });
  const decoder = new RawDecoder(session);
  return async (promptIds, newTokens) => {
    const t0 = performance.now();
    let firstTokenMs = 0;
    const tokens: number[] = [];
    const gapsMs: number[] = [];
    let previous = t0;
    let ids = promptIds.map(BigInt);
    let past = decoder.emptyPast();
    let length = 0;
    for (let step = 0; step < newTokens; step++) {
      const out = await session.run(decoder.feeds(ids, length, past), decoder.fetches);
      const last = decoder.lastLogits(out);
      for (const id of suppress) last[id] = Number.NEGATIVE_INFINITY;
      const next = argmax(last);
      tokens.push(next);
      const now = performance.now();
      if (step === 0) firstTokenMs = now - t0;
      else gapsMs.push(now - previous);
      previous = now;
      length += ids.length;
      ids = [BigInt(next)];
      past = decoder.presents(out);
    }
    return { tokens, firstTokenMs, gapsMs };
  };
}

/**
 * Transformers.js greedy `generate` on a model directory's ONNX files: dtype fp32 reads onnx/model.onnx, q8
 * onnx/model_quantized.onnx. min_new_tokens masks EOS until the end.
 */
export async function transformersJs(modelDir: string, dtype: 'fp32' | 'q8'): Promise<GreedyRunner> {
  env.allowRemoteModels = false;
  env.localModelPath = dirname(modelDir);
  const model = await AutoModelForCausalLM.from_pretrained(basename(modelDir), {
    dtype,
    local_files_only: true,
  });
  return async (promptIds, newTokens) => {
    const input = new Tensor('int64', BigInt64Array.from(promptIds, BigInt), [1, promptIds.length]);
    const mask = new Tensor('int64', new BigInt64Array(promptIds.length).fill(1n), [1, promptIds.length]);
    const t0 = performance.now();
    let firstTokenMs = 0;
    // generate() puts the prompt first, then each step's tokens: the second put is the first new token.
    let puts = 0;
    const streamer = {
      put: () => {
        puts += 1;
        if (puts === 2) firstTokenMs = performance.now() - t0;
      },
      end: () => {},
    };
    const out = (await model.generate({
      input_ids: input,
      attention_mask: mask,
      max_new_tokens: newTokens,
      min_new_tokens: newTokens,
      do_sample: false,
      streamer: streamer as never,
    })) as Tensor;
    const ids = Array.from(out.data as BigInt64Array, Number);
    return { tokens: ids.slice(promptIds.length), firstTokenMs };
  };
}
