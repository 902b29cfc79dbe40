/**
 * Candidate filters applied to tokens already sorted by descending probability. Each returns how many leading
 * candidates survive (always at least one), so they compose by taking the minimum in order.
 */

/** top_k: keep the k most likely tokens (k ≤ 0 disables). */
export function topKCount(sortedProbs: ArrayLike<number>, k: number): number {
  return k > 0 ? Math.min(k, sortedProbs.length) : sortedProbs.length;
}

/** top_p: keep the smallest prefix whose probability mass reaches p. */
export function topPCount(sortedProbs: ArrayLike<number>, p: number, total = 1): number {
  if (p >= 1) return sortedProbs.length;
  const target = p * total;
  let cumulative = 0;
  for (let i = 0; i < sortedProbs.length; i++) {
    cumulative += sortedProbs[i]!;
    if (cumulative >= target) return i + 1;
  }
  return sortedProbs.length;
}

/** min_p: keep tokens at least minP × as likely as the most likely one. */
export function minPCount(sortedProbs: ArrayLike<number>, minP: number): number {
  if (minP <= 0 || sortedProbs.length === 0) return sortedProbs.length;
  const threshold = minP * sortedProbs[0]!;
  let n = 1;
  while (n < sortedProbs.length && sortedProbs[n]! >= threshold) n++;
  return n;
}
