import { Type } from '@sinclair/typebox';

/**
 * The range of every sampling setting, defined once: the request schemas (service/routes/sampling-schema.ts)
 * and the config presets (service/config/schema.ts) both build on these, so a preset can never hold a value
 * that a request would be refused for.
 */
export const SamplingBounds = {
  temperature: () => Type.Number({ minimum: 0, maximum: 2, description: '0 = greedy (OpenAI default 1).' }),
  top_p: () => Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'Nucleus mass (1 = off).' }),
  top_k: () => Type.Integer({ minimum: 0, description: 'Keep the k likeliest tokens (0 = off).' }),
  min_p: () =>
    Type.Number({
      minimum: 0,
      maximum: 1,
      description: 'Drop tokens below min_p × the top probability (0 = off).',
    }),
  max_tokens: () => Type.Integer({ minimum: 1, description: 'Completion length; clamped to the room left.' }),
  repetition_penalty: () =>
    Type.Number({
      exclusiveMinimum: 0,
      maximum: 10,
      description: 'Transformers-style penalty on seen tokens (1 = off).',
    }),
  presence_penalty: () => Type.Number({ minimum: -2, maximum: 2, description: 'OpenAI presence penalty.' }),
  frequency_penalty: () => Type.Number({ minimum: -2, maximum: 2, description: 'OpenAI frequency penalty.' }),
};
