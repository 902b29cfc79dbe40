/**
 * The forms of a run's results: aligned text for the terminal and the journal, Markdown, a JSON document (one
 * per run in the history directory), and Prometheus text for node-exporter's textfile collector.
 */
import { rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Api } from './args.js';
import { BENCH_METRICS } from './metrics-names.js';
import type { Slo } from './slo.js';
import { type Distribution, type LevelResult, loadLabel } from './stats.js';

/** Bumped when a field changes meaning; `bench report` reads this version. */
export const REPORT_VERSION = 2;

export interface BenchReport {
  version: typeof REPORT_VERSION;
  url: string;
  api: Api;
  model: string;
  /** ISO 8601, when the run started. */
  timestamp: string;
  /** What was asked, so that two reports can be seen to be comparable. */
  scenario: {
    load: string;
    stop: { requests: number } | { durationSeconds: number };
    warmup: number;
    prompts: { kind: 'synthetic'; inputTokens: number } | { kind: 'file'; file: string };
    maxTokens: number;
    ignoreEos: boolean;
    seed: number;
    slo: Slo;
    sloAttainment: number | null;
  };
  /** True when every level had at least one success. */
  ok: boolean;
  /** Whether every level met the SLO attainment; null without --slo. */
  sloMet: boolean | null;
  levels: LevelResult[];
  /** Where it ran, when the caller describes it (bench:serve does). */
  machine?: Record<string, string | number | number[]>;
}

interface Table {
  header: string[];
  rows: string[][];
}

const METRICS: [string, keyof LevelResult][] = [
  ['TTFT', 'ttftMs'],
  ['TPOT', 'tpotMs'],
  ['ITL', 'itlMs'],
  ['E2EL', 'e2elMs'],
];

function throughputTable(report: BenchReport): Table {
  const slo = report.sloMet !== null;
  return {
    header: [
      'load',
      'requests',
      'ok',
      'failed',
      'req/s',
      'output tok/s',
      'total tok/s',
      'mean in',
      'mean out',
      'max in flight',
      ...(slo ? ['goodput req/s', 'SLO met'] : []),
    ],
    rows: report.levels.map((l) => [
      loadLabel(l.load),
      String(l.requests),
      String(l.completed),
      String(l.failed),
      l.requestThroughput.toFixed(2),
      l.outputThroughput.toFixed(1),
      l.totalTokenThroughput.toFixed(1),
      l.completed === 0 ? '-' : (l.totalInputTokens / l.completed).toFixed(1),
      l.completed === 0 ? '-' : (l.totalOutputTokens / l.completed).toFixed(1),
      String(l.maxInFlight),
      ...(slo ? [(l.goodput ?? 0).toFixed(2), `${((l.sloAttainment ?? 0) * 100).toFixed(1)}%`] : []),
    ]),
  };
}

function latencyTable(report: BenchReport): Table {
  const header = ['load', 'metric (ms)', 'mean', 'median', 'std', 'p90', 'p99'];
  const rows: string[][] = [];
  for (const [name, key] of METRICS) {
    for (const l of report.levels) {
      const d = l[key] as Distribution | null;
      const cells =
        d === null ? ['-', '-', '-', '-', '-'] : [d.mean, d.median, d.std, d.p90, d.p99].map(fixed);
      rows.push([loadLabel(l.load), name, ...cells]);
    }
  }
  return { header, rows };
}

function fixed(ms: number): string {
  return ms.toFixed(ms < 10 ? 2 : 1);
}

function title(report: BenchReport): string {
  const stop =
    'requests' in report.scenario.stop
      ? `${report.scenario.stop.requests} requests per level`
      : `${report.scenario.stop.durationSeconds} s per level`;
  const prompts =
    report.scenario.prompts.kind === 'synthetic'
      ? `~${report.scenario.prompts.inputTokens}-token synthetic prompts`
      : `prompts from ${basename(report.scenario.prompts.file)}`;
  return (
    `${report.model} at ${report.url} (${report.api}), ${report.scenario.load}, ${stop}, ${prompts}, ` +
    `max_tokens ${report.scenario.maxTokens}${report.scenario.ignoreEos ? ' (ignore_eos)' : ''}, seed ${report.scenario.seed}`
  );
}

function failures(report: BenchReport): string[] {
  return report.levels.flatMap((l) => [
    ...(l.failed === 0
      ? []
      : [
          `  ${loadLabel(l.load)}: failed by status ${Object.entries(l.failuresByStatus)
            .map(([s, n]) => `${s} × ${n}`)
            .join(', ')}`,
        ]),
    ...l.errors.map((e) => `  ${loadLabel(l.load)}: ${e.count} × ${e.error}`),
  ]);
}

/** Resends are not failures, but a server that drops connections should not look like one that does not. */
function resends(report: BenchReport): string[] {
  return report.levels
    .filter((l) => l.resent > 0)
    .map(
      (l) =>
        `${loadLabel(l.load)}: ${l.resent} sends repeated after the server closed the connection unanswered`,
    );
}

function aligned(t: Table): string[] {
  const widths = t.header.map((h, i) => Math.max(h.length, ...t.rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(t.header), ...t.rows.map(line)];
}

function markdown(t: Table): string[] {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [
    line(t.header),
    `|${t.header.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`,
    ...t.rows.map(line),
  ];
}

function sloLine(report: BenchReport): string[] {
  if (report.sloMet === null) return [];
  const targets = Object.entries(report.scenario.slo)
    .map(([m, v]) => `${m} ≤ ${v} ms`)
    .join(', ');
  const share = `${((report.scenario.sloAttainment ?? 0) * 100).toFixed(1)}%`;
  return [`SLO ${targets} for ${share} of requests: ${report.sloMet ? 'met' : 'MISSED'}`];
}

export function renderTable(report: BenchReport): string {
  const failed = failures(report);
  const resent = resends(report);
  return [
    title(report),
    '',
    ...aligned(throughputTable(report)),
    '',
    ...aligned(latencyTable(report)),
    ...(failed.length > 0 ? ['', 'failures:', ...failed] : []),
    ...(resent.length > 0 ? ['', ...resent] : []),
    ...(report.sloMet === null ? [] : ['', ...sloLine(report)]),
    '',
  ].join('\n');
}

export function renderMarkdown(report: BenchReport): string {
  const failed = failures(report);
  const resent = resends(report);
  const machine =
    report.machine === undefined
      ? []
      : [
          '',
          `Machine: ${Object.entries(report.machine)
            .map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(' ') : v}`)
            .join('; ')}`,
        ];
  return [
    `${title(report)}; started ${report.timestamp}.`,
    ...machine,
    '',
    ...markdown(throughputTable(report)),
    '',
    ...markdown(latencyTable(report)),
    ...(failed.length > 0 ? ['', 'Failures:', '', '```', ...failed, '```'] : []),
    ...(resent.length > 0 ? ['', ...resent] : []),
    ...(report.sloMet === null ? [] : ['', ...sloLine(report)]),
    '',
  ].join('\n');
}

/** The label a level's gauges carry: `concurrency="4"` or `rate="8"` (`inf` for all at once). */
function levelLabel(l: LevelResult): string {
  if ('concurrency' in l.load) return `{concurrency="${l.load.concurrency}"}`;
  return `{rate="${l.load.rate ?? 'inf'}"}`;
}

/** Gauges for node-exporter's textfile collector; last-success only when every level succeeded at least once. */
export function renderTextfile(report: BenchReport): string {
  const lines: string[] = [];
  const gauge = (name: string, help: string, samples: [string, number][]) => {
    if (samples.length === 0) return;
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
  };
  const seconds = (pick: (l: LevelResult) => number | undefined) =>
    report.levels.flatMap((l) => {
      const ms = pick(l);
      return ms === undefined ? [] : [[levelLabel(l), ms / 1000] as [string, number]];
    });
  gauge(
    BENCH_METRICS.outputTokensPerSecond,
    'Output tokens per second over all clients at this load, last benchmark run.',
    report.levels.map((l) => [levelLabel(l), l.outputThroughput]),
  );
  gauge(
    BENCH_METRICS.requestsPerSecond,
    'Completed requests per second at this load, last benchmark run.',
    report.levels.map((l) => [levelLabel(l), l.requestThroughput]),
  );
  gauge(
    BENCH_METRICS.ttftP50,
    'Median time to first content token in seconds at this load, last benchmark run.',
    seconds((l) => l.ttftMs?.median),
  );
  gauge(
    BENCH_METRICS.tpotP50,
    'Median time per output token after the first, in seconds, at this load, last benchmark run.',
    seconds((l) => l.tpotMs?.median),
  );
  gauge(
    BENCH_METRICS.e2elP99,
    '99th percentile of the whole request in seconds at this load, last benchmark run.',
    seconds((l) => l.e2elMs?.p99),
  );
  gauge(
    BENCH_METRICS.failedRequests,
    'Requests that failed at this load, last benchmark run.',
    report.levels.map((l) => [levelLabel(l), l.failed]),
  );
  if (report.ok) {
    gauge(BENCH_METRICS.lastSuccess, 'Unix time of the last benchmark run in which every level succeeded.', [
      ['', Math.floor(Date.parse(report.timestamp) / 1000)],
    ]);
  }
  return `${lines.join('\n')}\n`;
}

/** `2026-11-27T09:30:00.123Z` → `2026-11-27T09-30-00Z.json`: sortable, and no colons for other filesystems. */
export function historyFileName(timestamp: string): string {
  return `${timestamp.replace(/\.\d+Z$/, 'Z').replaceAll(':', '-')}.json`;
}

export function reportJson(report: BenchReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

/** Write-then-rename in the same directory, so a reader (or a pruning job) never sees half a file. */
export async function writeAtomically(file: string, text: string): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  await writeFile(tmp, text);
  await rename(tmp, file);
}

export async function writeHistory(dir: string, report: BenchReport): Promise<string> {
  const file = join(dir, historyFileName(report.timestamp));
  await writeAtomically(file, reportJson(report));
  return file;
}
