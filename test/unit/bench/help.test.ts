/**
 * `chatmirror bench --help`, `bench report --help`, and a bad flag: through bench() itself, and through the real
 * command line (`node --import tsx service/cli.ts`, as `npx chatmirror` runs it), where a UsageError is printed
 * with the usage and exits 2.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { bench } from '../../../service/bench/bench.js';

const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));

function streams() {
  const out: string[] = [];
  const err: string[] = [];
  const io = {
    out: { write: (t: string) => out.push(t) },
    err: { write: (t: string) => err.push(t), isTTY: false } as unknown as NodeJS.WriteStream,
  };
  return { out, err, io };
}

function chatmirror(argv: string[]) {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'service/cli.ts', ...argv], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, CHATMIRROR_TOKEN: '' },
  });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('bench --help', () => {
  it('prints the options and an example on stdout', async () => {
    const s = streams();
    expect(await bench(['--help'], s.io)).toBeUndefined();
    const help = s.out.join('');
    for (const flag of [
      '--url',
      '--rate',
      '--max-concurrency',
      '--slo',
      '--chart',
      '--token-file',
      'Example',
    ])
      expect(help).toContain(flag);
    expect(help).toContain('$CHATMIRROR_TOKEN');
    expect(s.err).toEqual([]);
  });

  it('bench report --help prints its own usage', async () => {
    const s = streams();
    await bench(['report', '--help'], s.io);
    expect(s.out.join('')).toMatch(/^usage:\n {2}chatmirror bench report HISTORY/);
    expect(s.out.join('')).toContain('Example');
  });

  it.each([
    [['--bogus'], "Unknown option '--bogus'"],
    [['report', '--bogus', 'x'], "Unknown option '--bogus'"],
    [['report'], 'bench report needs a HISTORY directory or file'],
  ])('%j is a usage error (exit 2)', async (argv, message) => {
    const s = streams();
    await expect(bench(argv, s.io)).rejects.toMatchObject({ exitCode: 2, message });
    expect(s.out).toEqual([]);
  });

  it('on the command line: --help exits 0, a bad flag exits 2 with the usage', () => {
    const help = chatmirror(['bench', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage:\n {2}chatmirror bench --url URL/);
    const report = chatmirror(['bench', 'report', '-h']);
    expect(report.code).toBe(0);
    expect(report.stdout).toContain('chatmirror bench report HISTORY');
    const bad = chatmirror([
      'bench',
      '--url',
      'http://x',
      '--model',
      'm',
      '--rate',
      'fast',
      '--requests',
      '1',
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(
      /chatmirror bench: --rate must be .*\n\nusage:\n {2}chatmirror bench --url URL/,
    );
  });
});
