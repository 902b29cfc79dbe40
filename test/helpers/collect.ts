import type { Engine } from '../../service/engine/index.js';
import type { FinishEvent, GenerationEvent, TokenEvent } from '../../service/engine/types.js';
import { params } from './model.js';

export interface Collected {
  tokens: number[];
  text: string;
  tokenEvents: TokenEvent[];
  finish: FinishEvent | undefined;
  error: string | undefined;
}

/** Drains a generation stream; `onToken` may act mid-stream (abort, submit another request…). */
export async function collect(
  stream: AsyncIterable<GenerationEvent>,
  onToken?: (count: number) => void,
): Promise<Collected> {
  const out: Collected = { tokens: [], text: '', tokenEvents: [], finish: undefined, error: undefined };
  for await (const event of stream) {
    if (event.type === 'token') {
      out.tokens.push(event.tokenId);
      out.tokenEvents.push(event);
      out.text += event.text;
      onToken?.(out.tokens.length);
    } else if (event.type === 'finish') {
      out.finish = event;
      out.text += event.text;
    } else {
      out.error = event.message;
    }
  }
  return out;
}

/**
 * Submits each prompt once the one before has 3 tokens, each stopping after its own `maxTokens(i)` (EOS
 * ignored), so rows join and leave a running batch at many different steps; resolves with every stream drained.
 */
export async function staggered(
  engine: Pick<Engine, 'submit'>,
  prompts: readonly number[][],
  maxTokens: (i: number) => number,
): Promise<Collected[]> {
  const outs: Promise<Collected>[] = [];
  for (const [i, promptIds] of prompts.entries()) {
    let third!: () => void;
    const started = new Promise<void>((resolve) => (third = resolve));
    const stream = engine.submit({ promptIds, params: params({ maxTokens: maxTokens(i), ignoreEos: true }) });
    outs.push(collect(stream, (n) => n === 3 && third()).finally(third));
    await started;
  }
  return Promise.all(outs);
}
