/**
 * Issue 4's promises, end to end on the real app: deny-lists on prompts and output, metrics behind their
 * scope, security headers, the client allowlist, and logs that never carry a credential or a prompt.
 */
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../../service/security/auth/keys.js';
import { startApp, stopApp, type TestApp } from '../../helpers/app.js';

const chat = (content: string, extra: Record<string, unknown> = {}) => ({
  messages: [{ role: 'user', content }],
  temperature: 0,
  max_tokens: 24,
  ...extra,
});

describe('deny-lists', () => {
  let t: TestApp;
  let model: string;
  let plain: string;
  beforeAll(async () => {
    const unfiltered = await startApp();
    const r = await unfiltered.app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers: await unfiltered.auth(),
      payload: { model: unfiltered.engine.info.name, ...chat('Continue: In the beginning') },
    });
    plain = r.json().choices[0].message.content;
    await stopApp(unfiltered);
    // A word the model really says in that completion, past its first few characters.
    const word = plain.split(/\W+/).find((w, i) => i > 0 && w.length >= 3)!;
    t = await startApp({
      CHATMIRROR_FILTERS_OUTPUT_KEYWORDS: JSON.stringify([word]),
      CHATMIRROR_FILTERS_PROMPT_KEYWORDS: JSON.stringify(['forbidden-topic']),
      CHATMIRROR_FILTERS_PROMPT_PATTERNS: JSON.stringify(['\\bdrop\\s+table\\b']),
    });
    model = t.engine.info.name;
    (t as TestApp & { word: string }).word = word;
  });
  afterAll(async () => stopApp(t));

  it('stops the output before a deny-listed word, with finish_reason content_filter', async () => {
    const word = (t as TestApp & { word: string }).word;
    const r = await t.app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers: await t.auth(),
      payload: { model, ...chat('Continue: In the beginning') },
    });
    const choice = r.json().choices[0];
    expect(choice.finish_reason).toBe('content_filter');
    expect(choice.message.content.toLowerCase()).not.toContain(word.toLowerCase());
    expect(plain.startsWith(choice.message.content)).toBe(true);
  });

  it('never streams any part of the match', async () => {
    const word = (t as TestApp & { word: string }).word;
    const r = await t.app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers: await t.auth(),
      payload: { model, ...chat('Continue: In the beginning', { stream: true }) },
    });
    expect(r.body.toLowerCase()).not.toContain(word.toLowerCase());
    expect(r.body).toContain('"finish_reason":"content_filter"');
    expect(r.body.trimEnd().endsWith('data: [DONE]')).toBe(true);
  });

  it('refuses a deny-listed prompt (keyword or pattern) without naming the entry', async () => {
    for (const content of ['Tell me about the FORBIDDEN-TOPIC', 'please DROP   TABLE users']) {
      const r = await t.app.inject({
        method: 'POST',
        url: '/v1/chat/completions',
        headers: await t.auth(),
        payload: { model, ...chat(content) },
      });
      expect(r.statusCode).toBe(400);
      expect(r.json().error).toMatchObject({ code: 'content_filter', param: 'messages[0].content' });
      expect(r.body.toLowerCase()).not.toContain('forbidden-topic');
    }
  });

  it('refuses control characters, naming the field', async () => {
    const r = await t.app.inject({
      method: 'POST',
      url: '/v1/completions',
      headers: await t.auth(),
      payload: { model, prompt: 'null\u0000byte', max_tokens: 2 },
    });
    expect(r.statusCode).toBe(400);
    expect(r.json().error).toMatchObject({ code: 'invalid_request', param: 'prompt' });
  });
});

describe('metrics, headers and the allowlist', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp();
  });
  afterAll(async () => stopApp(t));

  it('/metrics needs metrics:read and reports inference, auth and HTTP figures', async () => {
    const model = t.engine.info.name;
    await t.app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers: await t.auth(),
      payload: { model, ...chat('Continue: And God said') },
    });
    await t.app.inject({ method: 'GET', url: '/v1/models', headers: { authorization: 'Bearer nope' } });
    const denied = await t.app.inject({
      method: 'GET',
      url: '/metrics',
      headers: { authorization: `Bearer ${await t.token({ scopes: ['chat'] })}` },
    });
    expect(denied.statusCode).toBe(403);
    const r = await t.app.inject({
      method: 'GET',
      url: '/metrics',
      headers: { authorization: `Bearer ${await t.token({ scopes: ['metrics:read'] })}` },
    });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain/);
    const text = r.body;
    const value = (line: RegExp) => Number(text.match(line)?.[1]);
    expect(
      value(new RegExp(`^chatmirror_time_to_first_token_seconds_count\\{model="${model}"\\} (\\d+)`, 'm')),
    ).toBe(1);
    expect(value(/^chatmirror_generation_tokens_total\{model="[^"]+"\} (\d+)/m)).toBeGreaterThan(0);
    expect(value(/^chatmirror_queue_time_seconds_count\{model="[^"]+"\} (\d+)/m)).toBe(1);
    expect(value(/^chatmirror_batch_size_count (\d+)/m)).toBeGreaterThan(0);
    expect(value(/^chatmirror_auth_failures_total\{reason="malformed"\} (\d+)/m)).toBe(1);
    expect(text).toMatch(
      /^chatmirror_http_requests_total\{method="POST",route="\/v1\/chat\/completions",status="200"\} 1/m,
    );
    expect(text).toMatch(/^chatmirror_requests_running 0/m);
    expect(text).toMatch(/^chatmirror_process_cpu_seconds_total/m);
  });

  it('sends security headers (no HSTS over plain HTTP)', async () => {
    const r = await t.app.inject({ method: 'GET', url: '/health' });
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers['x-frame-options']).toBe('DENY');
    expect(r.headers['x-powered-by']).toBeUndefined();
    expect(r.headers['strict-transport-security']).toBeUndefined();
  });

  it('refuses clients outside network.allowlist', async () => {
    const fenced = await startApp({ CHATMIRROR_NETWORK_ALLOWLIST: '["10.0.0.0/8"]' });
    try {
      const r = await fenced.app.inject({ method: 'GET', url: '/v1/models', headers: await fenced.auth() });
      expect(r.statusCode).toBe(403);
      expect(r.json().error.code).toBe('ip_not_allowed');
    } finally {
      await stopApp(fenced);
    }
  });
});

describe('logs', () => {
  it('never contain a credential or prompt text; with log.prompts the text is there, secrets masked', async () => {
    const secretPrompt = 'my secret prompt about the harvest moon';
    const apiKey = generateApiKey('logcheck');
    for (const logPrompts of [false, true]) {
      const lines: string[] = [];
      const stream = new PassThrough();
      stream.on('data', (chunk: Buffer) => lines.push(chunk.toString()));
      const t = await startApp(
        {
          CHATMIRROR_LOG_LEVEL: 'debug',
          CHATMIRROR_LOG_PROMPTS: String(logPrompts),
          CHATMIRROR_AUTH_API_KEYS: JSON.stringify([{ id: 'logcheck', hash: apiKey.hash, scopes: ['chat'] }]),
        },
        {},
        stream,
      );
      try {
        const token = await t.token();
        const model = t.engine.info.name;
        const withKey = `${secretPrompt} and my key ${apiKey.key}`;
        await t.app.inject({
          method: 'POST',
          url: '/v1/chat/completions',
          headers: { authorization: `Bearer ${token}` },
          payload: { model, ...chat(withKey) },
        });
        await t.app.inject({
          method: 'POST',
          url: '/v1/chat/completions',
          headers: { authorization: `Bearer ${apiKey.key}` },
          payload: { model, ...chat(secretPrompt, { stream: true }) },
        });
        await t.app.inject({ method: 'GET', url: `/v1/models?access_token=${token}` });
        await t.app.inject({
          method: 'GET',
          url: '/v1/models',
          headers: { authorization: `Bearer ${token}x` },
        });
        const log = lines.join('');
        expect(log).toContain('"msg":"completion"');
        expect(log).toContain('"subject":"jwt:test-user"');
        expect(log).toContain('"subject":"api_key:logcheck"');
        expect(log).toContain('"promptTokens"');
        for (const secret of [token, apiKey.key, apiKey.key.slice(-43), token.split('.')[2]!]) {
          expect(log).not.toContain(secret);
        }
        if (logPrompts) expect(log).toContain(secretPrompt);
        else expect(log).not.toContain('harvest moon');
      } finally {
        await stopApp(t);
      }
    }
  });
});
