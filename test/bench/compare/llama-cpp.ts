/**
 * llama.cpp as a peer: its tools from test/bench/peers/llama-cpp.sh, GGUFs at the precisions our graphs have
 * (derived from the original Q4_1 with llama-quantize, cached), and llama-server as a child process on
 * loopback. Flags and request fields as llama.cpp's tools/server/README.md (in the pinned sdist) documents them.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exited, stopChild } from '../../../service/bench/child-process.js';
import type { GgufType } from './options.js';
import { freePort } from './proc.js';

const PEER_SCRIPT = fileURLToPath(new URL('../peers/llama-cpp.sh', import.meta.url));
const STARTUP_TIMEOUT_MS = 120_000; // model load, then its warmup run
const REQUEST_TIMEOUT_MS = 300_000; // one single-stream request on a busy machine
const LOG_KEEP_CHARS = 64 * 1024;

export interface LlamaCpp {
  bin: string;
  /** `llama-server --version`, verbatim. */
  version: string;
  /** The llama-cpp-python sdist the tools were built from (the peer script's pin). */
  sdist: string;
}

/** Builds the tools once (the script caches them, hash-pinned) and returns where they are. */
export function llamaCpp(): LlamaCpp {
  const bin = execFileSync('bash', [PEER_SCRIPT], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    .trim()
    .split('\n')
    .at(-1)!;
  // It prints the version on stderr.
  const version = spawnSync(join(bin, 'llama-server'), ['--version'], { encoding: 'utf8' });
  const sdist = basename(dirname(bin)).replace(/^llama\.cpp-/, '');
  return { bin, version: `${version.stdout}${version.stderr}`.trim(), sdist: `llama-cpp-python ${sdist}` };
}

export interface Gguf {
  type: GgufType;
  path: string;
  bytes: number;
  sha256: string;
  /** How it was made: the original, or the llama-quantize command. */
  origin: string;
}

/**
 * The original GGUF as `Q4_1`, or one derived from it (`llama-quantize --allow-requantize IN OUT TYPE`: Q4_1
 * blocks dequantised, then requantised), cached under `dir`.
 */
export async function gguf(tools: LlamaCpp, source: string, type: GgufType, dir: string): Promise<Gguf> {
  if (type === 'Q4_1') return describe(type, source, 'original');
  const out = join(
    dir,
    `${basename(source)
      .replace(/\.Q4_1\.gguf$/, '')
      .replace(/\.gguf$/, '')}.${type}.gguf`,
  );
  const args = ['--allow-requantize', source, out, type];
  if (!existsSync(out)) {
    await mkdir(dir, { recursive: true });
    const partial = `${out}.partial`;
    process.stderr.write(`deriving ${basename(out)} with llama-quantize\n`);
    execFileSync(join(tools.bin, 'llama-quantize'), ['--allow-requantize', source, partial, type], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    await rename(partial, out);
  }
  return describe(type, out, `llama-quantize ${args.map((a) => basename(a)).join(' ')}`);
}

async function describe(type: GgufType, path: string, origin: string): Promise<Gguf> {
  return { type, path, bytes: statSync(path).size, sha256: await sha256(path), origin };
}

export async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export interface LlamaServer {
  url: string;
  pid: number;
  /** The command line, for the report. */
  args: string[];
  log(): string;
  stop(): Promise<void>;
}

/**
 * `llama-server -m MODEL -t <cores> -np SLOTS -c SLOTS × CONTEXT` on a free loopback port, greedy by default
 * (--temp 0; single-stream requests also send it), no web UI. Continuous batching is llama-server's default.
 * Resolves once /health answers 200 (it answers 503 while loading).
 */
export async function startLlamaServer(
  tools: LlamaCpp,
  options: { model: string; slots: number; contextPerSlot: number; extraArgs?: string[] },
): Promise<LlamaServer> {
  const port = await freePort();
  const args = [
    ...['-m', options.model, '-t', String(availableParallelism())],
    ...['-np', String(options.slots), '-c', String(options.slots * options.contextPerSlot)],
    ...['--host', '127.0.0.1', '--port', String(port), '--no-webui', '--temp', '0'],
    ...(options.extraArgs ?? []),
  ];
  const child = spawn(join(tools.bin, 'llama-server'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const keep = (t: string) => {
    log = (log + t).slice(-LOG_KEEP_CHARS);
  };
  child.stdout!.setEncoding('utf8').on('data', keep);
  child.stderr!.setEncoding('utf8').on('data', keep);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    if (exited(child))
      throw new Error(`llama-server exited (${child.exitCode ?? child.signalCode}):\n${log}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`llama-server not healthy within ${STARTUP_TIMEOUT_MS / 1000} s:\n${log}`);
    }
    const status = await fetch(`${url}/health`).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { url, pid: child.pid!, args, log: () => log, stop: () => stopChild(child, 10_000) };
}

export interface LlamaCompletion {
  tokens: number[];
  /** llama-server's own timings: prompt_ms, predicted_ms, ... */
  timings: Record<string, number>;
}

/**
 * One greedy completion of the prompt's token ids on /completion: no prompt cache (a real prefill every time),
 * EOS ignored (llama.cpp masks it), the generated ids returned.
 */
export async function llamaComplete(
  url: string,
  promptIds: number[],
  newTokens: number,
): Promise<LlamaCompletion> {
  const res = await fetch(`${url}/completion`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      prompt: promptIds,
      n_predict: newTokens,
      ignore_eos: true,
      temperature: 0,
      top_k: 1,
      cache_prompt: false,
      return_tokens: true,
    }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const body = (await res.json()) as { tokens?: number[]; timings?: Record<string, number>; error?: unknown };
  if (!res.ok || body.tokens === undefined)
    throw new Error(`llama-server /completion: HTTP ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
  return { tokens: body.tokens, timings: body.timings ?? {} };
}

/** How llama-server tokenizes a text prompt (special tokens parsed, as its completions endpoints do). */
export async function llamaTokenize(url: string, text: string): Promise<number[]> {
  const res = await fetch(`${url}/tokenize`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ content: text, add_special: true, parse_special: true }),
  });
  const body = (await res.json()) as { tokens: number[] };
  return body.tokens;
}
