/**
 * Structured outputs through the official openai SDK against the listening server. The bundled toy model's
 * free text is nonsense, so an answer that parses and validates is the grammar's doing, not the model's.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, stopApp, type TestApp } from '../../helpers/app.js';

let t: TestApp;
let client: OpenAI;
let model: string;

beforeAll(async () => {
  t = await startApp({ CHATMIRROR_ENGINE_MAX_BATCH_SIZE: '8', CHATMIRROR_ENGINE_MAX_QUEUE: '64' });
  const address = await t.app.listen({ host: '127.0.0.1', port: 0 });
  client = new OpenAI({ baseURL: `${address}/v1`, apiKey: await t.token(), maxRetries: 0 });
  model = t.engine.info.name;
});

afterAll(async () => stopApp(t));

const ajv = new Ajv2020({ strict: false });
addFormats.default(ajv);

/** Nested objects, arrays, enums, required fields, bounded numbers, patterned strings. */
const PERSON = {
  type: 'object',
  properties: {
    name: { type: 'string', pattern: '^[A-Z][a-z]{1,10}$' },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    height: { type: 'integer', minimum: 50, maximum: 250 },
    weight: { type: 'number' },
    role: { type: 'string', enum: ['king', 'priest', 'prophet', 'scribe'] },
    tags: { type: 'array', items: { type: 'string', pattern: '^[a-z]{1,8}$' }, minItems: 1, maxItems: 3 },
    home: {
      type: 'object',
      properties: {
        city: { type: 'string', maxLength: 12 },
        zip: { type: 'string', pattern: '^[0-9]{5}$' },
      },
      required: ['city', 'zip'],
      additionalProperties: false,
    },
    alive: { type: 'boolean' },
  },
  required: ['name', 'age', 'height', 'weight', 'role', 'tags', 'home', 'alive'],
  additionalProperties: false,
} as const;
const validPerson = ajv.compile(PERSON);
const personFormat = {
  type: 'json_schema',
  json_schema: { name: 'person', schema: PERSON, strict: true },
} as const;

const ask = (content: string): OpenAI.ChatCompletionMessageParam[] => [{ role: 'user', content }];

describe('response_format json_schema', () => {
  it('chat.completions.parse() returns the parsed object, valid against the schema', async () => {
    const r = await client.chat.completions.parse({
      model,
      messages: ask('Describe a person.'),
      response_format: personFormat,
      temperature: 0,
      max_tokens: 400,
    });
    const choice = r.choices[0]!;
    expect(choice.finish_reason).toBe('stop');
    expect(choice.message.parsed).toEqual(JSON.parse(choice.message.content!));
    expect(validPerson(choice.message.parsed), JSON.stringify(validPerson.errors)).toBe(true);
  });

  it('50 seeded generations at temperature 1 all parse and validate', async () => {
    const runs = await Promise.all(
      Array.from({ length: 50 }, (_, seed) =>
        client.chat.completions.create({
          model,
          messages: ask(`Person number ${seed}?`),
          response_format: personFormat,
          temperature: 1,
          seed,
          max_tokens: 400,
        }),
      ),
    );
    const texts = runs.map((r) => r.choices[0]!.message.content!);
    for (const [i, r] of runs.entries()) {
      expect(r.choices[0]!.finish_reason, texts[i]).toBe('stop');
      expect(validPerson(JSON.parse(texts[i]!)), texts[i]).toBe(true);
    }
    // Sampling really varies inside the grammar: not 50 copies of one answer.
    expect(new Set(texts).size).toBeGreaterThan(40);
  });

  it('streams the same text as the whole answer (greedy), and it parses', async () => {
    const body = {
      model,
      messages: ask('A person, streamed.'),
      response_format: personFormat,
      temperature: 0,
      max_tokens: 400,
    };
    const whole = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({ ...body, stream: true });
    let text = '';
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text).toBe(whole.choices[0]!.message.content);
    expect(finish).toBe('stop');
    expect(validPerson(JSON.parse(text))).toBe(true);
  });

  it('ends with length at max_tokens, the JSON then incomplete', async () => {
    const r = await client.chat.completions.create({
      model,
      messages: ask('Describe a person.'),
      response_format: personFormat,
      temperature: 0,
      max_tokens: 6,
    });
    expect(r.choices[0]!.finish_reason).toBe('length');
    expect(r.usage!.completion_tokens).toBe(6);
    expect(() => JSON.parse(r.choices[0]!.message.content!)).toThrow();
  });

  it('answers 400 unsupported_schema naming a keyword the grammar cannot enforce', async () => {
    const schema = {
      type: 'object',
      properties: { tags: { type: 'array', items: { type: 'string' }, uniqueItems: true } },
    };
    const err = await client.chat.completions
      .create({
        model,
        messages: ask('x'),
        response_format: { type: 'json_schema', json_schema: { name: 'tags', schema } },
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    const e = err as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.code).toBe('unsupported_schema');
    expect(e.param).toBe('response_format.json_schema.schema.properties.tags.uniqueItems');
    expect(e.message).toContain("'uniqueItems'");
  });

  it('answers 400 unsupported_schema for a format it does not know', async () => {
    const err = await client.chat.completions
      .create({
        model,
        messages: ask('x'),
        response_format: {
          type: 'json_schema',
          json_schema: { name: 'f', schema: { type: 'string', format: 'credit-card' } },
        },
      })
      .catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('unsupported_schema');
    expect((err as { param?: string }).param).toBe('response_format.json_schema.schema.format');
  });
});

describe('response_format json_object', () => {
  it('gives a JSON object, streaming or not', async () => {
    const body = {
      model,
      messages: ask('Answer in JSON.'),
      response_format: { type: 'json_object' } as const,
      temperature: 0,
      max_tokens: 300,
    };
    const r = await client.chat.completions.create(body);
    expect(r.choices[0]!.finish_reason).toBe('stop');
    const value = JSON.parse(r.choices[0]!.message.content!);
    expect(typeof value === 'object' && value !== null && !Array.isArray(value)).toBe(true);
    let text = '';
    for await (const chunk of await client.chat.completions.create({ ...body, stream: true })) {
      text += chunk.choices[0]?.delta.content ?? '';
    }
    expect(text).toBe(r.choices[0]!.message.content);
  });
});

describe('extensions: response_format regex and choice', () => {
  it('regex: the whole answer matches', async () => {
    const r = await fetchJson({
      messages: ask('A code?'),
      response_format: { type: 'regex', regex: '[A-Z]{2}-[0-9]{3,4}' },
      temperature: 1,
      seed: 3,
    });
    expect(r.choices[0]!.message.content).toMatch(/^[A-Z]{2}-[0-9]{3,4}$/);
    expect(r.choices[0]!.finish_reason).toBe('stop');
  });

  it('choice: the answer is one of the strings', async () => {
    const choices = ['yes', 'no', 'not yet'];
    for (const seed of [1, 2, 3, 4]) {
      const r = await fetchJson({
        messages: ask('Well?'),
        response_format: { type: 'choice', choice: choices },
        temperature: 1,
        seed,
      });
      expect(choices).toContain(r.choices[0]!.message.content);
    }
  });

  it('a regex the compiler refuses is 400 invalid_grammar with its reason', async () => {
    const res = await post({ messages: ask('x'), response_format: { type: 'regex', regex: '(?<=a)b' } });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; param: string; message: string } };
    expect(body.error.code).toBe('invalid_grammar');
    expect(body.error.param).toBe('response_format.regex');
    expect(body.error.message).toMatch(/Lookbehind is not supported/);
  });
});

describe('a batch of constrained and free rows', () => {
  it('gives each request what it gets alone (greedy)', async () => {
    const requests = [
      { messages: ask('Describe a person.'), response_format: personFormat },
      { messages: ask('Continue: In the beginning') },
      { messages: ask('Well?'), response_format: { type: 'choice', choice: ['yes', 'no'] } },
      { messages: ask('Answer in JSON.'), response_format: { type: 'json_object' } },
      { messages: ask('And the earth was') },
    ].map((r) => ({ ...r, temperature: 0, max_tokens: 300 }));
    const alone = [];
    for (const r of requests) alone.push((await fetchJson(r)).choices[0]!.message.content);
    const together = await Promise.all(
      requests.map(async (r) => (await fetchJson(r)).choices[0]!.message.content),
    );
    expect(together).toEqual(alone);
    expect(validPerson(JSON.parse(alone[0]!))).toBe(true);
  });
});

/** Extensions are not in the SDK's types: sent as plain JSON. */
async function post(body: object): Promise<Response> {
  return fetch(`${client.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${client.apiKey}` },
    body: JSON.stringify({ model, ...body }),
  });
}

async function fetchJson(body: object): Promise<OpenAI.ChatCompletion> {
  const res = await post(body);
  expect(res.status).toBe(200);
  return (await res.json()) as OpenAI.ChatCompletion;
}
