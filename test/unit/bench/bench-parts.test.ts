import { describe, expect, it } from 'vitest';
import { parseBenchArgs } from '../../../service/bench/args.js';
import { failure } from '../../../service/bench/bench.js';
import type { RequestResult } from '../../../service/bench/client.js';
import { BENCH_METRICS } from '../../../service/bench/metrics-names.js';
import {
  type BenchReport,
  historyFileName,
  renderTable,
  renderTextfile,
} from '../../../service/bench/output.js';
import { percentile, summarise } from '../../../service/bench/stats.js';
import { UsageError } from '../../../service/security/auth/commands.js';

const base = ['--url', 'https://chat.internal:8443/', '--model', 'm', '--concurrency', '1,4'];
const valid = [...base, '--requests', '8', '--max-tokens', '32'];

/** Every non-comment line of the exposition is `name{labels} value`. */
const SAMPLE_LINE =
  /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? -?[0-9.e+-]+$/;

function ok(ttft: number, e2e: number, outputTokens: number): RequestResult {
  return { ok: true, status: 200, ttft, e2e, outputTokens };
}

describe('parseBenchArgs', () => {
  it('parses the flags the systemd unit passes', () => {
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
      model: 'm',
      concurrency: [1, 4],
      requests: 8,
      maxTokens: 32,
      caFile: 'ca.pem',
      tokenFile: 't',
      jsonDir: 'd',
      textfile: 'f',
    });
  });

  it.each([
    [['--model', 'm', '--concurrency', '1', '--requests', '1', '--max-tokens', '1'], '--url is required'],
    [[...base, '--max-tokens', '32'], '--requests is required'],
    [[...base, '--requests', '0', '--max-tokens', '32'], '--requests must be an integer'],
    [[...base, '--requests', '2.5', '--max-tokens', '32'], '--requests must be an integer'],
    [[...valid.slice(0, 4), '--concurrency', '1,,4', ...valid.slice(6)], '--concurrency must be'],
    [[...valid.slice(0, 4), '--concurrency', '1,x', ...valid.slice(6)], '--concurrency must be'],
    [['--url', 'ftp://x', ...valid.slice(2)], '--url must be an http:// or https:// URL'],
    [['--url', 'http://x', ...valid.slice(2), '--ca-file', 'ca.pem'], '--ca-file applies to an https://'],
    [[...valid, '--conc', '2'], "Unknown option '--conc'"],
  ])('%j → exit 2 naming the flag', (argv, message) => {
    const run = () => parseBenchArgs(argv);
    expect(run).toThrow(UsageError);
    expect(run).toThrow(message);
  });
});

describe('percentile and summarise', () => {
  it('takes the nearest rank', () => {
    const values = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
    expect(percentile(values, 50)).toBe(5);
    expect(percentile(values, 95)).toBe(10);
    expect(percentile(values, 99)).toBe(10);
    expect(percentile([3], 50)).toBe(3);
    expect(percentile([], 50)).toBeNull();
  });

  it('counts tokens of successes only and groups failure reasons', () => {
    const results: RequestResult[] = [
      ok(0.1, 1, 10),
      ok(0.3, 2, 20),
      { ok: false, status: 401, error: 'HTTP 401: nope', e2e: 0.01, outputTokens: 0 },
      { ok: false, status: 401, error: 'HTTP 401: nope', e2e: 0.01, outputTokens: 0 },
      { ok: false, error: 'connect ECONNREFUSED', e2e: 0.01, outputTokens: 0 },
    ];
    const level = summarise(2, results, 2);
    expect(level).toMatchObject({
      concurrency: 2,
      requests: 5,
      successes: 2,
      failures: 3,
      responded: 4,
      outputTokens: 30,
      outputTokensPerSecond: 15,
      ttftP50: 0.1,
      ttftP95: 0.3,
      e2eP50: 1,
      e2eP99: 2,
    });
    expect(level.errors).toEqual([
      { error: 'HTTP 401: nope', count: 2 },
      { error: 'connect ECONNREFUSED', count: 1 },
    ]);
  });
});

describe('output', () => {
  const report = (levels: BenchReport['levels']): BenchReport => ({
    url: 'https://h:8443',
    model: 'm',
    timestamp: '2026-11-27T09:30:00.123Z',
    maxTokens: 32,
    requestsPerLevel: 2,
    ok: levels.every((l) => l.successes > 0),
    levels,
  });
  const good = summarise(1, [ok(0.1, 1, 10), ok(0.2, 1, 10)], 2);
  const bad = summarise(4, [{ ok: false, status: 401, error: 'HTTP 401: no', e2e: 0, outputTokens: 0 }], 1);

  it('names history files by the run start, without colons', () => {
    expect(historyFileName('2026-11-27T09:30:00.123Z')).toBe('2026-11-27T09-30-00Z.json');
  });

  it('writes gauges with HELP and TYPE, and last success only when every level succeeded', () => {
    const text = renderTextfile(report([good]));
    expect(text).toContain(`# TYPE ${BENCH_METRICS.outputTokensPerSecond} gauge`);
    expect(text).toContain(`${BENCH_METRICS.outputTokensPerSecond}{concurrency="1"} 10\n`);
    expect(text).toContain(`${BENCH_METRICS.ttftP50}{concurrency="1"} 0.1\n`);
    expect(text).toContain(`${BENCH_METRICS.lastSuccess} ${Date.parse('2026-11-27T09:30:00Z') / 1000}\n`);
    for (const line of text.trimEnd().split('\n'))
      if (!line.startsWith('#')) expect(line).toMatch(SAMPLE_LINE);

    const failed = renderTextfile(report([good, bad]));
    expect(failed).not.toContain(BENCH_METRICS.lastSuccess);
    expect(failed).toContain(`${BENCH_METRICS.outputTokensPerSecond}{concurrency="4"} 0\n`);
    expect(failed).not.toContain(`${BENCH_METRICS.ttftP50}{concurrency="4"}`);
  });

  it('prints a table and names the failing level', () => {
    const table = renderTable(report([good, bad]));
    expect(table).toMatch(/conc\s+reqs\s+ok\s+fail\s+tok\/s/);
    expect(table).toContain('concurrency 4: 1 × HTTP 401: no');
    expect(failure(report([good]))).toBeUndefined();
    expect(failure(report([good, bad]))).toBe(
      'concurrency 4: all 1 requests to https://h:8443/v1/chat/completions failed (HTTP 401: no)',
    );
    const refused = summarise(1, [{ ok: false, error: 'connect ECONNREFUSED', e2e: 0, outputTokens: 0 }], 0);
    expect(failure(report([refused]))).toBe(
      'cannot reach https://h:8443/v1/chat/completions: connect ECONNREFUSED',
    );
  });
});
