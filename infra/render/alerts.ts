/**
 * Prometheus alert rules: error rate, p99 latency, time to first token, service down, certificate expiry and
 * benchmark regressions of throughput and of latency against their rolling baseline (plus a stale-benchmark and a
 * disk alert that make the last two trustworthy); test/infra/bench-alerts.test.ts runs them through `promtool test rules`.
 */
import { stringify } from 'yaml';
import type { AlertThresholds } from '../config.js';
import { BENCH_METRICS, NODE_METRICS, SERVICE_METRICS, TLS_METRICS } from './metrics.js';

export interface AlertRule {
  alert: string;
  expr: string;
  for: string;
  labels: { severity: 'critical' | 'warning' };
  annotations: { summary: string; description: string };
}

const DAY = 86_400; // seconds
/** The benchmark gauges carry one of these labels per load level (service/bench/output.ts). */
const LEVEL =
  '{{ if $labels.concurrency }}concurrency {{ $labels.concurrency }}{{ else }}rate {{ $labels.rate }}/s{{ end }}';
const HISTORY_HINT =
  'Compare the last runs with `chatmirror bench report` on the benchmarks history directory to find the change.';

/**
 * A benchmark figure against its rolling baseline: the gauge holds the last run's value between the daily runs,
 * so its average over the 7 days before the last one is the average of about seven runs, weighted by how long
 * each stood. The day before is left out so that the run being judged is not part of its own baseline; a stack
 * with less than a day of history has none, and the expression then stays empty (no alert).
 */
function regression(metric: string, op: '<' | '>', factor: number): string {
  return `${metric} ${op} ${factor} * avg_over_time(${metric}[7d] offset 1d)`;
}

export function alertRules(t: AlertThresholds, options: { benchmarks: boolean }): AlertRule[] {
  const job = 'job="chatmirror"';
  const rules: AlertRule[] = [
    {
      alert: 'ChatmirrorDown',
      expr: `up{${job}} == 0`,
      for: '2m',
      labels: { severity: 'critical' },
      annotations: {
        summary: 'chatmirror replica {{ $labels.instance }} is not answering scrapes',
        description:
          'Prometheus cannot scrape /metrics over HTTPS: the container is down, unhealthy or its certificate or token is wrong.',
      },
    },
    {
      alert: 'ChatmirrorHighErrorRate',
      expr:
        `sum(rate(${SERVICE_METRICS.httpRequests}{${job},status=~"5.."}[5m])) / ` +
        `clamp_min(sum(rate(${SERVICE_METRICS.httpRequests}{${job}}[5m])), 1e-9) > ${t.errorRatio}`,
      for: '10m',
      labels: { severity: 'critical' },
      annotations: {
        summary: `More than ${pct(t.errorRatio)} of responses are 5xx`,
        description: 'Share of 5xx responses over 5 minutes: {{ $value | humanizePercentage }}.',
      },
    },
    {
      alert: 'ChatmirrorHighLatencyP99',
      expr: `histogram_quantile(0.99, sum by (le) (rate(${SERVICE_METRICS.httpDuration}_bucket{${job}}[5m]))) > ${t.p99LatencySeconds}`,
      for: '10m',
      labels: { severity: 'warning' },
      annotations: {
        summary: `p99 request duration above ${t.p99LatencySeconds}s`,
        description:
          'p99 of chatmirror_http_request_duration_seconds (whole streams included): {{ $value | humanizeDuration }}.',
      },
    },
    {
      alert: 'ChatmirrorSlowTimeToFirstToken',
      expr: `histogram_quantile(0.99, sum by (le, model) (rate(${SERVICE_METRICS.timeToFirstToken}_bucket{${job}}[5m]))) > ${t.ttftP99Seconds}`,
      for: '10m',
      labels: { severity: 'warning' },
      annotations: {
        summary: `p99 time to first token above ${t.ttftP99Seconds}s for {{ $labels.model }}`,
        description:
          'Queue + prefill time is high: the batch is full (see chatmirror_requests_waiting) or prompts are long.',
      },
    },
    {
      alert: 'ChatmirrorCertificateExpiresSoon',
      expr: `${TLS_METRICS.notAfter} - time() < ${t.certExpiryDays} * ${DAY}`,
      for: '1h',
      labels: { severity: 'warning' },
      annotations: {
        summary: `The server certificate expires in less than ${t.certExpiryDays} days`,
        description:
          'Run `pulumi up` (CA-issued certificates renew within tls.renewBeforeDays) or set a new tlsCertificate.',
      },
    },
    {
      alert: 'ChatmirrorHostDiskLow',
      expr: `min by (mountpoint) (${NODE_METRICS.fsAvail}{fstype!~"tmpfs|overlay"} / ${NODE_METRICS.fsSize}{fstype!~"tmpfs|overlay"}) < 0.1`,
      for: '15m',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'Less than 10% disk left on {{ $labels.mountpoint }}',
        description: 'Prometheus retention, images and logs share this disk.',
      },
    },
  ];
  if (options.benchmarks) {
    rules.push(
      {
        alert: 'ChatmirrorBenchmarkRegression',
        expr: regression(BENCH_METRICS.outputTokensPerSecond, '<', round(1 - t.benchRegressionRatio)),
        for: '1h',
        labels: { severity: 'warning' },
        annotations: {
          summary: `Benchmark output tokens/s fell more than ${pct(t.benchRegressionRatio)} below its 7-day baseline (${LEVEL})`,
          description: `${HISTORY_HINT} The baseline is the figure's average over the 7 days before the last one.`,
        },
      },
      {
        alert: 'ChatmirrorBenchmarkLatencyRegression',
        // Each side labelled with its figure: an alert drops the metric name, and TTFT and TPOT regressing at
        // one level would otherwise be two samples with one label set (an evaluation error, not an alert).
        expr: [
          ['ttft_p50', BENCH_METRICS.ttftP50],
          ['tpot_p50', BENCH_METRICS.tpotP50],
        ]
          .map(
            ([figure, metric]) =>
              `label_replace(${regression(metric!, '>', round(1 + t.benchRegressionRatio))}, "figure", "${figure}", "", "")`,
          )
          .join(' or '),
        for: '1h',
        labels: { severity: 'warning' },
        annotations: {
          summary: `Benchmark {{ $labels.figure }} rose more than ${pct(t.benchRegressionRatio)} above its 7-day baseline (${LEVEL})`,
          description: `${HISTORY_HINT} The baseline is the figure's average over the 7 days before the last one.`,
        },
      },
      {
        alert: 'ChatmirrorBenchmarkStale',
        expr: `time() - ${BENCH_METRICS.lastSuccess} > 2 * ${DAY}`,
        for: '1h',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'No successful benchmark for two days',
          description: 'See `journalctl -u chatmirror-bench-*.service` on the host.',
        },
      },
    );
  }
  return rules;
}

export function renderAlertRules(
  t: AlertThresholds,
  options: { benchmarks: boolean; intervalSeconds: number },
): string {
  return stringify(
    {
      groups: [
        { name: 'chatmirror', interval: `${options.intervalSeconds}s`, rules: alertRules(t, options) },
      ],
    },
    { lineWidth: 0 },
  );
}

function pct(ratio: number): string {
  return `${round(ratio * 100)}%`;
}

function round(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}
