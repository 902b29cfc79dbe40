/**
 * `chatmirror bench`: the scheduled benchmark (infra/render/benchmarks.ts runs it from a systemd timer). For each
 * concurrency level c, c clients share N streamed chat completions; each level is summarised (stats.ts), printed
 * as a table, and optionally written as a JSON history document and as Prometheus text. Fails (exit 1) when the
 * endpoint cannot be reached or a level has no successful request; the outputs are still written first, so the
 * history records the failed run (and the textfile then carries no last-success sample).
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { CommandOutput } from '../security/auth/commands.js';
import { UsageError } from '../security/auth/commands.js';
import { type BenchOptions, parseBenchArgs } from './args.js';
import { createAgent, type RequestResult, streamChat } from './client.js';
import { type BenchReport, renderTable, renderTextfile, writeHistory } from './output.js';
import { summarise } from './stats.js';

export { BENCH_USAGE } from './args.js';
export type { BenchReport } from './output.js';

/** Runs each level in turn (stopping after one that got no response at all) and returns the report; throws only for unreadable files. */
export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const token = options.tokenFile === undefined ? undefined : await readToken(options.tokenFile);
  const ca = options.caFile === undefined ? undefined : await readFlagFile('ca-file', options.caFile);
  const endpoint = new URL(`${options.url}/v1/chat/completions`);
  const report: BenchReport = {
    url: options.url,
    model: options.model,
    timestamp: new Date().toISOString(),
    maxTokens: options.maxTokens,
    requestsPerLevel: options.requests,
    ok: true,
    levels: [],
  };
  for (const concurrency of options.concurrency) {
    const agent = createAgent(endpoint, { ca, maxSockets: concurrency });
    const results: RequestResult[] = [];
    let next = 0;
    const client = async () => {
      while (next < options.requests) {
        next += 1;
        results.push(
          await streamChat({ endpoint, model: options.model, maxTokens: options.maxTokens, token, agent }),
        );
      }
    };
    const started = performance.now();
    try {
      await Promise.all(Array.from({ length: Math.min(concurrency, options.requests) }, client));
    } finally {
      agent.destroy();
    }
    const level = summarise(concurrency, results, (performance.now() - started) / 1000);
    report.levels.push(level);
    if (level.successes === 0) report.ok = false;
    // No response at all: the endpoint is unreachable, and the other levels would only repeat that.
    if (level.responded === 0) break;
  }
  return report;
}

/** The command: parse, run, print, write, then fail if the run did. */
export async function bench(argv: string[], out: CommandOutput = process.stdout): Promise<BenchReport> {
  const options = parseBenchArgs(argv);
  const report = await runBench(options);
  out.write(renderTable(report));
  if (options.jsonDir !== undefined) {
    out.write(`wrote ${await writeHistory(options.jsonDir, report)}\n`);
  }
  if (options.textfile !== undefined) {
    await writeFile(options.textfile, renderTextfile(report));
    out.write(`wrote ${options.textfile}\n`);
  }
  const problem = failure(report);
  if (problem !== undefined) throw new Error(problem);
  return report;
}

/** Why the run failed, naming the level and its most frequent error; undefined when it did not. */
export function failure(report: BenchReport): string | undefined {
  const endpoint = `${report.url}/v1/chat/completions`;
  const level = report.levels.find((l) => l.successes === 0);
  if (level === undefined) return undefined;
  const reason = level.errors[0]?.error ?? 'no requests';
  return level.responded === 0
    ? `cannot reach ${endpoint}: ${reason}`
    : `concurrency ${level.concurrency}: all ${level.requests} requests to ${endpoint} failed (${reason})`;
}

async function readToken(file: string): Promise<string> {
  const token = (await readFlagFile('token-file', file)).toString('utf8').trim();
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
