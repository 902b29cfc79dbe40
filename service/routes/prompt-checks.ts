import { ApiError } from '../errors.js';
import { sanityCheck } from '../security/content-filter.js';
import type { RouteContext } from './context.js';

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
