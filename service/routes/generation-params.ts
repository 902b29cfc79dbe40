import type { SamplingParams } from '../engine/types.js';
import { ApiError } from '../errors.js';

/** Per-scenario or server-wide defaults, in the request's own (OpenAI) field names. */
export interface SamplingDefaults {
  temperature?: number | undefined;
  top_p?: number | undefined;
  top_k?: number | undefined;
  min_p?: number | undefined;
  max_tokens?: number | undefined;
  repetition_penalty?: number | undefined;
  presence_penalty?: number | undefined;
  frequency_penalty?: number | undefined;
}

/** The request fields this mapping reads; both completion endpoints have them. */
export interface SamplingRequest extends Omit<SamplingDefaults, 'max_tokens' | 'temperature' | 'top_p'> {
  temperature?: number | null | undefined;
  top_p?: number | null | undefined;
  max_tokens?: number | null | undefined;
  max_completion_tokens?: number | null | undefined;
  n?: number | null | undefined;
  seed?: number | null | undefined;
  stop?: string | string[] | null | undefined;
  logit_bias?: Record<string, number> | undefined;
  ignore_eos?: boolean | undefined;
  min_tokens?: number | undefined;
}

export interface SamplingCaps {
  maxTokensCap: number;
  maxN: number;
  maxStop: number;
  maxStopLength: number;
  maxLogitBiasEntries: number;
}

export interface PromptContext {
  promptTokens: number;
  contextLength: number;
  vocabSize: number;
}

/** OpenAI's own defaults: the last step of the precedence. */
const OPENAI_DEFAULTS = {
  temperature: 1,
  top_p: 1,
  top_k: 0,
  min_p: 0,
  repetition_penalty: 1,
  presence_penalty: 0,
  frequency_penalty: 0,
} as const;

/**
 * Maps a request to engine sampling parameters. Precedence, for every field: the request, then the model
 * alias's defaults, then the server's defaults, then OpenAI's. Server caps then bound the result: max_tokens
 * is clamped to min(context − prompt, cap); n, stop and logit_bias beyond their caps are refused by name.
 */
export function toSamplingParams(
  req: SamplingRequest,
  alias: SamplingDefaults,
  server: SamplingDefaults,
  caps: SamplingCaps,
  ctx: PromptContext,
): { params: SamplingParams; n: number } {
  const pick = <K extends keyof typeof OPENAI_DEFAULTS>(key: K): number =>
    req[key] ?? alias[key] ?? server[key] ?? OPENAI_DEFAULTS[key];

  if (ctx.promptTokens + 1 > ctx.contextLength) {
    throw new ApiError(
      'context_length_exceeded',
      `This model's maximum context length is ${ctx.contextLength} tokens; the prompt has ${ctx.promptTokens} ` +
        'tokens, leaving no room for a completion.',
      'messages',
    );
  }
  const room = ctx.contextLength - ctx.promptTokens;
  const requested = req.max_completion_tokens ?? req.max_tokens ?? alias.max_tokens ?? server.max_tokens;
  const maxTokens = Math.min(requested ?? room, room, caps.maxTokensCap);

  const n = req.n ?? 1;
  if (n > caps.maxN) throw new ApiError('invalid_request', `n must be at most ${caps.maxN}, got ${n}`, 'n');

  const stop = req.stop == null ? [] : typeof req.stop === 'string' ? [req.stop] : req.stop;
  if (stop.length > caps.maxStop) {
    throw new ApiError(
      'invalid_request',
      `stop takes at most ${caps.maxStop} sequences, got ${stop.length}`,
      'stop',
    );
  }
  for (const s of stop) {
    if (s.length === 0 || s.length > caps.maxStopLength) {
      throw new ApiError(
        'invalid_request',
        `each stop sequence must be 1 to ${caps.maxStopLength} characters, got ${s.length}`,
        'stop',
      );
    }
  }

  const logitBias: Record<number, number> = {};
  const biasEntries = Object.entries(req.logit_bias ?? {});
  if (biasEntries.length > caps.maxLogitBiasEntries) {
    throw new ApiError(
      'invalid_request',
      `logit_bias takes at most ${caps.maxLogitBiasEntries} entries`,
      'logit_bias',
    );
  }
  for (const [id, bias] of biasEntries) {
    const tokenId = /^\d+$/.test(id) ? Number(id) : Number.NaN;
    if (!Number.isInteger(tokenId) || tokenId >= ctx.vocabSize) {
      throw new ApiError(
        'invalid_request',
        `logit_bias key ${id} is not a token id of this model (0 to ${ctx.vocabSize - 1})`,
        'logit_bias',
      );
    }
    if (typeof bias !== 'number' || !(bias >= -100 && bias <= 100)) {
      throw new ApiError(
        'invalid_request',
        `logit_bias for token ${id} must be a number from -100 to 100`,
        'logit_bias',
      );
    }
    logitBias[tokenId] = bias;
  }

  const minTokens = req.min_tokens ?? 0;
  if (minTokens > maxTokens) {
    throw new ApiError(
      'invalid_request',
      `min_tokens (${minTokens}) is more than max_tokens allows here (${maxTokens})`,
      'min_tokens',
    );
  }

  return {
    n,
    params: {
      maxTokens,
      temperature: pick('temperature'),
      topP: pick('top_p'),
      topK: pick('top_k'),
      minP: pick('min_p'),
      repetitionPenalty: pick('repetition_penalty'),
      presencePenalty: pick('presence_penalty'),
      frequencyPenalty: pick('frequency_penalty'),
      logitBias,
      seed: req.seed ?? undefined,
      stop,
      ignoreEos: req.ignore_eos ?? false,
      minTokens,
      logprobs: false,
      topLogprobs: 0,
    },
  };
}
