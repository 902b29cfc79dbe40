/**
 * onnxruntime-genai as a peer: its C++ generation loop (KV buffers shared between past and present, as its model
 * builder configures GroupQueryAttention graphs) running the very graph file the engine loads, in a Python child
 * process (test/bench/peers/genai_loop.py, venv from test/bench/peers/onnxruntime-genai.sh). One JSON line per
 * request each way; its CPU time is read from /proc like llama-server's.
 */
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { GreedyRun } from '../runners.js';

const PEERS = fileURLToPath(new URL('../peers/', import.meta.url));
/** For loading the graph and for any one request (64 tokens take a few seconds even on a busy machine). */
const ANSWER_TIMEOUT_MS = 120_000;

export interface GenaiLoop {
  pid: number;
  /** onnxruntime-genai's version and the onnxruntime it runs on, as the packages report them. */
  version: string;
  onnxruntime: string;
  generate(ids: number[], newTokens: number): Promise<GreedyRun>;
  stop(): Promise<void>;
}

/** The venv's python (installed on first use, hash-pinned). */
export function genaiPython(): string {
  return execFileSync('bash', [join(PEERS, 'onnxruntime-genai.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
}

/** Starts the loop on `graph` (relative to `modelDir`), with its genai_config.json written under `workDir`. */
export async function startGenaiLoop(
  python: string,
  modelDir: string,
  graph: string,
  workDir: string,
): Promise<GenaiLoop> {
  const child = spawn(python, [join(PEERS, 'genai_loop.py'), modelDir, graph, workDir], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString('utf8')).slice(-4000);
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code, signal) =>
      reject(new Error(`genai_loop.py exited (${code ?? signal}):\n${stderr}`)),
    ),
  );
  // next() reports the exit; this keeps an exit that no call is waiting on from being an unhandled rejection.
  exited.catch(() => {});
  const next = async (timeoutMs: number): Promise<Record<string, unknown>> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`genai_loop.py: no answer within ${timeoutMs / 1000} s:\n${stderr}`)),
        timeoutMs,
      );
    });
    try {
      const line = await Promise.race([lines.next(), exited, timeout]);
      if (line.done) throw new Error(`genai_loop.py closed its output:\n${stderr}`);
      return JSON.parse(line.value) as Record<string, unknown>;
    } finally {
      clearTimeout(timer);
    }
  };
  let ready: Record<string, unknown>;
  try {
    ready = await next(ANSWER_TIMEOUT_MS);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    pid: child.pid!,
    version: String(ready.version),
    onnxruntime: String(ready.onnxruntime),
    async generate(ids, newTokens) {
      child.stdin.write(`${JSON.stringify({ ids, newTokens })}\n`);
      const out = await next(ANSWER_TIMEOUT_MS);
      return { tokens: out.tokens as number[], firstTokenMs: out.firstTokenMs as number };
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.stdin.end(); // the loop ends at end of input
      await gone;
    },
  };
}
