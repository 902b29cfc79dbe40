import { Tokenizer } from '@huggingface/tokenizers';

/** GPT-2's byte ↔ printable-character table, which every byte-level BPE vocabulary is written in. */
function byteLevelDecoderTable(): Map<string, number> {
  const bytes: number[] = [];
  for (let b = 33; b <= 126; b++) bytes.push(b);
  for (let b = 161; b <= 172; b++) bytes.push(b);
  for (let b = 174; b <= 255; b++) bytes.push(b);
  const chars = bytes.map((b) => String.fromCharCode(b));
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) {
      bytes.push(b);
      chars.push(String.fromCharCode(256 + extra++));
    }
  }
  return new Map(chars.map((c, i) => [c, bytes[i]!]));
}

const BYTE_FALLBACK = /^<0x([0-9A-Fa-f]{2})>$/;

/** The model's own tokenizer (tokenizer.json), plus the per-token byte view OpenAI's logprobs report. */
export class TextTokenizer {
  private readonly tokenizer: Tokenizer;
  private readonly byteLevel: Map<string, number> | undefined;
  private readonly specialIds: Set<number>;
  readonly vocabSize: number;
  /**
   * The most UTF-16 code units one token can stand for: the longest vocabulary entry (added tokens included).
   * A byte-level entry has one character per byte, never fewer than the text it decodes to; a SentencePiece
   * entry is its text. So n tokens never spell more than n × maxTokenChars characters of input.
   */
  readonly maxTokenChars: number;

  constructor(tokenizerJson: object, tokenizerConfig: Record<string, unknown>) {
    this.tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    const json = tokenizerJson as {
      decoder?: { type?: string };
      added_tokens?: { id: number; special?: boolean }[];
    };
    this.byteLevel = json.decoder?.type === 'ByteLevel' ? byteLevelDecoderTable() : undefined;
    this.specialIds = new Set((json.added_tokens ?? []).filter((t) => t.special).map((t) => t.id));
    const vocab = this.tokenizer.get_vocab(true);
    this.vocabSize = vocab.size;
    let longest = 1;
    for (const piece of vocab.keys()) longest = Math.max(longest, piece.length);
    this.maxTokenChars = longest;
  }

  /**
   * `addSpecialTokens` follows Transformers: true for raw prompts (adds BOS where the tokenizer has one), false
   * for text that a chat template already framed with its own special tokens.
   */
  encode(text: string, addSpecialTokens: boolean): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  decode(ids: number[], skipSpecialTokens = true): string {
    // The library refuses an empty list; the detokenizer's window is often empty.
    if (ids.length === 0) return '';
    return this.tokenizer.decode(ids, { skip_special_tokens: skipSpecialTokens });
  }

  tokenId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** The token as text, and the exact bytes it stands for (a token may be half of a UTF-8 character). */
  tokenText(id: number): { token: string; bytes: number[] } {
    const piece = this.tokenizer.id_to_token(id) ?? '';
    let bytes: number[];
    const fallback = BYTE_FALLBACK.exec(piece);
    if (this.specialIds.has(id)) {
      bytes = [...Buffer.from(piece, 'utf8')];
    } else if (this.byteLevel) {
      const table = this.byteLevel;
      bytes = [...piece].map((c) => table.get(c) ?? 0);
    } else if (fallback) {
      bytes = [Number.parseInt(fallback[1]!, 16)];
    } else {
      bytes = [...Buffer.from(this.decode([id], false), 'utf8')];
    }
    return { token: this.specialIds.has(id) ? piece : Buffer.from(bytes).toString('utf8'), bytes };
  }
}
