/**
 * Tool calling through the official openai SDK against the listening server, on the bundled toy model (whose
 * chat template has no tool support, so the documented fallback prompt is what it sees). The toy's context is
 * 512 tokens and its tokenizer spends ~420 of them on the tool prompt, so most cases ask for one call
 * (parallel_tool_calls: false); a call is ~66 tokens.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fallbackToolMessages, templateTools } from '../../../service/routes/chat/tool-calls.js';
import { startApp, stopApp, type TestApp } from '../../helpers/app.js';

let t: TestApp;
let client: OpenAI;
let model: string;

beforeAll(async () => {
  t = await startApp({ CHATMIRROR_ENGINE_MAX_BATCH_SIZE: '8', CHATMIRROR_ENGINE_MAX_QUEUE: '32' });
  const address = await t.app.listen({ host: '127.0.0.1', port: 0 });
  client = new OpenAI({ baseURL: `${address}/v1`, apiKey: await t.token(), maxRetries: 0 });
  model = t.engine.info.name;
});

afterAll(async () => stopApp(t));

const WEATHER = {
  type: 'object',
  properties: {
    city: { enum: ['Babylon', 'Nineveh'] },
    days: { type: 'integer', minimum: 1, maximum: 7 },
  },
  required: ['city', 'days'],
} as const;
const SEARCH = {
  type: 'object',
  properties: {
    query: { type: 'string', pattern: '^[a-z ]{1,20}$' },
    limit: { type: 'integer', minimum: 1, maximum: 10 },
  },
  required: ['query'],
} as const;
const tools: OpenAI.ChatCompletionTool[] = [
  {
    type: 'function',
    function: { name: 'get_weather', description: 'Weather', parameters: WEATHER },
  },
  {
    type: 'function',
    function: { name: 'search', description: 'Search', parameters: SEARCH },
  },
];
const ajv = new Ajv2020({ strict: false });
const validArgs: Record<string, ReturnType<typeof ajv.compile>> = {
  get_weather: ajv.compile(WEATHER),
  search: ajv.compile(SEARCH),
};
const messages: OpenAI.ChatCompletionMessageParam[] = [
  { role: 'user', content: 'What is the weather in Babylon?' },
];

function expectValidCall(call: OpenAI.ChatCompletionMessageToolCall) {
  expect(call.type).toBe('function');
  expect(call.id).toMatch(/^call_[0-9a-f]{24}$/);
  if (call.type !== 'function') return;
  const validate = validArgs[call.function.name];
  expect(validate, call.function.name).toBeDefined();
  expect(validate!(JSON.parse(call.function.arguments)), call.function.arguments).toBe(true);
}

describe('tool_choice', () => {
  it('required with two tools always yields a valid call (20 sampled seeds)', async () => {
    const runs = await Promise.all(
      Array.from({ length: 20 }, (_, seed) =>
        client.chat.completions.create({
          model,
          messages,
          tools,
          tool_choice: 'required',
          parallel_tool_calls: false,
          temperature: 1,
          seed,
          max_tokens: 300,
        }),
      ),
    );
    for (const r of runs) {
      const choice = r.choices[0]!;
      expect(choice.finish_reason).toBe('tool_calls');
      expect(choice.message.content).toBeNull();
      expect(choice.message.tool_calls).toHaveLength(1);
      for (const call of choice.message.tool_calls!) expectValidCall(call);
    }
  });

  it('a named function is one call of that function', async () => {
    for (const seed of [1, 2, 3]) {
      const r = await client.chat.completions.create({
        model,
        messages,
        tools,
        tool_choice: { type: 'function', function: { name: 'search' } },
        temperature: 1,
        seed,
        max_tokens: 300,
      });
      const calls = r.choices[0]!.message.tool_calls!;
      expect(calls).toHaveLength(1);
      expect(calls[0]!.type === 'function' && calls[0]!.function.name).toBe('search');
      expectValidCall(calls[0]!);
      expect(r.choices[0]!.finish_reason).toBe('tool_calls');
    }
  });

  it('parallel calls (the default) come as several tool_calls, each valid', async () => {
    // One tool, so that several calls fit the toy's context; its EOS is banned, so it goes on calling.
    const noEos = Object.fromEntries(t.engine.info.eosTokenIds.map((id) => [String(id), -100]));
    const r = await client.chat.completions.create({
      model,
      messages,
      tools: [tools[0]!],
      tool_choice: 'required',
      temperature: 0,
      max_tokens: 300,
      logit_bias: noEos,
    });
    const calls = r.choices[0]!.message.tool_calls ?? [];
    expect(calls.length).toBeGreaterThan(1);
    for (const call of calls) expectValidCall(call);
    // Cut short by the context, the unfinished call stays out of tool_calls.
    if (r.choices[0]!.finish_reason === 'length')
      expect(r.choices[0]!.message.content).toContain('<tool_call>');
    else expect(r.choices[0]!.finish_reason).toBe('tool_calls');
  });

  it('auto lets the toy model answer in text (it never opens a call), with finish_reason stop', async () => {
    const r = await client.chat.completions.create({
      model,
      messages,
      tools,
      temperature: 0,
      max_tokens: 30,
    });
    const choice = r.choices[0]!;
    expect(choice.message.tool_calls).toBeUndefined();
    expect(choice.message.content!.length).toBeGreaterThan(0);
    expect(['stop', 'length']).toContain(choice.finish_reason);
  });

  it('none ignores the tools: the prompt is the plain conversation', async () => {
    const r = await client.chat.completions.create({
      model,
      messages,
      tools,
      tool_choice: 'none',
      temperature: 0,
      max_tokens: 8,
    });
    expect(r.usage!.prompt_tokens).toBe(
      t.engine.encodeChat([{ role: 'user', content: messages[0]!.content as string }]).length,
    );
  });
});

describe('streamed tool calls', () => {
  // A function: `model` is set in beforeAll, after the describe body has run.
  const body = () => ({
    model,
    messages,
    tools: [tools[0]!],
    tool_choice: 'required' as const,
    temperature: 0,
    max_tokens: 300,
  });

  it('reassemble to the same calls as the whole answer (greedy), with index and finish_reason tool_calls', async () => {
    const whole = await client.chat.completions.create(body());
    const stream = await client.chat.completions.create({ ...body(), stream: true });
    const calls: { id?: string; name?: string; arguments: string }[] = [];
    let finish: string | null | undefined;
    let content = '';
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (!choice) continue;
      content += choice.delta.content ?? '';
      for (const d of choice.delta.tool_calls ?? []) {
        calls[d.index] ??= { arguments: '' };
        if (d.id) calls[d.index]!.id = d.id;
        if (d.function?.name) calls[d.index]!.name = d.function.name;
        calls[d.index]!.arguments += d.function?.arguments ?? '';
      }
      finish = choice.finish_reason ?? finish;
    }
    expect(finish).toBe('tool_calls');
    expect(content).toBe('');
    const expected = whole.choices[0]!.message.tool_calls!.map((c) =>
      c.type === 'function' ? { name: c.function.name, arguments: c.function.arguments } : {},
    );
    expect(calls.map(({ name, arguments: a }) => ({ name, arguments: a }))).toEqual(expected);
    for (const c of calls) expect(c.id).toMatch(/^call_/);
  });

  it("the SDK's stream helper accumulates them to the same message", async () => {
    const whole = await client.chat.completions.create(body());
    const final = await client.chat.completions.stream(body()).finalChatCompletion();
    const strip = (calls: OpenAI.ChatCompletionMessageToolCall[] | undefined) =>
      calls?.map((c) => (c.type === 'function' ? c.function : c));
    expect(strip(final.choices[0]!.message.tool_calls)).toEqual(strip(whole.choices[0]!.message.tool_calls));
  });
});

describe('tool history', () => {
  it('replays assistant tool_calls and tool results through the fallback prompt', async () => {
    const f: OpenAI.ChatCompletionTool = {
      type: 'function',
      function: { name: 'f', parameters: { type: 'object', properties: { a: { type: 'integer' } } } },
    };
    const history: OpenAI.ChatCompletionMessageParam[] = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'f of 1?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"a": 1}' } }],
      },
      { role: 'tool', tool_call_id: 'call_1', content: '2' },
    ];
    const r = await client.chat.completions.create({
      model,
      messages: history,
      tools: [f],
      temperature: 0,
      max_tokens: 4,
    });
    const rendered = fallbackToolMessages(
      [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'f of 1?' },
        {
          role: 'assistant',
          content: '',
          tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: { a: 1 } } }],
        },
        { role: 'tool', content: '2', tool_call_id: 'call_1' },
      ],
      templateTools([{ name: 'f', parameters: JSON.stringify(f.function.parameters) }], [undefined]),
    );
    expect(rendered[0]!.content).toMatch(/^Be brief\.\n\nYou can call these functions:\n<tools>\n/);
    // Written as the constraint makes the model write a call.
    expect(rendered[2]!.content).toBe('<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>');
    expect(rendered[3]).toEqual({ role: 'user', content: '<tool_response>\n2\n</tool_response>' });
    expect(r.usage!.prompt_tokens).toBe(t.engine.encodeChat(rendered).length);
  });
});

describe('tool errors', () => {
  it('400 naming an unsupported keyword in a tool’s parameters', async () => {
    const err = await client.chat.completions
      .create({
        model,
        messages,
        tool_choice: 'required',
        tools: [
          {
            type: 'function',
            function: {
              name: 'f',
              parameters: { type: 'object', properties: { n: { type: 'integer', multipleOf: 2 } } },
            },
          },
        ],
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as { code: string }).code).toBe('unsupported_schema');
    expect((err as { param: string }).param).toBe('tools[0].function.parameters.properties.n.multipleOf');
  });

  it('400 for a named tool_choice that is not among the tools', async () => {
    const err = await client.chat.completions
      .create({ model, messages, tools, tool_choice: { type: 'function', function: { name: 'nope' } } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as { param: string }).param).toBe('tool_choice');
  });
});
