/**
 * `npm run bench:serve` end to end: the real `chatmirror serve` process on the bundled model over HTTPS with its
 * development token, the scenario (shortened by flags, which override it), the table on stdout, and the JSON
 * (with the machine described), Markdown and SVG files (sent to a temporary directory rather than results/).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { BenchReport } from '../../service/bench/output.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('npm run bench:serve', () => {
  it('starts the server, runs the scenario, prints the table and writes JSON, Markdown and the chart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chatmirror-bench-serve-test-'));
    const files = { json: join(dir, 'r.json'), markdown: join(dir, 'r.md'), chart: join(dir, 'r.svg') };
    const run = spawnSync(
      process.execPath,
      [
        ...['--import', 'tsx', 'service/bench/serve-scenario.ts'],
        ...['--concurrency', '1,2', '--requests', '4', '--warmup', '1', '--progress', 'none'],
        ...['--json', files.json, '--markdown', files.markdown, '--chart', files.chart],
      ],
      { cwd: REPO_ROOT, encoding: 'utf8', timeout: 180_000 },
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^tiny-llama at https:\/\/127\.0\.0\.1:\d+ \(chat\), concurrency 1, 2/m);
    expect(run.stdout).toMatch(/^c=2\s+4\s+4\s+0\s/m);
    expect(run.stdout).toMatch(/^machine: nproc \d+; cpu /m);
    const report = JSON.parse(await readFile(files.json, 'utf8')) as BenchReport;
    expect(report.levels.map((l) => [l.load, l.completed])).toEqual([
      [{ concurrency: 1 }, 4],
      [{ concurrency: 2 }, 4],
    ]);
    expect(report.machine).toMatchObject({ nproc: expect.any(Number), cpu: expect.any(String) });
    expect(report.machine!.loadAverageBefore).toHaveLength(3);
    expect(await readFile(files.markdown, 'utf8')).toContain('Machine: nproc ');
    expect(await readFile(files.chart, 'utf8')).toMatch(/^<svg /);
    await rm(dir, { recursive: true, force: true });
  }, 200_000);
});
