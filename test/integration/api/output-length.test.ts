/**
 * The output-length extensions a load test needs (issue 14): `ignore_eos` and `min_tokens`, vLLM's names, on
 * both completion endpoints. The bundled tiny model ends most answers within a few tokens, which is what makes
 * the difference visible.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, stopApp, type TestApp } from '../../helpers/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startApp();
});
afterAll(async () => stopApp(t));

async function post(url: string, payload: Record<string, unknown>) {
  const r = await t.app.inject({ method: 'POST', url, headers: await t.auth(), payload });
  return { status: r.statusCode, body: r.json() };
}

const chat = (extra: Record<string, unknown>) =>
  post('/v1/chat/completions', {
    model: t.engine.info.name,
    messages: [{ role: 'user', content: 'Say yes.' }],
    temperature: 0,
    ...extra,
  });

describe('output length control', () => {
  it('without either, the model stops on its own before max_tokens (the control)', async () => {
    const r = await chat({ max_tokens: 200 });
    expect(r.status).toBe(200);
    expect(r.body.choices[0].finish_reason).toBe('stop');
    expect(r.body.usage.completion_tokens).toBeLessThan(200);
  });

  it('ignore_eos generates exactly max_tokens, finish_reason length', async () => {
    const r = await chat({ max_tokens: 200, ignore_eos: true });
    expect(r.status).toBe(200);
    expect(r.body.usage.completion_tokens).toBe(200);
    expect(r.body.choices[0].finish_reason).toBe('length');
  });

  it('min_tokens holds off the end of sequence that many tokens', async () => {
    const free = await chat({ max_tokens: 300 });
    const held = await chat({ max_tokens: 300, min_tokens: 150 });
    expect(free.body.usage.completion_tokens).toBeLessThan(150);
    expect(held.status).toBe(200);
    expect(held.body.usage.completion_tokens).toBeGreaterThanOrEqual(150);
  });

  it('/v1/completions takes both too', async () => {
    const r = await post('/v1/completions', {
      model: t.engine.info.name,
      prompt: 'In the beginning',
      max_tokens: 40,
      temperature: 0,
      ignore_eos: true,
      min_tokens: 40,
    });
    expect(r.status).toBe(200);
    expect(r.body.usage.completion_tokens).toBe(40);
    expect(r.body.choices[0].finish_reason).toBe('length');
  });

  it('min_tokens above max_tokens is a 400 naming min_tokens; a wrong type is refused by the schema', async () => {
    const r = await chat({ max_tokens: 10, min_tokens: 11 });
    expect(r.status).toBe(400);
    expect(r.body.error.param).toBe('min_tokens');
    const typed = await chat({ ignore_eos: 'yes' });
    expect(typed.status).toBe(400);
    expect(typed.body.error.message).toMatch(/ignore_eos/);
  });
});
