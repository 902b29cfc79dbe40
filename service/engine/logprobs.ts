/**
 * Log-probabilities of the model's own distribution at a position (before penalties, bias and sampling filters,
 * like vLLM's default), for OpenAI's logprobs / top_logprobs.
 */
export function logSumExp(logits: Float32Array): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let s = 0;
  for (let i = 0; i < logits.length; i++) s += Math.exp(logits[i]! - max);
  return max + Math.log(s);
}

/** The k most likely token ids with their log-probabilities, most likely first. */
export function topLogprobs(
  logits: Float32Array,
  k: number,
  lse: number,
): { tokenId: number; logprob: number }[] {
  const best: { tokenId: number; logprob: number }[] = [];
  if (k <= 0) return best;
  for (let i = 0; i < logits.length; i++) {
    const l = logits[i]!;
    if (best.length === k && l <= best[k - 1]!.logprob) continue;
    let j = best.findIndex((b) => l > b.logprob);
    if (j === -1) j = best.length;
    best.splice(j, 0, { tokenId: i, logprob: l });
    if (best.length > k) best.pop();
  }
  return best.map((b) => ({ tokenId: b.tokenId, logprob: b.logprob - lse }));
}
