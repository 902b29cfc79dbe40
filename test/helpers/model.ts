import { fileURLToPath } from 'node:url';
import type { SamplingParams } from '../../service/engine/types.js';

/** The bundled Llama-architecture test model (made by test/fixtures/models/build.sh tiny). */
export const TINY_MODEL_DIR = fileURLToPath(new URL('../fixtures/models/tiny-llama', import.meta.url));

/** Greedy decoding with nothing else switched on; tests override what they exercise. */
export function params(overrides: Partial<SamplingParams> = {}): SamplingParams {
  return {
    maxTokens: 24,
    temperature: 0,
    topP: 1,
    topK: 0,
    minP: 0,
    repetitionPenalty: 1,
    presencePenalty: 0,
    frequencyPenalty: 0,
    logitBias: {},
    stop: [],
    ignoreEos: false,
    logprobs: false,
    topLogprobs: 0,
    ...overrides,
  };
}
