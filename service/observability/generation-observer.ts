/**
 * Per-generation inference metrics: one observer per prompt handed to the engine (its `n` choices share it),
 * fed from the generation events the handlers already loop over. Times come from an injectable monotonic
 * clock in milliseconds, so tests drive it with a fake one; histograms receive seconds.
 */
import type { Metrics } from './metrics.js';

export interface GenerationObserverOptions {
  /** The model id the client asked for (a served id or alias, already resolved, so bounded). */
  model: string;
  /** When the prompt was handed to the engine, on `now`'s clock. Default: when the observer is made. */
  queuedAt?: number | undefined;
  /** Engine sequences sharing this prompt (the request's `n`). Default 1. */
  choices?: number | undefined;
  /** Monotonic milliseconds; default `performance.now`. */
  now?: (() => number) | undefined;
}

export interface GenerationObserver {
  /** The engine started the prefill (first call counts; the choices of one prompt start together). */
  onScheduled(): void;
  /** A token event for choice `index`, empty text included: every event is one generated token. */
  onToken(index?: number): void;
  /** Choice `index` finished; finishReason may be the handler's own `content_filter`. */
  onFinish(finishReason: string, promptTokens: number, completionTokens: number, index?: number): void;
  /** Choice `index` ended with an engine error event. */
  onError(index?: number): void;
}

export function observeGeneration(metrics: Metrics, options: GenerationObserverOptions): GenerationObserver {
  const now = options.now ?? (() => performance.now());
  const queuedAt = options.queuedAt ?? now();
  const choices = options.choices ?? 1;
  const labels = { model: options.model };
  const lastToken = new Map<number, number>();
  const done = new Set<number>();
  let scheduled = false;
  let firstToken = false;
  let promptCounted = false;
  let failed = false;

  const seconds = (fromMs: number, toMs: number) => Math.max(0, toMs - fromMs) / 1000;

  /** The last choice to end closes the generation; a failed one is left out of the latency histogram. */
  function settle(index: number): void {
    done.add(index);
    lastToken.delete(index);
    if (done.size === choices && !failed) metrics.e2eRequestLatency.observe(labels, seconds(queuedAt, now()));
  }

  return {
    onScheduled() {
      if (scheduled) return;
      scheduled = true;
      metrics.queueTime.observe(labels, seconds(queuedAt, now()));
    },
    onToken(index = 0) {
      if (done.has(index)) return;
      const t = now();
      if (!firstToken) {
        firstToken = true;
        metrics.timeToFirstToken.observe(labels, seconds(queuedAt, t));
      }
      const previous = lastToken.get(index);
      if (previous !== undefined) metrics.interTokenLatency.observe(labels, seconds(previous, t));
      lastToken.set(index, t);
    },
    onFinish(finishReason, promptTokens, completionTokens, index = 0) {
      if (done.has(index)) return;
      // The choices of one prompt share it: its tokens are prefilled (and counted) once.
      if (!promptCounted) {
        promptCounted = true;
        if (promptTokens > 0) metrics.promptTokens.inc(labels, promptTokens);
      }
      if (completionTokens > 0) metrics.generationTokens.inc(labels, completionTokens);
      metrics.requestSuccess.inc({ ...labels, finish_reason: finishReason });
      settle(index);
    },
    onError(index = 0) {
      if (done.has(index)) return;
      if (!failed) metrics.requestFailures.inc(labels);
      failed = true;
      settle(index);
    },
  };
}
