/**
 * The incremental detokenizer on the bundled model's tokenizer, whose byte-fallback tokens split one character
 * across several tokens ('€' is three): generation that stops mid-character must not end in U+FFFD.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { IncrementalDetokenizer } from '../../../service/engine/detokenizer.js';
import { loadModelFiles } from '../../../service/engine/model-files.js';
import { TextTokenizer } from '../../../service/engine/tokenizer.js';
import { TINY_MODEL_DIR } from '../../helpers/model.js';

let tokenizer: TextTokenizer;
beforeAll(async () => {
  const files = await loadModelFiles(TINY_MODEL_DIR);
  tokenizer = new TextTokenizer(files.tokenizerJson, files.tokenizerConfig);
});

/** Pushes every id and flushes; returns the deltas and the flushed text. */
function run(ids: number[]): { text: string; flushed: string } {
  const detokenizer = new IncrementalDetokenizer(tokenizer, tokenizer.encode('Hello', false));
  let text = '';
  for (const id of ids) text += detokenizer.push(id);
  const flushed = detokenizer.flush();
  return { text: text + flushed, flushed };
}

describe('IncrementalDetokenizer', () => {
  it('a character split across tokens comes out whole once its last byte arrives', () => {
    const euro = tokenizer.encode('€', false);
    expect(euro.length).toBeGreaterThan(1);
    expect(run(euro).text).toBe('€');
  });

  it('drops an incomplete trailing character at the end instead of flushing U+FFFD', () => {
    const euro = tokenizer.encode('€', false);
    const said = tokenizer.encode(' said', false);
    for (let cut = 1; cut < euro.length; cut++) {
      const { text, flushed } = run([...said, ...euro.slice(0, cut)]);
      expect(text).not.toContain('\uFFFD');
      expect(flushed).toBe('');
      expect(text).toBe(tokenizer.decode(said));
    }
  });

  it('still flushes complete text that was held back', () => {
    const ids = tokenizer.encode(' 日本', false);
    expect(run(ids).text).toBe(tokenizer.decode(ids));
  });
});
