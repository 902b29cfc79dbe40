/**
 * `chatmirror bench` flags → validated options. Every error names its flag and is a UsageError (exit 2); the
 * command prints BENCH_USAGE beside it.
 */
import { parseArgs } from 'node:util';
import { UsageError } from '../security/auth/commands.js';
import { parseSlo, type Slo } from './slo.js';

export const BENCH_USAGE = `  chatmirror bench --url URL --model ID (--concurrency 1,4 | --rate 2,8) (--requests N | --duration 60s)
                   [--api chat|completions] [--token-file FILE] [--ca-file PEM]
                   [--input-tokens N | --prompt-file FILE] [--max-tokens N] [--ignore-eos] [--warmup N]
                   [--burstiness K] [--max-concurrency N] [--seed N] [--slo ttft=500ms,tpot=50ms,e2el=5s]
                   [--json FILE] [--markdown FILE] [--chart FILE.svg] [--json-dir DIR] [--textfile PATH]
                                         measure any OpenAI-compatible endpoint (streaming) at each load level;
                                         TTFT, TPOT, ITL, E2EL as vLLM defines them, throughput and goodput
  chatmirror bench report HISTORY... [--chart FILE.svg] [--markdown FILE]
                                         a history (directories or files of bench JSON) as a table and chart`;

export const BENCH_HELP = `usage:
${BENCH_USAGE}

Target
  --url URL              base URL of the API (requests go to URL/v1/chat/completions or URL/v1/completions)
  --api chat|completions which endpoint to stream from (default chat)
  --model ID             the model name sent in each request
  --token-file FILE      bearer token (first line); without it, $CHATMIRROR_TOKEN, as the clients read it
  --ca-file PEM          CA bundle to trust for an https:// URL (the dev server prints its certificate's path)

Load (one of --concurrency or --rate; each value is one level, measured in turn)
  --concurrency 1,4,16   closed loop: this many clients, each sending its next request when one ends
  --rate 2,8,inf         open loop: requests per second arriving as a Poisson process (inf: all at once)
  --burstiness K         gamma arrivals of shape K (default 1 = Poisson; < 1 burstier, > 1 steadier)
  --max-concurrency N    with --rate: at most N requests in flight (arrivals wait for a slot)
  --requests N           measured requests per level, or
  --duration 60s         measure each level for this long (s, m; requests still running are waited for)
  --warmup N             requests sent (one at a time) before the first level, not measured (default 1)
  --seed N               seeds the arrivals and the synthetic prompts (default 0): runs repeat exactly

Prompts
  --input-tokens N       synthetic prompts of about N tokens (N common words, different per request;
                         default 32); the server's prompt_tokens count is what the report shows
  --prompt-file FILE     prompts instead, used in turn: one per line, or JSON lines {"prompt": "..."}
  --max-tokens N         max_tokens of each request (default 64)
  --ignore-eos           also send ignore_eos: true and min_tokens: N (vLLM's extensions), so that every
                         request generates exactly --max-tokens tokens where the server supports them

Results
  --slo ttft=500ms,tpot=50ms,e2el=5s
                         per-request targets: goodput counts the requests that meet all of them; a level
                         where fewer than --slo-attainment of the requests do exits 3
  --slo-attainment F     share of requests that must meet the SLOs (default 0.99)
  --json FILE            the whole report as JSON          --markdown FILE   the table as Markdown
  --chart FILE.svg       latency and throughput against load, as SVG
  --json-dir DIR         one JSON document per run, named by its start (the scheduled runs' history)
  --textfile PATH        Prometheus text for node-exporter's textfile collector
  --progress auto|bar|lines|none
                         progress on stderr: a bar on a terminal, plain lines otherwise (default auto)

Exit status: 0 ok, 1 a level had no successful request, 2 bad usage, 3 an SLO was missed.

Example
  export CHATMIRROR_TOKEN=...   # as \`chatmirror serve\` prints it
  chatmirror bench --url https://127.0.0.1:8443 --ca-file ~/.cache/chatmirror/dev-tls/cert.pem \\
    --model tiny-llama --rate 2,4,8 --max-concurrency 16 --duration 30s --slo ttft=500ms --chart bench.svg
`;

export const REPORT_HELP = `usage:
  chatmirror bench report HISTORY... [--chart FILE.svg] [--markdown FILE] [--metric NAME]

Reads bench JSON documents (a directory such as the scheduled runs' --json-dir, or files) and prints one row
per run and load level, oldest first; --chart draws the chosen figure of each level over time as SVG.

  --chart FILE.svg       write the chart
  --markdown FILE        write the table as Markdown
  --metric NAME          the charted figure: output_throughput (default), request_throughput,
                         ttft_median, tpot_median, itl_median, e2el_median, e2el_p99

Example
  chatmirror bench report /var/lib/chatmirror/bench --chart history.svg
`;

const MAX_CONCURRENCY = 1024;
const MAX_REQUESTS = 1_000_000;
const MAX_TOKENS = 1_000_000;
const MAX_DURATION_S = 86_400; // one day
const MAX_RATE = 100_000; // requests per second
const DEFAULT_MAX_TOKENS = 64;
const DEFAULT_INPUT_TOKENS = 32;
const DEFAULT_WARMUP = 1;
const DEFAULT_ATTAINMENT = 0.99;

export type Api = 'chat' | 'completions';
export type Progress = 'auto' | 'bar' | 'lines' | 'none';

/** A closed loop at each concurrency, or an open loop at each rate (Infinity: every request at once). */
export type LoadShape =
  | { kind: 'concurrency'; levels: number[] }
  | { kind: 'rate'; levels: number[]; burstiness: number; maxConcurrency?: number | undefined };

/** What a level stops on: a request count, or a time after which no request is started. */
export type Stop = { requests: number } | { durationSeconds: number };

export type PromptSource = { kind: 'synthetic'; inputTokens: number } | { kind: 'file'; file: string };

export interface BenchOptions {
  /** Base URL, without a trailing slash. */
  url: string;
  api: Api;
  model: string;
  load: LoadShape;
  stop: Stop;
  warmup: number;
  prompts: PromptSource;
  maxTokens: number;
  ignoreEos: boolean;
  seed: number;
  slo: Slo;
  sloAttainment: number;
  tokenFile?: string | undefined;
  caFile?: string | undefined;
  json?: string | undefined;
  markdown?: string | undefined;
  chart?: string | undefined;
  jsonDir?: string | undefined;
  textfile?: string | undefined;
  progress: Progress;
}

const OPTIONS = {
  url: { type: 'string' },
  api: { type: 'string' },
  model: { type: 'string' },
  concurrency: { type: 'string' },
  rate: { type: 'string' },
  burstiness: { type: 'string' },
  'max-concurrency': { type: 'string' },
  requests: { type: 'string' },
  duration: { type: 'string' },
  warmup: { type: 'string' },
  seed: { type: 'string' },
  'input-tokens': { type: 'string' },
  'prompt-file': { type: 'string' },
  'max-tokens': { type: 'string' },
  'ignore-eos': { type: 'boolean' },
  slo: { type: 'string', multiple: true },
  'slo-attainment': { type: 'string' },
  'token-file': { type: 'string' },
  'ca-file': { type: 'string' },
  json: { type: 'string' },
  markdown: { type: 'string' },
  chart: { type: 'string' },
  'json-dir': { type: 'string' },
  textfile: { type: 'string' },
  progress: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; strict: true }>>['values'];

/** `undefined` for --help (the caller prints BENCH_HELP). */
export function parseBenchArgs(argv: string[]): BenchOptions | undefined {
  let values: Values;
  try {
    ({ values } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]!);
  }
  if (values.help) return undefined;
  const url = required(values.url, 'url');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--url must be an http:// or https:// URL, got "${url}"`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new UsageError(`--url must be an http:// or https:// URL, got "${url}"`);
  }
  if (values['ca-file'] !== undefined && parsed.protocol !== 'https:') {
    throw new UsageError('--ca-file applies to an https:// --url only');
  }
  const api = values.api ?? 'chat';
  if (api !== 'chat' && api !== 'completions') {
    throw new UsageError(`--api must be chat or completions, got "${api}"`);
  }
  const maxTokens =
    values['max-tokens'] === undefined
      ? DEFAULT_MAX_TOKENS
      : integer('max-tokens', values['max-tokens'], 1, MAX_TOKENS);
  const slo = parseSlo(values.slo ?? []);
  const sloAttainment =
    values['slo-attainment'] === undefined ? DEFAULT_ATTAINMENT : ratio(values['slo-attainment']);
  if (values['slo-attainment'] !== undefined && Object.keys(slo).length === 0) {
    throw new UsageError('--slo-attainment needs --slo');
  }
  const progress = values.progress ?? 'auto';
  if (!['auto', 'bar', 'lines', 'none'].includes(progress)) {
    throw new UsageError(`--progress must be auto, bar, lines or none, got "${progress}"`);
  }
  return {
    url: url.replace(/\/+$/, ''),
    api,
    model: required(values.model, 'model'),
    load: loadShape(values),
    stop: stopCondition(values),
    warmup: values.warmup === undefined ? DEFAULT_WARMUP : integer('warmup', values.warmup, 0, MAX_REQUESTS),
    prompts: promptSource(values),
    maxTokens,
    ignoreEos: values['ignore-eos'] ?? false,
    seed: values.seed === undefined ? 0 : integer('seed', values.seed, 0, 2 ** 32 - 1),
    slo,
    sloAttainment,
    tokenFile: values['token-file'],
    caFile: values['ca-file'],
    json: values.json,
    markdown: values.markdown,
    chart: values.chart,
    jsonDir: values['json-dir'],
    textfile: values.textfile,
    progress: progress as Progress,
  };
}

function loadShape(values: Values): LoadShape {
  if (values.concurrency !== undefined && values.rate !== undefined) {
    throw new UsageError('give --concurrency or --rate, not both');
  }
  if (values.concurrency !== undefined) {
    for (const flag of ['burstiness', 'max-concurrency'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} applies to --rate only`);
    }
    return { kind: 'concurrency', levels: list('concurrency', values.concurrency, MAX_CONCURRENCY) };
  }
  if (values.rate === undefined) throw new UsageError('give --concurrency or --rate');
  const levels = values.rate.split(',').map((part) => {
    const text = part.trim();
    if (text === 'inf') return Number.POSITIVE_INFINITY;
    const n = /^\d+(\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
    if (!(n > 0 && n <= MAX_RATE)) {
      throw new UsageError(
        `--rate must be a comma-separated list of requests per second in (0, ${MAX_RATE}] or inf, got "${text}"`,
      );
    }
    return n;
  });
  let burstiness = 1;
  if (values.burstiness !== undefined) {
    burstiness = /^\d+(\.\d+)?$/.test(values.burstiness) ? Number(values.burstiness) : Number.NaN;
    if (!(burstiness > 0 && burstiness <= 1000)) {
      throw new UsageError(`--burstiness must be a number in (0, 1000], got "${values.burstiness}"`);
    }
  }
  const maxConcurrency =
    values['max-concurrency'] === undefined
      ? undefined
      : integer('max-concurrency', values['max-concurrency'], 1, MAX_CONCURRENCY);
  return { kind: 'rate', levels, burstiness, maxConcurrency };
}

function stopCondition(values: Values): Stop {
  if (values.requests !== undefined && values.duration !== undefined) {
    throw new UsageError('give --requests or --duration, not both');
  }
  if (values.requests !== undefined)
    return { requests: integer('requests', values.requests, 1, MAX_REQUESTS) };
  if (values.duration === undefined) throw new UsageError('give --requests or --duration');
  const match = /^(\d+(?:\.\d+)?)(s|m)$/.exec(values.duration);
  const seconds = match ? Number(match[1]) * (match[2] === 'm' ? 60 : 1) : Number.NaN;
  if (!(seconds > 0 && seconds <= MAX_DURATION_S)) {
    throw new UsageError(`--duration must be like 30s or 5m (at most 1 day), got "${values.duration}"`);
  }
  return { durationSeconds: seconds };
}

function promptSource(values: Values): PromptSource {
  if (values['prompt-file'] !== undefined) {
    if (values['input-tokens'] !== undefined) {
      throw new UsageError('give --input-tokens or --prompt-file, not both');
    }
    return { kind: 'file', file: values['prompt-file'] };
  }
  return {
    kind: 'synthetic',
    inputTokens:
      values['input-tokens'] === undefined
        ? DEFAULT_INPUT_TOKENS
        : integer('input-tokens', values['input-tokens'], 1, MAX_TOKENS),
  };
}

function required(value: string | undefined, name: string): string {
  if (value === undefined || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

function list(name: string, text: string, max: number): number[] {
  return text.split(',').map((part) => {
    const n = /^\d+$/.test(part.trim()) ? Number(part.trim()) : Number.NaN;
    if (!(n >= 1 && n <= max)) {
      throw new UsageError(
        `--${name} must be a comma-separated list of integers in [1, ${max}], got "${part}"`,
      );
    }
    return n;
  });
}

function integer(name: string, text: string, min: number, max: number): number {
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= min && n <= max))
    throw new UsageError(`--${name} must be an integer in [${min}, ${max}], got "${text}"`);
  return n;
}

function ratio(text: string): number {
  const n = /^(0(\.\d+)?|1(\.0+)?)$/.test(text) ? Number(text) : Number.NaN;
  if (!(n > 0 && n <= 1)) throw new UsageError(`--slo-attainment must be a number in (0, 1], got "${text}"`);
  return n;
}
