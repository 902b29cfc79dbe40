/**
 * Charts as SVG, drawn by Vega-Lite → Vega in Node (the `none` renderer needs no canvas: text widths are
 * estimated). Vega is imported when a chart is asked for, so `chatmirror serve` never loads it.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { BenchReport } from './output.js';
import { type Distribution, type LevelResult, loadLabel } from './stats.js';

interface Point {
  load: string;
  order: number;
  panel: string;
  series: string;
  value: number;
}

const PANELS: { panel: string; key: keyof LevelResult; stats: (keyof Distribution)[] }[] = [
  { panel: 'TTFT (ms)', key: 'ttftMs', stats: ['median', 'p99'] },
  { panel: 'TPOT (ms)', key: 'tpotMs', stats: ['median', 'p99'] },
  { panel: 'ITL (ms)', key: 'itlMs', stats: ['median', 'p99'] },
  { panel: 'E2EL (ms)', key: 'e2elMs', stats: ['median', 'p99'] },
];

/** One run: throughput and latency (median and p99) against the load levels, one small chart each. */
export function runChartSpec(report: BenchReport): TopLevelSpec {
  const points: Point[] = [];
  report.levels.forEach((l, order) => {
    const load = loadLabel(l.load);
    points.push({ load, order, panel: 'output tokens/s', series: 'output tok/s', value: l.outputThroughput });
    points.push({ load, order, panel: 'requests/s', series: 'completed', value: l.requestThroughput });
    if (l.goodput !== null)
      points.push({ load, order, panel: 'requests/s', series: 'goodput', value: l.goodput });
    for (const { panel, key, stats } of PANELS) {
      const d = l[key] as Distribution | null;
      if (d !== null) for (const s of stats) points.push({ load, order, panel, series: s, value: d[s] });
    }
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `${report.model}: latency and throughput against load`, subtitle: report.timestamp },
    data: { values: points },
    facet: {
      field: 'panel',
      type: 'nominal',
      title: null,
      sort: ['output tokens/s', 'requests/s', ...PANELS.map((p) => p.panel)],
    },
    columns: 3,
    spec: {
      width: 220,
      height: 160,
      mark: { type: 'line', point: true },
      encoding: {
        x: {
          field: 'load',
          type: 'ordinal',
          sort: { field: 'order' },
          title: 'load',
          axis: { labelAngle: 0 },
        },
        y: { field: 'value', type: 'quantitative', title: null },
        color: { field: 'series', type: 'nominal', title: null },
      },
    },
    resolve: { scale: { y: 'independent' } },
  };
}

export interface HistoryPoint {
  timestamp: string;
  load: string;
  value: number;
}

/** A history: one figure of each load level over the runs' start times. */
export function historyChartSpec(points: HistoryPoint[], figure: string, model: string): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `${model}: ${figure} per run` },
    width: 640,
    height: 280,
    data: { values: points },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'timestamp', type: 'temporal', title: 'run' },
      y: { field: 'value', type: 'quantitative', title: figure },
      color: { field: 'load', type: 'nominal', title: 'load' },
    },
  };
}

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const [{ compile }, vega] = await Promise.all([import('vega-lite'), import('vega')]);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
