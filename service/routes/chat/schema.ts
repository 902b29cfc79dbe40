import { type Static, Type } from '@sinclair/typebox';
import { ChatLogprobsSchema, SamplingFields, UsageSchema } from '../sampling-schema.js';

const TextPart = Type.Object(
  { type: Type.Literal('text'), text: Type.String() },
  { additionalProperties: false, description: 'text content part' },
);

/**
 * Any other content part (image_url, input_audio, file…) passes validation so that the handler can refuse it
 * by name with `unsupported_parameter`, rather than as a vague schema mismatch.
 */
const OtherPart = Type.Object({ type: Type.String() }, { additionalProperties: true });

/** A tool call as OpenAI returns it: `arguments` is JSON text. */
const ToolCallSchema = Type.Object(
  {
    id: Type.String(),
    type: Type.Literal('function'),
    function: Type.Object({ name: Type.String(), arguments: Type.String() }, { additionalProperties: false }),
  },
  { additionalProperties: false },
);

export const ChatMessageSchema = Type.Object(
  {
    role: Type.Union([
      Type.Literal('system'),
      Type.Literal('developer'),
      Type.Literal('user'),
      Type.Literal('assistant'),
      Type.Literal('tool'),
      Type.Literal('function'),
    ]),
    content: Type.Union([Type.String(), Type.Array(Type.Union([TextPart, OtherPart])), Type.Null()]),
    name: Type.Optional(Type.String({ maxLength: 64 })),
    /** An assistant turn's calls, replayed as the server returned them. */
    tool_calls: Type.Optional(Type.Array(ToolCallSchema)),
    /** A `tool` turn: the id of the call it answers. */
    tool_call_id: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

/** OpenAI's function names: what a call's `name` may be. */
const FUNCTION_NAME = '^[a-zA-Z0-9_-]{1,64}$';

const ToolSchema = Type.Object(
  {
    type: Type.Literal('function'),
    function: Type.Object(
      {
        name: Type.String({ pattern: FUNCTION_NAME }),
        description: Type.Optional(Type.String()),
        parameters: Type.Optional(
          Type.Record(Type.String(), Type.Unknown(), {
            description: 'JSON Schema of the arguments (keywords as for response_format json_schema)',
          }),
        ),
        strict: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

const ToolChoiceSchema = Type.Union([
  Type.Literal('none'),
  Type.Literal('auto'),
  Type.Literal('required'),
  Type.Object(
    {
      type: Type.Literal('function'),
      function: Type.Object({ name: Type.String() }, { additionalProperties: false }),
    },
    { additionalProperties: false },
  ),
]);

/** OpenAI's response_format, plus two extensions (regex, choice) that constrain a text answer the same way. */
const ResponseFormatSchema = Type.Union([
  Type.Object({ type: Type.Literal('text') }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('json_object') }, { additionalProperties: false }),
  Type.Object(
    {
      type: Type.Literal('json_schema'),
      json_schema: Type.Object(
        {
          name: Type.String({ pattern: FUNCTION_NAME }),
          description: Type.Optional(Type.String()),
          schema: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
          strict: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])),
        },
        { additionalProperties: false },
      ),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      type: Type.Literal('regex'),
      regex: Type.String({ minLength: 1, maxLength: 4096, description: 'the whole answer matches it' }),
    },
    { additionalProperties: false, description: 'extension: the answer matches a regular expression' },
  ),
  Type.Object(
    {
      type: Type.Literal('choice'),
      choice: Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), { minItems: 1, maxItems: 256 }),
    },
    { additionalProperties: false, description: 'extension: the answer is exactly one of the strings' },
  ),
]);

/** Fields in the order OpenAI documents them; extensions last. Unknown fields are rejected by name. */
export const ChatCompletionRequestSchema = Type.Object(
  {
    messages: Type.Array(ChatMessageSchema, { minItems: 1 }),
    model: Type.String({ minLength: 1 }),
    audio: Type.Optional(Type.Unknown()),
    frequency_penalty: SamplingFields.frequency_penalty,
    function_call: Type.Optional(Type.Unknown()),
    functions: Type.Optional(Type.Unknown()),
    logit_bias: SamplingFields.logit_bias,
    logprobs: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])),
    max_completion_tokens: SamplingFields.max_tokens,
    max_tokens: SamplingFields.max_tokens,
    metadata: Type.Optional(Type.Unknown()),
    modalities: Type.Optional(Type.Unknown()),
    n: SamplingFields.n,
    parallel_tool_calls: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])),
    prediction: Type.Optional(Type.Unknown()),
    presence_penalty: SamplingFields.presence_penalty,
    reasoning_effort: Type.Optional(Type.Unknown()),
    response_format: Type.Optional(ResponseFormatSchema),
    seed: SamplingFields.seed,
    service_tier: Type.Optional(Type.Unknown()),
    stop: SamplingFields.stop,
    store: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])),
    stream: SamplingFields.stream,
    stream_options: SamplingFields.stream_options,
    temperature: SamplingFields.temperature,
    tool_choice: Type.Optional(ToolChoiceSchema),
    tools: Type.Optional(Type.Array(ToolSchema, { maxItems: 128 })),
    top_logprobs: Type.Optional(Type.Union([Type.Integer({ minimum: 0, maximum: 20 }), Type.Null()])),
    top_p: SamplingFields.top_p,
    user: SamplingFields.user,
    web_search_options: Type.Optional(Type.Unknown()),
    top_k: SamplingFields.top_k,
    min_p: SamplingFields.min_p,
    repetition_penalty: SamplingFields.repetition_penalty,
    ignore_eos: SamplingFields.ignore_eos,
    min_tokens: SamplingFields.min_tokens,
  },
  { additionalProperties: false, $id: 'ChatCompletionRequest' },
);

export type ChatCompletionRequest = Static<typeof ChatCompletionRequestSchema>;

/** Fields we accept in the schema only to refuse them by name: the features this server does not serve. */
export const UNSUPPORTED_CHAT_FIELDS = [
  'audio',
  'function_call',
  'functions',
  'modalities',
  'prediction',
  'reasoning_effort',
  'web_search_options',
] as const;

/** The chat finish reasons: the shared ones, and `tool_calls` when the answer is calls. */
const ChatFinishReasonSchema = Type.Union([
  Type.Literal('stop'),
  Type.Literal('length'),
  Type.Literal('tool_calls'),
  Type.Literal('content_filter'),
  Type.Null(),
]);

export const ChatCompletionSchema = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('chat.completion'),
    created: Type.Integer(),
    model: Type.String(),
    system_fingerprint: Type.String(),
    choices: Type.Array(
      Type.Object({
        index: Type.Integer(),
        message: Type.Object({
          role: Type.Literal('assistant'),
          // null when the answer is only tool calls, as OpenAI sends it.
          content: Type.Union([Type.String(), Type.Null()]),
          refusal: Type.Null(),
          tool_calls: Type.Optional(Type.Array(ToolCallSchema)),
        }),
        logprobs: Type.Union([ChatLogprobsSchema, Type.Null()]),
        finish_reason: ChatFinishReasonSchema,
      }),
    ),
    usage: UsageSchema,
  },
  { $id: 'ChatCompletion' },
);

export type ChatCompletion = Static<typeof ChatCompletionSchema>;

/** One SSE `data:` payload of a streamed chat completion. */
export const ChatCompletionChunkSchema = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('chat.completion.chunk'),
    created: Type.Integer(),
    model: Type.String(),
    system_fingerprint: Type.String(),
    choices: Type.Array(
      Type.Object({
        index: Type.Integer(),
        delta: Type.Object({
          role: Type.Optional(Type.Literal('assistant')),
          content: Type.Optional(Type.String()),
          /** A call's first delta has its id, type and name; the following ones add to its arguments. */
          tool_calls: Type.Optional(
            Type.Array(
              Type.Object({
                index: Type.Integer(),
                id: Type.Optional(Type.String()),
                type: Type.Optional(Type.Literal('function')),
                function: Type.Object({
                  name: Type.Optional(Type.String()),
                  arguments: Type.String(),
                }),
              }),
            ),
          ),
        }),
        logprobs: Type.Union([ChatLogprobsSchema, Type.Null()]),
        finish_reason: ChatFinishReasonSchema,
      }),
    ),
    usage: Type.Optional(Type.Union([UsageSchema, Type.Null()])),
  },
  { $id: 'ChatCompletionChunk' },
);

export type ChatCompletionChunk = Static<typeof ChatCompletionChunkSchema>;
