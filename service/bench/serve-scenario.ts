/**
 * `npm run bench:serve`: the standard scenario on this machine, from a fresh clone. Starts the real server on
 * the bundled model (local-server.ts: HTTPS, the development token, its own cache under a temporary directory),
 * runs `chatmirror bench` against it, prints the table, and writes results/bench-serve.{json,md,svg} with the
 * machine described beside the figures (CPUs, their model, the load average before and after), since on a shared
 * machine the figures mean little without it. Committing the files keeps one result set for comparison; a later
 * run shows as a diff against it.
 *
 *   npm run bench:serve [-- --concurrency 1,2 ...]   # extra flags override the scenario's
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseBenchArgs } from './args.js';
import { failure, runBench, writeOutputs } from './bench.js';
import { startLocalServer } from './local-server.js';
import { describeMachine } from './machine.js';
import { renderTable } from './output.js';
import { createProgress } from './progress.js';

const RESULTS = fileURLToPath(new URL('../../results', import.meta.url));

/** The scenario: a closed-loop sweep; each level long enough for a stable median on 2 busy cores. */
export const STANDARD_SCENARIO = [
  '--concurrency',
  '1,2,4,8',
  '--requests',
  '128',
  '--warmup',
  '8',
  '--input-tokens',
  '32',
  '--max-tokens',
  '32',
  '--seed',
  '0',
];

async function main(extra: string[]): Promise<void> {
  const cache = await mkdtemp(join(tmpdir(), 'chatmirror-bench-serve-'));
  const server = await startLocalServer({ cache });
  try {
    await mkdir(RESULTS, { recursive: true });
    const options = parseBenchArgs([
      '--url',
      server.url,
      '--model',
      server.model,
      '--ca-file',
      server.caFile,
      ...STANDARD_SCENARIO,
      '--json',
      join(RESULTS, 'bench-serve.json'),
      '--markdown',
      join(RESULTS, 'bench-serve.md'),
      '--chart',
      join(RESULTS, 'bench-serve.svg'),
      ...extra,
    ])!;
    const loadBefore = loadavg();
    const report = await runBench(options, {
      env: { CHATMIRROR_TOKEN: server.token },
      progress: createProgress(options.progress),
    });
    report.machine = describeMachine(loadBefore);
    process.stdout.write(renderTable(report));
    process.stdout.write(
      `machine: ${Object.entries(report.machine)
        .map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(' ') : v}`)
        .join('; ')}\n`,
    );
    await writeOutputs(options, report, process.stdout);
    const problem = failure(report);
    if (problem !== undefined) throw new Error(problem);
  } finally {
    await server.stop();
    await rm(cache, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).catch((err: Error & { exitCode?: number }) => {
  process.stderr.write(`bench:serve: ${err.message}\n`);
  process.exitCode = err.exitCode ?? 1;
});
