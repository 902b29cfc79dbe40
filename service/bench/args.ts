/** `chatmirror bench` flags → validated options. Every error names its flag and exits 2 (UsageError). */
import { parseArgs } from 'node:util';
import { UsageError } from '../security/auth/commands.js';

export const BENCH_USAGE = `  chatmirror bench --url URL --model ID --concurrency 1,4 --requests N --max-tokens N
                   [--token-file FILE] [--ca-file PEM] [--json-dir DIR] [--textfile PATH]
                                         stream N chat completions at each concurrency level; print
                                         tokens/s, TTFT p50/p95 and latency p50/p99; JSON history, Prometheus text`;

const MAX_CONCURRENCY = 1024;
const MAX_REQUESTS = 1_000_000;
const MAX_TOKENS = 1_000_000;

export interface BenchOptions {
  /** Base URL, without a trailing slash: requests go to `${url}/v1/chat/completions`. */
  url: string;
  model: string;
  concurrency: number[];
  /** Requests per concurrency level. */
  requests: number;
  maxTokens: number;
  tokenFile?: string | undefined;
  caFile?: string | undefined;
  jsonDir?: string | undefined;
  textfile?: string | undefined;
}

export function parseBenchArgs(argv: string[]): BenchOptions {
  let values: Record<string, string | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        url: { type: 'string' },
        model: { type: 'string' },
        concurrency: { type: 'string' },
        requests: { type: 'string' },
        'max-tokens': { type: 'string' },
        'token-file': { type: 'string' },
        'ca-file': { type: 'string' },
        'json-dir': { type: 'string' },
        textfile: { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]!);
  }
  const url = required(values, 'url');
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
  const concurrency = required(values, 'concurrency')
    .split(',')
    .map((part) => integer('concurrency', part.trim(), MAX_CONCURRENCY));
  return {
    url: url.replace(/\/+$/, ''),
    model: required(values, 'model'),
    concurrency,
    requests: integer('requests', required(values, 'requests'), MAX_REQUESTS),
    maxTokens: integer('max-tokens', required(values, 'max-tokens'), MAX_TOKENS),
    tokenFile: values['token-file'],
    caFile: values['ca-file'],
    jsonDir: values['json-dir'],
    textfile: values.textfile,
  };
}

function required(values: Record<string, string | undefined>, name: string): string {
  const value = values[name];
  if (value === undefined || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

function integer(name: string, text: string, max: number): number {
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= 1 && n <= max)) {
    throw new UsageError(
      name === 'concurrency'
        ? `--concurrency must be a comma-separated list of integers in [1, ${max}], got "${text}"`
        : `--${name} must be an integer in [1, ${max}], got "${text}"`,
    );
  }
  return n;
}
