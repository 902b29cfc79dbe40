/**
 * `npm run bench:overload` — what a full queue does to latency. The real server (its own process, so the load
 * generator's event loop is not the server's) runs twice: with as many clients as batch slots (baseline), then
 * with 10× more clients than batch + queue places. Accepted requests should keep a bounded p99 (they wait at
 * most for the queue ahead of them) and refusals should come back quickly. Prints figures and ratios; asserts
 * nothing. On two cores the load generator competes with the server, so compare ratios, not milliseconds.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TINY_MODEL_DIR } from '../helpers/model.js';

const BATCH = 4;
const QUEUE = 4;
const REQUESTS_PER_CLIENT = 8;
const MAX_TOKENS = 24;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** `chatmirror serve` over plain HTTP with a development token; resolves once its banner is printed. */
function startServer(): Promise<{ child: ChildProcess; base: string; token: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'service/cli.ts', 'serve'], {
    env: {
      ...process.env,
      CHATMIRROR_CACHE: mkdtempSync(join(tmpdir(), 'chatmirror-bench-')),
      CHATMIRROR_SERVER_PORT: '0',
      CHATMIRROR_SERVER_TLS_ENABLED: 'false',
      CHATMIRROR_ENGINE_MAX_BATCH_SIZE: String(BATCH),
      CHATMIRROR_ENGINE_MAX_QUEUE: String(QUEUE),
      CHATMIRROR_QUOTAS_DEFAULT_REQUESTS_PER_MINUTE: '0',
      CHATMIRROR_QUOTAS_DEFAULT_TOKENS_PER_MINUTE: '0',
      CHATMIRROR_QUOTAS_DEFAULT_CONCURRENT_REQUESTS: '0',
      CHATMIRROR_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const base = /serving \S+ at (http:\/\/\S+)/.exec(out)?.[1];
      const token = /export CHATMIRROR_TOKEN=(\S+)/.exec(out)?.[1];
      if (base && token) resolve({ child, base, token });
    });
    child.once('exit', (code) => reject(new Error(`the server exited (${code}) before listening`)));
  });
}

async function run(clients: number): Promise<{ accepted: number[]; refused: number[] }> {
  const { child, base, token } = await startServer();
  try {
    const authorization = `Bearer ${token}`;
    const eos = JSON.parse(readFileSync(join(TINY_MODEL_DIR, 'generation_config.json'), 'utf8')).eos_token_id;
    const body = JSON.stringify({
      model: 'tiny-llama',
      messages: [{ role: 'user', content: 'Continue: And God said' }],
      max_tokens: MAX_TOKENS,
      // Both EOS ids banned, so every accepted request does the same amount of work.
      logit_bias: Object.fromEntries([eos].flat().map((id: number) => [String(id), -100])),
    });
    const accepted: number[] = [];
    const refused: number[] = [];
    await Promise.all(
      Array.from({ length: clients }, async () => {
        for (let i = 0; i < REQUESTS_PER_CLIENT; i++) {
          const started = performance.now();
          const r = await fetch(`${base}/v1/chat/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization },
            body,
          });
          await r.arrayBuffer();
          (r.status === 200 ? accepted : refused).push(performance.now() - started);
        }
      }),
    );
    return { accepted, refused };
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
  }
}

const baseline = await run(BATCH);
const overload = await run(10 * (BATCH + QUEUE));
const row = (label: string, xs: number[]) =>
  console.log(
    `${label.padEnd(34)} n=${String(xs.length).padStart(4)}  p50 ${percentile(xs, 50).toFixed(1).padStart(7)} ms` +
      `  p99 ${percentile(xs, 99).toFixed(1).padStart(7)} ms`,
  );
console.log(
  `batch ${BATCH}, queue ${QUEUE}, ${MAX_TOKENS} tokens per request, ${REQUESTS_PER_CLIENT} requests per client`,
);
row(`baseline: ${BATCH} clients, accepted`, baseline.accepted);
row(`overload: ${10 * (BATCH + QUEUE)} clients, accepted`, overload.accepted);
row(`overload: ${10 * (BATCH + QUEUE)} clients, refused (429)`, overload.refused);
const bound = (BATCH + QUEUE) / BATCH; // a request can wait for the whole queue ahead of it, then run
console.log(
  `\naccepted p99 overload / baseline: ${(percentile(overload.accepted, 99) / percentile(baseline.accepted, 99)).toFixed(2)}` +
    ` (queue bound ≈ ${bound.toFixed(1)}, plus contention)`,
);
console.log(
  `refused p99 / baseline accepted p50: ${(percentile(overload.refused, 99) / percentile(baseline.accepted, 50)).toFixed(3)}`,
);
