/**
 * Templating and tokenizing off the main thread (issue 10, item 4): the API hands prompts to the engine's
 * tokenizer pool, so a large prompt never holds the event loop that serves HTTP. Real engine, real threads.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Engine, EngineOverloadedError } from '../../service/engine/index.js';
import { startApp, stopApp, type TestApp } from '../helpers/app.js';
import { TINY_MODEL_DIR } from '../helpers/model.js';

let t: TestApp;
beforeAll(async () => {
  t = await startApp();
});
afterAll(async () => stopApp(t));

/** Text just under the character bound the routes apply before tokenizing (thousands of tokens). */
const large = () => 'the end of it all '.repeat(700);

describe('tokenizer pool', () => {
  it('gives the same ids as the tokenizer on this thread, while this event loop keeps turning', async () => {
    const messages = [{ role: 'user' as const, content: large() }];
    let turns = 0;
    let turning = true;
    const spin = () => {
      turns++;
      if (turning) setImmediate(spin);
    };
    setImmediate(spin);
    const ids = await t.engine.tokenizeChat(messages);
    turning = false;
    // A synchronous tokenizer would have finished before the first setImmediate ran.
    expect(turns).toBeGreaterThan(0);
    expect(ids).toEqual(t.engine.encodeChat(messages));
    expect(await t.engine.tokenizeText('In the beginning')).toEqual(t.engine.encodeText('In the beginning'));
    expect(await t.engine.detokenizePrompt(ids.slice(0, 20))).toBe(
      t.engine.tokenizer.decode(ids.slice(0, 20)),
    );
  });

  it('the routes never template or tokenize a prompt on the main thread', async () => {
    const encode = vi.spyOn(t.engine.tokenizer, 'encode');
    const render = vi.spyOn(t.engine.chatTemplate, 'render');
    try {
      const chat = await t.app.inject({
        method: 'POST',
        url: '/v1/chat/completions',
        headers: await t.auth(),
        payload: {
          model: t.engine.info.name,
          messages: [{ role: 'user', content: 'Hi there' }],
          max_tokens: 2,
        },
      });
      expect(chat.statusCode).toBe(200);
      const completions = await t.app.inject({
        method: 'POST',
        url: '/v1/completions',
        headers: await t.auth(),
        payload: { model: t.engine.info.name, prompt: ['In the beginning', 'And God said'], max_tokens: 2 },
      });
      expect(completions.statusCode).toBe(200);
      // A large prompt refused after tokenizing (over the context) is tokenized in the pool too.
      const tooLong = await t.app.inject({
        method: 'POST',
        url: '/v1/completions',
        headers: await t.auth(),
        payload: { model: t.engine.info.name, prompt: large(), max_tokens: 2 },
      });
      expect(tooLong.statusCode).toBe(400);
      expect(tooLong.json().error.code).toBe('context_length_exceeded');
      expect(encode).not.toHaveBeenCalled();
      expect(render).not.toHaveBeenCalled();
      // …and counted the same tokens the main-thread tokenizer would have.
      encode.mockRestore();
      render.mockRestore();
      expect(chat.json().usage.prompt_tokens).toBe(
        t.engine.encodeChat([{ role: 'user', content: 'Hi there' }]).length,
      );
    } finally {
      encode.mockRestore();
      render.mockRestore();
    }
  });

  it('bounds the prompts waiting in the pool by what the engine could take', async () => {
    const small = await Engine.load(TINY_MODEL_DIR, { maxBatchSize: 1, maxQueue: 1 });
    try {
      const jobs = [small.tokenizeText(large()), small.tokenizeText(large()), small.tokenizeText(large())];
      const settled = await Promise.allSettled(jobs);
      expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
      expect((settled[2] as PromiseRejectedResult).reason).toBeInstanceOf(EngineOverloadedError);
      // Room again once answered.
      expect((await small.tokenizeText('a')).length).toBeGreaterThan(0);
    } finally {
      await small.close();
    }
  });
});
