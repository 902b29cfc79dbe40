/**
 * `chatmirror serve` as an operator runs it: the real CLI in a child process, HTTPS with the development
 * certificate it prints, a graceful drain on SIGTERM, and config errors refused before listening. The API itself
 * is tested in-process (test/helpers/app.ts); this file covers what only the process shows.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TINY_MODEL_DIR } from '../../helpers/model.js';
import {
  type ServeProcess,
  spawnServe as spawnServeProcess,
  waitForOutput,
} from '../../helpers/serve-process.js';

const _REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const STARTUP_TIMEOUT_MS = 60_000; // tsx compile + engine load, on a busy 2-core machine
// Long enough for the streamed generation below to finish (it takes well under a second), short enough that a
// drain which never ends shows up as a slow test rather than a hung one.
const SHUTDOWN_GRACE_MS = 10_000;
const MAX_TOKENS = 300;

const children: ChildProcess[] = [];
const cacheDirs: string[] = [];

afterAll(() => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const dir of cacheDirs) rmSync(dir, { recursive: true, force: true });
});

/** Spawns through the shared helper and keeps the child for the SIGKILL safety net above. */
function spawnServe(settings: Record<string, string>): ServeProcess {
  const serve = spawnServeProcess(settings);
  children.push(serve.child);
  return serve;
}

async function exitWithin(p: ServeProcess, timeoutMs: number) {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`still running ${timeoutMs} ms later:\n${p.stderr()}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([p.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface HttpsResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request on its own connection; `ca` undefined means Node's default trust store only. */
/** The development token the banner printed; every request carries it, as a user following the banner would. */
let devToken: string | undefined;

function httpsRequest(
  url: string,
  options: { ca?: Buffer; body?: unknown; onData?: (text: string) => void; timeoutMs?: number },
): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    const req = request(
      url,
      {
        method: payload === undefined ? 'GET' : 'POST',
        agent: false,
        ...(options.ca === undefined ? {} : { ca: options.ca }),
        headers: {
          ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
          ...(devToken === undefined ? {} : { authorization: `Bearer ${devToken}` }),
        },
        timeout: options.timeoutMs ?? 30_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (text: string) => {
          body += text;
          options.onData?.(text);
        });
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} in time`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** HTTP/1.1 responses (Content-Length bodies) read one after another from one kept-alive TLS connection. */
class KeepAliveProbe {
  private buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  closed = false;

  constructor(readonly socket: TLSSocket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => {});
  }

  static open(base: URL, ca: Buffer): Promise<KeepAliveProbe> {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({ host: base.hostname, port: Number(base.port), ca }, () =>
        resolve(new KeepAliveProbe(socket)),
      );
      socket.once('error', reject);
    });
  }

  async next(timeoutMs = 10_000): Promise<HttpsResult> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const parsed = this.take();
      if (parsed) return parsed;
      if (this.closed) throw new Error(`connection closed; unparsed: ${this.buffer.toString()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no complete response in ${timeoutMs} ms: ${this.buffer.toString()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  private take(): HttpsResult | undefined {
    const end = this.buffer.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const [statusLine, ...lines] = this.buffer.subarray(0, end).toString('latin1').split('\r\n');
    const headers: IncomingHttpHeaders = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    if (this.buffer.length < end + 4 + length) return undefined;
    const body = this.buffer.subarray(end + 4, end + 4 + length).toString('utf8');
    this.buffer = this.buffer.subarray(end + 4 + length);
    return { status: Number(statusLine!.split(' ')[1]), headers, body };
  }
}

/** Bans every EOS id of the model, so a generation runs to max_tokens. */
function banEos(): Record<string, number> {
  const config = JSON.parse(readFileSync(join(TINY_MODEL_DIR, 'generation_config.json'), 'utf8'));
  const ids: number[] = [config.eos_token_id].flat();
  return Object.fromEntries(ids.map((id) => [String(id), -100]));
}

function expectOpenAIError(result: HttpsResult, status: number, code: string, type: string): void {
  expect(result.status).toBe(status);
  expect(result.headers['x-request-id']).toMatch(/^req_/);
  const parsed = JSON.parse(result.body);
  expect(Object.keys(parsed.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(parsed.error).toMatchObject({ code, type, param: null });
}

describe('serve over HTTPS with the development certificate', () => {
  let serve: ServeProcess;
  let base: URL;
  let modelId: string;
  let ca: Buffer;

  beforeAll(async () => {
    const cache = mkdtempSync(join(tmpdir(), 'chatmirror-serve-'));
    cacheDirs.push(cache);
    serve = spawnServe({
      CHATMIRROR_CACHE: cache,
      CHATMIRROR_ENGINE_MODEL_DIR: TINY_MODEL_DIR,
      CHATMIRROR_SERVER_HOST: '127.0.0.1',
      CHATMIRROR_SERVER_PORT: '0',
      CHATMIRROR_SERVER_TLS_ENABLED: 'true',
      CHATMIRROR_SERVER_SHUTDOWN_GRACE_MS: String(SHUTDOWN_GRACE_MS),
      // info: the drain announces itself in the log, which the SIGTERM test waits for.
      CHATMIRROR_LOG_LEVEL: 'info',
    });
    const banner = await waitForOutput(
      serve,
      /chatmirror: serving (\S+) at (https:\/\/\S+)\n[\s\S]*?self-signed development certificate: (\S+)[\s\S]*?export CHATMIRROR_TOKEN=(\S+)/,
      STARTUP_TIMEOUT_MS,
    );
    modelId = banner[1]!;
    base = new URL(banner[2]!);
    expect(banner[3]!.startsWith(join(cache, 'dev-tls'))).toBe(true);
    ca = readFileSync(banner[3]!);
    devToken = banner[4]!;
  }, STARTUP_TIMEOUT_MS + 10_000);

  it('answers a chat completion to a client trusting only the printed certificate', async () => {
    const r = await httpsRequest(`${base.origin}/v1/chat/completions`, {
      ca,
      body: { model: modelId, messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 8 },
    });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    // Over TLS the browser-facing hardening includes HSTS.
    expect(r.headers['strict-transport-security']).toMatch(/max-age=\d+/);
    const completion = JSON.parse(r.body);
    expect(completion).toMatchObject({ object: 'chat.completion', model: modelId });
    expect(completion.id).toMatch(/^chatcmpl-/);
    expect(completion.choices[0].message.role).toBe('assistant');
    expect(completion.choices[0].message.content).toBeTypeOf('string');
    expect(completion.usage.total_tokens).toBe(
      completion.usage.prompt_tokens + completion.usage.completion_tokens,
    );
  });

  it('is refused by a client that does not trust the certificate', async () => {
    const err = await httpsRequest(`${base.origin}/health`, {}).then(
      () => undefined,
      (e: NodeJS.ErrnoException) => e,
    );
    expect(err?.code).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
  });

  it('on SIGHUP says what it reloads and that the config file is not among it', async () => {
    serve.child.kill('SIGHUP');
    await waitForOutput(
      serve,
      /SIGHUP: re-read the TLS certificate and the JWKS; the config file is not re-read/,
      10_000,
    );
    expect((await httpsRequest(`${base.origin}/health`, { ca })).status).toBe(200);
  });

  it('on SIGTERM finishes the stream in flight, reports not-ready while draining, then exits 0', async () => {
    // A kept-alive connection that has been served once, and is busy with a request whose headers are not yet
    // complete: busy, because the drain closes idle connections at once.
    const probe = await KeepAliveProbe.open(base, ca);
    probe.socket.write('GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const before = await probe.next();
    expect(before.status).toBe(200);
    expect(JSON.parse(before.body)).toMatchObject({ status: 'ready', model: modelId });
    expect(before.headers.connection).toBe('keep-alive');

    let firstChunk: () => void = () => {};
    const started = new Promise<void>((resolve) => {
      firstChunk = resolve;
    });
    let chunksAtSignal = -1;
    let chunks = 0;
    const stream = httpsRequest(`${base.origin}/v1/chat/completions`, {
      ca,
      body: {
        model: modelId,
        messages: [{ role: 'user', content: 'Continue: In the beginning' }],
        max_tokens: MAX_TOKENS,
        temperature: 0,
        logit_bias: banEos(),
        stream: true,
        stream_options: { include_usage: true },
      },
      onData: (text) => {
        chunks += text.split('data: ').length - 1;
        firstChunk();
      },
    });
    await started;
    probe.socket.write('GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    chunksAtSignal = chunks;
    serve.child.kill('SIGTERM');

    await waitForOutput(serve, /SIGTERM: draining/, 5_000);
    // While the stream is still generating, a new connection is still accepted and told so: 503, not
    // ECONNREFUSED.
    const fresh = await httpsRequest(`${base.origin}/ready`, { ca });
    expectOpenAIError(fresh, 503, 'server_shutting_down', 'server_error');
    const refused = await httpsRequest(`${base.origin}/v1/chat/completions`, {
      ca,
      body: { model: modelId, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 },
    });
    expectOpenAIError(refused, 503, 'server_shutting_down', 'server_error');
    expect(refused.headers['retry-after']).toBe('1');
    probe.socket.write('\r\n');
    const during = await probe.next();
    expectOpenAIError(during, 503, 'server_shutting_down', 'server_error');
    expect(serve.child.exitCode).toBeNull();

    const streamed = await stream;
    expect(streamed.status).toBe(200);
    expect(streamed.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(streamed.body.endsWith('data: [DONE]\n\n')).toBe(true);
    // Still generating when the signal went out: most of the stream came after it.
    expect(chunksAtSignal).toBeLessThan(MAX_TOKENS / 2);
    const events = streamed.body
      .split('\n\n')
      .filter((event) => event.startsWith('data: {'))
      .map((event) => JSON.parse(event.slice('data: '.length)));
    expect(events.some((e) => e.choices[0]?.finish_reason === 'length')).toBe(true);
    expect(events.at(-1).usage.completion_tokens).toBe(MAX_TOKENS);

    expect(await exitWithin(serve, SHUTDOWN_GRACE_MS + 10_000)).toEqual({ code: 0, signal: null });
  }, 60_000);
});

describe('serve with a bad configuration', () => {
  it('exits non-zero before listening, naming the setting and its env var', async () => {
    const serve = spawnServe({
      CHATMIRROR_ENGINE_MODEL_DIR: TINY_MODEL_DIR,
      CHATMIRROR_SERVER_TLS_ENABLED: 'false',
      CHATMIRROR_SERVER_PORT: '99999',
    });
    const { code } = await exitWithin(serve, 30_000);
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    expect(serve.stderr()).toContain('server.port');
    expect(serve.stderr()).toContain('CHATMIRROR_SERVER_PORT');
    expect(serve.stderr()).toContain('99999');
    expect(serve.stdout()).not.toContain('chatmirror: serving');
  }, 40_000);
});
