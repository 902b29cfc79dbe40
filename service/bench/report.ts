/**
 * `chatmirror bench report HISTORY...`: the scheduled runs' JSON documents (a directory, or files) as one table
 * (a row per run and level, oldest first) and optionally an SVG chart of one figure over time. Documents from
 * before REPORT_VERSION 2 (seconds, `concurrency` at the level's top) are read too: hosts keep their history.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { CommandOutput } from '../security/auth/commands.js';
import { UsageError } from '../security/auth/commands.js';
import { REPORT_HELP } from './args.js';
import { type HistoryPoint, historyChartSpec, renderSvg } from './chart.js';
import { type BenchReport, writeAtomically } from './output.js';
import { loadLabel } from './stats.js';

export const FIGURES = {
  output_throughput: 'output tokens/s',
  request_throughput: 'requests/s',
  ttft_median: 'TTFT median (ms)',
  tpot_median: 'TPOT median (ms)',
  itl_median: 'ITL median (ms)',
  e2el_median: 'E2EL median (ms)',
  e2el_p99: 'E2EL p99 (ms)',
} as const;
export type Figure = keyof typeof FIGURES;

/** One run at one level, as the history table and chart need it. */
export interface HistoryRow {
  timestamp: string;
  model: string;
  load: string;
  completed: number;
  failed: number;
  figures: Partial<Record<Figure, number>>;
}

export async function report(argv: string[], out: CommandOutput): Promise<void> {
  const parsed = parseReportArgs(argv);
  if (parsed === undefined) {
    out.write(REPORT_HELP);
    return;
  }
  const rows = await readHistory(parsed.paths);
  out.write(renderHistory(rows, parsed.figure, 'text'));
  if (parsed.markdown !== undefined) {
    await writeAtomically(parsed.markdown, renderHistory(rows, parsed.figure, 'markdown'));
    out.write(`wrote ${parsed.markdown}\n`);
  }
  if (parsed.chart !== undefined) {
    const points: HistoryPoint[] = rows.flatMap((r) =>
      r.figures[parsed.figure] === undefined
        ? []
        : [{ timestamp: r.timestamp, load: r.load, value: r.figures[parsed.figure]! }],
    );
    const models = [...new Set(rows.map((r) => r.model))].join(', ');
    await writeAtomically(
      parsed.chart,
      await renderSvg(historyChartSpec(points, FIGURES[parsed.figure], models)),
    );
    out.write(`wrote ${parsed.chart}\n`);
  }
}

function parseReportArgs(argv: string[]) {
  let values: { chart?: string; markdown?: string; metric?: string; help?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: {
        chart: { type: 'string' },
        markdown: { type: 'string' },
        metric: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: true,
    }));
  } catch (err) {
    // Node adds advice about `--` for positionals that start with a dash: noise for a misspelt flag.
    throw new UsageError((err as Error).message.split('\n')[0]!.replace(/\. To specify a positional.*$/, ''));
  }
  if (values.help) return undefined;
  if (positionals.length === 0) throw new UsageError('bench report needs a HISTORY directory or file');
  const figure = (values.metric ?? 'output_throughput') as Figure;
  if (!(figure in FIGURES)) {
    throw new UsageError(
      `--metric must be one of ${Object.keys(FIGURES).join(', ')}, got "${values.metric}"`,
    );
  }
  return { paths: positionals, figure, chart: values.chart, markdown: values.markdown };
}

/** Every *.json under the given directories (not recursive) and the given files, oldest run first. */
export async function readHistory(paths: readonly string[]): Promise<HistoryRow[]> {
  const files: string[] = [];
  for (const path of paths) {
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(path);
    } catch (err) {
      throw new UsageError(
        `bench report: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      );
    }
    if (info.isDirectory()) {
      for (const name of (await readdir(path)).sort()) {
        if (name.endsWith('.json') && !name.startsWith('.')) files.push(join(path, name));
      }
    } else files.push(path);
  }
  const rows: HistoryRow[] = [];
  for (const file of files) {
    let doc: unknown;
    try {
      doc = JSON.parse(await readFile(file, 'utf8'));
    } catch (err) {
      throw new UsageError(`bench report: ${file} is not a bench JSON document (${(err as Error).message})`);
    }
    rows.push(...historyRows(doc, file));
  }
  if (rows.length === 0) throw new UsageError(`bench report: no bench results in ${paths.join(', ')}`);
  return rows.sort((a, b) => a.timestamp.localeCompare(b.timestamp));
}

interface LegacyLevel {
  concurrency: number;
  successes: number;
  failures: number;
  outputTokensPerSecond: number;
  ttftP50: number | null;
  e2eP50: number | null;
  e2eP99: number | null;
}

/** The rows of one document, either version. */
export function historyRows(doc: unknown, file: string): HistoryRow[] {
  const d = doc as Partial<BenchReport> & { levels?: unknown[] };
  if (typeof d?.timestamp !== 'string' || !Array.isArray(d.levels)) {
    throw new UsageError(`bench report: ${file} is not a bench JSON document (no timestamp and levels)`);
  }
  const model = d.model ?? '?';
  if (d.version === undefined) {
    return (d.levels as LegacyLevel[]).map((l) => ({
      timestamp: d.timestamp!,
      model,
      load: `c=${l.concurrency}`,
      completed: l.successes,
      failed: l.failures,
      figures: defined({
        output_throughput: l.outputTokensPerSecond,
        ttft_median: ms(l.ttftP50),
        e2el_median: ms(l.e2eP50),
        e2el_p99: ms(l.e2eP99),
      }),
    }));
  }
  return (d as BenchReport).levels.map((l) => ({
    timestamp: d.timestamp!,
    model,
    load: loadLabel(l.load),
    completed: l.completed,
    failed: l.failed,
    figures: defined({
      output_throughput: l.outputThroughput,
      request_throughput: l.requestThroughput,
      ttft_median: l.ttftMs?.median,
      tpot_median: l.tpotMs?.median,
      itl_median: l.itlMs?.median,
      e2el_median: l.e2elMs?.median,
      e2el_p99: l.e2elMs?.p99,
    }),
  }));
}

function ms(seconds: number | null): number | undefined {
  return seconds === null ? undefined : seconds * 1000;
}

function defined(figures: Record<Figure, number | undefined> | Partial<Record<Figure, number | undefined>>) {
  return Object.fromEntries(Object.entries(figures).filter(([, v]) => v !== undefined)) as Partial<
    Record<Figure, number>
  >;
}

/** The table, with the change of the chosen figure against the previous run at the same level. */
export function renderHistory(
  rows: readonly HistoryRow[],
  figure: Figure,
  form: 'text' | 'markdown',
): string {
  const header = ['run', 'load', 'ok', 'failed', ...Object.values(FIGURES), `Δ ${figure}`];
  const previous = new Map<string, number>();
  const table = rows.map((r) => {
    const value = r.figures[figure];
    const before = previous.get(r.load);
    if (value !== undefined) previous.set(r.load, value);
    const change =
      value === undefined || before === undefined || before === 0
        ? '-'
        : `${value >= before ? '+' : ''}${(((value - before) / before) * 100).toFixed(1)}%`;
    return [
      r.timestamp.replace(/\.\d+Z$/, 'Z'),
      r.load,
      String(r.completed),
      String(r.failed),
      ...(Object.keys(FIGURES) as Figure[]).map((f) =>
        r.figures[f] === undefined ? '-' : r.figures[f]!.toFixed(f.endsWith('throughput') ? 2 : 1),
      ),
      change,
    ];
  });
  if (form === 'markdown') {
    const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
    return `${[line(header), `|${header.map((_, i) => (i < 2 ? ' --- ' : ' ---: ')).join('|')}|`, ...table.map(line)].join('\n')}\n`;
  }
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return `${[line(header), ...table.map(line)].join('\n')}\n`;
}
