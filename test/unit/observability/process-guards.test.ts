/**
 * The process-level unhandledRejection logger, in a child process of its own (vitest's worker has its own
 * handler, which would hide what Node does by default: exit).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const guards = fileURLToPath(new URL('../../../service/observability/process-guards.ts', import.meta.url));
const metrics = fileURLToPath(new URL('../../../service/observability/metrics.ts', import.meta.url));

describe('logUnhandledRejections', () => {
  it('logs and counts a rejection nothing handled, and the process lives on', () => {
    const script = `
      const { logUnhandledRejections } = await import(${JSON.stringify(guards)});
      const { createMetrics } = await import(${JSON.stringify(metrics)});
      const m = createMetrics();
      const lines = [];
      logUnhandledRejections({ error: (obj, msg) => lines.push({ message: obj.err.message, msg }) },
        m.unhandledRejections);
      Promise.reject(new Error('nobody caught me'));
      setTimeout(async () => {
        const scrape = await m.scrape();
        console.log(JSON.stringify({ lines, counted: /chatmirror_unhandled_rejections_total 1/.test(scrape) }));
      }, 50);
    `;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(child.stderr).toBe('');
    expect(child.status).toBe(0);
    expect(JSON.parse(child.stdout.trim())).toEqual({
      lines: [{ message: 'nobody caught me', msg: expect.stringMatching(/^unhandled promise rejection/) }],
      counted: true,
    });
  });
});
