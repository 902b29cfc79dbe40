/**
 * `chatmirror bench`: measures an OpenAI-compatible endpoint at each load level in turn (load.ts), after a
 * warmup; summarises each level as vLLM does (stats.ts); prints a table and writes JSON, Markdown, an SVG
 * chart, a history document and Prometheus text as asked. `chatmirror bench report` reads histories (report.ts).
 *
 * Exit status: 2 for bad usage (the CLI prints the usage), 1 when the endpoint cannot be reached or a level has
 * no successful request, 3 when a level misses --slo. The outputs are written before either failure, so the
 * history records the failed run (and the textfile then carries no last-success sample).
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { CommandOutput } from '../security/auth/commands.js';
import { UsageError } from '../security/auth/commands.js';
import { BENCH_HELP, type BenchOptions, type LoadShape, parseBenchArgs } from './args.js';
import { renderSvg, runChartSpec } from './chart.js';
import { API_PATHS, createAgent, type RequestTarget, streamCompletion } from './client.js';
import { type LevelShape, runLevel } from './load.js';
import {
  type BenchReport,
  REPORT_VERSION,
  renderMarkdown,
  renderTable,
  renderTextfile,
  reportJson,
  writeAtomically,
  writeHistory,
} from './output.js';
import { createProgress, type Progress } from './progress.js';
import { promptPicker } from './prompts.js';
import { report as historyReport } from './report.js';
import { type LevelResult, loadLabel, summarise } from './stats.js';

export { BENCH_USAGE } from './args.js';
export type { BenchReport } from './output.js';

/** An SLO miss: exit 3, so a pipeline can tell it from a broken run (1) and bad usage (2). */
export class SloMissedError extends Error {
  readonly exitCode = 3;
}

export interface BenchIo {
  out?: CommandOutput;
  /** Progress and usage go here (stderr), apart from the results. */
  err?: NodeJS.WriteStream;
  env?: NodeJS.ProcessEnv;
}

/** Runs the warmup, then each level in turn (stopping after one that got no response at all). */
export async function runBench(
  options: BenchOptions,
  io: { env?: NodeJS.ProcessEnv; progress?: Progress } = {},
): Promise<BenchReport> {
  const token = await bearerToken(options.tokenFile, io.env ?? process.env);
  const ca = options.caFile === undefined ? undefined : await readFlagFile('ca-file', options.caFile);
  const pick = await promptPicker(options.prompts, options.seed);
  const endpoint = new URL(`${options.url}${API_PATHS[options.api]}`);
  const progress = io.progress ?? createProgress('none');
  const report: BenchReport = {
    version: REPORT_VERSION,
    url: options.url,
    api: options.api,
    model: options.model,
    timestamp: new Date().toISOString(),
    scenario: {
      load: describeLoad(options.load),
      stop: options.stop,
      warmup: options.warmup,
      prompts: options.prompts,
      maxTokens: options.maxTokens,
      ignoreEos: options.ignoreEos,
      seed: options.seed,
      slo: options.slo,
      sloAttainment: Object.keys(options.slo).length > 0 ? options.sloAttainment : null,
    },
    ok: true,
    sloMet: Object.keys(options.slo).length > 0 ? true : null,
    levels: [],
  };
  const target = (maxSockets: number): RequestTarget => ({
    api: options.api,
    endpoint,
    model: options.model,
    maxTokens: options.maxTokens,
    ignoreEos: options.ignoreEos,
    token,
    agent: createAgent(endpoint, { ca, maxSockets }),
  });
  // Prompt numbers run on across the warmup and the levels, so no two requests of a run share a prompt.
  let promptIndex = 0;

  if (options.warmup > 0) {
    const warm = target(1);
    try {
      progress.start('warmup', { requests: options.warmup });
      for (let i = 0; i < options.warmup; i += 1) {
        const result = await streamCompletion(warm, pick(promptIndex++).text);
        progress.done(result.ok);
      }
    } finally {
      progress.end();
      warm.agent.destroy();
    }
  }

  for (const shape of levelShapes(options.load)) {
    const t = target(shape.kind === 'concurrency' ? shape.concurrency : (shape.maxConcurrency ?? 1024));
    const load = levelLoad(shape);
    const base = promptIndex;
    let run: Awaited<ReturnType<typeof runLevel>>;
    try {
      progress.start(loadLabel(load), options.stop);
      run = await runLevel({
        shape,
        stop: options.stop,
        seed: options.seed,
        send: (i) => {
          promptIndex = Math.max(promptIndex, base + i + 1);
          return streamCompletion(t, pick(base + i).text);
        },
        onResult: (r) => progress.done(r.ok),
      });
    } finally {
      progress.end();
      t.agent.destroy();
    }
    const level = summarise(load, run.results, run.durationSeconds, {
      slo: options.slo,
      maxInFlight: run.maxInFlight,
    });
    report.levels.push(level);
    if (level.completed === 0) report.ok = false;
    if (level.sloAttainment !== null && level.sloAttainment < options.sloAttainment) report.sloMet = false;
    // No response at all: the endpoint is unreachable, and the other levels would only repeat that.
    if (level.responded === 0) break;
  }
  return report;
}

/** The command: `report` or a run; parse, run, print, write, then fail if the run did. */
export async function bench(argv: string[], io: BenchIo = {}): Promise<BenchReport | undefined> {
  const out = io.out ?? process.stdout;
  const err = io.err ?? process.stderr;
  if (argv[0] === 'report') {
    await historyReport(argv.slice(1), out);
    return undefined;
  }
  // A UsageError goes up to the CLI, which prints it with BENCH_USAGE and exits 2 (service/cli-run.ts).
  const options = parseBenchArgs(argv);
  if (options === undefined) {
    out.write(BENCH_HELP);
    return undefined;
  }
  const report = await runBench(options, { env: io.env, progress: createProgress(options.progress, err) });
  out.write(renderTable(report));
  await writeOutputs(options, report, out);
  const problem = failure(report);
  if (problem !== undefined) throw new Error(problem);
  if (report.sloMet === false) throw new SloMissedError(sloFailure(report));
  return report;
}

export async function writeOutputs(
  options: BenchOptions,
  report: BenchReport,
  out: CommandOutput,
): Promise<void> {
  const written: string[] = [];
  if (options.json !== undefined) {
    await writeAtomically(options.json, reportJson(report));
    written.push(options.json);
  }
  if (options.markdown !== undefined) {
    await writeAtomically(options.markdown, renderMarkdown(report));
    written.push(options.markdown);
  }
  if (options.chart !== undefined) {
    await writeAtomically(options.chart, await renderSvg(runChartSpec(report)));
    written.push(options.chart);
  }
  if (options.jsonDir !== undefined) written.push(await writeHistory(options.jsonDir, report));
  if (options.textfile !== undefined) {
    // Not renamed here: the timer's ExecStartPost moves it over the live file (infra/render/benchmarks.ts).
    await writeFile(options.textfile, renderTextfile(report));
    written.push(options.textfile);
  }
  for (const file of written) out.write(`wrote ${file}\n`);
}

/** Why the run failed, naming the level and its most frequent error; undefined when it did not. */
export function failure(report: BenchReport): string | undefined {
  const endpoint = `${report.url}${API_PATHS[report.api]}`;
  const level = report.levels.find((l) => l.completed === 0);
  if (level === undefined) return undefined;
  const reason = level.errors[0]?.error ?? 'no requests';
  return level.responded === 0
    ? `cannot reach ${endpoint}: ${reason}`
    : `${loadLabel(level.load)}: all ${level.requests} requests to ${endpoint} failed (${reason})`;
}

function sloFailure(report: BenchReport): string {
  const want = report.scenario.sloAttainment ?? 1;
  const missed = report.levels
    .filter((l) => (l.sloAttainment ?? 1) < want)
    .map((l) => `${loadLabel(l.load)} ${((l.sloAttainment ?? 0) * 100).toFixed(1)}%`);
  return `SLO missed: fewer than ${(want * 100).toFixed(1)}% of requests met it at ${missed.join(', ')}`;
}

function levelShapes(load: LoadShape): LevelShape[] {
  return load.kind === 'concurrency'
    ? load.levels.map((concurrency) => ({ kind: 'concurrency', concurrency }))
    : load.levels.map((rate) => ({
        kind: 'rate',
        rate,
        burstiness: load.burstiness,
        maxConcurrency: load.maxConcurrency,
      }));
}

function levelLoad(shape: LevelShape): LevelResult['load'] {
  if (shape.kind === 'concurrency') return { concurrency: shape.concurrency };
  return {
    rate: Number.isFinite(shape.rate) ? shape.rate : null,
    maxConcurrency: shape.maxConcurrency ?? null,
    burstiness: shape.burstiness,
  };
}

function describeLoad(load: LoadShape): string {
  if (load.kind === 'concurrency') return `concurrency ${load.levels.join(', ')} (closed loop)`;
  const arrivals = load.burstiness === 1 ? 'Poisson' : `gamma (burstiness ${load.burstiness})`;
  const cap = load.maxConcurrency === undefined ? '' : `, at most ${load.maxConcurrency} in flight`;
  return `rate ${load.levels.map((r) => (Number.isFinite(r) ? r : 'inf')).join(', ')} req/s (${arrivals}${cap})`;
}

/** --token-file's first line, else $CHATMIRROR_TOKEN (what `chatmirror serve` tells the user to export). */
async function bearerToken(file: string | undefined, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  if (file === undefined) {
    const token = env.CHATMIRROR_TOKEN?.trim();
    return token === '' ? undefined : token;
  }
  const token = (await readFlagFile('token-file', file)).toString('utf8').split('\n')[0]!.trim();
  if (token === '') throw new UsageError(`--token-file ${file} is empty`);
  return token;
}

async function readFlagFile(flag: string, file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new UsageError(`--${flag}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
}
