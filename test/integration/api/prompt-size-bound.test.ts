/**
 * A prompt that cannot fit the model's context is refused from its length in characters, before any
 * templating or tokenizing (issue 10, item 4): tokenizing a 900 KB prompt for a 512-token model blocked the
 * event loop for seconds. The bound never refuses a prompt that fits: one token spells at most
 * maxTokenChars characters, so a prompt of n tokens has at most n × maxTokenChars of them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, stopApp, type TestApp } from '../../helpers/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startApp();
});
afterAll(async () => stopApp(t));

const HUGE = 'In the beginning God created the heaven and the earth. '.repeat(16_000); // ~900 KB

async function post(url: string, payload: Record<string, unknown>) {
  const r = await t.app.inject({ method: 'POST', url, headers: await t.auth(), payload });
  return { status: r.statusCode, error: r.json().error };
}

describe('prompt size bound (characters, before tokenizing)', () => {
  it('refuses a 900 KB chat prompt from its length, without tokenizing it', async () => {
    const r = await post('/v1/chat/completions', {
      model: t.engine.info.name,
      messages: [{ role: 'user', content: HUGE }],
    });
    expect(r.status).toBe(400);
    expect(r.error).toMatchObject({ code: 'context_length_exceeded', param: 'messages' });
    // The message is the character bound's (a token count would mean the prompt was tokenized).
    expect(r.error.message).toMatch(/characters/);
  });

  it('refuses a 900 KB completions prompt likewise', async () => {
    const r = await post('/v1/completions', { model: t.engine.info.name, prompt: HUGE });
    expect(r.status).toBe(400);
    expect(r.error).toMatchObject({ code: 'context_length_exceeded', param: 'prompt' });
    expect(r.error.message).toMatch(/characters/);
  });

  it('the bound is safe: no token of the vocabulary spells more than maxTokenChars characters', async () => {
    const tokenizer = t.engine.tokenizer;
    expect(tokenizer.maxTokenChars).toBeGreaterThan(1);
    for (let id = 0; id < tokenizer.vocabSize; id++) {
      expect(tokenizer.decode([id], false).length).toBeLessThanOrEqual(tokenizer.maxTokenChars);
    }
    // And a prompt that fits is served as before.
    const r = await post('/v1/completions', {
      model: t.engine.info.name,
      prompt: HUGE.slice(0, 600),
      max_tokens: 1,
    });
    expect(r.status).toBe(200);
  });
});

describe('admission before tokenizing', () => {
  it('a credential whose requests per minute are used up gets 429, even for prompts that would be refused', async () => {
    const token = await t.token({ subject: 'one-rpm', limits: { requestsPerMinute: 1 } });
    const send = (prompt: string) =>
      t.app.inject({
        method: 'POST',
        url: '/v1/completions',
        headers: { authorization: `Bearer ${token}` },
        payload: { model: t.engine.info.name, prompt, max_tokens: 1 },
      });
    // Its one request: a prompt too long for the context (counted, then refused as 400).
    const tooLong = await send(HUGE.slice(0, 6_000));
    expect(tooLong.statusCode).toBe(400);
    expect(tooLong.json().error.code).toBe('context_length_exceeded');
    // Everything after it is the rate limit, whatever the prompt: the tokenizer never runs for them.
    for (const prompt of [HUGE, HUGE.slice(0, 6_000), 'Hi']) {
      const r = await send(prompt);
      expect(r.statusCode).toBe(429);
      expect(r.json().error.code).toBe('rate_limit_exceeded');
      expect(r.headers['x-ratelimit-remaining-requests']).toBe('0');
    }
  });
});
