/** `chatmirror bench --help`, `bench report --help`, and a bad flag: usage on the right stream, exit 2. */
import { describe, expect, it } from 'vitest';
import { bench } from '../../../service/bench/bench.js';

function streams() {
  const out: string[] = [];
  const err: string[] = [];
  const io = {
    out: { write: (t: string) => out.push(t) },
    err: { write: (t: string) => err.push(t), isTTY: false } as unknown as NodeJS.WriteStream,
  };
  return { out, err, io };
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
    [['--bogus'], "Unknown option '--bogus'", 'chatmirror bench --url URL'],
    [['report', '--bogus', 'x'], "Unknown option '--bogus'", 'chatmirror bench report HISTORY'],
    [['report'], 'bench report needs a HISTORY directory or file', 'chatmirror bench report HISTORY'],
  ])('%j exits 2 with the usage on stderr', async (argv, message, usage) => {
    const s = streams();
    await expect(bench(argv, s.io)).rejects.toMatchObject({ exitCode: 2, message });
    expect(s.err.join('')).toContain(usage);
    expect(s.out).toEqual([]);
  });
});
