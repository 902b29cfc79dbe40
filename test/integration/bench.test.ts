/**
 * `chatmirror bench` against the real app (the bundled model) on a loopback port: plain HTTP, then through an
 * HTTPS proxy whose self-signed certificate only --ca-file makes trusted. Checks shapes and exit codes, never
 * speed: the figures depend on this machine's load.
 */

import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bench, SloMissedError } from '../../service/bench/bench.js';
import { BENCH_METRICS } from '../../service/bench/metrics-names.js';
import { ensureDevCertificate } from '../../service/tls/dev-cert.js';
import { startApp, stopApp, type TestApp } from '../helpers/app.js';

const SAMPLE_LINE =
  /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? \S+$/;

let t: TestApp;
let url: string;
let model: string;
let dir: string;
let tokenFile: string;
let proxy: https.Server;
let caFile: string;

beforeAll(async () => {
  t = await startApp();
  url = await t.app.listen({ host: '127.0.0.1', port: 0 });
  model = t.engine.info.name;
  dir = await mkdtemp(join(tmpdir(), 'chatmirror-bench-'));
  tokenFile = join(dir, 'token');
  await writeFile(tokenFile, `${await t.token({ scopes: ['chat', 'completions'] })}\n`);
  // An HTTPS front that streams each request through to the plain-HTTP app, as a TLS terminator would.
  const cert = await ensureDevCertificate(join(dir, 'tls'));
  caFile = cert.certFile;
  const target = new URL(url);
  proxy = https.createServer(
    { cert: await readFile(cert.certFile), key: await readFile(cert.keyFile) },
    (req, res) => {
      const upstream = http.request(
        { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      req.pipe(upstream);
    },
  );
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  proxy?.closeAllConnections();
  await new Promise((resolve) => proxy?.close(resolve));
  await stopApp(t);
});

function args(
  extra: string[],
  overrides: { url?: string; tokenFile?: string; concurrency?: string } = {},
): string[] {
  return [
    '--url',
    overrides.url ?? url,
    '--model',
    model,
    '--token-file',
    overrides.tokenFile ?? tokenFile,
    '--concurrency',
    overrides.concurrency ?? '1,2',
    '--requests',
    '3',
    '--max-tokens',
    '8',
    '--input-tokens',
    '8',
    '--progress',
    'none',
    ...extra,
  ];
}

function capture(env: NodeJS.ProcessEnv = {}) {
  const lines: string[] = [];
  return { lines, io: { out: { write: (text: string) => lines.push(text) }, env } };
}

describe('chatmirror bench', () => {
  it('measures each level and writes the JSON history and the textfile', async () => {
    const jsonDir = await mkdtemp(join(dir, 'history-'));
    const textfile = join(dir, '.chatmirror_bench.prom.tmp');
    const { lines, io } = capture();
    const report = (await bench(args(['--json-dir', jsonDir, '--textfile', textfile]), io))!;

    expect(report.ok).toBe(true);
    expect(report.levels.map((l) => l.load)).toEqual([{ concurrency: 1 }, { concurrency: 2 }]);
    for (const level of report.levels) {
      expect(level).toMatchObject({ requests: 3, completed: 3, failed: 0 });
      expect(level.totalOutputTokens).toBeGreaterThan(0);
      // The server's own count of the prompt: 8 words and the chat template around them.
      expect(level.totalInputTokens / 3).toBeGreaterThanOrEqual(8);
      expect(level.outputThroughput).toBeGreaterThan(0);
      expect(level.requestThroughput).toBeGreaterThan(0);
      expect(level.maxInFlight).toBeLessThanOrEqual((level.load as { concurrency: number }).concurrency);
      const { ttftMs, e2elMs } = level;
      expect(ttftMs!.median).toBeGreaterThan(0);
      expect(ttftMs!.p99).toBeGreaterThanOrEqual(ttftMs!.median);
      expect(e2elMs!.median).toBeGreaterThanOrEqual(ttftMs!.median);
      expect(e2elMs!.p99).toBeGreaterThanOrEqual(e2elMs!.p90);
    }
    expect(lines.join('')).toMatch(/load\s+requests\s+ok\s+failed/);

    // One document, atomically renamed into place (no temporary left behind), named by the run's start.
    const files = await readdir(jsonDir);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ\.json$/);
    const doc = JSON.parse(await readFile(join(jsonDir, files[0]!), 'utf8')) as typeof report;
    expect(doc).toEqual(report);
    expect(doc).toMatchObject({ url, model, ok: true, version: 2 });

    const text = await readFile(textfile, 'utf8');
    const samples = new Map<string, number>();
    for (const line of text.trimEnd().split('\n')) {
      if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
      expect(line).toMatch(SAMPLE_LINE);
      const [series, value] = line.split(' ');
      samples.set(series!, Number(value));
    }
    for (const c of [1, 2]) {
      expect(samples.get(`${BENCH_METRICS.outputTokensPerSecond}{concurrency="${c}"}`)).toBeGreaterThan(0);
      expect(samples.get(`${BENCH_METRICS.ttftP50}{concurrency="${c}"}`)).toBeGreaterThan(0);
    }
    expect(samples.get(BENCH_METRICS.lastSuccess)).toBe(Math.floor(Date.parse(report.timestamp) / 1000));
    expect(text).toContain(`# TYPE ${BENCH_METRICS.lastSuccess} gauge`);

    // The history renders as a table and a chart.
    const chart = join(dir, 'history.svg');
    const history = capture();
    await bench(['report', jsonDir, '--chart', chart], history.io);
    expect(history.lines.join('')).toMatch(/run\s+load\s+ok\s+failed\s+output tokens\/s/);
    expect(history.lines.join('')).toContain('c=2');
    expect(await readFile(chart, 'utf8')).toMatch(/^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  });

  it('streams legacy completions at a Poisson rate with a cap, reading $CHATMIRROR_TOKEN, and writes JSON, Markdown and SVG', async () => {
    const out = await mkdtemp(join(dir, 'out-'));
    const files = { json: join(out, 'r.json'), markdown: join(out, 'r.md'), chart: join(out, 'r.svg') };
    const argv = args(
      ['--api', 'completions', '--json', files.json, '--markdown', files.markdown, '--chart', files.chart],
      { concurrency: '' },
    ).filter((a) => a !== '--token-file' && a !== tokenFile);
    const concurrencyAt = argv.indexOf('--concurrency');
    argv.splice(concurrencyAt, 2, '--rate', '50,inf', '--max-concurrency', '2');
    const { io } = capture({ CHATMIRROR_TOKEN: await readFile(tokenFile, 'utf8') });
    const report = (await bench(argv, io))!;
    expect(report.api).toBe('completions');
    expect(report.levels.map((l) => l.load)).toEqual([
      { rate: 50, maxConcurrency: 2, burstiness: 1 },
      { rate: null, maxConcurrency: 2, burstiness: 1 },
    ]);
    for (const level of report.levels) {
      expect(level).toMatchObject({ completed: 3, failed: 0 });
      expect(level.maxInFlight).toBeLessThanOrEqual(2);
    }
    expect(JSON.parse(await readFile(files.json, 'utf8'))).toEqual(report);
    expect(await readFile(files.markdown, 'utf8')).toContain('| rate=50/s (max 2) | 3 | 3 | 0 |');
    const svg = await readFile(files.chart, 'utf8');
    expect(svg).toMatch(/^<svg /);
    expect(svg).toContain('TTFT (ms)');

    // Without the variable (and without --token-file) every request is refused.
    await expect(bench(argv, capture({}).io)).rejects.toThrow(/all 3 requests .* failed \(HTTP 401: /);
  });

  it('exits 3 when the SLO is missed, and 0 when it is met', async () => {
    const missed = bench(args(['--slo', 'e2el=0.001ms'], { concurrency: '1' }), capture().io);
    await expect(missed).rejects.toBeInstanceOf(SloMissedError);
    await expect(missed).rejects.toMatchObject({
      exitCode: 3,
      message: 'SLO missed: fewer than 99.0% of requests met it at c=1 0.0%',
    });
    const met = (await bench(args(['--slo', 'e2el=600s'], { concurrency: '1' }), capture().io))!;
    expect(met.sloMet).toBe(true);
    expect(met.levels[0]).toMatchObject({ sloAttainment: 1 });
    expect(met.levels[0]!.goodput).toBeCloseTo(met.levels[0]!.requestThroughput, 9);
  });

  it('fails naming the HTTP error when the token is wrong, and records the failed run', async () => {
    const badToken = join(dir, 'bad-token');
    await writeFile(badToken, 'not-a-token\n');
    const jsonDir = await mkdtemp(join(dir, 'history-'));
    const textfile = join(dir, 'failed.prom');
    const run = bench(
      args(['--json-dir', jsonDir, '--textfile', textfile], { tokenFile: badToken }),
      capture().io,
    );
    await expect(run).rejects.toThrow(
      new RegExp(`^c=1: all 3 requests to ${url}/v1/chat/completions failed \\(HTTP 401: `),
    );
    const [file] = await readdir(jsonDir);
    const doc = JSON.parse(await readFile(join(jsonDir, file!), 'utf8'));
    expect(doc).toMatchObject({ ok: false });
    expect(doc.levels[0].failuresByStatus).toEqual({ '401': 3 });
    expect(await readFile(textfile, 'utf8')).not.toContain(BENCH_METRICS.lastSuccess);
  });

  it('fails naming the endpoint when nothing listens there', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const run = bench(args(['--warmup', '0'], { url: `http://127.0.0.1:${port}` }), capture().io);
    await expect(run).rejects.toThrow(
      `cannot reach http://127.0.0.1:${port}/v1/chat/completions: connect ECONNREFUSED`,
    );
  });

  it('rejects a missing token file as a usage error', async () => {
    await expect(bench(args([], { tokenFile: join(dir, 'absent') }), capture().io)).rejects.toMatchObject({
      exitCode: 2,
      message: expect.stringContaining('--token-file: cannot read'),
    });
  });

  it('speaks HTTPS trusting --ca-file, and refuses the certificate without it', async () => {
    const { port } = proxy.address() as AddressInfo;
    const httpsUrl = `https://localhost:${port}`;
    const report = (await bench(
      [...args([], { url: httpsUrl, concurrency: '2' }), '--ca-file', caFile],
      capture().io,
    ))!;
    expect(report.levels).toHaveLength(1);
    expect(report.levels[0]).toMatchObject({ load: { concurrency: 2 }, completed: 3 });
    await expect(bench(args(['--warmup', '0'], { url: httpsUrl }), capture().io)).rejects.toThrow(
      /^cannot reach https:\/\/localhost:\d+\/v1\/chat\/completions: self[- ]signed certificate/,
    );
  });
});
