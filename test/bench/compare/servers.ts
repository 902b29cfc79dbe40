/**
 * Level 2, servers under load: `chatmirror serve` over HTTPS against `llama-server -np 16`, both driven by the
 * chatmirror bench client (closed loop, the same prompt text on /v1/completions, max_tokens N with ignore_eos),
 * both greedy by their server default. The server's CPU time (process tree, /proc) is read around each level.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseBenchArgs } from '../../../service/bench/args.js';
import { runBench } from '../../../service/bench/bench.js';
import { startLocalServer } from '../../../service/bench/local-server.js';
import type { LevelResult } from '../../../service/bench/stats.js';
import { type Gguf, type LlamaCpp, startLlamaServer } from './llama-cpp.js';
import { type CompareOptions, selected } from './options.js';
import { processTreeCpuMs } from './proc.js';
import type { ComparePrompt } from './prompt.js';
import { contextPerSlot, GRAPHS, llamaId } from './single.js';

export interface ServerSystem {
  id: string;
  system: string;
  precision: string;
  peer?: string | undefined;
  setup: string;
  url: string;
  model: string;
  caFile?: string | undefined;
  token?: string | undefined;
  pid: number;
  stop(): Promise<void>;
}

export interface ServerRun {
  outputTokensPerSecond: number;
  itlP99Ms: number | null;
  ttftP50Ms: number | null;
  tpotP50Ms: number | null;
  cpuMsPerOutputToken: number;
  completed: number;
  failed: number;
  outputTokens: number;
  /** usage.prompt_tokens per request, as the server counted the prompt text. */
  meanPromptTokens: number;
  /** Sends the client repeated because the server closed the connection unanswered (bench's LevelResult.resent). */
  resent: number;
  errors: LevelResult['errors'];
}

export interface ServerLevel {
  systems: ServerSystem[];
  promptFile: string;
  close(): Promise<void>;
}

export async function startServers(
  options: CompareOptions,
  prompt: ComparePrompt,
  llama: { tools: LlamaCpp; ggufs: Gguf[] } | undefined,
): Promise<ServerLevel> {
  const dir = await mkdtemp(join(tmpdir(), 'chatmirror-compare-'));
  const promptFile = join(dir, 'prompt.jsonl');
  await writeFile(promptFile, `${JSON.stringify({ prompt: prompt.text })}\n`);
  const systems: ServerSystem[] = [];
  const close = async () => {
    await Promise.all(systems.map((s) => s.stop()));
    await rm(dir, { recursive: true, force: true });
  };
  const c = options.concurrency;
  try {
    for (const precision of ['fp32', 'int8'] as const) {
      const id = `serve-${precision}`;
      if (!selected(options, id)) continue;
      const settings = {
        CHATMIRROR_ENGINE_MODEL_DIR: options.modelDir,
        CHATMIRROR_ENGINE_GRAPH_FILE: GRAPHS[precision],
        CHATMIRROR_ENGINE_MAX_BATCH_SIZE: String(c),
        CHATMIRROR_MODELS_DEFAULTS_TEMPERATURE: '0',
      };
      const server = await startLocalServer({ cache: join(dir, id), settings });
      systems.push({
        id,
        system: 'chatmirror serve (HTTPS)',
        precision,
        peer: precision === 'fp32' ? 'llama-f32' : 'llama-q8_0',
        setup: Object.entries(settings)
          .filter(([k]) => k !== 'CHATMIRROR_ENGINE_MODEL_DIR')
          .map(([k, v]) => `${k}=${v}`)
          .join(' '),
        url: server.url,
        model: server.model,
        caFile: server.caFile,
        token: server.token,
        pid: server.pid,
        stop: () => server.stop(),
      });
    }
    for (const g of llama?.ggufs ?? []) {
      const id = llamaId(g);
      if (g.type === 'Q4_1' || !selected(options, id)) continue;
      const server = await startLlamaServer(llama!.tools, {
        model: g.path,
        slots: c,
        contextPerSlot: contextPerSlot(prompt.ids.length, options.newTokens),
        extraArgs: options.llamaArgs,
      });
      const file = g.path.split('/').at(-1)!;
      systems.push({
        id,
        system: `llama.cpp (llama-server -np ${c})`,
        precision: g.type,
        setup: `llama-server ${server.args.join(' ').replace(g.path, file)}`,
        url: server.url,
        model: file,
        pid: server.pid,
        stop: () => server.stop(),
      });
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { systems, promptFile, close };
}

/** One closed-loop level of `requests` at the configured concurrency; no warmup inside it. */
export async function benchServer(
  s: ServerSystem,
  options: CompareOptions,
  promptFile: string,
  requests: number,
): Promise<ServerRun> {
  const bench = parseBenchArgs([
    ...['--url', s.url, '--model', s.model, '--api', 'completions'],
    ...(s.caFile === undefined ? [] : ['--ca-file', s.caFile]),
    ...['--concurrency', String(options.concurrency), '--requests', String(requests), '--warmup', '0'],
    ...['--prompt-file', promptFile, '--max-tokens', String(options.newTokens), '--ignore-eos'],
    ...['--progress', 'none'],
  ])!;
  const cpu0 = processTreeCpuMs(s.pid);
  const report = await runBench(bench, { env: s.token === undefined ? {} : { CHATMIRROR_TOKEN: s.token } });
  const cpuMs = processTreeCpuMs(s.pid) - cpu0;
  const level = report.levels[0]!;
  if (level.completed === 0)
    throw new Error(`${s.id}: no request succeeded (${level.errors[0]?.error ?? 'no requests'})`);
  return {
    outputTokensPerSecond: level.outputThroughput,
    itlP99Ms: level.itlMs?.p99 ?? null,
    ttftP50Ms: level.ttftMs?.median ?? null,
    tpotP50Ms: level.tpotMs?.median ?? null,
    cpuMsPerOutputToken: cpuMs / level.totalOutputTokens,
    completed: level.completed,
    failed: level.failed,
    outputTokens: level.totalOutputTokens,
    meanPromptTokens: level.totalInputTokens / level.completed,
    resent: level.resent,
    errors: level.errors,
  };
}

/**
 * One unmeasured round at full concurrency per server (batched shapes, connections, caches), then the
 * repetitions, every server in turn.
 */
export async function runServers(
  level: ServerLevel,
  options: CompareOptions,
  onRun: (id: string, rep: number, run: ServerRun) => void,
): Promise<Map<string, ServerRun[]>> {
  for (const s of level.systems) await benchServer(s, options, level.promptFile, options.concurrency);
  const runs = new Map<string, ServerRun[]>(level.systems.map((s) => [s.id, []]));
  for (let rep = 0; rep < options.repeats; rep++) {
    for (const s of level.systems) {
      const run = await benchServer(s, options, level.promptFile, options.serverRequests);
      runs.get(s.id)!.push(run);
      onRun(s.id, rep, run);
    }
  }
  return runs;
}
