/**
 * Level 1, one stream: each system generates the same greedy tokens after the same prompt ids, timed from the
 * call to the last token (prefill + every new token), with the CPU time the process spent meanwhile.
 */
import { basename, join } from 'node:path';
import { ENGINE_DEFAULTS, Engine } from '../../../service/engine/index.js';
import { collect } from '../../helpers/collect.js';
import { params } from '../../helpers/model.js';
import { type GreedyRun, rawLoop, transformersJs } from '../runners.js';
import { genaiPython, startGenaiLoop } from './genai.js';
import { type Gguf, type LlamaCpp, type LlamaServer, llamaComplete, startLlamaServer } from './llama-cpp.js';
import { type CompareOptions, type GgufType, selected } from './options.js';
import { ownCpuMs, processTreeCpuMs } from './proc.js';
import type { ComparePrompt } from './prompt.js';

export const GRAPHS = { fp32: 'onnx/model.onnx', int8: 'onnx/model_quantized.onnx' } as const;

/** One system of the level, loaded and ready; `prepare` runs before each repetition, untimed. */
export interface SingleSystem {
  id: string;
  system: string;
  precision: string;
  /** The llama.cpp row at matched precision, for the ratios. */
  peer?: string | undefined;
  /** The raw loop on the same (or, for a GGUF, the source) weights: the greedy reference. */
  reference?: string | undefined;
  /** How it runs, for the report. */
  setup: string;
  /** The versions of what it runs that the report's header should name (a peer's own package). */
  versions?: Record<string, string>;
  prepare(rep: number): Promise<void>;
  run(): Promise<GreedyRun>;
  cpuMs(): number;
  close(): Promise<void>;
}

export interface SingleRun {
  wallMs: number;
  cpuMs: number;
  firstTokenMs: number;
  tokensPerSecond: number;
  cpuMsPerToken: number;
  tokens: number[];
}

/** Runs once before the first repetition, so that first-run allocations are not measured. */
function warmOnce(run: () => Promise<unknown>): (rep: number) => Promise<void> {
  return async (rep) => {
    if (rep === 0) await run();
  };
}

export async function singleSystems(
  options: CompareOptions,
  prompt: ComparePrompt,
  llama: { tools: LlamaCpp; ggufs: Gguf[] } | undefined,
): Promise<SingleSystem[]> {
  const systems: SingleSystem[] = [];
  const n = options.newTokens;
  const ids = prompt.ids;
  const peers = { fp32: 'llama-f32', int8: 'llama-q8_0' } as const;
  let python: string | undefined;
  const addLlama = async (type: GgufType) => {
    const g = llama?.ggufs.find((x) => x.type === type);
    if (g === undefined || !selected(options, llamaId(g))) return;
    const server = await startLlamaServer(llama!.tools, {
      model: g.path,
      slots: 1,
      contextPerSlot: contextPerSlot(ids.length, n),
      extraArgs: options.llamaArgs,
    });
    systems.push(llamaSystem(g, server, ids, n));
  };
  try {
    for (const precision of ['fp32', 'int8'] as const) {
      const graph = join(options.modelDir, GRAPHS[precision]);
      if (selected(options, `raw-${precision}`)) {
        const loop = await rawLoop(graph, prompt.eosTokenIds);
        const run = () => loop(ids, n);
        systems.push({
          id: `raw-${precision}`,
          system: 'raw onnxruntime-node loop',
          precision,
          peer: peers[precision],
          setup: `${GRAPHS[precision]}, one session (threads spin: ${ENGINE_DEFAULTS.spinThreads}, as the engine's), argmax with EOS masked`,
          prepare: warmOnce(run),
          run,
          cpuMs: ownCpuMs,
          close: async () => {},
        });
      }
      if (selected(options, `engine-${precision}`)) systems.push(engineSystem(options, prompt, precision));
      if (selected(options, `genai-${precision}`)) {
        python ??= genaiPython();
        const work = join(options.cache, 'peers/genai-models', `${basename(options.modelDir)}-${precision}`);
        const loop = await startGenaiLoop(python, options.modelDir, GRAPHS[precision], work);
        const run = () => loop.generate(ids, n);
        systems.push({
          id: `genai-${precision}`,
          system: 'onnxruntime-genai (its C++ loop)',
          precision,
          peer: peers[precision],
          reference: `raw-${precision}`,
          setup: `${GRAPHS[precision]} via genai_config.json (test/bench/peers/genai_loop.py): past and present share one buffer (past_present_share_buffer), greedy, min_length = max_length`,
          versions: {
            'onnxruntime-genai': `${loop.version} (Python package, on onnxruntime ${loop.onnxruntime})`,
          },
          prepare: warmOnce(run),
          run,
          cpuMs: () => processTreeCpuMs(loop.pid),
          close: () => loop.stop(),
        });
      }
      if (selected(options, `tjs-${precision}`)) {
        const generate = await transformersJs(options.modelDir, precision === 'fp32' ? 'fp32' : 'q8');
        const run = () => generate(ids, n);
        systems.push({
          id: `tjs-${precision}`,
          system: 'Transformers.js generate',
          precision,
          peer: peers[precision],
          reference: `raw-${precision}`,
          setup: `dtype ${precision === 'fp32' ? 'fp32' : 'q8'} (${GRAPHS[precision]}), do_sample false, min_new_tokens ${n}`,
          prepare: warmOnce(run),
          run,
          cpuMs: ownCpuMs,
          close: async () => {},
        });
      }
      // llama.cpp at this precision right after ours, then the original Q4_1.
      await addLlama(precision === 'fp32' ? 'F32' : 'Q8_0');
    }
    await addLlama('Q4_1');
  } catch (err) {
    await Promise.all(systems.map((s) => s.close()));
    throw err;
  }
  return systems;
}

/**
 * The engine in this process at batch 1, loaded afresh for every repetition: its prefix cache would otherwise
 * serve the repeated prompt from the second run on, and the figure would lack the prefill that every other
 * system pays. Each load is warmed on the prompt reversed (same shapes, no shared prefix).
 */
function engineSystem(
  options: CompareOptions,
  prompt: ComparePrompt,
  precision: 'fp32' | 'int8',
): SingleSystem {
  let engine: Engine | undefined;
  const n = options.newTokens;
  const generate = async (promptIds: number[]): Promise<GreedyRun> => {
    const t0 = performance.now();
    let firstTokenMs = 0;
    const out = await collect(
      engine!.submit({ promptIds, params: params({ maxTokens: n, ignoreEos: true, minTokens: n }) }),
      (count) => {
        if (count === 1) firstTokenMs = performance.now() - t0;
      },
    );
    if (out.error !== undefined) throw new Error(`engine-${precision}: ${out.error}`);
    return { tokens: out.tokens, firstTokenMs };
  };
  return {
    id: `engine-${precision}`,
    system: 'chatmirror engine (in process)',
    precision,
    peer: precision === 'fp32' ? 'llama-f32' : 'llama-q8_0',
    reference: `raw-${precision}`,
    setup: `Engine.load(${GRAPHS[precision]}, maxBatchSize 1, spinThreads ${ENGINE_DEFAULTS.spinThreads} by default), ignoreEos + minTokens ${n}; reloaded each repetition`,
    prepare: async () => {
      await engine?.close();
      engine = await Engine.load(options.modelDir, { graphFile: GRAPHS[precision], maxBatchSize: 1 });
      await generate([...prompt.ids].reverse());
    },
    run: () => generate(prompt.ids),
    cpuMs: ownCpuMs,
    close: async () => {
      await engine?.close();
      engine = undefined;
    },
  };
}

export function llamaId(g: Gguf): string {
  return `llama-${g.type.toLowerCase()}`;
}

function llamaSystem(g: Gguf, server: LlamaServer, ids: number[], n: number): SingleSystem {
  const run = async (): Promise<GreedyRun> => {
    const t0 = performance.now();
    const { tokens, timings } = await llamaComplete(server.url, ids, n);
    // No stream, so the first token's time is llama-server's own prompt time (plus this request's overhead).
    return { tokens, firstTokenMs: timings.prompt_ms ?? performance.now() - t0 };
  };
  return {
    id: llamaId(g),
    system: 'llama.cpp (llama-server, /completion)',
    precision: g.type === 'Q4_1' ? 'Q4_1 (original)' : g.type,
    reference: g.type === 'Q8_0' ? 'raw-int8' : 'raw-fp32',
    setup: `llama-server ${server.args.join(' ').replace(g.path, g.path.split('/').at(-1)!)}`,
    prepare: warmOnce(run),
    run,
    cpuMs: () => processTreeCpuMs(server.pid),
    close: () => server.stop(),
  };
}

/** llama-server's per-slot context: the prompt and the new tokens, rounded up to 256. */
export function contextPerSlot(promptTokens: number, newTokens: number): number {
  return Math.ceil((promptTokens + newTokens + 1) / 256) * 256;
}

/** Repetition by repetition, every system in turn (so a change in the machine's load hits all of them alike). */
export async function runSingle(
  systems: SingleSystem[],
  options: CompareOptions,
  onRun: (id: string, rep: number, run: SingleRun) => void,
): Promise<Map<string, SingleRun[]>> {
  const runs = new Map<string, SingleRun[]>(systems.map((s) => [s.id, []]));
  for (let rep = 0; rep < options.repeats; rep++) {
    for (const s of systems) {
      await s.prepare(rep);
      const cpu0 = s.cpuMs();
      const t0 = performance.now();
      const out = await s.run();
      const wallMs = performance.now() - t0;
      const cpuMs = s.cpuMs() - cpu0;
      const run: SingleRun = {
        wallMs,
        cpuMs,
        firstTokenMs: out.firstTokenMs,
        tokensPerSecond: out.tokens.length / (wallMs / 1000),
        cpuMsPerToken: cpuMs / out.tokens.length,
        tokens: out.tokens,
      };
      runs.get(s.id)!.push(run);
      onRun(s.id, rep, run);
    }
  }
  return runs;
}
