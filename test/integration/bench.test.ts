/**
 * `chatmirror bench` against the real app on a loopback port: plain HTTP, then through an HTTPS proxy whose
 * self-signed certificate only --ca-file makes trusted.
 */

import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bench } from '../../service/bench/bench.js';
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
  await writeFile(tokenFile, `${await t.token({ scopes: ['chat'] })}\n`);
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
    ...extra,
  ];
}

function capture() {
  const lines: string[] = [];
  return { lines, out: { write: (text: string) => lines.push(text) } };
}

describe('chatmirror bench', () => {
  it('measures each level and writes the JSON history and the textfile', async () => {
    const jsonDir = await mkdtemp(join(dir, 'history-'));
    const textfile = join(dir, '.chatmirror_bench.prom.tmp');
    const { lines, out } = capture();
    const report = await bench(args(['--json-dir', jsonDir, '--textfile', textfile]), out);

    expect(report.ok).toBe(true);
    expect(report.levels.map((l) => l.concurrency)).toEqual([1, 2]);
    for (const level of report.levels) {
      expect(level).toMatchObject({ requests: 3, successes: 3, failures: 0 });
      expect(level.outputTokens).toBeGreaterThan(0);
      expect(level.outputTokensPerSecond).toBeGreaterThan(0);
      expect(level.ttftP50).toBeGreaterThan(0);
      expect(level.ttftP95).toBeGreaterThanOrEqual(level.ttftP50!);
      expect(level.e2eP50).toBeGreaterThanOrEqual(level.ttftP50!);
      expect(level.e2eP99).toBeGreaterThanOrEqual(level.e2eP50!);
    }
    expect(lines.join('')).toMatch(/conc\s+reqs\s+ok\s+fail/);

    // One document, atomically renamed into place (no temporary left behind), named by the run's start.
    const files = await readdir(jsonDir);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ\.json$/);
    const doc = JSON.parse(await readFile(join(jsonDir, files[0]!), 'utf8')) as typeof report;
    expect(doc).toEqual(report);
    expect(doc).toMatchObject({ url, model, ok: true });

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
  });

  it('fails naming the HTTP error when the token is wrong, and records the failed run', async () => {
    const badToken = join(dir, 'bad-token');
    await writeFile(badToken, 'not-a-token\n');
    const jsonDir = await mkdtemp(join(dir, 'history-'));
    const textfile = join(dir, 'failed.prom');
    const run = bench(
      args(['--json-dir', jsonDir, '--textfile', textfile], { tokenFile: badToken }),
      capture().out,
    );
    await expect(run).rejects.toThrow(
      new RegExp(`^concurrency 1: all 3 requests to ${url}/v1/chat/completions failed \\(HTTP 401: `),
    );
    const [file] = await readdir(jsonDir);
    expect(JSON.parse(await readFile(join(jsonDir, file!), 'utf8'))).toMatchObject({ ok: false });
    expect(await readFile(textfile, 'utf8')).not.toContain(BENCH_METRICS.lastSuccess);
  });

  it('fails naming the endpoint when nothing listens there', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const run = bench(args([], { url: `http://127.0.0.1:${port}` }), capture().out);
    await expect(run).rejects.toThrow(
      `cannot reach http://127.0.0.1:${port}/v1/chat/completions: connect ECONNREFUSED`,
    );
  });

  it('rejects a missing token file as a usage error', async () => {
    await expect(bench(args([], { tokenFile: join(dir, 'absent') }), capture().out)).rejects.toMatchObject({
      exitCode: 2,
      message: expect.stringContaining('--token-file: cannot read'),
    });
  });

  it('speaks HTTPS trusting --ca-file, and refuses the certificate without it', async () => {
    const { port } = proxy.address() as AddressInfo;
    const httpsUrl = `https://localhost:${port}`;
    const report = await bench(
      [...args([], { url: httpsUrl, concurrency: '2' }), '--ca-file', caFile],
      capture().out,
    );
    expect(report.levels).toHaveLength(1);
    expect(report.levels[0]).toMatchObject({ concurrency: 2, successes: 3 });
    await expect(bench(args([], { url: httpsUrl }), capture().out)).rejects.toThrow(
      /^cannot reach https:\/\/localhost:\d+\/v1\/chat\/completions: self[- ]signed certificate/,
    );
  });
});
