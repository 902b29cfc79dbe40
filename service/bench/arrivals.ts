/**
 * Request arrival times for an open-loop level, as vLLM's `--request-rate` / `--burstiness` draw them: gaps are
 * gamma-distributed with shape K and scale 1 / (rate · K), so their mean is 1 / rate whatever K is and their
 * coefficient of variation is 1 / √K (K = 1: exponential gaps, a Poisson process). Seeded, so a run repeats.
 */
import { randomGamma, randomLcg } from 'd3-random';
import { mix } from './prompts.js';

/** Seconds from the level's start at which each request is sent; all 0 for an infinite rate. */
export function arrivalTimes(count: number, rate: number, burstiness: number, seed: number): number[] {
  const times: number[] = [];
  const gap = gapSampler(rate, burstiness, seed);
  let t = 0;
  for (let i = 0; i < count; i += 1) {
    times.push(t);
    t += gap();
  }
  return times;
}

/** Successive gaps in seconds (for a level bounded by time rather than count). */
export function gapSampler(rate: number, burstiness: number, seed: number): () => number {
  if (rate === Number.POSITIVE_INFINITY) return () => 0;
  // The level's seed is not the prompts' (mix with a different index), so the two streams are independent.
  const gamma = randomGamma.source(randomLcg(mix(seed, -1) / 2 ** 32))(burstiness, 1 / (rate * burstiness));
  return gamma;
}
