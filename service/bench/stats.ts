/**
 * One load level's figures from its timed requests, as vLLM's `benchmark_serving` defines them (pure functions,
 * tested on recorded timings):
 * - TTFT: first content chunk; TPOT: (E2EL − TTFT) / (output tokens − 1), for requests with more than one output
 *   token; ITL: gaps between successive content chunks, all requests' pooled; E2EL: the whole request.
 * - Each as mean, median, std (population, as numpy's np.std), p90 and p99 (linear interpolation, as
 *   np.percentile), in milliseconds, over the successful requests only.
 * - Throughput over the level's duration (first send to last response): completed requests, output tokens, all
 *   tokens per second; goodput: requests meeting every SLO per second.
 */
import { mean, median, quantile } from 'd3-array';
import type { RequestResult } from './client.js';
import { meetsSlo, type Slo } from './slo.js';

export interface Distribution {
  mean: number;
  median: number;
  std: number;
  p90: number;
  p99: number;
}

export interface LevelResult {
  /** The load: clients (closed loop) or requests per second (open loop; null = all at once). */
  load: { concurrency: number } | { rate: number | null; maxConcurrency: number | null; burstiness: number };
  /** Requests sent in the measured part of the level. */
  requests: number;
  completed: number;
  failed: number;
  /** Requests that got an HTTP response of any status: 0 means the endpoint was unreachable. */
  responded: number;
  /** Failed requests by HTTP status (`connection` where no response came, `stream` for a 200 that broke). */
  failuresByStatus: Record<string, number>;
  /** Failure reasons and how often each occurred, most frequent first. */
  errors: { error: string; count: number }[];
  /** Seconds from the level's first send to its last response. */
  durationSeconds: number;
  /** Most requests in flight at once. */
  maxInFlight: number;
  /** Sends repeated because the server closed a connection before answering (client.ts streamCompletion). */
  resent: number;
  totalInputTokens: number;
  totalOutputTokens: number;
  requestThroughput: number;
  outputThroughput: number;
  totalTokenThroughput: number;
  /** Good requests per second; null without an SLO. */
  goodput: number | null;
  /** Share of completed requests (of all sent) that met every SLO; null without an SLO. */
  sloAttainment: number | null;
  /** Milliseconds; null when no successful request gave the figure. */
  ttftMs: Distribution | null;
  tpotMs: Distribution | null;
  itlMs: Distribution | null;
  e2elMs: Distribution | null;
}

/** numpy's default percentile (linear between closest ranks), p in [0, 100]; null for none. */
export function percentile(values: readonly number[], p: number): number | null {
  return values.length === 0 ? null : quantile(values, p / 100)!;
}

export function distribution(values: readonly number[]): Distribution | null {
  if (values.length === 0) return null;
  const m = mean(values)!;
  // Population standard deviation (ddof = 0) like np.std; d3's deviation divides by n − 1.
  const std = Math.sqrt(values.reduce((sum, v) => sum + (v - m) ** 2, 0) / values.length);
  return {
    mean: m,
    median: median(values)!,
    std,
    p90: percentile(values, 90)!,
    p99: percentile(values, 99)!,
  };
}

/** TPOT of one request in ms, or undefined for one that produced at most one token. */
export function tpotMs(r: RequestResult): number | undefined {
  if (r.ttft === undefined || r.outputTokens <= 1) return undefined;
  return ((r.e2e - r.ttft) / (r.outputTokens - 1)) * 1000;
}

export function summarise(
  load: LevelResult['load'],
  results: readonly RequestResult[],
  durationSeconds: number,
  options: { slo?: Slo | undefined; maxInFlight: number },
): LevelResult {
  const ok = results.filter((r) => r.ok);
  const ms = (s: number) => s * 1000;
  const totalOutputTokens = ok.reduce((sum, r) => sum + r.outputTokens, 0);
  const totalInputTokens = ok.reduce((sum, r) => sum + (r.promptTokens ?? 0), 0);
  const perSecond = (n: number) => (durationSeconds > 0 ? n / durationSeconds : 0);
  const byStatus: Record<string, number> = {};
  const counts = new Map<string, number>();
  for (const r of results) {
    if (r.ok) continue;
    const key = r.status === undefined ? 'connection' : r.status === 200 ? 'stream' : String(r.status);
    byStatus[key] = (byStatus[key] ?? 0) + 1;
    counts.set(r.error ?? 'unknown', (counts.get(r.error ?? 'unknown') ?? 0) + 1);
  }
  const hasSlo = options.slo !== undefined && Object.keys(options.slo).length > 0;
  const good = hasSlo
    ? ok.filter((r) =>
        meetsSlo(options.slo!, {
          ttftMs: r.ttft === undefined ? undefined : ms(r.ttft),
          tpotMs: tpotMs(r),
          e2elMs: ms(r.e2e),
        }),
      ).length
    : 0;
  return {
    load,
    requests: results.length,
    completed: ok.length,
    failed: results.length - ok.length,
    responded: results.filter((r) => r.status !== undefined).length,
    failuresByStatus: byStatus,
    errors: [...counts].map(([error, count]) => ({ error, count })).sort((a, b) => b.count - a.count),
    durationSeconds,
    maxInFlight: options.maxInFlight,
    resent: results.reduce((sum, r) => sum + (r.resent ?? 0), 0),
    totalInputTokens,
    totalOutputTokens,
    requestThroughput: perSecond(ok.length),
    outputThroughput: perSecond(totalOutputTokens),
    totalTokenThroughput: perSecond(totalInputTokens + totalOutputTokens),
    goodput: hasSlo ? perSecond(good) : null,
    sloAttainment: hasSlo ? (results.length === 0 ? 0 : good / results.length) : null,
    ttftMs: distribution(ok.flatMap((r) => (r.ttft === undefined ? [] : [ms(r.ttft)]))),
    tpotMs: distribution(ok.flatMap((r) => tpotMs(r) ?? [])),
    itlMs: distribution(ok.flatMap((r) => r.itl.map(ms))),
    e2elMs: distribution(ok.map((r) => ms(r.e2e))),
  };
}

/** `c=4`, `rate=8/s (max 16)`, `rate=inf`: how tables and charts name a level. */
export function loadLabel(load: LevelResult['load']): string {
  if ('concurrency' in load) return `c=${load.concurrency}`;
  const rate = load.rate === null ? 'inf' : `${load.rate}/s`;
  return `rate=${rate}${load.maxConcurrency === null ? '' : ` (max ${load.maxConcurrency})`}`;
}

/** The number a chart puts on its x axis for a level. */
export function loadValue(load: LevelResult['load']): number {
  return 'concurrency' in load ? load.concurrency : (load.rate ?? Number.NaN);
}
