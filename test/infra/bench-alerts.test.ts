/**
 * The benchmark alerts as Prometheus evaluates them: the rendered rule file and synthetic series (samples
 * of the textfile gauges as a daily run and a scrape give them) through `promtool test rules`, from
 * Debian's `prometheus` package. Skipped with a message where promtool is missing, and a failure in CI
 * (CI=true), where .ci/run installs that package.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { renderAlertRules } from '../../infra/render/alerts.js';
import { BENCH_METRICS } from '../../service/bench/metrics-names.js';

const PROMTOOL = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;
const REQUIRED = process.env.CI === 'true';
if (!PROMTOOL && !REQUIRED)
  console.warn('promtool test rules is skipped: no promtool (apt-get install prometheus)');

const thresholds = {
  errorRatio: 0.02,
  p99LatencySeconds: 30,
  ttftP99Seconds: 3,
  certExpiryDays: 21,
  benchRegressionRatio: 0.15,
};
const dir = mkdtempSync(join(tmpdir(), 'chatmirror-promtool-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(
  join(dir, 'alerts.yml'),
  renderAlertRules(thresholds, { benchmarks: true, intervalSeconds: 300 }),
);

const node = 'job="node",instance="host:9100"';
const HINT =
  'Compare the last runs with `chatmirror bench report` on the benchmarks history directory to find the change. ' +
  "The baseline is the figure's average over the 7 days before the last one.";

/**
 * Samples every 5 minutes (within Prometheus's 5-minute lookback, as a 15 s scrape is: sparser samples would
 * leave the gauge absent between them and reset every alert's `for`): the baseline for 200 hours, then `after`
 * from 200h05m on, to hour 220.
 */
const steady = (baseline: number, after: number) => `${baseline}x2400 ${after}x240`;

const series = [
  // c=1: throughput drops 20% (alert), TTFT doubles (alert), TPOT steady.
  { series: `${BENCH_METRICS.outputTokensPerSecond}{${node},concurrency="1"}`, values: steady(100, 80) },
  { series: `${BENCH_METRICS.ttftP50}{${node},concurrency="1"}`, values: steady(0.1, 0.2) },
  { series: `${BENCH_METRICS.tpotP50}{${node},concurrency="1"}`, values: steady(0.01, 0.01) },
  // c=4: throughput drops 10%, within the 15% threshold (no alert); TTFT and TPOT both regress (two alerts).
  { series: `${BENCH_METRICS.outputTokensPerSecond}{${node},concurrency="4"}`, values: steady(100, 90) },
  { series: `${BENCH_METRICS.ttftP50}{${node},concurrency="4"}`, values: steady(0.1, 0.2) },
  { series: `${BENCH_METRICS.tpotP50}{${node},concurrency="4"}`, values: steady(0.01, 0.02) },
  // An open-loop level: throughput halves.
  { series: `${BENCH_METRICS.outputTokensPerSecond}{${node},rate="8"}`, values: steady(100, 50) },
  // Runs succeed every 5 minutes until hour 50 (timestamp 180,000), then stop: stale two days later, after 98 h
  // (+ 1 h of `for`).
  { series: `${BENCH_METRICS.lastSuccess}{${node}}`, values: '0+300x600 180000x2040' },
];

const regression = (labels: Record<string, string>, level: string) => ({
  exp_labels: { severity: 'warning', job: 'node', instance: 'host:9100', ...labels },
  exp_annotations: {
    summary: `Benchmark output tokens/s fell more than 15% below its 7-day baseline (${level})`,
    description: HINT,
  },
});
const latency = (labels: Record<string, string>, figure: string, level: string) => ({
  exp_labels: { severity: 'warning', job: 'node', instance: 'host:9100', figure, ...labels },
  exp_annotations: {
    summary: `Benchmark ${figure} rose more than 15% above its 7-day baseline (${level})`,
    description: HINT,
  },
});
const stale = {
  exp_labels: { severity: 'warning', job: 'node', instance: 'host:9100' },
  exp_annotations: {
    summary: 'No successful benchmark for two days',
    description: 'See `journalctl -u chatmirror-bench-*.service` on the host.',
  },
};

const cases = [
  // Before the change, nothing; from the first regressed sample, pending for `for: 1h`, then firing.
  { eval_time: '200h', alertname: 'ChatmirrorBenchmarkRegression', exp_alerts: [] },
  { eval_time: '200h55m', alertname: 'ChatmirrorBenchmarkRegression', exp_alerts: [] },
  {
    eval_time: '203h',
    alertname: 'ChatmirrorBenchmarkRegression',
    exp_alerts: [regression({ concurrency: '1' }, 'concurrency 1'), regression({ rate: '8' }, 'rate 8/s')],
  },
  { eval_time: '200h', alertname: 'ChatmirrorBenchmarkLatencyRegression', exp_alerts: [] },
  {
    eval_time: '203h',
    alertname: 'ChatmirrorBenchmarkLatencyRegression',
    exp_alerts: [
      latency({ concurrency: '1' }, 'ttft_p50', 'concurrency 1'),
      latency({ concurrency: '4' }, 'ttft_p50', 'concurrency 4'),
      latency({ concurrency: '4' }, 'tpot_p50', 'concurrency 4'),
    ],
  },
  { eval_time: '90h', alertname: 'ChatmirrorBenchmarkStale', exp_alerts: [] },
  { eval_time: '100h', alertname: 'ChatmirrorBenchmarkStale', exp_alerts: [stale] },
];

function promtool(tests: unknown[]): { code: number; output: string } {
  const file = join(dir, `tests-${Math.random().toString(36).slice(2)}.yml`);
  writeFileSync(
    file,
    stringify({
      rule_files: ['alerts.yml'],
      evaluation_interval: '5m',
      tests: [{ interval: '5m', input_series: series, alert_rule_test: tests }],
    }),
  );
  const run = spawnSync('promtool', ['test', 'rules', file], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: run.status ?? -1, output: `${run.stdout}${run.stderr}` };
}

describe.skipIf(!PROMTOOL && !REQUIRED)('benchmark alerts under promtool test rules', () => {
  it('fire on a regression beyond the threshold against the 7-day baseline, per level and figure', () => {
    const run = promtool(cases);
    expect(run.output).toContain('SUCCESS');
    expect(run.code).toBe(0);
  });

  it('fail the check when an expectation is wrong (the harness can fail)', () => {
    // The 10% drop at c=4 is within the threshold: expecting an alert for it must fail.
    const run = promtool([
      {
        eval_time: '203h',
        alertname: 'ChatmirrorBenchmarkRegression',
        exp_alerts: [
          regression({ concurrency: '1' }, 'concurrency 1'),
          regression({ concurrency: '4' }, 'concurrency 4'),
          regression({ rate: '8' }, 'rate 8/s'),
        ],
      },
    ]);
    expect(run.code).toBe(1);
    expect(run.output).toMatch(/FAILED/);
  });
});
