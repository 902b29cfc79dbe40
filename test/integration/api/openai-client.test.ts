/**
 * The official openai SDK against the real server on a loopback port: if it works unchanged here, it works
 * for application developers.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, stopApp, type TestApp } from '../../helpers/app.js';

let t: TestApp;
let client: OpenAI;
let model: string;
/** Bans both EOS tokens so a generation runs to max_tokens. */
let noEos: Record<string, number>;

beforeAll(async () => {
  t = await startApp({ CHATMIRROR_LIMITS_MAX_N: '4' });
  const address = await t.app.listen({ host: '127.0.0.1', port: 0 });
  client = new OpenAI({ baseURL: `${address}/v1`, apiKey: await t.token(), maxRetries: 0 });
  model = t.engine.info.name;
  noEos = Object.fromEntries(t.engine.info.eosTokenIds.map((id) => [String(id), -100]));
});

afterAll(async () => stopApp(t));

const messages: OpenAI.ChatCompletionMessageParam[] = [
  { role: 'user', content: 'Continue: In the beginning' },
];

describe('openai SDK: chat completions', () => {
  it('returns an OpenAI-shaped completion with usage', async () => {
    const r = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 16 });
    expect(r.object).toBe('chat.completion');
    expect(r.id).toMatch(/^chatcmpl-/);
    expect(r.model).toBe(model);
    expect(r.system_fingerprint).toMatch(/^fp_[0-9a-f]+$/);
    expect(r.choices).toHaveLength(1);
    expect(r.choices[0]!.message.role).toBe('assistant');
    expect(r.choices[0]!.message.content!.length).toBeGreaterThan(0);
    expect(['stop', 'length']).toContain(r.choices[0]!.finish_reason);
    expect(r.usage!.prompt_tokens).toBe(
      t.engine.encodeChat([{ role: 'user', content: 'Continue: In the beginning' }]).length,
    );
    expect(r.usage!.total_tokens).toBe(r.usage!.prompt_tokens + r.usage!.completion_tokens);
  });

  it('streams a role delta, content deltas, a finish chunk, a usage chunk, then ends', async () => {
    const whole = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 16 });
    const stream = await client.chat.completions.create({
      model,
      messages,
      temperature: 0,
      max_tokens: 16,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe(whole.choices[0]!.message.content);
    const finish = chunks.find((c) => c.choices[0]?.finish_reason);
    expect(finish!.choices[0]!.finish_reason).toBe(whole.choices[0]!.finish_reason);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual(whole.usage);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
  });

  it('n > 1 returns n choices, and the same seed reproduces them', async () => {
    const ask = () =>
      client.chat.completions.create({
        model,
        messages,
        n: 3,
        seed: 42,
        temperature: 1,
        max_tokens: 12,
        logit_bias: noEos,
      });
    const [a, b] = await Promise.all([ask(), ask()]);
    expect(a.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(a.choices.map((c) => c.message.content)).toEqual(b.choices.map((c) => c.message.content));
    // Each choice samples with its own seed: they are not three copies.
    expect(new Set(a.choices.map((c) => c.message.content)).size).toBeGreaterThan(1);
    expect(a.usage!.completion_tokens).toBe(36);
  });

  it('a model alias applies its defaults and is listed', async () => {
    const list = await client.models.list();
    const ids = list.data.map((m) => m.id);
    expect(ids).toEqual([model, 'support', 'creative']);
    const alias = await client.models.retrieve('support');
    expect(alias.id).toBe('support');
    const r = await client.chat.completions.create({ model: 'support', messages, max_tokens: 4 });
    expect(r.model).toBe('support');
  });

  it('logprobs with top_logprobs', async () => {
    const r = await client.chat.completions.create({
      model,
      messages,
      temperature: 0,
      max_tokens: 4,
      logprobs: true,
      top_logprobs: 2,
    });
    const content = r.choices[0]!.logprobs!.content!;
    expect(content.length).toBeGreaterThan(0);
    for (const lp of content) {
      expect(lp.top_logprobs).toHaveLength(2);
      expect(lp.top_logprobs[0]!.token).toBe(lp.token);
    }
  });

  it('stop sequences are honoured and not returned', async () => {
    const free = await client.chat.completions.create({
      model,
      messages,
      temperature: 0,
      max_tokens: 30,
      logit_bias: noEos,
    });
    const text = free.choices[0]!.message.content!;
    const stop = text.slice(5, 8);
    const r = await client.chat.completions.create({
      model,
      messages,
      temperature: 0,
      max_tokens: 30,
      stop: [stop],
    });
    expect(r.choices[0]!.finish_reason).toBe('stop');
    expect(r.choices[0]!.message.content).toBe(text.slice(0, text.indexOf(stop)));
  });
});

describe('openai SDK: completions and models', () => {
  it('completes a raw prompt, with legacy logprobs', async () => {
    const r = await client.completions.create({
      model,
      prompt: 'In the beginning',
      max_tokens: 8,
      temperature: 0,
      logprobs: 2,
    });
    expect(r.object).toBe('text_completion');
    expect(r.choices[0]!.text.length).toBeGreaterThan(0);
    // One logprobs entry per generated token, EOS included.
    expect(r.choices[0]!.logprobs!.tokens).toHaveLength(r.usage!.completion_tokens);
    expect(r.choices[0]!.logprobs!.top_logprobs![0]).toBeTypeOf('object');
    expect(r.usage!.prompt_tokens).toBe(t.engine.encodeText('In the beginning').length);
  });

  it('streams completions', async () => {
    const stream = await client.completions.create({
      model,
      prompt: 'And God said',
      max_tokens: 8,
      temperature: 0,
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    const whole = await client.completions.create({
      model,
      prompt: 'And God said',
      max_tokens: 8,
      temperature: 0,
    });
    expect(text).toBe(whole.choices[0]!.text);
  });
});

describe('openai SDK: errors raise the classes OpenAI would', () => {
  it('BadRequestError for an out-of-range parameter, naming it', async () => {
    const err = await client.chat.completions.create({ model, messages, temperature: 5 }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.param).toBe('temperature');
    expect(err.type).toBe('invalid_request_error');
  });

  it('BadRequestError for a feature we do not serve', async () => {
    const err = await client.chat.completions
      .create({ model, messages, web_search_options: {} })
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.param).toBe('web_search_options');
    expect(err.code).toBe('unsupported_parameter');
  });

  it('BadRequestError context_length_exceeded for a prompt that fills the context', async () => {
    const long = 'In the beginning God created the heaven and the earth. '.repeat(200);
    const err = await client.chat.completions
      .create({ model, messages: [{ role: 'user', content: long }] })
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.code).toBe('context_length_exceeded');
  });

  it('NotFoundError for an unknown model', async () => {
    const err = await client.chat.completions.create({ model: 'gpt-9', messages }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(err.code).toBe('model_not_found');
    await expect(client.models.retrieve('gpt-9')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });
});

describe('openai SDK: credentials and quotas', () => {
  const clientWith = (apiKey: string) => new OpenAI({ baseURL: client.baseURL, apiKey, maxRetries: 0 });

  it('AuthenticationError for a missing or forged credential, with a Bearer challenge', async () => {
    const err = await clientWith('cmk_nobody_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')
      .chat.completions.create({ model, messages })
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(err.code).toBe('invalid_api_key');
    expect(err.headers.get('www-authenticate')).toMatch(/^Bearer realm="chatmirror"/);
    const forged = `${(await t.token()).slice(0, -4)}AAAA`;
    await expect(clientWith(forged).models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it('PermissionDeniedError for a token without the route’s scope', async () => {
    const readOnly = clientWith(await t.token({ scopes: ['models:read'] }));
    expect((await readOnly.models.list()).data.length).toBeGreaterThan(0);
    const err = await readOnly.chat.completions.create({ model, messages }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(err.code).toBe('insufficient_scope');
    expect(err.headers.get('www-authenticate')).toContain('scope="chat"');
  });

  it('RateLimitError once a subject’s requests per minute are spent, with OpenAI’s headers', async () => {
    const limited = clientWith(await t.token({ subject: 'rpm-2', limits: { requestsPerMinute: 2 } }));
    const ok = await limited.chat.completions.create({ model, messages, max_tokens: 2 }).withResponse();
    expect(ok.response.headers.get('x-ratelimit-limit-requests')).toBe('2');
    expect(ok.response.headers.get('x-ratelimit-remaining-requests')).toBe('1');
    await limited.chat.completions.create({ model, messages, max_tokens: 2 });
    const err = await limited.chat.completions.create({ model, messages, max_tokens: 2 }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err.code).toBe('rate_limit_exceeded');
    expect(Number(err.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(err.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(await t.app.metrics!.scrape()).toMatch(
      /^chatmirror_rate_limited_total\{reason="requests_per_minute"\} 1$/m,
    );
    // Another subject is not affected.
    await expect(client.chat.completions.create({ model, messages, max_tokens: 2 })).resolves.toBeTruthy();
  });
});
