import { applyLogitBias } from './processors/logit-bias.js';
import { applyPresenceFrequencyPenalty, applyRepetitionPenalty } from './processors/penalties.js';
import { minPCount, topKCount, topPCount } from './processors/truncation.js';
import type { Rng } from './rng.js';
import type { SamplingParams } from './types.js';

/** What the penalties need to know about a sequence so far. */
export interface TokenHistory {
  /** Every distinct token id in prompt and output (repetition_penalty). */
  seen: ReadonlySet<number>;
  /** How often each token was generated (presence and frequency penalties). */
  generatedCounts: ReadonlyMap<number, number>;
}

/** Applies the logit adjustments, in place, in the order Transformers does: bias, repetition, presence/frequency. */
export function adjustLogits(logits: Float32Array, params: SamplingParams, history: TokenHistory): void {
  applyLogitBias(logits, params.logitBias);
  applyRepetitionPenalty(logits, history.seen, params.repetitionPenalty);
  applyPresenceFrequencyPenalty(
    logits,
    history.generatedCounts,
    params.presencePenalty,
    params.frequencyPenalty,
  );
}

/** Index of the largest logit; the first one on ties, as torch.argmax and Transformers.js do. */
export function argmax(logits: Float32Array): number {
  let best = 0;
  let max = logits[0]!;
  for (let i = 1; i < logits.length; i++) {
    if (logits[i]! > max) {
      max = logits[i]!;
      best = i;
    }
  }
  return best;
}

/** Indices of the k largest logits, largest first (ties: lower index first). */
function topIndices(logits: Float32Array, k: number): Int32Array {
  if (k >= logits.length / 8) {
    const all = new Int32Array(logits.length);
    for (let i = 0; i < all.length; i++) all[i] = i;
    all.sort((a, b) => logits[b]! - logits[a]! || a - b);
    return all.subarray(0, k);
  }
  // Insertion into a small sorted window: O(V·k) but k is small here, and no full sort of the vocabulary.
  const idx = new Int32Array(k).fill(-1);
  let filled = 0;
  for (let i = 0; i < logits.length; i++) {
    const l = logits[i]!;
    if (filled === k && l <= logits[idx[k - 1]!]!) continue;
    let j = filled < k ? filled++ : k - 1;
    while (j > 0 && logits[idx[j - 1]!]! < l) {
      idx[j] = idx[j - 1]!;
      j--;
    }
    idx[j] = i;
  }
  return idx;
}

/**
 * Picks the next token from adjusted logits: argmax at temperature 0, otherwise a draw from the tempered
 * distribution after top_k, then top_p, then min_p (Transformers' order), using the sequence's own RNG.
 */
export function chooseToken(logits: Float32Array, params: SamplingParams, rng: Rng): number {
  if (params.temperature === 0) return argmax(logits);
  const invT = 1 / params.temperature;
  const filtered = params.topK > 0 || params.topP < 1 || params.minP > 0;
  const candidates = filtered
    ? topIndices(logits, params.topK > 0 ? Math.min(params.topK, logits.length) : logits.length)
    : undefined;
  const count = candidates ? candidates.length : logits.length;
  const at = candidates ? (i: number) => candidates[i]! : (i: number) => i;

  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < count; i++) max = Math.max(max, logits[at(i)]!);
  const weights = new Float64Array(count);
  let total = 0;
  for (let i = 0; i < count; i++) {
    const w = Math.exp((logits[at(i)]! - max) * invT);
    weights[i] = w;
    total += w;
  }
  let keep = count;
  if (candidates) {
    keep = Math.min(keep, topKCount(weights, params.topK));
    keep = Math.min(keep, topPCount(weights.subarray(0, keep), params.topP, sum(weights, keep)));
    keep = Math.min(keep, minPCount(weights, params.minP));
    total = sum(weights, keep);
  }
  let u = rng.next() * total;
  for (let i = 0; i < keep; i++) {
    u -= weights[i]!;
    if (u < 0) return at(i);
  }
  return at(keep - 1);
}

function sum(values: Float64Array, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += values[i]!;
  return s;
}
