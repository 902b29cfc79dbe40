import type { TokenLogprob } from '../engine/types.js';
import type { GenerationObserver } from '../observability/generation-observer.js';
import { type CompiledFilter, OutputFilter } from '../security/content-filter.js';
import type { Choices } from './choices.js';

/** OpenAI's finish reasons, plus null for a choice that ended because the client went away. */
export type ChoiceFinishReason = 'stop' | 'length' | 'content_filter' | null;

export type ChoiceUpdate =
  /**
   * Text safe to send (never part of a deny-list match) and the logprobs of the tokens it completes, each with
   * the offset of its text in the choice's output (the legacy completions API reports it).
   */
  | { type: 'delta'; index: number; text: string; logprobs: { logprob: TokenLogprob; offset: number }[] }
  | { type: 'finish'; index: number; reason: ChoiceFinishReason }
  | { type: 'error'; index: number; message: string };

/** Running totals of one request's generations, read by the handler for usage and logs. */
export interface RunTotals {
  completionTokens: number;
  finishReasons: ChoiceFinishReason[];
}

/**
 * What both completion endpoints do between the engine and their own response format: each choice's text
 * passes the output deny-list (a match stops that choice with finish_reason content_filter and nothing of
 * the match is sent), inference metrics are observed, and usage is counted. The handlers only format.
 */
export async function* runChoices(
  choices: Choices,
  n: number,
  outputFilter: CompiledFilter,
  observer: GenerationObserver | undefined,
  totals: RunTotals,
  onFiltered: () => void,
): AsyncGenerator<ChoiceUpdate> {
  const filters = Array.from({ length: n }, () => new OutputFilter<TokenLogprob | undefined>(outputFilter));
  const filtered = new Set<number>();
  for await (const { index, event } of choices.events) {
    const filter = filters[index]!;
    if (event.type === 'token') {
      observer?.onToken(index);
      if (filtered.has(index)) continue;
      const release = filter.push(event.text, event.logprob);
      yield* delta(index, release);
      if (release.matched !== undefined) {
        filtered.add(index);
        onFiltered();
        choices.cancel(index);
      }
    } else if (event.type === 'finish') {
      totals.completionTokens += event.completionTokens;
      let reason: ChoiceFinishReason = event.finishReason === 'abort' ? null : event.finishReason;
      if (!filtered.has(index)) {
        yield* delta(index, filter.push(event.text));
        const rest = filter.end();
        yield* delta(index, rest);
        if (rest.matched !== undefined) {
          filtered.add(index);
          onFiltered();
        }
      }
      if (filtered.has(index)) reason = 'content_filter';
      totals.finishReasons[index] = reason;
      observer?.onFinish(reason ?? 'abort', event.promptTokens, event.completionTokens, index);
      yield { type: 'finish', index, reason };
    } else {
      observer?.onError(index);
      yield { type: 'error', index, message: event.message };
    }
  }

  function* delta(
    index: number,
    release: { text: string; items: { value: TokenLogprob | undefined; offset: number }[] },
  ): Generator<ChoiceUpdate> {
    const logprobs = release.items.flatMap(({ value, offset }) =>
      value ? [{ logprob: value, offset }] : [],
    );
    if (release.text === '' && logprobs.length === 0) return;
    yield { type: 'delta', index, text: release.text, logprobs };
  }
}
