import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, stopApp, type TestApp } from '../../helpers/app.js';

let t: TestApp;
let base: string;
let client: OpenAI;
let noEos: Record<string, number>;

beforeAll(async () => {
  t = await startApp({}, { maxBatchSize: 1, maxQueue: 1 });
  base = await t.app.listen({ host: '127.0.0.1', port: 0 });
  client = new OpenAI({ baseURL: `${base}/v1`, apiKey: await t.token(), maxRetries: 0 });
  noEos = Object.fromEntries(t.engine.info.eosTokenIds.map((id) => [String(id), -100]));
});

afterAll(async () => stopApp(t));

const body = (maxTokens: number) => ({
  model: 'tiny-llama',
  messages: [{ role: 'user' as const, content: 'Continue: And God said' }],
  max_tokens: maxTokens,
  temperature: 0,
});

describe('requests that can never run are 400, not 429 (validation before capacity)', () => {
  const post = async (url: string, payload: Record<string, unknown>) => {
    const r = await t.app.inject({ method: 'POST', url, headers: await t.auth(), payload });
    return { status: r.statusCode, error: r.json().error, retryAfter: r.headers['retry-after'] };
  };

  it('n beyond limits.maxN, on an idle server', async () => {
    const r = await post('/v1/chat/completions', { ...body(4), model: t.engine.info.name, n: 100_000 });
    expect(r).toMatchObject({ status: 400, retryAfter: undefined });
    expect(r.error).toMatchObject({ code: 'invalid_request', param: 'n' });
    expect(r.error.message).toMatch(/limits\.maxN/);
  });

  it('n within limits.maxN but beyond what the engine holds even when idle', async () => {
    const r = await post('/v1/chat/completions', { ...body(4), model: t.engine.info.name, n: 3 });
    expect(r.status).toBe(400);
    expect(r.error).toMatchObject({ code: 'invalid_request', param: 'n' });
    expect(r.error.message).toMatch(/engine\.maxBatchSize \+ engine\.maxQueue/);
  });

  it('200 prompts on the completions endpoint', async () => {
    const prompt = Array.from({ length: 200 }, () => 'And God said');
    const r = await post('/v1/completions', { model: t.engine.info.name, prompt, max_tokens: 2 });
    expect(r.status).toBe(400);
    expect(r.error).toMatchObject({ code: 'invalid_request', param: 'prompt' });
    expect(r.error.message).toMatch(/limits\.maxN/);
  });
});

describe('overload and disconnects', () => {
  it('a full batch and queue answer 429 with Retry-After at once (RateLimitError)', async () => {
    const model = t.engine.info.name;
    const running = [1, 2].map(() =>
      client.chat.completions.create({ ...body(400), model, logit_bias: noEos }),
    );
    while (t.engine.stats().running + t.engine.stats().waiting < 2)
      await new Promise((r) => setTimeout(r, 2));
    const started = performance.now();
    const err = await client.chat.completions.create({ ...body(4), model }).catch((e) => e);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err.code).toBe('server_overloaded');
    expect(err.headers.get('retry-after')).toBe('1');
    await Promise.all(running);
  });

  it('a client that disconnects mid-stream frees its slot', async () => {
    const model = t.engine.info.name;
    const controller = new AbortController();
    const response = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(await t.auth()) },
      body: JSON.stringify({ ...body(400), model, logit_bias: noEos, stream: true }),
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    await reader.read();
    await reader.read();
    expect(t.engine.stats().running).toBe(1);
    controller.abort();
    const deadline = Date.now() + 2000;
    while (t.engine.stats().running > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
    expect(t.engine.stats()).toEqual({ running: 0, waiting: 0 });
    // The freed slot is usable at once.
    const next = await client.chat.completions.create({ ...body(3), model });
    expect(next.choices[0]!.message.content).toBeTypeOf('string');
  });
});
