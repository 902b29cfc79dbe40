import type { TextTokenizer } from './tokenizer.js';

/** Tokens of prompt context kept so tokenizers that drop a leading space at the start of a decode stay correct. */
const CONTEXT_TOKENS = 5;

/**
 * Turns a growing token list into text deltas, never splitting a UTF-8 character: a delta is released only
 * when decoding no longer ends in U+FFFD, the tokenizer's mark for an incomplete byte sequence. The window
 * approach (decode a few tokens before the unread ones, emit the difference) is the one vLLM and TGI use, so
 * decoders whose output depends on the previous token (SentencePiece spaces, byte fallback) come out right.
 */
export class IncrementalDetokenizer {
  private readonly ids: number[];
  private prefixOffset: number;
  private readOffset: number;

  constructor(
    private readonly tokenizer: TextTokenizer,
    promptIds: readonly number[],
  ) {
    this.ids = promptIds.slice(-CONTEXT_TOKENS);
    this.prefixOffset = 0;
    this.readOffset = this.ids.length;
  }

  /** Adds one token and returns the text it completes ('' while a character is still incomplete). */
  push(id: number): string {
    this.ids.push(id);
    const prefix = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const full = this.tokenizer.decode(this.ids.slice(this.prefixOffset));
    if (full.length > prefix.length && !full.endsWith('\uFFFD')) {
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      return full.slice(prefix.length);
    }
    return '';
  }

  /**
   * Whatever is still unread at the end of generation. A character the model never completed (generation
   * stopped between its bytes) is dropped rather than sent as U+FFFD: `push` held it back for exactly that
   * reason, and a replacement character is not text the model produced. Its tokens still count as generated.
   */
  flush(): string {
    if (this.readOffset === this.ids.length) return '';
    const prefix = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const full = this.tokenizer.decode(this.ids.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset = this.ids.length;
    const rest = full.startsWith(prefix) ? full.slice(prefix.length) : full;
    return rest.replace(/\uFFFD+$/, '');
  }
}
