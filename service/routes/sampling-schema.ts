import { type TSchema, Type } from '@sinclair/typebox';
import { SamplingBounds } from '../sampling-bounds.js';

/**
 * Request fields shared by /v1/chat/completions and /v1/completions, named and bounded as OpenAI documents
 * them. Server caps (max_tokens, n, stop count and length) are enforced after validation, against config.
 */
export const SamplingFields = {
  frequency_penalty: Type.Optional(SamplingBounds.frequency_penalty()),
  logit_bias: Type.Optional(
    Type.Record(Type.String({ pattern: '^[0-9]+$' }), Type.Number({ minimum: -100, maximum: 100 }), {
      // Without this a key that is not a token id ("", "0x10") would skip the value check altogether.
      additionalProperties: false,
      description: 'token id → bias from -100 (ban) to 100 (force)',
    }),
  ),
  max_tokens: Type.Optional(Type.Union([SamplingBounds.max_tokens(), Type.Null()])),
  n: Type.Optional(
    Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], { description: 'choices per request' }),
  ),
  presence_penalty: Type.Optional(SamplingBounds.presence_penalty()),
  seed: Type.Optional(
    Type.Union(
      [Type.Integer({ minimum: Number.MIN_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER }), Type.Null()],
      {
        description: 'same seed and parameters → same output',
      },
    ),
  ),
  stop: Type.Optional(
    Type.Union([Type.String(), Type.Array(Type.String(), { maxItems: 4 }), Type.Null()], {
      description: 'up to 4 strings; generation ends before any of them and they are not returned',
    }),
  ),
  stream: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])),
  stream_options: Type.Optional(
    Type.Union([
      Type.Object({ include_usage: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
      Type.Null(),
    ]),
  ),
  temperature: Type.Optional(Type.Union([SamplingBounds.temperature(), Type.Null()])),
  top_p: Type.Optional(Type.Union([SamplingBounds.top_p(), Type.Null()])),
  user: Type.Optional(Type.String({ maxLength: 256, description: 'end-user id, for logs' })),
  // Extensions beyond OpenAI (vLLM names them the same).
  top_k: Type.Optional(SamplingBounds.top_k()),
  min_p: Type.Optional(SamplingBounds.min_p()),
  repetition_penalty: Type.Optional(SamplingBounds.repetition_penalty()),
  // Output length control for benchmarks (vLLM's names): with either, a load test gets the length it asked for.
  ignore_eos: Type.Optional(
    Type.Boolean({ description: 'extension: keep generating past the end-of-sequence token (benchmarks)' }),
  ),
  min_tokens: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: 1_000_000,
      description: 'extension: the end-of-sequence token is not chosen before this many tokens',
    }),
  ),
} satisfies Record<string, TSchema>;

export const UsageSchema = Type.Object({
  prompt_tokens: Type.Integer(),
  completion_tokens: Type.Integer(),
  total_tokens: Type.Integer(),
});

const TopLogprobSchema = Type.Object({
  token: Type.String(),
  logprob: Type.Number(),
  bytes: Type.Union([Type.Array(Type.Integer()), Type.Null()]),
});

export const ChatLogprobsSchema = Type.Object({
  content: Type.Union([
    Type.Array(
      Type.Composite([TopLogprobSchema, Type.Object({ top_logprobs: Type.Array(TopLogprobSchema) })]),
    ),
    Type.Null(),
  ]),
});

export const FinishReasonSchema = Type.Union([
  Type.Literal('stop'),
  Type.Literal('length'),
  Type.Literal('content_filter'),
  Type.Null(),
]);
