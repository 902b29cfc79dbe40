import { Writable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import {
  logCompletion,
  loggerOptions,
  REDACTED,
  redactSecrets,
  stripQuery,
} from '../../../service/observability/logging.js';

const JWT =
  'eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6MTg5MzQ1NjAwMH0.c2lnbmF0dXJlLWJ5dGVzLWhlcmUtMTIzNDU2Nzg5MA';
const API_KEY = 'cmk_live_9fQ2xZr7LmN4pK8sT1vW3yB6';
const QUERY_KEY = 'cmk_query_Zx81Lq02Ws93Ed74Rc65';
const COOKIE = 'session=s%3AQ2hhdG1pcnJvclNlY3JldENvb2tpZQ';
const SECRETS = [JWT, API_KEY, QUERY_KEY, 'Q2hhdG1pcnJvclNlY3JldENvb2tpZQ'];

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, stream, text: () => lines.join('\n') };
}

describe('loggerOptions in a Fastify app', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function build(level: 'info' | 'debug' = 'info') {
    const out = capture();
    app = Fastify({ logger: { ...loggerOptions({ log: { level, prompts: false } }), stream: out.stream } });
    app.get('/v1/models', async (request) => {
      // What a careless handler might do: the redact paths still catch the credentials.
      request.log.info({ headers: request.headers }, 'headers');
      request.log.info({ req: { headers: request.headers } }, 'raw headers');
      return { ok: true };
    });
    app.get('/boom', async (request) => {
      throw new Error(`upstream refused ${request.headers.authorization}`);
    });
    await app.ready();
    return out;
  }

  const headers = {
    authorization: `Bearer ${JWT}`,
    cookie: COOKIE,
    'x-api-key': API_KEY,
    'proxy-authorization': `Basic ${Buffer.from(`u:${API_KEY}`).toString('base64')}`,
  };

  it('never writes credentials from headers, the query string or error messages', async () => {
    const out = await build();
    await app!.inject({ method: 'GET', url: `/v1/models?api_key=${QUERY_KEY}`, headers });
    await app!.inject({ method: 'GET', url: `/boom?token=${QUERY_KEY}`, headers });
    const text = out.text();
    for (const secret of SECRETS) expect(text).not.toContain(secret);
    expect(text).toContain(REDACTED);
    expect(out.lines.length).toBeGreaterThan(4);
  });

  it('logs the path without its query, and the request id', async () => {
    const out = await build();
    await app!.inject({ method: 'GET', url: `/v1/models?api_key=${QUERY_KEY}&x=1` });
    const incoming = out.lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'incoming request');
    expect(incoming.req).toMatchObject({ method: 'GET', url: '/v1/models' });
    expect(incoming.req.headers).toBeUndefined();
    expect(incoming.reqId).toBeDefined();
  });

  it('uses the configured level', async () => {
    expect(loggerOptions({ log: { level: 'warn', prompts: false } }).level).toBe('warn');
  });
});

describe('logCompletion', () => {
  function logger() {
    const out = capture();
    const app = Fastify({
      logger: { ...loggerOptions({ log: { level: 'info', prompts: false } }), stream: out.stream },
    });
    return { log: app.log, out, app };
  }
  const line = {
    subject: 'key_ops',
    model: 'tiny-llama',
    promptTokens: 12,
    completionTokens: 5,
    latencyMs: 812.4,
    status: 200,
    finishReason: ['stop'],
    prompt: [{ role: 'user', content: `my key is ${API_KEY}, say hi` }],
    completion: 'hi there',
  };

  it('writes one structured line with counts and no text by default', async () => {
    const { log, out, app } = logger();
    logCompletion(log, line);
    await app.close();
    expect(out.lines).toHaveLength(1);
    const entry = JSON.parse(out.lines[0]!);
    expect(entry).toMatchObject({
      msg: 'completion',
      level: 30,
      subject: 'key_ops',
      model: 'tiny-llama',
      promptTokens: 12,
      completionTokens: 5,
      latencyMs: 812,
      status: 200,
      finishReason: ['stop'],
    });
    expect(entry.prompt).toBeUndefined();
    expect(entry.completion).toBeUndefined();
    expect(out.text()).not.toContain('say hi');
  });

  it('adds prompt and completion only when prompt logging is on, with secrets masked', async () => {
    const { log, out, app } = logger();
    logCompletion(log, line, true);
    await app.close();
    const entry = JSON.parse(out.lines[0]!);
    expect(entry.prompt).toEqual([{ role: 'user', content: `my key is ${REDACTED}, say hi` }]);
    expect(entry.completion).toBe('hi there');
    expect(out.text()).not.toContain(API_KEY);
  });
});

describe('redactSecrets', () => {
  it.each([
    ['a JWT', `token ${JWT} here`, 'token [REDACTED_JWT] here'],
    ['a bearer credential', 'Authorization: Bearer abc.def-ghi_jkl', `Authorization: Bearer ${REDACTED}`],
    ['a Basic credential', 'Basic dXNlcjpwYXNzd29yZA==', `Basic ${REDACTED}`],
    ['a chatmirror key', `use ${API_KEY}.`, `use ${REDACTED}.`],
    ['an OpenAI key', 'sk-proj-Ab12Cd34Ef56Gh78Ij90', REDACTED],
    ['a GitHub token', 'ghp_abcdefghijklmnopqrstuvwxyz0123456789', REDACTED],
    ['an AWS key id', 'AKIAIOSFODNN7EXAMPLE', REDACTED],
    ['a password assignment', 'password=hunter2', `password=${REDACTED}`],
    ['an api_key field', '"api_key": "abc123"', `"api_key": "${REDACTED}"`],
    ['a long hex run', `sha ${'0123456789abcdef'.repeat(4)}`, `sha ${REDACTED}`],
    ['a random base64 run', 'k=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg', `k=${REDACTED}`],
  ])('masks %s', (_name, input, expected) => {
    expect(redactSecrets(input)).toBe(expected);
  });

  it.each([
    'The quick brown fox jumps over the lazy dog.',
    '/home/user/projects/chatmirror/service/observability',
    'Pneumonoultramicroscopicsilicovolcanoconiosis',
    'max_tokens=16 and temperature=0.7',
    'commit abc1234 fixed it',
    '你好，世界',
  ])('leaves ordinary text alone: %s', (text) => {
    expect(redactSecrets(text)).toBe(text);
  });
});

describe('stripQuery', () => {
  it('cuts the query and fragment', () => {
    expect(stripQuery('/v1/models?key=x')).toBe('/v1/models');
    expect(stripQuery('/a#b')).toBe('/a');
    expect(stripQuery('/plain')).toBe('/plain');
  });
});
