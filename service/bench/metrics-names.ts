/**
 * The series `chatmirror bench --textfile` writes for node-exporter's textfile collector. The alert rules and
 * the dashboard (infra/render/metrics.ts) refer to these names; they live here because infra may import the
 * service, never the other way round. Each carries a `concurrency` or `rate` label naming its load level.
 */
export const BENCH_METRICS = {
  outputTokensPerSecond: 'chatmirror_bench_output_tokens_per_second',
  requestsPerSecond: 'chatmirror_bench_requests_per_second',
  ttftP50: 'chatmirror_bench_ttft_p50_seconds',
  tpotP50: 'chatmirror_bench_tpot_p50_seconds',
  e2elP99: 'chatmirror_bench_e2el_p99_seconds',
  failedRequests: 'chatmirror_bench_failed_requests',
  lastSuccess: 'chatmirror_bench_last_success_timestamp_seconds',
} as const;
