/**
 * `npx tsx test/bench/tokenize-load.ts [--model DIR] [--seconds N] [--rate R]` — what large prompts do to the
 * server's event loop (issue 10, item 4). The real app on the bundled model (or --model) listens on loopback in
 * this process, so `monitorEventLoopDelay` sees the very loop that serves HTTP; the load generator on it only
 * sends R requests a second (default 5) and reads the answers. Phases, each --seconds long (default 10):
 *
 *   quiet      no requests: the baseline
 *   1 MB       1 MB prompts, refused from their length before any tokenizing
 *   largest    the largest prompts the character bound lets through: templated and tokenized (in the tokenizer
 *              pool), then refused for the context
 *   pool N     prompts of --chars characters (default 300000, beyond what the routes let through for the
 *              bundled model, as a larger model's context would) given to the tokenizer pool directly
 *   main N     the same, templated and tokenized on this thread: what the routes did before the pool
 *
 * Each prints the event-loop delay p50/p99/max, the slowest /health answer (probed 10× a second) and the load
 * average. Prints figures; asserts nothing. On a shared machine compare phases of one run, not runs.
 */
import { loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { startApp, stopApp } from '../helpers/app.js';
import { TINY_MODEL_DIR } from '../helpers/model.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: TINY_MODEL_DIR },
    seconds: { type: 'string', default: '10' },
    rate: { type: 'string', default: '5' },
    chars: { type: 'string', default: '300000' },
  },
});
const seconds = Number(values.seconds);
const rate = Number(values.rate);

const t = await startApp({ CHATMIRROR_ENGINE_MODEL_DIR: values.model! });
const base = await t.app.listen({ host: '127.0.0.1', port: 0 });
const headers = { 'content-type': 'application/json', ...(await t.auth()) };
const bound = t.engine.info.contextLength * t.engine.tokenizer.maxTokenChars * 2;
const largest = 'the end of it all '.repeat(Math.floor(bound / 18));
const megabyte = 'x'.repeat(1_000_000);
const big = 'the end of it all '.repeat(Math.ceil(Number(values.chars) / 18)).slice(0, Number(values.chars));
console.log(
  `model ${t.engine.info.name}: context ${t.engine.info.contextLength} tokens, character bound ${bound}; ` +
    `largest passing prompt ${largest.length} characters (${t.engine.encodeText(largest).length} tokens); ` +
    `${rate} requests/s for ${seconds} s per phase`,
);

async function phase(name: string, fire: (() => Promise<unknown>) | undefined): Promise<void> {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  let slowestHealth = 0;
  let done = false;
  const statuses = new Map<string, number>();
  const probes = (async () => {
    while (!done) {
      const started = performance.now();
      await fetch(`${base}/health`).then((r) => r.text());
      slowestHealth = Math.max(slowestHealth, performance.now() - started);
      await sleep(100);
    }
  })();
  const inFlight: Promise<unknown>[] = [];
  histogram.enable();
  const end = performance.now() + seconds * 1000;
  let next = performance.now();
  while (performance.now() < end) {
    if (fire) {
      inFlight.push(
        fire().then((status) => statuses.set(String(status), (statuses.get(String(status)) ?? 0) + 1)),
      );
    }
    next += 1000 / rate;
    await sleep(Math.max(0, next - performance.now()));
  }
  await Promise.all(inFlight);
  histogram.disable();
  done = true;
  await probes;
  const ms = (ns: number) => (ns / 1e6).toFixed(1).padStart(7);
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  console.log(
    `${name.padEnd(12)} event-loop delay p50 ${ms(histogram.percentile(50))} ms  p99 ${ms(histogram.percentile(99))} ms  ` +
      `max ${ms(histogram.max)} ms;  slowest /health ${slowestHealth.toFixed(1).padStart(7)} ms;  load ${load}` +
      (statuses.size > 0 ? `;  answers ${JSON.stringify(Object.fromEntries(statuses))}` : ''),
  );
}

const post = (prompt: string) => async () => {
  const r = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      model: t.engine.info.name,
      messages: [{ role: 'user', content: prompt }],
      max_tokens: 1,
    }),
  });
  const body = (await r.json()) as { error?: { code: string } };
  return body.error ? `${r.status} ${body.error.code}` : r.status;
};

await phase('quiet', undefined);
await phase('1 MB', post(megabyte));
await phase('largest', post(largest));
const tokens = (ids: number[]) => `${ids.length} tokens`;
await phase(`pool ${big.length}`, () =>
  t.engine.tokenizeChat([{ role: 'user', content: big }]).then(tokens, (err: Error) => err.name),
);
await phase(`main ${big.length}`, async () => tokens(t.engine.encodeChat([{ role: 'user', content: big }])));
await stopApp(t);
