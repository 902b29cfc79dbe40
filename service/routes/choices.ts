import { EventChannel } from '../engine/event-channel.js';
import type { ConstraintSpec } from '../engine/grammar/constraint.js';
import { type Engine, EngineError, EngineOverloadedError, type SubmitHooks } from '../engine/index.js';
import type { GenerationEvent, SamplingParams } from '../engine/types.js';
import { ApiError } from '../errors.js';

export interface ChoiceEvent {
  index: number;
  event: GenerationEvent;
}

/** Engine refusals in the API's terms. */
export function engineErrorToApi(err: unknown, retryAfterSeconds: number): unknown {
  if (err instanceof EngineOverloadedError) {
    return new ApiError(
      'server_overloaded',
      `The server is at capacity (${err.running} generating, ${err.waiting} waiting). Retry after ${retryAfterSeconds}s.`,
      null,
      { 'retry-after': String(retryAfterSeconds) },
    );
  }
  if (err instanceof EngineError) {
    if (err.code === 'engine_closed') return new ApiError('server_shutting_down', err.message);
    if (err.code === 'engine_worker_failed') return new ApiError('model_not_ready', err.message);
    if (err.code === 'invalid_generation_params') return new ApiError('invalid_request', err.message);
  }
  return err;
}

/**
 * Refuses with 400, before any capacity check, a request whose `prompts × n` generations could never run: more
 * than limits.maxN, or more than the engine holds even when idle (engine.maxBatchSize + engine.maxQueue). A
 * 429 there would tell the client to retry something that can never succeed, and count it as overload.
 */
export function checkChoiceCount(engine: Engine, maxN: number, prompts: number, n: number): void {
  if (n > maxN)
    throw new ApiError('invalid_request', `n must be at most ${maxN} (limits.maxN), got ${n}.`, 'n');
  const total = prompts * n;
  if (total > maxN) {
    throw new ApiError(
      'invalid_request',
      `prompts × n must be at most ${maxN} (limits.maxN), got ${prompts} × ${n} = ${total}.`,
      prompts > 1 ? 'prompt' : 'n',
    );
  }
  if (total > engine.capacity) {
    throw new ApiError(
      'invalid_request',
      `This request needs ${total} generations at once; this server holds at most ${engine.capacity} ` +
        '(engine.maxBatchSize + engine.maxQueue).',
      prompts > 1 ? 'prompt' : 'n',
    );
  }
}

/**
 * Refuses at once, before any tokenizing or templating, when the engine could not take `count` more
 * generations: under overload the cheapest answer is the one that does the least work first. startChoices
 * still checks for real (requests race between here and there).
 */
export function refuseWhenFull(engine: Engine, count: number, retryAfterSeconds: number): void {
  if (engine.capacityLeft() < count) {
    const { running, waiting } = engine.stats();
    throw engineErrorToApi(new EngineOverloadedError(running, waiting), retryAfterSeconds);
  }
}

export interface Choices {
  /** Every choice's events, in arrival order. */
  events: AsyncIterable<ChoiceEvent>;
  /** Stops one choice (its output hit a deny-list entry); its stream ends with an abort finish. */
  cancel(index: number): void;
}

/**
 * Starts `n` generations of one prompt (choice i uses seed + i, so choices differ yet stay reproducible) and
 * merges their events in arrival order. All n are admitted or none: if the engine refuses one, the others
 * are cancelled and the refusal is thrown before any response is written. `signal` (the client going away)
 * stops them all; `cancel(i)` stops one.
 */
export function startChoices(
  engine: Engine,
  promptIds: number[],
  params: SamplingParams,
  n: number,
  signal: AbortSignal,
  retryAfterSeconds: number,
  hooks: SubmitHooks = {},
  /** Every choice's output must match it (structured outputs, tool calls). */
  constraint?: ConstraintSpec,
): Choices {
  const controllers = Array.from({ length: n }, () => new AbortController());
  const cancelAll = () => {
    for (const c of controllers) c.abort();
  };
  signal.addEventListener('abort', cancelAll, { once: true });
  const streams: AsyncIterable<GenerationEvent>[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const seed = params.seed === undefined ? undefined : params.seed + i;
      streams.push(
        engine.submit({ promptIds, params: { ...params, seed }, constraint }, controllers[i]!.signal, hooks),
      );
    }
  } catch (err) {
    cancelAll();
    signal.removeEventListener('abort', cancelAll);
    throw engineErrorToApi(err, retryAfterSeconds);
  }
  const merged = new EventChannel<ChoiceEvent>(cancelAll);
  let open = streams.length;
  streams.forEach(async (stream, index) => {
    for await (const event of stream) merged.push({ index, event });
    if (--open === 0) {
      signal.removeEventListener('abort', cancelAll);
      merged.end();
    }
  });
  return { events: merged, cancel: (index) => controllers[index]?.abort() };
}
