import type { MatcherHandle, XGrammarBinding } from './xgrammar.js';

/**
 * A backstop for rows that end without `dispose` (the scheduler drops every row of a failed decode step):
 * the matcher's WebAssembly memory is freed when the row is collected.
 */
const unreleased = new FinalizationRegistry<MatcherHandle>((matcher) => matcher.delete());

/**
 * One sequence's place in its grammar: the tokens allowed next (as a mask on that row's logits) and the tokens
 * accepted so far. The stop tokens (EOS, <|im_end|>) are allowed only where the grammar may end, so a row that
 * samples one has finished its grammar.
 */
export class RowConstraint {
  private disposed = false;

  constructor(
    private readonly binding: XGrammarBinding,
    private readonly matcher: MatcherHandle,
    private readonly vocabSize: number,
  ) {
    unreleased.register(this, matcher, this);
  }

  /** Sets every token the grammar does not allow next to -Infinity, in place (the row's other settings apply after). */
  mask(logits: Float32Array): void {
    const vec = this.matcher.GetNextTokenBitmask(this.vocabSize);
    try {
      // A view into the module's memory: read before the vector is freed.
      const bits = this.binding.vecIntToView(vec);
      const n = Math.min(logits.length, this.vocabSize);
      const words = Math.ceil(n / 32);
      for (let word = 0; word < words; word++) {
        const w = bits[word]!;
        if (w === -1) continue;
        if (w === 0) {
          // A run of all-masked words is one fill: most of a narrow state's vocabulary.
          let end = word + 1;
          while (end < words && bits[end] === 0) end++;
          logits.fill(Number.NEGATIVE_INFINITY, word * 32, Math.min(end * 32, n));
          word = end - 1;
          continue;
        }
        const last = Math.min(32, n - word * 32);
        for (let b = 0; b < last; b++) {
          if (((w >>> b) & 1) === 0) logits[word * 32 + b] = Number.NEGATIVE_INFINITY;
        }
      }
      // Ids past the vocabulary (padded logits) are never text.
      for (let i = n; i < logits.length; i++) logits[i] = Number.NEGATIVE_INFINITY;
    } finally {
      vec.delete();
    }
  }

  /** Advances the grammar by the sampled token; false if the grammar refused it (a bug: it was masked). */
  accept(tokenId: number): boolean {
    return this.matcher.AcceptToken(tokenId, false);
  }

  get terminated(): boolean {
    return this.matcher.IsTerminated();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    unreleased.unregister(this);
    this.matcher.delete();
  }
}
