/**
 * `npx tsx test/bench/quality.ts` — what a user would notice: 20 short factual questions with known answers
 * (capitals, arithmetic, colours, opposites) asked through the real HTTPS API of `chatmirror serve` (its own
 * process, the self-signed development certificate, the development token), once per precision; prints each
 * answer, whether it contains the expected word, and the count per precision. Also the server's memory: VmRSS
 * once ready and its peak while answering (sampled every 50 ms), beside what `chatmirror check` predicted for the
 * same configuration. Figures for the note, never a pass/fail.
 *
 * Options (env): QUALITY_MODEL_DIR (default ~/.cache/chatmirror/models/smollm2-135m-instruct),
 * QUALITY_MAX_TOKENS (48). Greedy (temperature 0), one question at a time, the model's own chat template (it adds
 * its default system prompt).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { modelNeeds } from '../../service/check.js';
import { type ServeProcess, spawnServe, waitForOutput } from '../helpers/serve-process.js';

const cache = process.env.CHATMIRROR_CACHE ?? join(homedir(), '.cache/chatmirror');
const modelDir = process.env.QUALITY_MODEL_DIR ?? join(cache, 'models/smollm2-135m-instruct');
const maxTokens = Number(process.env.QUALITY_MAX_TOKENS ?? 48);
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const GRAPHS: [string, string][] = [
  ['fp32', 'onnx/model.onnx'],
  ['int8', 'onnx/model_quantized.onnx'],
];

/** Question, and the words any one of which counts as the answer (whole words, case-insensitive). */
const QUESTIONS: [string, string[]][] = [
  ['What is the capital of France?', ['Paris']],
  ['What is the capital of Japan?', ['Tokyo']],
  ['What is the capital of Italy?', ['Rome']],
  ['What is the capital of Germany?', ['Berlin']],
  ['What is the capital of Spain?', ['Madrid']],
  ['What is the capital of the United Kingdom?', ['London']],
  ['What is 2 + 2?', ['4', 'four']],
  ['What is 3 + 5?', ['8', 'eight']],
  ['What is 10 minus 3?', ['7', 'seven']],
  ['What is 6 times 7?', ['42', 'forty-two']],
  ['What colour is the sky on a clear day?', ['blue']],
  ['What colour is grass?', ['green']],
  ['What colour are ripe bananas?', ['yellow']],
  ['What colour is snow?', ['white']],
  ['What colour is a ripe tomato?', ['red']],
  ['What is the opposite of hot?', ['cold']],
  ['What is the opposite of up?', ['down']],
  ['What is the opposite of big?', ['small', 'little']],
  ['What is the opposite of day?', ['night']],
  ['What is the opposite of happy?', ['sad', 'unhappy']],
];

const contains = (answer: string, words: string[]) =>
  words.some((w) => new RegExp(`(^|[^\\p{L}\\p{N}])${w}($|[^\\p{L}\\p{N}])`, 'iu').test(answer));

interface ChatResponse {
  choices: { message: { content: string } }[];
}

function post(
  url: string,
  ca: Buffer,
  token: string,
  body: unknown,
): Promise<{ status: number; json: ChatResponse }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        ca,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

interface Run {
  label: string;
  correct: number;
  readyRss: number;
  peakRss: number;
  predicted: string;
  seconds: number;
}

const MiB = 1024 * 1024;

async function run(label: string, graphFile: string): Promise<Run> {
  const home = mkdtempSync(join(tmpdir(), 'chatmirror-quality-'));
  const settings = {
    CHATMIRROR_CACHE: home,
    CHATMIRROR_ENGINE_MODEL_DIR: modelDir,
    CHATMIRROR_ENGINE_GRAPH_FILE: graphFile,
    CHATMIRROR_SERVER_HOST: '127.0.0.1',
    CHATMIRROR_SERVER_PORT: '0',
    CHATMIRROR_LOG_LEVEL: 'warn',
  };
  // What `chatmirror check` predicts for this configuration (its memory row), before the server exists.
  const checked = spawnSync(process.execPath, ['--import', 'tsx', 'service/cli.ts', 'check', '--json'], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...settings },
    encoding: 'utf8',
  });
  let predicted = `check gave no JSON: ${checked.stderr.trim()}`;
  try {
    const report = JSON.parse(checked.stdout) as {
      results: { name: string; status: string; detail: string }[];
    };
    const memory = report.results.find((r) => r.name === 'memory');
    predicted = memory === undefined ? 'no memory row' : `[${memory.status}] ${memory.detail}`;
  } catch {}
  let serve: ServeProcess | undefined;
  try {
    serve = spawnServe(settings);
    const banner = await waitForOutput(
      serve,
      /chatmirror: serving (\S+) at (https:\/\/\S+)\n[\s\S]*?self-signed development certificate: (\S+)[\s\S]*?export CHATMIRROR_TOKEN=(\S+)/,
      300_000,
    );
    const [, model = '', base = '', caFile = '', token = ''] = banner;
    const ca = readFileSync(caFile);
    const readyRss = serve.rss();
    let peakRss = readyRss;
    const p = serve;
    const sampler = setInterval(() => {
      if (!p.gone()) peakRss = Math.max(peakRss, p.rss());
    }, 50);
    let correct = 0;
    const t0 = performance.now();
    console.log(`\n[${label}] ${modelDir} ${graphFile} at ${base} (model id ${model})`);
    for (const [question, words] of QUESTIONS) {
      const { status, json } = await post(`${base}/v1/chat/completions`, ca, token, {
        model,
        messages: [{ role: 'user', content: question }],
        temperature: 0,
        max_tokens: maxTokens,
      });
      const answer: string =
        status === 200 ? (json.choices[0]?.message.content ?? '') : `HTTP ${status} ${JSON.stringify(json)}`;
      const ok = status === 200 && contains(answer, words);
      if (ok) correct++;
      console.log(
        `  ${ok ? 'yes' : 'no '}  ${question.padEnd(44)} ${JSON.stringify(answer.trim().slice(0, 110))}`,
      );
    }
    clearInterval(sampler);
    return { label, correct, readyRss, peakRss, predicted, seconds: (performance.now() - t0) / 1000 };
  } finally {
    serve?.child.kill('SIGTERM');
    if (serve !== undefined) await Promise.race([serve.exited, new Promise((r) => setTimeout(r, 10_000))]);
    serve?.kill();
    rmSync(home, { recursive: true, force: true });
  }
}

const runs: Run[] = [];
for (const [label, graph] of GRAPHS) runs.push(await run(label, graph));
console.log(
  `\nquality: answers containing the expected word (of ${QUESTIONS.length}), greedy, max_tokens ${maxTokens}`,
);
for (const r of runs)
  console.log(
    `  ${r.label.padEnd(5)} ${String(r.correct).padStart(2)} / ${QUESTIONS.length}   (${r.seconds.toFixed(1)} s)`,
  );
console.log(
  '\nserver memory (VmRSS of chatmirror serve) and what `chatmirror check` predicted (default engine settings):',
);
for (const r of runs)
  console.log(
    `  ${r.label.padEnd(5)} ready ${(r.readyRss / MiB).toFixed(0)} MiB, peak while answering ${(r.peakRss / MiB).toFixed(0)} MiB; check: ${r.predicted}`,
  );
// The same estimate with the remote stacks' engine settings (stacks/Pulumi.staging.yaml, Pulumi.prod.yaml).
const hf = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8'));
const int8Bytes = statSync(join(modelDir, 'onnx/model_quantized.onnx')).size;
for (const [stack, engine] of [
  ['staging (maxBatchSize 16, model context)', { maxBatchSize: 16 }],
  ['prod (maxBatchSize 16, contextLength 4096)', { maxBatchSize: 16, contextLength: 4096 }],
] as const) {
  const needs = modelNeeds(hf, { engine }, int8Bytes);
  console.log(
    `  check's estimate for int8 with ${stack}: at start ${(needs.startBytes / MiB).toFixed(0)} MiB, worst case ${(needs.estimatedBytes / MiB).toFixed(0)} MiB (KV cache up to ${(needs.kvCacheBytes / MiB).toFixed(0)} MiB)`,
  );
}
