/**
 * onnxruntime-node as an OrtSession: the runtime the engine falls back to where chatmirror's binding is not
 * built. It binds no outputs and copies every output it returns into a fresh buffer. The only module that
 * imports onnxruntime-node.
 */
import './ort-env.js';
import * as ort from 'onnxruntime-node';
import type { OrtSession, SessionOptions, Tensor, TensorData } from './ort-session.js';

export async function createNodeSession(
  graph: Uint8Array,
  externalData: { path: string; data: Uint8Array }[],
  options: SessionOptions,
): Promise<OrtSession> {
  const spin = options.spinThreads ? '1' : '0';
  const session = await ort.InferenceSession.create(graph, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: options.intraOpThreads,
    interOpNumThreads: 1,
    extra: { session: { intra_op: { allow_spinning: spin }, inter_op: { allow_spinning: spin } } },
    ...(externalData.length > 0 ? { externalData } : {}),
  });
  const info = (meta: readonly ort.InferenceSession.ValueMetadata[]) =>
    meta.map((m) => ({
      name: m.name,
      type: m.isTensor ? m.type : undefined,
      shape: m.isTensor ? m.shape : [],
    }));
  return {
    runtime: 'onnxruntime-node',
    bindsOutputs: false,
    inputs: info(session.inputMetadata),
    outputs: info(session.outputMetadata),
    async run(feeds, fetches) {
      const names = Object.keys(fetches);
      if (names.some((n) => fetches[n])) throw new Error('onnxruntime-node binds no outputs');
      const out = await session.run(
        Object.fromEntries(
          Object.entries(feeds).map(([name, t]) => [
            name,
            // Wrapping a typed array in a Tensor does not copy it.
            new ort.Tensor(t.type as ort.Tensor.Type, t.data as ort.Tensor.DataType, t.dims),
          ]),
        ),
        names,
      );
      return Object.fromEntries(
        names.map((n): [string, Tensor] => {
          const t = out[n]!;
          return [n, { type: t.type, dims: t.dims, data: t.data as TensorData }];
        }),
      );
    },
  };
}
