/** Per-level summaries of the timed requests: pure functions, tested directly. */
import type { RequestResult } from './client.js';

export interface LevelResult {
  concurrency: number;
  requests: number;
  successes: number;
  failures: number;
  /** Requests that got an HTTP response of any status: 0 means the endpoint was unreachable. */
  responded: number;
  /** Seconds from the level's first request to its last response. */
  wallSeconds: number;
  /** completion_tokens of the successful requests. */
  outputTokens: number;
  /** outputTokens / wallSeconds. */
  outputTokensPerSecond: number;
  /** Seconds; null when no successful request produced content. */
  ttftP50: number | null;
  ttftP95: number | null;
  e2eP50: number | null;
  e2eP99: number | null;
  /** Failure reasons and how often each occurred, most frequent first. */
  errors: { error: string; count: number }[];
}

/** Nearest-rank percentile (p in (0, 100]) of unsorted values; null for none. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(Math.max(rank, 1), sorted.length) - 1]!;
}

export function summarise(
  concurrency: number,
  results: readonly RequestResult[],
  wallSeconds: number,
): LevelResult {
  const ok = results.filter((r) => r.ok);
  const outputTokens = ok.reduce((sum, r) => sum + r.outputTokens, 0);
  const ttfts = ok.flatMap((r) => (r.ttft === undefined ? [] : [r.ttft]));
  const e2es = ok.map((r) => r.e2e);
  const counts = new Map<string, number>();
  for (const r of results)
    if (!r.ok) counts.set(r.error ?? 'unknown', (counts.get(r.error ?? 'unknown') ?? 0) + 1);
  return {
    concurrency,
    requests: results.length,
    successes: ok.length,
    failures: results.length - ok.length,
    responded: results.filter((r) => r.status !== undefined).length,
    wallSeconds,
    outputTokens,
    outputTokensPerSecond: wallSeconds > 0 ? outputTokens / wallSeconds : 0,
    ttftP50: percentile(ttfts, 50),
    ttftP95: percentile(ttfts, 95),
    e2eP50: percentile(e2es, 50),
    e2eP99: percentile(e2es, 99),
    errors: [...counts].map(([error, count]) => ({ error, count })).sort((a, b) => b.count - a.count),
  };
}
