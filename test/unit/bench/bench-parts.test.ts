import { describe, expect, it } from 'vitest';
import { parseBenchArgs } from '../../../service/bench/args.js';
import { failure } from '../../../service/bench/bench.js';
import { type RequestResult, requestBody, StreamParser } from '../../../service/bench/client.js';
import { BENCH_METRICS } from '../../../service/bench/metrics-names.js';
import {
  type BenchReport,
  historyFileName,
  renderMarkdown,
  renderTable,
  renderTextfile,
} from '../../../service/bench/output.js';
import { parsePromptFile, syntheticPrompt } from '../../../service/bench/prompts.js';
import { meetsSlo, parseSlo } from '../../../service/bench/slo.js';
import { distribution, percentile, summarise } from '../../../service/bench/stats.js';
import { UsageError } from '../../../service/security/auth/commands.js';

const base = ['--url', 'https://chat.internal:8443/', '--model', 'm', '--concurrency', '1,4'];
const valid = [...base, '--requests', '8', '--max-tokens', '32'];

/** Every non-comment line of the exposition is `name{labels} value`. */
const SAMPLE_LINE =
  /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? -?[0-9.e+-]+$/;

function ok(
  ttft: number,
  e2e: number,
  outputTokens: number,
  itl: number[] = [],
  promptTokens = 0,
): RequestResult {
  return { ok: true, status: 200, ttft, e2e, outputTokens, itl, promptTokens };
}
const fail = (status: number | undefined, error: string): RequestResult => ({
  ok: false,
  status,
  error,
  e2e: 0.01,
  itl: [],
  outputTokens: 0,
});

describe('parseBenchArgs', () => {
  it('parses the flags the systemd unit passes, with the defaults', () => {
    expect(
      parseBenchArgs([
        ...valid,
        '--ca-file',
        'ca.pem',
        '--token-file',
        't',
        '--json-dir',
        'd',
        '--textfile',
        'f',
      ]),
    ).toEqual({
      url: 'https://chat.internal:8443',
      api: 'chat',
      model: 'm',
      load: { kind: 'concurrency', levels: [1, 4] },
      stop: { requests: 8 },
      warmup: 1,
      prompts: { kind: 'synthetic', inputTokens: 32 },
      maxTokens: 32,
      ignoreEos: false,
      seed: 0,
      slo: {},
      sloAttainment: 0.99,
      caFile: 'ca.pem',
      tokenFile: 't',
      jsonDir: 'd',
      textfile: 'f',
      json: undefined,
      markdown: undefined,
      chart: undefined,
      progress: 'auto',
    });
  });

  it('parses an open-loop load with a duration, a cap, gamma arrivals and SLOs', () => {
    const options = parseBenchArgs([
      ...base.slice(0, 4),
      '--rate',
      '2,8.5,inf',
      '--burstiness',
      '0.5',
      '--max-concurrency',
      '16',
      '--duration',
      '2m',
      '--api',
      'completions',
      '--slo',
      'ttft=500ms,tpot:50ms',
      '--slo',
      'e2el=4s',
      '--slo-attainment',
      '0.9',
      '--ignore-eos',
    ])!;
    expect(options.load).toEqual({
      kind: 'rate',
      levels: [2, 8.5, Number.POSITIVE_INFINITY],
      burstiness: 0.5,
      maxConcurrency: 16,
    });
    expect(options.stop).toEqual({ durationSeconds: 120 });
    expect(options.slo).toEqual({ ttft: 500, tpot: 50, e2el: 4000 });
    expect(options).toMatchObject({ api: 'completions', sloAttainment: 0.9, ignoreEos: true });
  });

  it('answers --help with undefined (the command prints the help)', () => {
    expect(parseBenchArgs(['--help'])).toBeUndefined();
    expect(parseBenchArgs(['-h'])).toBeUndefined();
  });

  it.each([
    [['--model', 'm', '--concurrency', '1', '--requests', '1'], '--url is required'],
    [base, 'give --requests or --duration'],
    [[...base, '--requests', '0'], '--requests must be an integer'],
    [[...base, '--requests', '2.5'], '--requests must be an integer'],
    [[...base, '--requests', '2', '--duration', '3s'], 'give --requests or --duration, not both'],
    [[...base, '--duration', '3h'], '--duration must be like 30s or 5m'],
    [[...valid.slice(0, 4), '--concurrency', '1,,4', ...valid.slice(6)], '--concurrency must be'],
    [[...valid.slice(0, 4), '--concurrency', '1,x', ...valid.slice(6)], '--concurrency must be'],
    [[...valid.slice(0, 4), '--requests', '3'], 'give --concurrency or --rate'],
    [[...valid, '--rate', '2'], 'give --concurrency or --rate, not both'],
    [[...valid.slice(0, 4), '--rate', '0', '--requests', '3'], '--rate must be'],
    [[...valid, '--max-concurrency', '2'], '--max-concurrency applies to --rate only'],
    [['--url', 'ftp://x', ...valid.slice(2)], '--url must be an http:// or https:// URL'],
    [['--url', 'http://x', ...valid.slice(2), '--ca-file', 'ca.pem'], '--ca-file applies to an https://'],
    [[...valid, '--api', 'embeddings'], '--api must be chat or completions'],
    [[...valid, '--slo', 'ttft=500'], '--slo takes METRIC=VALUE with a unit'],
    [[...valid, '--slo', 'itl=5ms'], '--slo: unknown metric "itl"'],
    [[...valid, '--slo-attainment', '0.9'], '--slo-attainment needs --slo'],
    [[...valid, '--slo', 'ttft=1s', '--slo-attainment', '1.5'], '--slo-attainment must be'],
    [[...valid, '--input-tokens', '8', '--prompt-file', 'p'], 'give --input-tokens or --prompt-file'],
    [[...valid, '--conc', '2'], "Unknown option '--conc'"],
  ])('%j → exit 2 naming the flag', (argv, message) => {
    const run = () => parseBenchArgs(argv);
    expect(run).toThrow(UsageError);
    expect(run).toThrow(message);
  });
});

describe('metrics on recorded timings (hand-checked)', () => {
  // A: 5 tokens, chunks every 100 ms. B: 4 tokens, gaps 200/300/400 ms. C: one token. D: 429. E: no response.
  const results: RequestResult[] = [
    ok(0.1, 0.5, 5, [0.1, 0.1, 0.1, 0.1], 10),
    ok(0.2, 1.1, 4, [0.2, 0.3, 0.4], 20),
    ok(0.3, 0.3, 1, [], 30),
    fail(429, 'HTTP 429: slow down'),
    fail(undefined, 'connect ECONNREFUSED'),
  ];
  const level = summarise({ concurrency: 2 }, results, 2, { slo: { ttft: 250, tpot: 150 }, maxInFlight: 2 });

  it('counts requests, tokens and throughput over the level duration', () => {
    expect(level).toMatchObject({
      requests: 5,
      completed: 3,
      failed: 2,
      responded: 4,
      failuresByStatus: { '429': 1, connection: 1 },
      totalInputTokens: 60,
      totalOutputTokens: 10,
      requestThroughput: 1.5,
      outputThroughput: 5,
      totalTokenThroughput: 35,
      maxInFlight: 2,
    });
  });

  it('TTFT [100, 200, 300] ms: mean 200, median 200, std 81.65 (population), p90 280, p99 298', () => {
    const d = level.ttftMs!;
    expect(d.mean).toBeCloseTo(200, 9);
    expect(d.median).toBeCloseTo(200, 9);
    expect(d.std).toBeCloseTo(Math.sqrt(20_000 / 3), 9);
    expect(d.p90).toBeCloseTo(280, 9);
    expect(d.p99).toBeCloseTo(298, 9);
  });

  it('TPOT = (E2EL − TTFT) / (tokens − 1): A 100 ms, B 300 ms, C (one token) left out', () => {
    const d = level.tpotMs!;
    expect([d.mean, d.median, d.std, d.p90, d.p99].map((v) => Number(v.toFixed(6)))).toEqual([
      200, 200, 100, 280, 298,
    ]);
  });

  it('ITL pools every chunk gap: [100 ×4, 200, 300, 400] ms', () => {
    const d = level.itlMs!;
    expect(d.mean).toBeCloseTo(1300 / 7, 9);
    expect(d.median).toBeCloseTo(100, 9);
    expect(d.p90).toBeCloseTo(340, 9);
    expect(d.p99).toBeCloseTo(394, 9);
    expect(d.std).toBeCloseTo(Math.sqrt(88_571.428_571_43 / 7), 6);
  });

  it('E2EL [500, 1100, 300] ms of the successful requests only', () => {
    const d = level.e2elMs!;
    expect(d.mean).toBeCloseTo(1900 / 3, 9);
    expect(d.median).toBeCloseTo(500, 9);
    expect(d.p90).toBeCloseTo(980, 9);
    expect(d.p99).toBeCloseTo(1088, 9);
  });

  it('goodput: only A meets ttft ≤ 250 ms and tpot ≤ 150 ms, so 0.5 req/s and 1 of 5 requests', () => {
    expect(level.goodput).toBeCloseTo(0.5, 12);
    expect(level.sloAttainment).toBeCloseTo(0.2, 12);
    expect(summarise({ concurrency: 2 }, results, 2, { maxInFlight: 2 })).toMatchObject({
      goodput: null,
      sloAttainment: null,
    });
  });

  it('percentile interpolates linearly as numpy does', () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5);
    expect(percentile([4, 1, 3, 2], 75)).toBe(3.25);
    expect(percentile([3], 99)).toBe(3);
    expect(percentile([], 50)).toBeNull();
    expect(distribution([])).toBeNull();
  });

  it('an SLO judges each given metric; a one-token request meets the TPOT target', () => {
    const slo = parseSlo(['ttft=100ms,tpot=10ms', 'e2el=1.5s']);
    expect(slo).toEqual({ ttft: 100, tpot: 10, e2el: 1500 });
    expect(meetsSlo(slo, { ttftMs: 100, tpotMs: 10, e2elMs: 1500 })).toBe(true);
    expect(meetsSlo(slo, { ttftMs: 100, e2elMs: 1500 })).toBe(true);
    expect(meetsSlo(slo, { ttftMs: 101, tpotMs: 10, e2elMs: 1500 })).toBe(false);
    expect(meetsSlo(slo, { tpotMs: 10, e2elMs: 1500 })).toBe(false);
    expect(meetsSlo(slo, { ttftMs: 1, tpotMs: 11, e2elMs: 1 })).toBe(false);
    expect(meetsSlo(slo, { ttftMs: 1, tpotMs: 1, e2elMs: 1501 })).toBe(false);
  });
});

describe('the stream parser', () => {
  it('times content chunks (chat deltas or completion text), reads usage, and needs [DONE]', () => {
    let now = 0;
    const parser = new StreamParser(() => now);
    const frame = (data: unknown) => `data: ${JSON.stringify(data)}\n\n`;
    now = 0.05;
    parser.push(frame({ choices: [{ delta: { role: 'assistant' } }] }));
    now = 0.1;
    parser.push(frame({ choices: [{ delta: { content: 'Hel' } }] }));
    now = 0.15;
    parser.push(`${frame({ choices: [{ text: 'lo' }] })}`.replace('\n\n', '\r\n\r\n'));
    now = 0.35;
    parser.push(frame({ choices: [{ delta: { content: '!' } }] }).slice(0, 10));
    parser.push(frame({ choices: [{ delta: { content: '!' } }] }).slice(10));
    parser.push(frame({ choices: [], usage: { prompt_tokens: 7, completion_tokens: 3 } }));
    const before = parser.result();
    expect(before).toMatchObject({ ok: false, error: 'stream ended without [DONE]' });
    parser.push('data: [DONE]\n\n');
    const result = parser.result();
    expect(result).toMatchObject({ ok: true, ttft: 0.1, promptTokens: 7, outputTokens: 3 });
    expect(result.itl.map((s) => Number(s.toFixed(9)))).toEqual([0.05, 0.2]);
  });

  it('fails on an error event, keeping the first message', () => {
    const parser = new StreamParser(() => 0);
    parser.push('event: error\ndata: {"error":{"message":"engine closed"}}\n\ndata: [DONE]\n\n');
    expect(parser.result()).toMatchObject({ ok: false, error: 'error event: engine closed' });
  });

  it('sends ignore_eos and min_tokens only when asked, and the prompt where each API takes it', () => {
    const target = { api: 'chat' as const, model: 'm', maxTokens: 8, ignoreEos: false };
    expect(JSON.parse(requestBody(target, 'hi'))).toEqual({
      model: 'm',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 8,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(JSON.parse(requestBody({ ...target, api: 'completions', ignoreEos: true }, 'hi'))).toMatchObject({
      prompt: 'hi',
      ignore_eos: true,
      min_tokens: 8,
    });
  });
});

describe('prompts', () => {
  it('synthetic prompts have the asked number of words, differ per request and repeat per seed', () => {
    const a = syntheticPrompt(32, 0, 0);
    expect(a.text.split(' ')).toHaveLength(32);
    expect(a.words).toBe(32);
    expect(syntheticPrompt(32, 0, 0)).toEqual(a);
    expect(syntheticPrompt(32, 0, 1).text).not.toBe(a.text);
    expect(syntheticPrompt(32, 1, 0).text).not.toBe(a.text);
  });

  it('reads a prompt file of lines and JSON lines, naming a bad line', () => {
    expect(parsePromptFile('hello there\n\n{"prompt": "a \\"quoted\\" one"}\n', 'p.txt')).toEqual([
      { text: 'hello there' },
      { text: 'a "quoted" one' },
    ]);
    expect(() => parsePromptFile('ok\n{"prompt": 3}\n', 'p.jsonl')).toThrow(
      '--prompt-file p.jsonl:2: needs a non-empty string "prompt"',
    );
    expect(() => parsePromptFile('{nope\n', 'p.jsonl')).toThrow('--prompt-file p.jsonl:1: not valid JSON');
    expect(() => parsePromptFile('\n \n', 'empty')).toThrow('--prompt-file empty has no prompts');
  });
});

describe('output', () => {
  const report = (levels: BenchReport['levels'], sloMet: boolean | null = null): BenchReport => ({
    version: 2,
    url: 'https://h:8443',
    api: 'chat',
    model: 'm',
    timestamp: '2026-11-27T09:30:00.123Z',
    scenario: {
      load: 'concurrency 1, 4 (closed loop)',
      stop: { requests: 2 },
      warmup: 1,
      prompts: { kind: 'synthetic', inputTokens: 32 },
      maxTokens: 32,
      ignoreEos: false,
      seed: 0,
      slo: sloMet === null ? {} : { ttft: 500 },
      sloAttainment: sloMet === null ? null : 0.99,
    },
    ok: levels.every((l) => l.completed > 0),
    sloMet,
    levels,
  });
  const good = summarise({ concurrency: 1 }, [ok(0.1, 1, 10), ok(0.2, 1, 10)], 2, { maxInFlight: 1 });
  const bad = summarise({ concurrency: 4 }, [fail(401, 'HTTP 401: no')], 1, { maxInFlight: 1 });
  const rated = summarise({ rate: null, maxConcurrency: 8, burstiness: 1 }, [ok(0.1, 1, 10)], 1, {
    maxInFlight: 1,
  });

  it('names history files by the run start, without colons', () => {
    expect(historyFileName('2026-11-27T09:30:00.123Z')).toBe('2026-11-27T09-30-00Z.json');
  });

  it('writes gauges with HELP and TYPE per level, and last success only when every level succeeded', () => {
    const text = renderTextfile(report([good, rated]));
    expect(text).toContain(`# TYPE ${BENCH_METRICS.outputTokensPerSecond} gauge`);
    expect(text).toContain(`${BENCH_METRICS.outputTokensPerSecond}{concurrency="1"} 10\n`);
    expect(text).toContain(`${BENCH_METRICS.outputTokensPerSecond}{rate="inf"} 10\n`);
    expect(text).toContain(`${BENCH_METRICS.requestsPerSecond}{concurrency="1"} 1\n`);
    expect(text).toMatch(new RegExp(`${BENCH_METRICS.ttftP50}\\{concurrency="1"\\} 0\\.15\\d*\\n`));
    expect(text).toContain(`${BENCH_METRICS.tpotP50}{concurrency="1"} 0.`);
    expect(text).toContain(`${BENCH_METRICS.failedRequests}{concurrency="1"} 0\n`);
    expect(text).toContain(`${BENCH_METRICS.lastSuccess} ${Date.parse('2026-11-27T09:30:00Z') / 1000}\n`);
    for (const line of text.trimEnd().split('\n'))
      if (!line.startsWith('#')) expect(line).toMatch(SAMPLE_LINE);

    const failed = renderTextfile(report([good, bad]));
    expect(failed).not.toContain(BENCH_METRICS.lastSuccess);
    expect(failed).toContain(`${BENCH_METRICS.outputTokensPerSecond}{concurrency="4"} 0\n`);
    expect(failed).toContain(`${BENCH_METRICS.failedRequests}{concurrency="4"} 1\n`);
    expect(failed).not.toContain(`${BENCH_METRICS.ttftP50}{concurrency="4"}`);
  });

  it('prints tables (text and Markdown) with failures by status and the SLO verdict', () => {
    const table = renderTable(report([good, bad], false));
    expect(table).toMatch(/load\s+requests\s+ok\s+failed\s+req\/s\s+output tok\/s/);
    expect(table).toMatch(/metric \(ms\)\s+mean\s+median\s+std\s+p90\s+p99/);
    expect(table).toContain('c=4: failed by status 401 × 1');
    expect(table).toContain('c=4: 1 × HTTP 401: no');
    expect(table).toContain('SLO ttft ≤ 500 ms for 99.0% of requests: MISSED');
    const md = renderMarkdown(report([good, rated]));
    expect(md).toContain('| load | requests | ok | failed | req/s |');
    expect(md).toContain('| rate=inf (max 8) | 1 | 1 | 0 |');
    expect(md).toMatch(/\| c=1 \| TTFT \| 150\.0 \| 150\.0 \| 50\.0 \| 190\.0 \| 199\.0 \|/);
  });

  it('names the failing level and its most frequent error', () => {
    expect(failure(report([good]))).toBeUndefined();
    expect(failure(report([good, bad]))).toBe(
      'c=4: all 1 requests to https://h:8443/v1/chat/completions failed (HTTP 401: no)',
    );
    const refused = summarise({ concurrency: 1 }, [fail(undefined, 'connect ECONNREFUSED')], 0, {
      maxInFlight: 1,
    });
    expect(failure(report([refused]))).toBe(
      'cannot reach https://h:8443/v1/chat/completions: connect ECONNREFUSED',
    );
  });
});
