import { Ajv2020 } from 'ajv/dist/2020.js';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, stopApp, type TestApp } from '../../helpers/app.js';
import {
  SMOLLM2_BUILT as BUILT,
  SMOLLM2_DIR as MODEL_DIR,
  SMOLLM2_REQUIRED as REQUIRED,
} from '../../helpers/smollm2.js';

describe.runIf(REQUIRED && !BUILT)('structured outputs on SmolLM2 (required)', () => {
  it('is built', () => {
    expect.fail(
      `CHATMIRROR_REAL_MODEL=1 but ${MODEL_DIR} has no build: run bash test/fixtures/models/build.sh smollm2`,
    );
  });
});

describe.runIf(REQUIRED && BUILT)('structured outputs on SmolLM2-135M-Instruct', () => {
  let t: TestApp;
  let client: OpenAI;
  let model: string;

  beforeAll(async () => {
    t = await startApp(
      { CHATMIRROR_ENGINE_MODEL_DIR: MODEL_DIR, CHATMIRROR_ENGINE_MAX_BATCH_SIZE: '8' },
      { graphFile: 'onnx/model_quantized.onnx', intraOpThreads: 2 },
    );
    const address = await t.app.listen({ host: '127.0.0.1', port: 0 });
    client = new OpenAI({ baseURL: `${address}/v1`, apiKey: await t.token(), maxRetries: 0 });
    model = t.engine.info.name;
  }, 300_000);

  afterAll(async () => stopApp(t));

  const ajv = new Ajv2020({ strict: false });
  const CITY = {
    type: 'object',
    properties: {
      city: { type: 'string', maxLength: 20 },
      country: { type: 'string', maxLength: 20 },
      population_millions: { type: 'integer', minimum: 0, maximum: 50 },
      landmarks: { type: 'array', items: { type: 'string', maxLength: 30 }, minItems: 1, maxItems: 3 },
      continent: { enum: ['Europe', 'Asia', 'Africa', 'America', 'Oceania'] },
    },
    required: ['city', 'country', 'population_millions', 'landmarks', 'continent'],
    additionalProperties: false,
  } as const;
  const validCity = ajv.compile(CITY);
  const ask: OpenAI.ChatCompletionMessageParam[] = [
    { role: 'user', content: 'Tell me about Paris as JSON.' },
  ];

  it('chat.completions.parse() returns a parsed, valid object', async () => {
    const r = await client.chat.completions.parse({
      model,
      messages: ask,
      response_format: { type: 'json_schema', json_schema: { name: 'city', schema: CITY, strict: true } },
      temperature: 0,
      max_tokens: 200,
    });
    const { parsed, content } = r.choices[0]!.message;
    expect(r.choices[0]!.finish_reason).toBe('stop');
    expect(validCity(parsed), content ?? '').toBe(true);
    expect((parsed as { city: string }).city).toMatch(/Paris/);
  }, 300_000);

  it('8 sampled generations (temperature 1) all validate', async () => {
    const runs = await Promise.all(
      Array.from({ length: 8 }, (_, seed) =>
        client.chat.completions.create({
          model,
          messages: [{ role: 'user', content: `Describe city number ${seed} as JSON.` }],
          response_format: { type: 'json_schema', json_schema: { name: 'city', schema: CITY } },
          temperature: 1,
          seed,
          max_tokens: 200,
        }),
      ),
    );
    for (const r of runs) {
      const text = r.choices[0]!.message.content!;
      expect(r.choices[0]!.finish_reason, text).toBe('stop');
      expect(validCity(JSON.parse(text)), text).toBe(true);
    }
  }, 600_000);

  it('json_object mode gives an object', async () => {
    const r = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'Give the capital of France as JSON with a key "capital".' }],
      response_format: { type: 'json_object' },
      temperature: 0,
      max_tokens: 60,
    });
    const value = JSON.parse(r.choices[0]!.message.content!);
    expect(typeof value).toBe('object');
  }, 300_000);

  it('tool_choice required gives a valid call; its streamed form reassembles to the same call', async () => {
    const WEATHER = {
      type: 'object',
      properties: { city: { type: 'string', maxLength: 30 }, unit: { enum: ['celsius', 'fahrenheit'] } },
      required: ['city', 'unit'],
    } as const;
    const body = {
      model,
      messages: [{ role: 'user' as const, content: 'What is the weather in Paris?' }],
      tools: [
        {
          type: 'function' as const,
          function: { name: 'get_weather', description: 'Current weather', parameters: WEATHER },
        },
        {
          type: 'function' as const,
          function: {
            name: 'get_time',
            description: 'Current time',
            parameters: {
              type: 'object',
              properties: { timezone: { type: 'string', maxLength: 40 } },
              required: ['timezone'],
            },
          },
        },
      ],
      tool_choice: 'required' as const,
      parallel_tool_calls: false,
      temperature: 0,
      max_tokens: 80,
    };
    const r = await client.chat.completions.create(body);
    expect(r.choices[0]!.finish_reason).toBe('tool_calls');
    const call = r.choices[0]!.message.tool_calls![0]!;
    if (call.type !== 'function') throw new Error(`not a function call: ${call.type}`);
    expect(['get_weather', 'get_time']).toContain(call.function.name);
    expect(typeof JSON.parse(call.function.arguments)).toBe('object');
    const final = await client.chat.completions.stream(body).finalChatCompletion();
    const streamed = final.choices[0]!.message.tool_calls![0]!;
    expect(streamed.type === 'function' ? streamed.function : undefined).toEqual(call.function);
  }, 300_000);
});
