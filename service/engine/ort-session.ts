/**
 * The one interface the engine runs graphs through, over either runtime: chatmirror's own binding to
 * onnxruntime's C API (ort-native.ts, built by service/native/build.sh) or onnxruntime-node (ort-node.ts). Both
 * run the same libonnxruntime; the binding can also write outputs into buffers of the caller's (a decode step's
 * KV cache in place, see onnx.ts) and returns the others without copying them.
 */
import { EngineError } from './errors.js';

export type TensorData =
  | Float32Array
  | Float64Array
  | Uint16Array
  | Int16Array
  | Int32Array
  | Uint32Array
  | Int8Array
  | Uint8Array
  | BigInt64Array
  | BigUint64Array;

/** A tensor as both runtimes take and give it; float16 data travels as its bits, in a Uint16Array. */
export interface Tensor {
  readonly type: string;
  readonly dims: readonly number[];
  readonly data: TensorData;
}

export interface ValueInfo {
  readonly name: string;
  /** The element type of a tensor; undefined for a value that is not one (a sequence, a map). */
  readonly type: string | undefined;
  /** Each axis's size; a string for a symbolic one. */
  readonly shape: readonly (number | string)[];
}

export const RUNTIMES = ['auto', 'native', 'onnxruntime-node'] as const;
/** `auto`: the binding when it is built, onnxruntime-node otherwise. */
export type RuntimeChoice = (typeof RUNTIMES)[number];

export interface SessionOptions {
  /** Threads for one operator; 0 lets onnxruntime pick (all cores). */
  intraOpThreads: number;
  /**
   * Whether onnxruntime's pool threads spin between kernels instead of sleeping. A decode step of a small model
   * is hundreds of short kernels, and waking a sleeping thread for each cost SmolLM2-135M int8 a fifth of its
   * decode speed on 2 quiet cores (test/bench/profile.ts: 22 vs 17.5 ms a step). Spinning is CPU time spent
   * waiting, and where other work shares the cores it costs more than it saves (twice as slow with another
   * benchmark running): `engine.spinThreads: false` for such hosts.
   */
  spinThreads: boolean;
  /** Which runtime loads the graph. */
  runtime: RuntimeChoice;
}

export interface OrtSession {
  readonly runtime: 'native' | 'onnxruntime-node';
  /** Whether `run` can write an output into a tensor of the caller's (the binding only). */
  readonly bindsOutputs: boolean;
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
  /**
   * Runs the graph. `fetches` names the outputs wanted, each with the tensor it is to be written into (only
   * where `bindsOutputs`; its buffer must not be touched until the promise settles) or null for one the runtime
   * allocates.
   */
  run(feeds: Record<string, Tensor>, fetches: Record<string, Tensor | null>): Promise<Record<string, Tensor>>;
}

export async function createSession(
  graph: Uint8Array,
  externalData: { path: string; data: Uint8Array }[],
  options: SessionOptions,
): Promise<OrtSession> {
  if (options.runtime !== 'onnxruntime-node') {
    const { nativeBinding, createNativeSession } = await import('./ort-native.js');
    const binding = nativeBinding();
    if (binding.ok) return createNativeSession(binding.binding, graph, externalData, options);
    if (options.runtime === 'native') {
      throw new EngineError(
        'model_format',
        `engine.runtime is native, but chatmirror's onnxruntime binding cannot load (${binding.reason}); ` +
          'build it with `bash service/native/build.sh`, or set engine.runtime to auto or onnxruntime-node',
      );
    }
  }
  const { createNodeSession } = await import('./ort-node.js');
  return createNodeSession(graph, externalData, options);
}
