import { type Static, Type } from '@sinclair/typebox';
import { ChatLogprobsSchema, FinishReasonSchema, SamplingFields, UsageSchema } from '../sampling-schema.js';

const TextPart = Type.Object(
  { type: Type.Literal('text'), text: Type.String() },
  { additionalProperties: false, description: 'text content part' },
);

/**
 * Any other content part (image_url, input_audio, file…) passes validation so that the handler can refuse it
 * by name with `unsupported_parameter`, rather than as a vague schema mismatch.
 */
const OtherPart = Type.Object({ type: Type.String() }, { additionalProperties: true });

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
    // Present only so that a client replaying tool calls gets a named 400, not a generic one.
    tool_calls: Type.Optional(Type.Array(Type.Unknown())),
    tool_call_id: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

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
    parallel_tool_calls: Type.Optional(Type.Unknown()),
    prediction: Type.Optional(Type.Unknown()),
    presence_penalty: SamplingFields.presence_penalty,
    reasoning_effort: Type.Optional(Type.Unknown()),
    response_format: Type.Optional(Type.Object({ type: Type.String() }, { additionalProperties: true })),
    seed: SamplingFields.seed,
    service_tier: Type.Optional(Type.Unknown()),
    stop: SamplingFields.stop,
    store: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])),
    stream: SamplingFields.stream,
    stream_options: SamplingFields.stream_options,
    temperature: SamplingFields.temperature,
    tool_choice: Type.Optional(Type.Unknown()),
    tools: Type.Optional(Type.Unknown()),
    top_logprobs: Type.Optional(Type.Union([Type.Integer({ minimum: 0, maximum: 20 }), Type.Null()])),
    top_p: SamplingFields.top_p,
    user: SamplingFields.user,
    web_search_options: Type.Optional(Type.Unknown()),
    top_k: SamplingFields.top_k,
    min_p: SamplingFields.min_p,
    repetition_penalty: SamplingFields.repetition_penalty,
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
  'parallel_tool_calls',
  'prediction',
  'reasoning_effort',
  'tool_choice',
  'tools',
  'web_search_options',
] as const;

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
          content: Type.String(),
          refusal: Type.Null(),
        }),
        logprobs: Type.Union([ChatLogprobsSchema, Type.Null()]),
        finish_reason: FinishReasonSchema,
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
        }),
        logprobs: Type.Union([ChatLogprobsSchema, Type.Null()]),
        finish_reason: FinishReasonSchema,
      }),
    ),
    usage: Type.Optional(Type.Union([UsageSchema, Type.Null()])),
  },
  { $id: 'ChatCompletionChunk' },
);

export type ChatCompletionChunk = Static<typeof ChatCompletionChunkSchema>;
