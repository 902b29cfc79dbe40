/**
 * Per-request service-level objectives, as vLLM's `--goodput` takes them: a request is good when its TTFT, TPOT
 * and E2EL are each at most the target given (a metric without a target does not count). Goodput is good
 * requests per second; a level "misses" when the share of good requests is below the attainment asked for.
 */
import { UsageError } from '../security/auth/commands.js';

export const SLO_METRICS = ['ttft', 'tpot', 'e2el'] as const;
export type SloMetric = (typeof SLO_METRICS)[number];
/** Targets in milliseconds. */
export type Slo = Partial<Record<SloMetric, number>>;

/** `ttft=500ms,tpot=50ms` (repeatable; `:` accepted for `=` as vLLM writes it; units ms or s). */
export function parseSlo(values: readonly string[]): Slo {
  const slo: Slo = {};
  for (const part of values.flatMap((v) => v.split(','))) {
    const match = /^\s*([a-z][a-z0-9]*)\s*[=:]\s*(\d+(?:\.\d+)?)(ms|s)\s*$/.exec(part);
    if (!match) {
      throw new UsageError(`--slo takes METRIC=VALUE with a unit, like ttft=500ms or e2el=5s; got "${part}"`);
    }
    const metric = match[1] as SloMetric;
    if (!SLO_METRICS.includes(metric)) {
      throw new UsageError(`--slo: unknown metric "${match[1]}" (one of ${SLO_METRICS.join(', ')})`);
    }
    const ms = Number(match[2]) * (match[3] === 's' ? 1000 : 1);
    if (!(ms > 0)) throw new UsageError(`--slo: ${metric} must be more than 0, got "${part}"`);
    slo[metric] = ms;
  }
  return slo;
}

/** The per-request figures an SLO judges, in milliseconds (tpot undefined for a single-token output). */
export interface RequestLatencies {
  ttftMs?: number | undefined;
  tpotMs?: number | undefined;
  e2elMs: number;
}

export function meetsSlo(slo: Slo, r: RequestLatencies): boolean {
  if (slo.ttft !== undefined && !(r.ttftMs !== undefined && r.ttftMs <= slo.ttft)) return false;
  // vLLM counts a request without a TPOT (one output token) as meeting the TPOT target.
  if (slo.tpot !== undefined && r.tpotMs !== undefined && r.tpotMs > slo.tpot) return false;
  if (slo.e2el !== undefined && r.e2elMs > slo.e2el) return false;
  return true;
}

export function describeSlo(slo: Slo): string {
  return SLO_METRICS.filter((m) => slo[m] !== undefined)
    .map((m) => `${m} ≤ ${slo[m]} ms`)
    .join(', ');
}
