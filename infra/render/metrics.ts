/**
 * Metric names the monitoring config refers to, in one place. The service's are those of docs/observability.md's
 * metrics table (a test keeps the two in step); the benchmark and certificate series are written by this
 * program's own jobs into node-exporter's textfile collector.
 */

/** Exposed by the service on GET /metrics (service/observability/metrics.ts). */
import { BENCH_METRICS } from '../../service/bench/metrics-names.js';

export const SERVICE_METRICS = {
  httpRequests: 'chatmirror_http_requests_total',
  httpDuration: 'chatmirror_http_request_duration_seconds',
  timeToFirstToken: 'chatmirror_time_to_first_token_seconds',
  interTokenLatency: 'chatmirror_inter_token_latency_seconds',
  e2eLatency: 'chatmirror_e2e_request_latency_seconds',
  queueTime: 'chatmirror_queue_time_seconds',
  promptTokens: 'chatmirror_prompt_tokens_total',
  generationTokens: 'chatmirror_generation_tokens_total',
  requestsRunning: 'chatmirror_requests_running',
  requestsWaiting: 'chatmirror_requests_waiting',
  batchSize: 'chatmirror_batch_size',
  requestSuccess: 'chatmirror_request_success_total',
  requestFailure: 'chatmirror_request_failure_total',
  authFailures: 'chatmirror_auth_failures_total',
  rateLimited: 'chatmirror_rate_limited_total',
  contentFiltered: 'chatmirror_content_filtered_total',
} as const;

/** Written to the textfile collector by the benchmark timer: `chatmirror bench --textfile` defines them. */
export { BENCH_METRICS };

/** Written to the textfile collector at deploy time from the certificate the program installed. */
export const TLS_METRICS = {
  notAfter: 'chatmirror_tls_certificate_not_after_seconds',
} as const;

/** node-exporter and Prometheus series the dashboard and alerts use. */
export const NODE_METRICS = {
  cpuSeconds: 'node_cpu_seconds_total',
  memAvailable: 'node_memory_MemAvailable_bytes',
  memTotal: 'node_memory_MemTotal_bytes',
  fsAvail: 'node_filesystem_avail_bytes',
  fsSize: 'node_filesystem_size_bytes',
} as const;

export const PROMETHEUS_METRICS = { up: 'up' } as const;

/** Histograms expose `<name>_bucket`, `_sum` and `_count`; counters and gauges their own name. */
export function knownSeries(): Set<string> {
  const histograms = [
    SERVICE_METRICS.httpDuration,
    SERVICE_METRICS.timeToFirstToken,
    SERVICE_METRICS.interTokenLatency,
    SERVICE_METRICS.e2eLatency,
    SERVICE_METRICS.queueTime,
    SERVICE_METRICS.batchSize,
  ];
  const names = new Set<string>([
    ...Object.values(SERVICE_METRICS),
    ...Object.values(BENCH_METRICS),
    ...Object.values(TLS_METRICS),
    ...Object.values(NODE_METRICS),
    ...Object.values(PROMETHEUS_METRICS),
  ]);
  for (const h of histograms) for (const suffix of ['_bucket', '_sum', '_count']) names.add(h + suffix);
  return names;
}

/**
 * Metric names a PromQL expression mentions: identifiers not followed by `(` (functions), not inside `{…}`
 * (label matchers), not after `by`/`without`/`on`/`ignoring` lists and not keywords or durations.
 */
export function metricNamesIn(expr: string): string[] {
  const withoutLabels = expr
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  const keywords = new Set([
    'by',
    'without',
    'on',
    'ignoring',
    'offset',
    'bool',
    'and',
    'or',
    'unless',
    'le',
    'inf',
    'nan',
  ]);
  const names: string[] = [];
  for (const match of withoutLabels.matchAll(/([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g)) {
    const [, name = '', call] = match;
    const before = withoutLabels.slice(0, match.index);
    if (call !== undefined || keywords.has(name.toLowerCase())) continue;
    if (/\[\s*\d*$/.test(before) || /\d$/.test(before)) continue; // a duration like [5m] or 1e-9
    if (/["']$/.test(before)) continue;
    names.push(name);
  }
  return names;
}
