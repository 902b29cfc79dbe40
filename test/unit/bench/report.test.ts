/** `bench report`: history documents of both versions → rows, and the table's change column. */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { historyRows, readHistory, renderHistory } from '../../../service/bench/report.js';
import { summarise } from '../../../service/bench/stats.js';

const legacy = {
  url: 'https://h:8443',
  model: 'm',
  timestamp: '2026-11-01T03:30:00.000Z',
  maxTokens: 64,
  requestsPerLevel: 2,
  ok: true,
  levels: [
    {
      concurrency: 1,
      requests: 2,
      successes: 2,
      failures: 0,
      responded: 2,
      wallSeconds: 2,
      outputTokens: 200,
      outputTokensPerSecond: 100,
      ttftP50: 0.1,
      ttftP95: 0.2,
      e2eP50: 1,
      e2eP99: 1.5,
      errors: [],
    },
  ],
};

function current(timestamp: string, outputTokens: number) {
  const level = summarise(
    { concurrency: 1 },
    [{ ok: true, status: 200, ttft: 0.1, e2e: 1, itl: [0.1], outputTokens, promptTokens: 10 }],
    1,
    { maxInFlight: 1 },
  );
  return { version: 2, model: 'm', timestamp, levels: [level] };
}

describe('bench report', () => {
  it('reads documents from before version 2 (seconds, concurrency at the top of a level)', () => {
    expect(historyRows(legacy, 'old.json')).toEqual([
      {
        timestamp: '2026-11-01T03:30:00.000Z',
        model: 'm',
        load: 'c=1',
        completed: 2,
        failed: 0,
        figures: { output_throughput: 100, ttft_median: 100, e2el_median: 1000, e2el_p99: 1500 },
      },
    ]);
  });

  it('orders a directory oldest first and shows the change against the previous run at a level', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chatmirror-report-'));
    await writeFile(join(dir, 'b.json'), JSON.stringify(current('2026-11-03T03:30:00.000Z', 80)));
    await writeFile(join(dir, 'a.json'), JSON.stringify(legacy));
    await writeFile(join(dir, '.c.json.123.tmp'), 'half a file');
    const rows = await readHistory([dir]);
    expect(rows.map((r) => r.timestamp)).toEqual(['2026-11-01T03:30:00.000Z', '2026-11-03T03:30:00.000Z']);
    const text = renderHistory(rows, 'output_throughput', 'text');
    expect(text.split('\n')[2]).toMatch(/^2026-11-03T03:30:00Z\s+c=1\s+1\s+0\s+80\.00\s.*-20\.0%$/);
    const md = renderHistory(rows, 'ttft_median', 'markdown');
    expect(md).toContain('| 2026-11-01T03:30:00Z | c=1 | 2 | 0 | 100.00 | - | 100.0 |');
    expect(md.trimEnd().endsWith('| +0.0% |')).toBe(true);
  });

  it('names a file that is not a bench document', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chatmirror-report-'));
    await writeFile(join(dir, 'x.json'), '{"hello": 1}');
    await expect(readHistory([dir])).rejects.toThrow(`${join(dir, 'x.json')} is not a bench JSON document`);
    await expect(readHistory([join(dir, 'absent')])).rejects.toThrow('cannot read');
  });
});
