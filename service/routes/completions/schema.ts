import { type Static, Type } from '@sinclair/typebox';
import { FinishReasonSchema, SamplingFields, UsageSchema } from '../sampling-schema.js';

export const CompletionRequestSchema = Type.Object(
  {
    model: Type.String({ minLength: 1 }),
    prompt: Type.Union(
      [
        Type.String(),
        Type.Array(Type.String(), { minItems: 1 }),
        Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 }),
        Type.Array(Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 }), { minItems: 1 }),
      ],
      { description: 'a string, strings, token ids, or lists of token ids' },
    ),
    best_of: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()])),
    echo: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])),
    frequency_penalty: SamplingFields.frequency_penalty,
    logit_bias: SamplingFields.logit_bias,
    logprobs: Type.Optional(Type.Union([Type.Integer({ minimum: 0, maximum: 5 }), Type.Null()])),
    max_tokens: SamplingFields.max_tokens,
    n: SamplingFields.n,
    presence_penalty: SamplingFields.presence_penalty,
    seed: SamplingFields.seed,
    stop: SamplingFields.stop,
    stream: SamplingFields.stream,
    stream_options: SamplingFields.stream_options,
    suffix: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    temperature: SamplingFields.temperature,
    top_p: SamplingFields.top_p,
    user: SamplingFields.user,
    top_k: SamplingFields.top_k,
    min_p: SamplingFields.min_p,
    repetition_penalty: SamplingFields.repetition_penalty,
    ignore_eos: SamplingFields.ignore_eos,
    min_tokens: SamplingFields.min_tokens,
  },
  { additionalProperties: false, $id: 'CompletionRequest' },
);

export type CompletionRequest = Static<typeof CompletionRequestSchema>;

export const CompletionLogprobsSchema = Type.Object({
  tokens: Type.Array(Type.String()),
  token_logprobs: Type.Array(Type.Number()),
  top_logprobs: Type.Array(Type.Record(Type.String(), Type.Number())),
  text_offset: Type.Array(Type.Integer()),
});

const CompletionChoiceSchema = Type.Object({
  index: Type.Integer(),
  text: Type.String(),
  logprobs: Type.Union([CompletionLogprobsSchema, Type.Null()]),
  finish_reason: FinishReasonSchema,
});

export const CompletionSchema = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('text_completion'),
    created: Type.Integer(),
    model: Type.String(),
    system_fingerprint: Type.String(),
    choices: Type.Array(CompletionChoiceSchema),
    usage: Type.Optional(Type.Union([UsageSchema, Type.Null()])),
  },
  { $id: 'Completion' },
);

export type Completion = Static<typeof CompletionSchema>;
