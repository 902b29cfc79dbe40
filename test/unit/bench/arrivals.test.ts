/**
 * The open loop's arrival process, seeded (no clock involved): gamma gaps of shape K and mean 1/rate, so a
 * Poisson process at K = 1 (exponential gaps: CV 1, counts per window with variance = mean) and CV 1/√K otherwise.
 * Tolerances are for 20,000 draws: the standard error of the mean gap is CV/√n ≈ 0.7%, so 3% is > 4σ.
 */
import { deviation, mean } from 'd3-array';
import { describe, expect, it } from 'vitest';
import { arrivalTimes } from '../../../service/bench/arrivals.js';

const N = 20_000;

function gaps(times: number[]): number[] {
  return times.slice(1).map((t, i) => t - times[i]!);
}

describe('arrivalTimes', () => {
  it('repeats for a seed and differs between seeds', () => {
    expect(arrivalTimes(50, 4, 1, 7)).toEqual(arrivalTimes(50, 4, 1, 7));
    expect(arrivalTimes(50, 4, 1, 8)).not.toEqual(arrivalTimes(50, 4, 1, 7));
    expect(arrivalTimes(3, 4, 1, 7)[0]).toBe(0);
  });

  it('sends everything at once for an infinite rate', () => {
    expect(arrivalTimes(5, Number.POSITIVE_INFINITY, 1, 0)).toEqual([0, 0, 0, 0, 0]);
  });

  it.each([
    [4, 1],
    [0.5, 1],
    [10, 4],
    [10, 0.25],
  ])('rate %d/s, burstiness %d: mean gap 1/rate and CV 1/√K', (rate, k) => {
    const g = gaps(arrivalTimes(N, rate, k, 42));
    const m = mean(g)!;
    expect(Math.abs(m * rate - 1)).toBeLessThan(0.03);
    const cv = deviation(g)! / m;
    expect(Math.abs(cv - 1 / Math.sqrt(k))).toBeLessThan(0.05 / Math.sqrt(k));
    expect(g.every((x) => x >= 0)).toBe(true);
  });

  it('at K = 1 is a Poisson process: arrivals per second have variance ≈ mean ≈ rate', () => {
    const rate = 5;
    const times = arrivalTimes(N, rate, 1, 3);
    const seconds = Math.floor(times.at(-1)!);
    const counts = new Array<number>(seconds).fill(0);
    for (const t of times) if (t < seconds) counts[Math.floor(t)]! += 1;
    const m = mean(counts)!;
    const variance = deviation(counts)! ** 2;
    expect(Math.abs(m / rate - 1)).toBeLessThan(0.03);
    // Index of dispersion: 1 for Poisson; its standard error over ~4,000 windows is about √(2/4000) ≈ 0.022.
    expect(Math.abs(variance / m - 1)).toBeLessThan(0.1);
  });
});
