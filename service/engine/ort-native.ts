/**
 * chatmirror's binding to onnxruntime's C API (service/native/ort.c says what it offers and why), as an
 * OrtSession. The binding is built by service/native/build.sh (npm's postinstall tries); where it is not, the
 * engine runs on onnxruntime-node.
 */
// Before the binding loads libonnxruntime: no telemetry (ort-env.ts says why).
import './ort-env.js';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { OrtSession, SessionOptions, Tensor, TensorData, ValueInfo } from './ort-session.js';

type Spec = [type: string, dims: readonly number[], data: TensorData];

interface Binding {
  createSession(
    graph: Uint8Array,
    externalNames: string[],
    externalData: Uint8Array[],
    intraOpThreads: number,
    spin: boolean,
  ): object;
  describe(
    session: object,
  ): Record<'inputs' | 'outputs', { name: string; type: string | null; shape: number[] }[]>;
  run(
    session: object,
    inputs: [name: string, ...Spec][],
    outputs: [name: string, bound: Spec | null][],
  ): Promise<Spec[]>;
}

/** Where build.sh puts it: service/native/build, beside this file's folder in the sources and in dist. */
export const BINDING_PATH = fileURLToPath(new URL('../native/build/chatmirror-ort.node', import.meta.url));

let loaded: { ok: true; binding: Binding } | { ok: false; reason: string } | undefined;

/** The binding, or why it cannot load (not built, built for another onnxruntime). Loaded once a thread. */
export function nativeBinding(): typeof loaded & {} {
  if (!loaded) {
    try {
      loaded = { ok: true, binding: createRequire(import.meta.url)(BINDING_PATH) as Binding };
    } catch (err) {
      const missing = (err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND';
      loaded = { ok: false, reason: missing ? `${BINDING_PATH} is not built` : (err as Error).message };
    }
  }
  return loaded;
}

const spec = (t: Tensor): Spec => [t.type, t.dims, t.data];

export function createNativeSession(
  binding: Binding,
  graph: Uint8Array,
  externalData: { path: string; data: Uint8Array }[],
  options: SessionOptions,
): OrtSession {
  const session = binding.createSession(
    graph,
    externalData.map((f) => f.path),
    externalData.map((f) => f.data),
    options.intraOpThreads,
    options.spinThreads,
  );
  const meta = binding.describe(session);
  // onnxruntime reports a symbolic axis as -1; onnxruntime-node (and the engine) as a string.
  const info = (m: { name: string; type: string | null; shape: number[] }): ValueInfo => ({
    name: m.name,
    type: m.type ?? undefined,
    shape: m.shape.map((d) => (d < 0 ? '?' : d)),
  });
  return {
    runtime: 'native',
    bindsOutputs: true,
    inputs: meta.inputs.map(info),
    outputs: meta.outputs.map(info),
    async run(feeds, fetches) {
      const names = Object.keys(fetches);
      const results = await binding.run(
        session,
        Object.entries(feeds).map(([name, t]) => [name, ...spec(t)]),
        names.map((name) => {
          const bound = fetches[name];
          return [name, bound ? spec(bound) : null];
        }),
      );
      return Object.fromEntries(results.map(([type, dims, data], i) => [names[i]!, { type, dims, data }]));
    },
  };
}
