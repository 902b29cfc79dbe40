import { describe, expect, it } from 'vitest';
import { Rng } from '../../../service/engine/rng.js';
import { adjustLogits, argmax, chooseToken } from '../../../service/engine/sampler.js';
import type { SamplingParams } from '../../../service/engine/types.js';
import { params } from '../../helpers/model.js';

// Temperature 1 with every filter off: the plain model distribution, which each test then changes.
const base: SamplingParams = params({ temperature: 1 });

/** Logits whose softmax is exactly `probs`. */
const logitsOf = (probs: number[]) => Float32Array.from(probs, Math.log);
const PROBS = [0.4, 0.3, 0.15, 0.1, 0.05];
const DRAWS = 20_000;

/** Frequency of each token over many draws (fresh logits every draw, since adjustments work in place). */
function frequencies(
  params: Partial<SamplingParams>,
  probs = PROBS,
  history = { seen: new Set<number>(), generatedCounts: new Map<number, number>() },
): number[] {
  const p = { ...base, ...params };
  const rng = new Rng(1234);
  const counts = new Array(probs.length).fill(0);
  for (let i = 0; i < DRAWS; i++) {
    const logits = logitsOf(probs);
    adjustLogits(logits, p, history);
    counts[chooseToken(logits, p, rng)]++;
  }
  return counts.map((c) => c / DRAWS);
}

describe('sampling', () => {
  it('at temperature 1 with no filters, draws follow the model distribution', () => {
    for (const [i, f] of frequencies({}).entries()) expect(f).toBeCloseTo(PROBS[i]!, 1.5);
  });

  it('temperature 0 is greedy', () => {
    expect(frequencies({ temperature: 0 })).toEqual([1, 0, 0, 0, 0]);
  });

  it('low temperature sharpens and high temperature flattens the distribution', () => {
    const cold = frequencies({ temperature: 0.3 });
    const hot = frequencies({ temperature: 3 });
    expect(cold[0]).toBeGreaterThan(0.65);
    expect(hot[0]).toBeLessThan(0.3);
    expect(hot[4]).toBeGreaterThan(0.12);
  });

  it('top_k keeps only the k most likely tokens, renormalised', () => {
    const f = frequencies({ topK: 2 });
    expect(f.slice(2)).toEqual([0, 0, 0]);
    expect(f[0]).toBeCloseTo(0.4 / 0.7, 1.5);
  });

  it('top_p keeps the smallest set reaching the mass', () => {
    const f = frequencies({ topP: 0.8 });
    // 0.4 + 0.3 = 0.7 < 0.8, so the 0.15 token is needed too; the rest never appear.
    expect(f[2]).toBeGreaterThan(0.1);
    expect(f.slice(3)).toEqual([0, 0]);
  });

  it('min_p drops tokens below a fraction of the top probability', () => {
    const f = frequencies({ minP: 0.5 });
    // Threshold 0.2: only 0.4 and 0.3 survive.
    expect(f.slice(2)).toEqual([0, 0, 0]);
    expect(f[1]).toBeCloseTo(0.3 / 0.7, 1.5);
  });

  it('logit_bias of -100 bans a token and +100 forces one', () => {
    expect(frequencies({ logitBias: { 0: -100 } })[0]).toBe(0);
    expect(frequencies({ logitBias: { 3: 100 } })[3]).toBe(1);
  });

  it('repetition_penalty makes seen tokens less likely, both positive and negative logits', () => {
    const seen = { seen: new Set([0]), generatedCounts: new Map<number, number>() };
    const positive = Float32Array.from([2, 1, 0.5]);
    adjustLogits(positive, { ...base, repetitionPenalty: 2 }, seen);
    expect(positive[0]).toBe(1);
    const negative = Float32Array.from([-1, 0, 0]);
    adjustLogits(negative, { ...base, repetitionPenalty: 2 }, seen);
    expect(negative[0]).toBe(-2);
    // ln 0.6 × 3 ≈ ln 0.21: the seen token drops from 60% to about a third.
    expect(frequencies({ repetitionPenalty: 3 }, [0.6, 0.2, 0.2], seen)[0]).toBeLessThan(0.4);
  });

  it('presence and frequency penalties follow OpenAI’s formula', () => {
    const history = { seen: new Set([1]), generatedCounts: new Map([[1, 3]]) };
    const logits = Float32Array.from([0, 5, 0]);
    adjustLogits(logits, { ...base, presencePenalty: 0.5, frequencyPenalty: 1 }, history);
    expect([...logits]).toEqual([0, 5 - 3 - 0.5, 0]);
    expect(frequencies({ presencePenalty: 1 }, PROBS, history)[1]).toBeLessThan(0.2);
    expect(frequencies({ frequencyPenalty: 0.2 }, PROBS, history)[1]).toBeLessThan(0.2);
  });

  it('the same seed gives the same draws and another seed other draws', () => {
    const draw = (seed: number) => {
      const rng = new Rng(seed);
      return Array.from({ length: 50 }, () => chooseToken(logitsOf(PROBS), base, rng));
    };
    expect(draw(7)).toEqual(draw(7));
    expect(draw(7)).not.toEqual(draw(8));
  });

  it('argmax takes the first of equal maxima', () => {
    expect(argmax(Float32Array.from([1, 3, 3, 2]))).toBe(1);
  });
});
