/** bench:compare's settings, all from the environment, and the systems it knows. */
import { homedir } from 'node:os';
import { join } from 'node:path';

export const COMPARE_HELP = `npm run bench:compare — chatmirror against its baselines and llama.cpp on SmolLM2-135M-Instruct

Same prompt token ids for every system, greedy, EOS masked; interleaved repetitions, medians, and ratios
against llama.cpp at matched precision (our fp32 vs F32, our int8 vs Q8_0). Writes results/compare.json,
results/compare.md and results/compare.svg. Asserts nothing about timings.

Levels
  single   one stream: raw onnxruntime-node loop, the engine (in process, batch 1), onnxruntime-genai's C++
           loop on the same graph files, Transformers.js, and llama-server -np 1 (/completion with the
           prompt's token ids) on F32, Q8_0 and the original Q4_1
  server   16 concurrent streams through chatmirror bench: chatmirror serve (HTTPS) against llama-server -np 16

Environment
  COMPARE_REPEATS=3        interleaved repetitions (rep 1 of every system, then rep 2, ...); ≥ 3 for a result
  COMPARE_NEW_TOKENS=64    tokens generated per request
  COMPARE_LEVELS=single,server
  COMPARE_SYSTEMS=...      a subset by id or family, e.g. raw,llama or engine-int8,llama-q8_0
                           single: raw-fp32 raw-int8 engine-fp32 engine-int8 genai-fp32 genai-int8
                                   tjs-fp32 tjs-int8 llama-f32 llama-q8_0 llama-q4_1
                           server: serve-fp32 serve-int8 llama-f32 llama-q8_0
  COMPARE_CONCURRENCY=16   clients at the server level
  COMPARE_LLAMA_ARGS       extra llama-server flags for every llama.cpp system, e.g. "-t 1" (a later -t wins)
  COMPARE_SERVER_REQUESTS  measured requests per server and repetition (default 3 × the concurrency)
  COMPARE_OUT=results      where the three files go
  COMPARE_MODEL_DIR        default $CHATMIRROR_CACHE/models/smollm2-135m-instruct (built if missing)
  COMPARE_GGUF             the original GGUF, default $CHATMIRROR_CACHE/downloads/SmolLM2-135M-Instruct.Q4_1.gguf

llama.cpp is built once by test/bench/peers/llama-cpp.sh (hash-pinned sdist, cached); its F32 and Q8_0 GGUFs are
derived from the Q4_1 one with llama-quantize and cached under $CHATMIRROR_CACHE/peers/gguf. onnxruntime-genai
comes from test/bench/peers/onnxruntime-genai.sh (hash-pinned venv, cached under $CHATMIRROR_CACHE/peers).
`;

export type Level = 'single' | 'server';
export type Precision = 'fp32' | 'int8';
export type GgufType = 'F32' | 'Q8_0' | 'Q4_1';

export const SINGLE_SYSTEMS = [
  'raw-fp32',
  'raw-int8',
  'engine-fp32',
  'engine-int8',
  'genai-fp32',
  'genai-int8',
  'tjs-fp32',
  'tjs-int8',
  'llama-f32',
  'llama-q8_0',
  'llama-q4_1',
] as const;
export const SERVER_SYSTEMS = ['serve-fp32', 'serve-int8', 'llama-f32', 'llama-q8_0'] as const;

export interface CompareOptions {
  repeats: number;
  newTokens: number;
  levels: Level[];
  /** Ids or families (the part before the first `-`); empty means all. */
  systems: string[];
  concurrency: number;
  serverRequests: number;
  /** Appended to every llama-server command line. */
  llamaArgs: string[];
  outDir: string;
  cache: string;
  modelDir: string;
  sourceGguf: string;
}

export function readOptions(env: NodeJS.ProcessEnv, repoRoot: string): CompareOptions {
  const cache = env.CHATMIRROR_CACHE || join(homedir(), '.cache/chatmirror');
  const concurrency = positive(env, 'COMPARE_CONCURRENCY', 16);
  const levels = list(env.COMPARE_LEVELS ?? 'single,server');
  for (const level of levels)
    if (level !== 'single' && level !== 'server')
      throw new Error(`COMPARE_LEVELS: unknown level ${level} (single, server)`);
  const systems = list(env.COMPARE_SYSTEMS ?? '');
  const known = new Set<string>([...SINGLE_SYSTEMS, ...SERVER_SYSTEMS].flatMap((s) => [s, family(s)]));
  for (const s of systems)
    if (!known.has(s)) throw new Error(`COMPARE_SYSTEMS: unknown system ${s} (see --help)`);
  return {
    repeats: positive(env, 'COMPARE_REPEATS', 3),
    newTokens: positive(env, 'COMPARE_NEW_TOKENS', 64),
    levels: levels as Level[],
    systems,
    concurrency,
    serverRequests: positive(env, 'COMPARE_SERVER_REQUESTS', 3 * concurrency),
    llamaArgs: (env.COMPARE_LLAMA_ARGS ?? '').split(' ').filter((a) => a !== ''),
    outDir: env.COMPARE_OUT || join(repoRoot, 'results'),
    cache,
    modelDir: env.COMPARE_MODEL_DIR || join(cache, 'models/smollm2-135m-instruct'),
    sourceGguf: env.COMPARE_GGUF || join(cache, 'downloads/SmolLM2-135M-Instruct.Q4_1.gguf'),
  };
}

/** Whether COMPARE_SYSTEMS picks this system (by its id or its family). */
export function selected(options: CompareOptions, id: string): boolean {
  return options.systems.length === 0 || options.systems.includes(id) || options.systems.includes(family(id));
}

function family(id: string): string {
  return id.split('-')[0]!;
}

function list(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function positive(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, not ${raw}`);
  return n;
}
