import type { FinishEvent, GenerationEvent, TokenEvent } from '../../service/engine/types.js';

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
