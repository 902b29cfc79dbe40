/**
 * The model's vocabulary as xgrammar's TokenizerInfo wants it: every token id's raw piece, in id order, padded
 * to the logits' width, with the vocabulary's encoding named so that xgrammar decodes each piece to the bytes
 * it stands for (byte-level BPE: GPT-2's printable-character table; SentencePiece: `<0x..>` byte fallback).
 */
export interface GrammarVocabulary {
  pieces: string[];
  vocabType: 'byte_level' | 'byte_fallback' | 'raw';
  /** The logits' width (config vocab_size may exceed the tokenizer's; the extra ids are never allowed). */
  vocabSize: number;
}

interface TokenizerJsonShape {
  model?: { vocab?: Record<string, number> | [string, number][] };
  decoder?: { type?: string; decoders?: { type?: string }[] };
  added_tokens?: { id: number; content: string; special?: boolean }[];
}

function vocabType(json: TokenizerJsonShape): GrammarVocabulary['vocabType'] {
  const decoders = [json.decoder?.type, ...(json.decoder?.decoders ?? []).map((d) => d.type)];
  if (decoders.includes('ByteLevel')) return 'byte_level';
  if (decoders.includes('ByteFallback')) return 'byte_fallback';
  return 'raw';
}

export function grammarVocabulary(tokenizerJson: object, vocabSize: number): GrammarVocabulary {
  const json = tokenizerJson as TokenizerJsonShape;
  const pieces = new Array<string>(vocabSize).fill('');
  const vocab = json.model?.vocab ?? {};
  // Unigram (SentencePiece) lists [piece, score] in id order; BPE and WordPiece map piece → id.
  const entries: [string, number][] = Array.isArray(vocab)
    ? vocab.map(([piece], id) => [piece, id])
    : Object.entries(vocab);
  for (const [piece, id] of entries) if (id < vocabSize) pieces[id] = piece;
  for (const t of json.added_tokens ?? []) {
    // A special token is control, not text: an empty piece is how xgrammar marks one, so a grammar never
    // spells "<|im_start|>" inside a JSON string. Stop tokens are given separately and allowed at the end.
    if (t.id < vocabSize) pieces[t.id] = t.special ? '' : t.content;
  }
  return { pieces, vocabType: vocabType(json), vocabSize };
}
