/**
 * bench:compare's results: medians over the repetitions, ratios against llama.cpp at matched precision (the
 * headline: chatmirror / llama.cpp, so > 1 is faster for throughput and < 1 is cheaper for CPU and latency),
 * greedy parity against the raw loop, and the forms they are written in (JSON, Markdown, a Vega-Lite chart).
 */
import type { TopLevelSpec } from 'vega-lite';
import type { Gguf } from './llama-cpp.js';
import type { ServerRun } from './servers.js';
import type { SingleRun } from './single.js';

export interface Greedy {
  reference: string;
  /** Tokens equal to the reference's from the first on. */
  commonPrefix: number;
  equal: boolean;
}

export interface SingleRow {
  id: string;
  system: string;
  precision: string;
  setup: string;
  peer: string | null;
  median: { tokensPerSecond: number; cpuMsPerToken: number; firstTokenMs: number };
  /** This row's median over its llama.cpp peer's: tokens/s (higher is better), CPU ms per token (lower). */
  vsLlama: { tokensPerSecond: number; cpuMsPerToken: number } | null;
  greedy: Greedy | null;
  /** Whether every repetition generated the same tokens. */
  stable: boolean;
  /** The first repetition's tokens, and their text by our tokenizer. */
  tokens: number[];
  text: string;
  runs: Omit<SingleRun, 'tokens'>[];
}

export interface ServerRow {
  id: string;
  system: string;
  precision: string;
  setup: string;
  peer: string | null;
  median: {
    outputTokensPerSecond: number;
    itlP99Ms: number | null;
    ttftP50Ms: number | null;
    cpuMsPerOutputToken: number;
  };
  vsLlama: {
    outputTokensPerSecond: number;
    itlP99Ms: number | null;
    ttftP50Ms: number | null;
    cpuMsPerOutputToken: number;
  } | null;
  runs: ServerRun[];
}

export interface LevelLoad {
  loadAverageBefore: number[];
  loadAverageAfter: number[];
}

export interface CompareReport {
  version: 1;
  timestamp: string;
  model: { name: string; dir: string; graphs: Record<string, string> };
  ggufs: Gguf[];
  prompt: { messages: unknown; text: string; ids: number[] };
  scenario: {
    newTokens: number;
    repeats: number;
    concurrency: number;
    serverRequests: number;
    greedy: string;
  };
  versions: Record<string, string>;
  machine: Record<string, unknown>;
  /** HEAD, the tracked files with uncommitted changes, and the sha256 of `git diff HEAD` when there are any. */
  git: { commit: string; modified: string[]; diffSha256: string | null };
  single: (LevelLoad & { rows: SingleRow[] }) | null;
  server: (LevelLoad & { rows: ServerRow[] }) | null;
  notAvailable: { what: string; why: string }[];
  notes: string[];
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function medianOrNull(xs: readonly (number | null)[]): number | null {
  const present = xs.filter((x): x is number => x !== null);
  return present.length === 0 ? null : median(present);
}

export function commonPrefix(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

interface SingleInput {
  id: string;
  system: string;
  precision: string;
  setup: string;
  peer?: string | undefined;
  reference?: string | undefined;
}

/** What every row starts with: the system, its medians, and (when it has one) its llama.cpp peer's medians. */
function rowHead<M>(s: SingleInput, medians: Map<string, M>) {
  const m = medians.get(s.id)!;
  const peer = s.peer === undefined ? undefined : medians.get(s.peer);
  const head = {
    id: s.id,
    system: s.system,
    precision: s.precision,
    setup: s.setup,
    peer: peer === undefined ? null : s.peer!,
    median: m,
  };
  return { head, m, peer };
}

export function singleRows(
  systems: SingleInput[],
  runs: Map<string, SingleRun[]>,
  decode: (ids: number[]) => string,
): SingleRow[] {
  const medians = new Map(
    systems.map((s) => {
      const r = runs.get(s.id)!;
      return [
        s.id,
        {
          tokensPerSecond: median(r.map((x) => x.tokensPerSecond)),
          cpuMsPerToken: median(r.map((x) => x.cpuMsPerToken)),
          firstTokenMs: median(r.map((x) => x.firstTokenMs)),
        },
      ];
    }),
  );
  return systems.map((s) => {
    const r = runs.get(s.id)!;
    const { head, m, peer } = rowHead(s, medians);
    const tokens = r[0]!.tokens;
    const ref = s.reference === undefined ? undefined : runs.get(s.reference)?.[0]?.tokens;
    const prefix = ref === undefined ? 0 : commonPrefix(tokens, ref);
    return {
      ...head,
      vsLlama:
        peer === undefined
          ? null
          : {
              tokensPerSecond: m.tokensPerSecond / peer.tokensPerSecond,
              cpuMsPerToken: m.cpuMsPerToken / peer.cpuMsPerToken,
            },
      greedy:
        ref === undefined
          ? null
          : {
              reference: s.reference!,
              commonPrefix: prefix,
              equal: prefix === tokens.length && tokens.length === ref.length,
            },
      stable: r.every(
        (x) => x.tokens.length === tokens.length && commonPrefix(x.tokens, tokens) === tokens.length,
      ),
      tokens,
      text: decode(tokens),
      runs: r.map(({ tokens: _, ...rest }) => rest),
    };
  });
}

export function serverRows(systems: SingleInput[], runs: Map<string, ServerRun[]>): ServerRow[] {
  const medians = new Map(
    systems.map((s) => {
      const r = runs.get(s.id)!;
      return [
        s.id,
        {
          outputTokensPerSecond: median(r.map((x) => x.outputTokensPerSecond)),
          itlP99Ms: medianOrNull(r.map((x) => x.itlP99Ms)),
          ttftP50Ms: medianOrNull(r.map((x) => x.ttftP50Ms)),
          cpuMsPerOutputToken: median(r.map((x) => x.cpuMsPerOutputToken)),
        },
      ];
    }),
  );
  const ratio = (a: number | null, b: number | null) => (a === null || b === null ? null : a / b);
  return systems.map((s) => {
    const { head, m, peer } = rowHead(s, medians);
    return {
      ...head,
      vsLlama:
        peer === undefined
          ? null
          : {
              outputTokensPerSecond: m.outputTokensPerSecond / peer.outputTokensPerSecond,
              itlP99Ms: ratio(m.itlP99Ms, peer.itlP99Ms),
              ttftP50Ms: ratio(m.ttftP50Ms, peer.ttftP50Ms),
              cpuMsPerOutputToken: m.cpuMsPerOutputToken / peer.cpuMsPerOutputToken,
            },
      runs: runs.get(s.id)!,
    };
  });
}

// ---- Markdown ----------------------------------------------------------------------------------------------

/** Three significant figures, as bench's own tables print. */
function fig(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

/** Every repetition's figure, in order: a median of three hides one run that the machine's load spoilt. */
function each(xs: number[]): string {
  return xs.map(fig).join(', ');
}

function times(x: number | null | undefined): string {
  return x === null || x === undefined ? '—' : `${x.toFixed(2)}×`;
}

function table(header: string[], align: ('l' | 'r')[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(align.map((a) => (a === 'r' ? '---:' : '---'))), ...rows.map(line), ''].join(
    '\n',
  );
}

function greedyCell(row: SingleRow, n: number): string {
  if (row.greedy === null) return row.id.startsWith('raw-') ? 'reference' : '—';
  const g = row.greedy;
  const stable = row.stable ? '' : ' (varies between runs)';
  // A GGUF row is compared with the raw loop on the graph of its precision (the original Q4_1 with fp32).
  const loop = row.id.startsWith('llama-') ? ` to ${g.reference.split('-')[1]}` : '';
  return g.equal ? `equal${loop} (${n}/${n})${stable}` : `first ${g.commonPrefix}/${n} equal${loop}${stable}`;
}

const load = (l: LevelLoad) =>
  `load average ${l.loadAverageBefore.join(' ')} before, ${l.loadAverageAfter.join(' ')} after`;

export function renderMarkdown(r: CompareReport): string {
  const n = r.scenario.newTokens;
  const out: string[] = [];
  out.push(`# bench:compare — ${r.model.name}`, '');
  out.push(
    `${r.prompt.ids.length} prompt tokens (one chat turn, the model's chat template), ${n} new tokens, ` +
      `${r.scenario.greedy}; medians of ${r.scenario.repeats} interleaved repetitions; started ${r.timestamp}.`,
    '',
  );
  out.push(
    `Machine: ${Object.entries(r.machine)
      .map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(' ') : v}`)
      .join('; ')}`,
    '',
  );
  out.push(
    `Versions: ${Object.entries(r.versions)
      .map(([k, v]) => `${k} ${v.replace(/\n/g, '; ')}`)
      .join(
        '; ',
      )}; git ${r.git.commit.slice(0, 12)}${r.git.modified.length > 0 ? ` with uncommitted changes to ${r.git.modified.join(', ')}` : ''}`,
    '',
  );
  out.push(
    'The ÷ llama.cpp columns are the headline ratios, chatmirror / llama.cpp: each row over llama.cpp at matched ' +
      'precision (our fp32 graph vs F32, our int8 graph vs Q8_0); above 1 is faster for tokens/s, below 1 is ' +
      'cheaper for CPU and lower for latency.',
    '',
  );
  if (r.single !== null) {
    out.push('## Single stream', '', `${load(r.single)}.`, '');
    out.push(
      table(
        [
          'system',
          'precision',
          'tok/s',
          'tok/s ÷ llama.cpp',
          'CPU ms / token',
          'CPU ÷ llama.cpp',
          'first token ms',
          'greedy tokens vs raw loop',
          'tok/s each repetition',
        ],
        ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'l', 'r'],
        r.single.rows.map((row) => [
          row.system,
          row.precision,
          fig(row.median.tokensPerSecond),
          times(row.vsLlama?.tokensPerSecond),
          fig(row.median.cpuMsPerToken),
          times(row.vsLlama?.cpuMsPerToken),
          fig(row.median.firstTokenMs),
          greedyCell(row, n),
          each(row.runs.map((x) => x.tokensPerSecond)),
        ]),
      ),
    );
    out.push(...engineVsGenai(r.single.rows));
  }
  if (r.server !== null) {
    out.push(
      `## Servers, ${r.scenario.concurrency} concurrent`,
      '',
      `${r.scenario.serverRequests} requests per repetition (closed loop, /v1/completions, max_tokens ${n}, ` +
        `ignore_eos); ${load(r.server)}.`,
      '',
    );
    out.push(
      table(
        [
          'server',
          'precision',
          'output tok/s',
          'tok/s ÷ llama.cpp',
          'ITL p99 ms',
          'ITL p99 ÷ llama.cpp',
          'TTFT p50 ms',
          'CPU ms / output token',
          'CPU ÷ llama.cpp',
          'output tok/s each repetition',
        ],
        ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
        r.server.rows.map((row) => [
          row.system,
          row.precision,
          fig(row.median.outputTokensPerSecond),
          times(row.vsLlama?.outputTokensPerSecond),
          fig(row.median.itlP99Ms),
          times(row.vsLlama?.itlP99Ms),
          fig(row.median.ttftP50Ms),
          fig(row.median.cpuMsPerOutputToken),
          times(row.vsLlama?.cpuMsPerOutputToken),
          each(row.runs.map((x) => x.outputTokensPerSecond)),
        ]),
      ),
    );
  }
  out.push(summaryTable(r));
  out.push('## Not covered', '', ...r.notAvailable.map((x) => `- ${x.what}: ${x.why}`), '');
  out.push('## Notes', '', ...r.notes.map((x) => `- ${x}`), '');
  out.push(
    '## GGUF files',
    '',
    ...r.ggufs.map(
      (g) => `- ${g.type}: ${g.path.split('/').at(-1)}, ${g.bytes} bytes, sha256 ${g.sha256} (${g.origin})`,
    ),
    '',
  );
  return out.join('\n');
}

/**
 * The engine over onnxruntime-genai's loop on the same graph file, per precision (issue 12 asks for the engine
 * within 5% of it): the engine's median tokens/s and CPU per token over genai's.
 */
function engineVsGenai(rows: SingleRow[]): string[] {
  const byId = new Map(rows.map((row) => [row.id, row]));
  const lines: string[] = [];
  for (const p of ['fp32', 'int8']) {
    const engine = byId.get(`engine-${p}`);
    const genai = byId.get(`genai-${p}`);
    if (engine === undefined || genai === undefined) continue;
    const tps = engine.median.tokensPerSecond / genai.median.tokensPerSecond;
    const cpu = engine.median.cpuMsPerToken / genai.median.cpuMsPerToken;
    lines.push(`- ${p}: tok/s ${times(tps)}, CPU ms per token ${times(cpu)}`);
  }
  return lines.length === 0
    ? []
    : [
        'chatmirror engine ÷ onnxruntime-genai on the same graph file (above 1 is faster; CPU below 1 is cheaper):',
        '',
        ...lines,
        '',
      ];
}

/** Issue 12's table: one column per system, fp32 / int8 in each cell. */
function summaryTable(r: CompareReport): string {
  const single = new Map((r.single?.rows ?? []).map((row) => [row.id, row]));
  const server = new Map((r.server?.rows ?? []).map((row) => [row.id, row]));
  const pair = (a: number | undefined, b: number | undefined) => `${fig(a)} / ${fig(b)}`;
  const s = (family: string, key: 'tokensPerSecond' | 'cpuMsPerToken') =>
    family === 'llama'
      ? pair(single.get('llama-f32')?.median[key], single.get('llama-q8_0')?.median[key])
      : pair(single.get(`${family}-fp32`)?.median[key], single.get(`${family}-int8`)?.median[key]);
  const v = (key: 'outputTokensPerSecond' | 'cpuMsPerOutputToken' | 'itlP99Ms', id: string) =>
    server.get(id)?.median[key] ?? undefined;
  const rows: string[][] = [];
  if (r.single !== null)
    rows.push(
      [
        'single-stream tok/s, fp32 / int8 (Q8_0)',
        s('engine', 'tokensPerSecond'),
        s('raw', 'tokensPerSecond'),
        s('genai', 'tokensPerSecond'),
        s('tjs', 'tokensPerSecond'),
        s('llama', 'tokensPerSecond'),
      ],
      [
        'CPU ms per token, one stream, fp32 / int8',
        s('engine', 'cpuMsPerToken'),
        s('raw', 'cpuMsPerToken'),
        s('genai', 'cpuMsPerToken'),
        s('tjs', 'cpuMsPerToken'),
        s('llama', 'cpuMsPerToken'),
      ],
    );
  if (r.server !== null) {
    const c = r.scenario.concurrency;
    for (const [label, key] of [
      [`server output tok/s at ${c} concurrent, fp32 / int8`, 'outputTokensPerSecond'],
      [`server ITL p99 ms at ${c} concurrent, fp32 / int8`, 'itlP99Ms'],
      [`server CPU ms per output token at ${c} concurrent, fp32 / int8`, 'cpuMsPerOutputToken'],
    ] as const) {
      rows.push([
        label,
        pair(v(key, 'serve-fp32'), v(key, 'serve-int8')),
        '—',
        '—',
        '—',
        pair(v(key, 'llama-f32'), v(key, 'llama-q8_0')),
      ]);
    }
  }
  return [
    "## Summary (issue 12's table)",
    '',
    table(
      [
        '',
        'chatmirror engine (server: chatmirror serve)',
        'raw onnxruntime-node loop',
        "onnxruntime-genai's loop",
        'Transformers.js',
        'llama.cpp (same weights, GGUF)',
      ],
      ['l', 'r', 'r', 'r', 'r', 'r'],
      rows,
    ),
  ].join('\n');
}

// ---- chart -------------------------------------------------------------------------------------------------

const CHART_NAMES: Record<string, string> = {
  raw: 'raw onnxruntime loop',
  engine: 'chatmirror engine',
  genai: 'onnxruntime-genai',
  tjs: 'Transformers.js',
  llama: 'llama.cpp',
  serve: 'chatmirror serve',
};

/**
 * Horizontal bars, one per system and precision, in the tables' order: throughput and CPU per token for one
 * stream, and throughput, ITL p99 and CPU per token under load; coloured by system, so llama.cpp stands out.
 */
export function chartSpec(r: CompareReport): TopLevelSpec {
  const points: { panel: string; row: string; system: string; order: number; value: number }[] = [];
  const add = (
    panel: string,
    row: { id: string; precision: string },
    order: number,
    value: number | null,
  ) => {
    if (value === null) return;
    const system = CHART_NAMES[row.id.split('-')[0]!] ?? row.id;
    points.push({ panel, row: `${system}, ${row.precision}`, system, order, value });
  };
  (r.single?.rows ?? []).forEach((row, i) => {
    add('1 stream: tokens/s', row, i, row.median.tokensPerSecond);
    add('1 stream: CPU ms per token', row, i, row.median.cpuMsPerToken);
  });
  const c = r.scenario.concurrency;
  (r.server?.rows ?? []).forEach((row, i) => {
    add(`${c} concurrent: output tokens/s`, row, i, row.median.outputTokensPerSecond);
    add(`${c} concurrent: CPU ms per output token`, row, i, row.median.cpuMsPerOutputToken);
    add(`${c} concurrent: ITL p99 ms`, row, i, row.median.itlP99Ms);
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `${r.model.name}: chatmirror against llama.cpp on this machine`,
      subtitle: `${r.prompt.ids.length} prompt tokens, ${r.scenario.newTokens} new, greedy; medians of ${r.scenario.repeats}; ${r.timestamp}`,
    },
    data: { values: points },
    facet: { field: 'panel', type: 'nominal', title: null, sort: [...new Set(points.map((p) => p.panel))] },
    columns: 2,
    spec: {
      width: 260,
      mark: { type: 'bar' },
      encoding: {
        y: {
          field: 'row',
          type: 'nominal',
          title: null,
          sort: { field: 'order' },
          axis: { labelLimit: 220 },
        },
        x: { field: 'value', type: 'quantitative', title: null },
        color: {
          field: 'system',
          type: 'nominal',
          legend: null,
          // chatmirror in one colour, in process and served; llama.cpp in another, throughout.
          scale: {
            domain: [
              'chatmirror engine',
              'chatmirror serve',
              'raw onnxruntime loop',
              'Transformers.js',
              'llama.cpp',
            ],
            range: ['#f58518', '#f58518', '#54a24b', '#4c78a8', '#72b7b2'],
          },
        },
      },
    },
    resolve: { scale: { x: 'independent', y: 'independent' } },
  };
}
