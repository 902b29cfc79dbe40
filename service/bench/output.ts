/** The three forms of a run's results: a table for the journal, a JSON history document, Prometheus text. */
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BENCH_METRICS } from './metrics-names.js';
import type { LevelResult } from './stats.js';

export interface BenchReport {
  url: string;
  model: string;
  /** ISO 8601, when the run started. */
  timestamp: string;
  maxTokens: number;
  requestsPerLevel: number;
  /** True when every level had at least one success. */
  ok: boolean;
  levels: LevelResult[];
}

export function renderTable(report: BenchReport): string {
  const header = ['conc', 'reqs', 'ok', 'fail', 'tok/s', 'ttft p50', 'ttft p95', 'e2e p50', 'e2e p99'];
  const rows = report.levels.map((l) => [
    String(l.concurrency),
    String(l.requests),
    String(l.successes),
    String(l.failures),
    l.outputTokensPerSecond.toFixed(1),
    ms(l.ttftP50),
    ms(l.ttftP95),
    ms(l.e2eP50),
    ms(l.e2eP99),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  const errors = report.levels.flatMap((l) =>
    l.errors.map((e) => `  concurrency ${l.concurrency}: ${e.count} × ${e.error}`),
  );
  return [
    `${report.model} at ${report.url}, ${report.requestsPerLevel} requests per level, max_tokens ${report.maxTokens}`,
    line(header),
    ...rows.map(line),
    ...(errors.length > 0 ? ['failures:', ...errors] : []),
    '',
  ].join('\n');
}

function ms(seconds: number | null): string {
  return seconds === null ? '-' : `${(seconds * 1000).toFixed(0)} ms`;
}

/** Gauges for node-exporter's textfile collector; last-success only when every level succeeded at least once. */
export function renderTextfile(report: BenchReport): string {
  const lines: string[] = [];
  const gauge = (name: string, help: string, samples: [string, number][]) => {
    if (samples.length === 0) return;
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
  };
  const label = (l: LevelResult) => `{concurrency="${l.concurrency}"}`;
  gauge(
    BENCH_METRICS.outputTokensPerSecond,
    'Output tokens per second over all clients at this concurrency, last benchmark run.',
    report.levels.map((l) => [label(l), l.outputTokensPerSecond]),
  );
  gauge(
    BENCH_METRICS.ttftP50,
    'Median time to first content token in seconds at this concurrency, last benchmark run.',
    report.levels.flatMap((l) => (l.ttftP50 === null ? [] : [[label(l), l.ttftP50] as [string, number]])),
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

/** Write-then-rename in the same directory, so a reader (or a pruning job) never sees half a document. */
export async function writeHistory(dir: string, report: BenchReport): Promise<string> {
  const file = join(dir, historyFileName(report.timestamp));
  const tmp = join(dir, `.${historyFileName(report.timestamp)}.${process.pid}.tmp`);
  await writeFile(tmp, `${JSON.stringify(report, null, 2)}\n`);
  await rename(tmp, file);
  return file;
}
