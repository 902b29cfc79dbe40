import { describe, expect, it } from 'vitest';
import { StopMatcher } from '../../../service/engine/stopping.js';

function run(stops: string[], pieces: string[]) {
  const m = new StopMatcher(stops);
  let out = '';
  for (const p of pieces) {
    const { emit, stopped } = m.push(p);
    out += emit;
    if (stopped !== undefined) return { out, stopped };
  }
  return { out: out + m.flush(), stopped: undefined };
}

describe('StopMatcher', () => {
  it('passes text through when there are no stops', () => {
    expect(run([], ['a', 'b'])).toEqual({ out: 'ab', stopped: undefined });
  });

  it('matches a stop split across tokens and never emits any of it', () => {
    const m = new StopMatcher(['END']);
    expect(m.push('hello E')).toEqual({ emit: 'hello ' });
    expect(m.push('N')).toEqual({ emit: '' });
    expect(m.push('D tail')).toEqual({ emit: '', stopped: 'END' });
  });

  it('releases held text when the prefix turns out not to be a stop', () => {
    const m = new StopMatcher(['END']);
    expect(m.push('xE')).toEqual({ emit: 'x' });
    expect(m.push('Nx')).toEqual({ emit: 'ENx' });
  });

  it('stops at the earliest of several stops', () => {
    expect(run(['b', 'a'], ['xxab'])).toEqual({ out: 'xx', stopped: 'a' });
  });

  it('flushes a held prefix when generation ends for another reason', () => {
    expect(run(['\n\n'], ['line\n'])).toEqual({ out: 'line\n', stopped: undefined });
  });

  it('handles multi-byte characters in stops', () => {
    expect(run(['。'], ['你好', '。再见'])).toEqual({ out: '你好', stopped: '。' });
  });
});
