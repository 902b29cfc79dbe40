import { ApiError } from '../errors.js';
import { sanityCheck } from '../security/content-filter.js';
import { engineErrorToApi } from './choices.js';
import type { RouteContext } from './context.js';

/**
 * Normalizers can shrink text before it is split (NFC composes two code units into one, some strip accents), so
 * the character bound leaves this factor of room: it must never refuse a prompt that would fit.
 */
const NORMALIZATION_MARGIN = 2;

/**
 * Refuses, from its length alone, a prompt that cannot fit the model's context (or limits.maxPromptTokens):
 * O(length) and done before any templating, deny-list scan or tokenizing, which for a megabyte of text would
 * hold the event loop for seconds. Prompts that pass are checked exactly once tokenized.
 */
export function checkPromptChars(ctx: RouteContext, chars: number, param: string): void {
  const tokens = Math.min(
    ctx.engine.info.contextLength,
    ctx.caps.maxPromptTokens ?? Number.POSITIVE_INFINITY,
  );
  const most = tokens * ctx.engine.tokenizer.maxTokenChars * NORMALIZATION_MARGIN;
  if (chars > most) {
    throw new ApiError(
      'context_length_exceeded',
      `The prompt has ${chars} characters; no prompt over ${most} characters fits this model's ${tokens}-token ` +
        'context.',
      param,
    );
  }
}

/**
 * Every piece of client text that reaches the model passes here first: control characters are refused (a
 * client mistake, named by parameter), then the prompt deny-list. A deny-list refusal does not say which entry
 * matched, so the list cannot be probed entry by entry.
 */
export function checkPromptText(ctx: RouteContext, texts: { param: string; text: string }[]): void {
  for (const { param, text } of texts) {
    const problem = sanityCheck(text);
    if (problem !== undefined) throw new ApiError('invalid_request', `${param} ${problem}`, param);
  }
  for (const { param, text } of texts) {
    if (ctx.filters.prompt.matchPrompt(text) !== undefined) {
      ctx.metrics?.contentFiltered.inc({ stage: 'prompt' });
      throw new ApiError('content_filter', 'The prompt was refused by this server’s content policy.', param);
    }
  }
}

/**
 * Awaits templating/tokenizing work done in the engine's tokenizer pool (off the event loop), with the pool's
 * refusals in the API's terms: a full pool is 429 server_overloaded with Retry-After, a closing engine 503.
 */
export async function inTokenizerPool<T>(ctx: RouteContext, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    throw engineErrorToApi(err, ctx.caps.retryAfterSeconds);
  }
}
