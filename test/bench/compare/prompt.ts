/**
 * The one prompt every system gets: a fixed chat turn rendered by the model's chat template (SmolLM2's inserts
 * its default system prompt) and encoded by our tokenizer, as the engine's encodeChat does. In-process runners
 * and llama-server's /completion take the ids; the servers' /v1/completions take the text, which the report
 * checks encodes to the same ids (usage.prompt_tokens).
 */
import { ChatTemplate } from '../../../service/engine/chat-template.js';
import { eosTokenIds, loadModelFiles } from '../../../service/engine/model-files.js';
import { TextTokenizer } from '../../../service/engine/tokenizer.js';

export const MESSAGES = [
  {
    role: 'user' as const,
    content: 'Write a short story about a lighthouse keeper who finds a message in a bottle.',
  },
];

export interface ComparePrompt {
  messages: typeof MESSAGES;
  /** The chat template's rendering, as a completions endpoint would get it. */
  text: string;
  ids: number[];
  /** The text encoded as a raw prompt (with BOS, where the tokenizer adds one): what /v1/completions sees. */
  textIds: number[];
  eosTokenIds: number[];
  /** Our tokenizer's decoding of generated ids, for the report. */
  decode(ids: number[]): string;
}

export async function comparePrompt(modelDir: string): Promise<ComparePrompt> {
  const files = await loadModelFiles(modelDir);
  const tokenizer = new TextTokenizer(files.tokenizerJson, files.tokenizerConfig);
  const text = new ChatTemplate(files.tokenizerConfig).render(MESSAGES, true);
  return {
    messages: MESSAGES,
    text,
    ids: tokenizer.encode(text, false),
    textIds: tokenizer.encode(text, true),
    eosTokenIds: eosTokenIds(files),
    decode: (ids) => tokenizer.decode(ids, false),
  };
}
