import { EventChannel } from '../engine/event-channel.js';
import { type Engine, EngineError, EngineOverloadedError } from '../engine/index.js';
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
 * Starts `n` generations of one prompt (choice i uses seed + i, so choices differ yet stay reproducible) and
 * merges their events in arrival order. All n are admitted or none: if the engine refuses one, the others
 * are cancelled and the refusal is thrown before any response is written.
 */
export function startChoices(
  engine: Engine,
  promptIds: number[],
  params: SamplingParams,
  n: number,
  signal: AbortSignal,
  retryAfterSeconds: number,
): AsyncIterable<ChoiceEvent> {
  const cancelAll = new AbortController();
  const onAbort = () => cancelAll.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  const streams: AsyncIterable<GenerationEvent>[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const seed = params.seed === undefined ? undefined : params.seed + i;
      streams.push(engine.submit({ promptIds, params: { ...params, seed } }, cancelAll.signal));
    }
  } catch (err) {
    cancelAll.abort();
    signal.removeEventListener('abort', onAbort);
    throw engineErrorToApi(err, retryAfterSeconds);
  }
  const merged = new EventChannel<ChoiceEvent>(() => cancelAll.abort());
  let open = streams.length;
  streams.forEach(async (stream, index) => {
    for await (const event of stream) merged.push({ index, event });
    if (--open === 0) {
      signal.removeEventListener('abort', onAbort);
      merged.end();
    }
  });
  return merged;
}
