/** OpenAI's logit_bias: a value added to the logit of each listed token before sampling. */
export function applyLogitBias(logits: Float32Array, bias: Readonly<Record<number, number>>): void {
  for (const [id, value] of Object.entries(bias)) {
    const i = Number(id);
    if (i >= 0 && i < logits.length) logits[i] = logits[i]! + value;
  }
}
