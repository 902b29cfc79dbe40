/**
 * Hugging Face's repetition penalty (CTRL paper): every token seen in the prompt or output has its logit divided
 * by the penalty when positive and multiplied when negative, so it always becomes less likely.
 */
export function applyRepetitionPenalty(logits: Float32Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const id of seen) {
    const l = logits[id];
    if (l === undefined) continue;
    logits[id] = l > 0 ? l / penalty : l * penalty;
  }
}

/**
 * OpenAI's presence and frequency penalties over generated tokens only:
 * logit -= frequency × count + presence × (count > 0).
 */
export function applyPresenceFrequencyPenalty(
  logits: Float32Array,
  generatedCounts: ReadonlyMap<number, number>,
  presence: number,
  frequency: number,
): void {
  if (presence === 0 && frequency === 0) return;
  for (const [id, count] of generatedCounts) {
    const l = logits[id];
    if (l === undefined) continue;
    logits[id] = l - frequency * count - presence;
  }
}
