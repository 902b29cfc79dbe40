/**
 * HTTP-level edges against a real listening server (plain HTTP on loopback): what a client sees for bodies that
 * are too large, of the wrong type or malformed, for wrong methods and URLs, oversized headers and a client that
 * never finishes its headers. Raw sockets where fetch would hide the point (a body never sent, headers never
 * finished); everything the app answers itself is OpenAI-shaped and carries x-request-id.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, stopApp, type TestApp } from '../../helpers/app.js';

const BODY_LIMIT_BYTES = 64 * 1024; // 64 KiB
const MAX_HEADER_BYTES = 4 * 1024; // 4 KiB
// Small, so the slow-loris test takes seconds; Node checks it every CONNECTIONS_CHECK_INTERVAL_MS (1 s).
const HEADERS_TIMEOUT_MS = 1_000;
const PROMPT_MS = 1_000; // an answer that needs no body or generation should come well within this

let t: TestApp;
let port: number;
let base: string;
/** A valid credential, so each test reaches the check it is about rather than the 401 before it. */
let authorization: string;

beforeAll(async () => {
  t = await startApp({
    CHATMIRROR_SERVER_BODY_LIMIT_BYTES: String(BODY_LIMIT_BYTES),
    CHATMIRROR_SERVER_MAX_HEADER_BYTES: String(MAX_HEADER_BYTES),
    CHATMIRROR_SERVER_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
    // Node refuses headersTimeout > requestTimeout; keep the request timeout well above it.
    CHATMIRROR_SERVER_REQUEST_TIMEOUT_MS: '30000',
  });
  base = await t.app.listen({ host: '127.0.0.1', port: 0 });
  port = Number(new URL(base).port);
  authorization = (await t.auth()).authorization;
});

afterAll(async () => stopApp(t));

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** ms from connecting to the whole response (or the close, when there is none). */
  elapsedMs: number;
  /** What the server sent before closing, when it closed without a complete response. */
  raw: string;
}

/**
 * Writes `head` (and then `trickle`, a line at a time) on a fresh TCP connection and resolves with the first
 * response once it is complete, or with what arrived when the server closes the connection.
 */
function rawExchange(
  head: string,
  options: { trickleEveryMs?: number; timeoutMs?: number } = {},
): Promise<RawResponse> {
  const { trickleEveryMs, timeoutMs = 10_000 } = options;
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket: Socket = connect({ host: '127.0.0.1', port });
    let received = Buffer.alloc(0);
    let trickle: NodeJS.Timeout | undefined;
    const done = (result: RawResponse | Error) => {
      clearTimeout(deadline);
      clearInterval(trickle);
      socket.destroy();
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const deadline = setTimeout(
      () => done(new Error(`no response within ${timeoutMs} ms; got ${JSON.stringify(received.toString())}`)),
      timeoutMs,
    );
    socket.on('connect', () => {
      socket.write(head);
      if (trickleEveryMs !== undefined) {
        let n = 0;
        trickle = setInterval(() => socket.write(`x-trickle-${n++}: still coming\r\n`), trickleEveryMs);
      }
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const parsed = parseResponse(received);
      if (parsed) done({ ...parsed, elapsedMs: performance.now() - started, raw: received.toString() });
    });
    socket.on('close', () => {
      const parsed = parseResponse(received);
      done({
        ...(parsed ?? { status: 0, headers: {}, body: '' }),
        elapsedMs: performance.now() - started,
        raw: received.toString(),
      });
    });
    socket.on('error', () => {
      // A reset after the server gave up on us is the expected end of some exchanges; 'close' follows.
    });
  });
}

/** A complete HTTP/1.1 response with a Content-Length body (all the app sends for errors), or undefined. */
function parseResponse(data: Buffer): Omit<RawResponse, 'elapsedMs' | 'raw'> | undefined {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine, ...lines] = data.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length'] ?? 0);
  const body = data.subarray(end + 4);
  if (body.length < length) return undefined;
  return {
    status: Number(statusLine!.split(' ')[1]),
    headers,
    body: body.subarray(0, length).toString('utf8'),
  };
}

/** The OpenAI error body, exactly its four fields, with the code given; and the request id header. */
function expectOpenAIError(
  status: number,
  headers: { get(name: string): string | null | undefined },
  body: string,
  expected: { status: number; code: string; type?: string },
): void {
  expect(status).toBe(expected.status);
  expect(headers.get('content-type')).toMatch(/^application\/json/);
  expect(headers.get('x-request-id')).toMatch(/^req_[0-9a-f]{32}$/);
  const parsed = JSON.parse(body);
  expect(Object.keys(parsed)).toEqual(['error']);
  expect(Object.keys(parsed.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(parsed.error.code).toBe(expected.code);
  expect(parsed.error.type).toBe(expected.type ?? 'invalid_request_error');
  expect(parsed.error.message).toBeTypeOf('string');
  expect(parsed.error.message.length).toBeGreaterThan(0);
  expect(parsed.error.param === null || typeof parsed.error.param === 'string').toBe(true);
}

function headerGetter(headers: Record<string, string>) {
  return { get: (name: string) => headers[name.toLowerCase()] };
}

async function fetchError(path: string, init: RequestInit, expected: { status: number; code: string }) {
  const response = await fetch(`${base}${path}`, { ...init, headers: { authorization, ...init.headers } });
  const body = await response.text();
  expectOpenAIError(response.status, response.headers, body, expected);
  return { response, error: JSON.parse(body).error };
}

const chatHead = (headers: string) =>
  'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
  `Authorization: ${authorization}\r\n${headers}`;

describe('request bodies', () => {
  it('413 for a Content-Length over the limit, answered before any of the body is sent', async () => {
    const r = await rawExchange(chatHead(`Content-Length: ${BODY_LIMIT_BYTES + 1}\r\n\r\n`));
    expectOpenAIError(r.status, headerGetter(r.headers), r.body, { status: 413, code: 'payload_too_large' });
    expect(r.elapsedMs).toBeLessThan(PROMPT_MS);
  });

  it('413 for a chunked body that grows past the limit (no Content-Length to check first)', async () => {
    const chunk = 'a'.repeat(BODY_LIMIT_BYTES + 1);
    const r = await rawExchange(
      chatHead(`Transfer-Encoding: chunked\r\n\r\n${chunk.length.toString(16)}\r\n${chunk}\r\n`),
    );
    expectOpenAIError(r.status, headerGetter(r.headers), r.body, { status: 413, code: 'payload_too_large' });
  });

  it('415 for a text/plain body', async () => {
    await fetchError(
      '/v1/chat/completions',
      { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' },
      { status: 415, code: 'unsupported_media_type' },
    );
  });

  it('400 invalid_json for a malformed JSON body', async () => {
    await fetchError(
      '/v1/chat/completions',
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"model": "tiny", "messages": [',
      },
      { status: 400, code: 'invalid_json' },
    );
  });
});

describe('routes and methods', () => {
  it('405 with Allow for DELETE /v1/chat/completions', async () => {
    const { response } = await fetchError(
      '/v1/chat/completions',
      { method: 'DELETE' },
      { status: 405, code: 'method_not_allowed' },
    );
    expect(response.headers.get('allow')).toBe('POST');
  });

  it('404 unknown_url for a path that does not exist', async () => {
    const { error } = await fetchError('/v1/nothing-here?x=1', {}, { status: 404, code: 'unknown_url' });
    expect(error.message).toContain('/v1/nothing-here');
  });

  it('without a credential, unknown paths and wrong methods are 401 like any other: the routes stay unmapped', async () => {
    const anonymous: [string, RequestInit][] = [
      ['/v1/nothing-here', {}],
      ['/v1/chat/completions', { method: 'DELETE' }],
      ['/v1/chat/completions', { method: 'GET' }],
      ['/nope', { method: 'QUERY' }],
      ['/health', { method: 'POST' }],
    ];
    for (const [path, init] of anonymous) {
      const response = await fetch(`${base}${path}`, init);
      const body = await response.text();
      expectOpenAIError(response.status, response.headers, body, {
        status: 401,
        code: 'invalid_api_key',
        type: 'authentication_error',
      });
      expect(response.headers.get('allow')).toBeNull();
      expect(response.headers.get('www-authenticate')).toMatch(/^Bearer /);
    }
    // The public routes themselves still answer without one.
    expect((await fetch(`${base}/health`)).status).toBe(200);
  });
});

describe('headers', () => {
  it('431 for headers over maxHeaderBytes, in the OpenAI shape, never a 5xx', async () => {
    const big = 'a'.repeat(MAX_HEADER_BYTES + 1024);
    const r = await rawExchange(`GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nx-big: ${big}\r\n\r\n`);
    expectOpenAIError(r.status, headerGetter(r.headers), r.body, {
      status: 431,
      code: 'request_header_fields_too_large',
    });
    expect(r.elapsedMs).toBeLessThan(PROMPT_MS);
  });

  it('headers just under maxHeaderBytes are still served', async () => {
    const r = await rawExchange(
      `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nx-big: ${'a'.repeat(MAX_HEADER_BYTES - 256)}\r\n\r\n`,
    );
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ status: 'ok' });
  });

  it('a slow-loris client that never finishes its headers is cut off after headersTimeoutMs', async () => {
    // A header line every 100 ms: the connection is never idle, yet the headers never end.
    const r = await rawExchange(chatHead(''), { trickleEveryMs: 100, timeoutMs: HEADERS_TIMEOUT_MS + 5_000 });
    expect(r.elapsedMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 50);
    // headersTimeoutMs plus up to one connections-check interval (1 s), plus slack for a loaded machine.
    expect(r.elapsedMs).toBeLessThan(HEADERS_TIMEOUT_MS + 1_000 + 1_500);
    // A 408 written by our client error handler, then the close; never a 5xx.
    expectOpenAIError(r.status, headerGetter(r.headers), r.body, { status: 408, code: 'request_timeout' });
  });
});

describe('what the contract test found', () => {
  it('Object.prototype names are not model aliases', async () => {
    for (const name of ['constructor', '__proto__', 'toString']) {
      await fetchError(`/v1/models/${name}`, {}, { status: 404, code: 'model_not_found' });
    }
  });

  it('an unknown method on an unknown path is a 404, whatever its headers', async () => {
    await fetchError('/nope', { method: 'QUERY' }, { status: 404, code: 'unknown_url' });
  });

  it('router errors are OpenAI-shaped: a malformed escape, an over-long parameter', async () => {
    await fetchError('/v1/models/%E0%A4%A', {}, { status: 400, code: 'invalid_request' });
    await fetchError(`/v1/models/${'m'.repeat(200)}`, {}, { status: 404, code: 'unknown_url' });
  });

  it('logit_bias keys must be token ids and values numbers in range', async () => {
    for (const logit_bias of [{ '': -1 }, { '0x10': 5 }, { ' 7 ': 1 }, { '5': 'x' }, { '5': 101 }]) {
      await fetchError(
        '/v1/completions',
        {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            model: t.engine.info.name,
            prompt: 'In the beginning',
            max_tokens: 2,
            logit_bias,
          }),
        },
        { status: 400, code: 'invalid_request' },
      );
    }
  });
});
