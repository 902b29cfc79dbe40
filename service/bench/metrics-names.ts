/**
 * The series `chatmirror bench --textfile` writes for node-exporter's textfile collector. The alert rules and
 * the dashboard (infra/render/metrics.ts) refer to these names; they live here because infra may import the
 * service, never the other way round.
 */
export const BENCH_METRICS = {
  outputTokensPerSecond: 'chatmirror_bench_output_tokens_per_second',
  ttftP50: 'chatmirror_bench_ttft_p50_seconds',
  lastSuccess: 'chatmirror_bench_last_success_timestamp_seconds',
} as const;
