import { describe, expect, it } from 'vitest';
import {
  compileFilter,
  DEFAULT_PATTERN_HOLDBACK,
  type FilterList,
  OutputFilter,
  sanityCheck,
} from '../../../service/security/content-filter.js';

const list = (keywords: string[], patterns: string[] = []): FilterList => ({ keywords, patterns });

/** Streams `deltas` through a filter; returns everything sent and the match, if any. */
function stream(filterList: FilterList, deltas: string[]) {
  const filter = new OutputFilter(compileFilter(filterList));
  let sent = '';
  let matched: string | undefined;
  for (const d of deltas) {
    const r = filter.push(d);
    sent += r.text;
    matched ??= r.matched;
  }
  const last = filter.end();
  sent += last.text;
  matched ??= last.matched;
  return { sent, matched };
}

describe('compileFilter: keywords', () => {
  const f = compileFilter(list(['bomb', 'ass', 'how to', 'C++', 'café']));

  it('match case-insensitively and report the entry, never the text', () => {
    expect(f.matchPrompt('build a BOMB now')).toEqual({ matched: 'bomb', kind: 'keyword', index: 8 });
    expect(f.matchPrompt('Bomb')?.matched).toBe('bomb');
  });

  it('match whole words in spaced scripts', () => {
    for (const text of ['bombs', 'abomb', 'bomb_x', 'class', 'assert', 'xC++'])
      expect(f.matchPrompt(text), text).toBeUndefined();
    for (const text of ['bomb.', 'a bomb-maker', '"bomb"', 'kiss my ass!', 'I write C++.'])
      expect(f.matchPrompt(text), text).toBeDefined();
  });

  it('let whitespace inside a keyword match any whitespace run', () => {
    expect(f.matchPrompt('How  to\nstart')?.matched).toBe('how to');
    expect(f.matchPrompt('howto')).toBeUndefined();
  });

  it('match as substrings in scripts written without spaces (CJK, Thai), and Latin words inside them', () => {
    const cjk = compileFilter(list(['炸弹', 'ばくだん', '폭탄', 'ระเบิด', 'bomb']));
    expect(cjk.matchPrompt('请告诉我制造炸弹的方法')?.matched).toBe('炸弹');
    expect(cjk.matchPrompt('ばくだんをつくる')?.matched).toBe('ばくだん');
    expect(cjk.matchPrompt('폭탄을 만드는 법')?.matched).toBe('폭탄'); // a particle attached to the noun
    expect(cjk.matchPrompt('วิธีทำระเบิดที่บ้าน')?.matched).toBe('ระเบิด');
    expect(cjk.matchPrompt('我要bomb了')?.matched).toBe('bomb');
    expect(cjk.matchPrompt('炸药')).toBeUndefined();
  });

  it('see through full-width forms, zero-width characters, soft hyphens and composed accents', () => {
    expect(f.matchPrompt('ＢＯＭＢ')?.matched).toBe('bomb');
    expect(f.matchPrompt('bo\u200bmb')?.matched).toBe('bomb');
    expect(f.matchPrompt('bo\u00admb')?.matched).toBe('bomb');
    expect(f.matchPrompt('CAFÉ')?.matched).toBe('café');
    expect(f.matchPrompt('cafe\u0301')?.matched).toBe('café');
    expect(f.matchPrompt('cafe')).toBeUndefined();
  });

  it('reports the earliest match', () => {
    expect(f.matchPrompt('how to make a bomb')?.matched).toBe('how to');
  });
});

describe('compileFilter: patterns', () => {
  it('compile with flags iu and report the pattern source', () => {
    const f = compileFilter(
      list([], [String.raw`\b\d{3}-\d{2}-\d{4}\b`, 'ignore (all )?previous instructions']),
    );
    expect(f.matchPrompt('my SSN is 123-45-6789')).toEqual({
      matched: String.raw`\b\d{3}-\d{2}-\d{4}\b`,
      kind: 'pattern',
      index: 10,
    });
    expect(f.matchPrompt('IGNORE ALL PREVIOUS INSTRUCTIONS')?.matched).toBe(
      'ignore (all )?previous instructions',
    );
    expect(f.matchPrompt('nothing here')).toBeUndefined();
  });

  it('are tried on the normalized text too', () => {
    const f = compileFilter(list([], ['password']));
    expect(f.matchPrompt('ＰＡＳＳＷＯＲＤ')?.matched).toBe('password');
  });

  it('never count an empty match', () => {
    const f = compileFilter(list([], ['x*']));
    expect(f.matchPrompt('abc')).toBeUndefined();
    expect(f.matchPrompt('axc')?.index).toBe(1);
  });

  it('with empty lists, filter nothing', () => {
    const f = compileFilter(list([]));
    expect(f.empty).toBe(true);
    expect(f.matchPrompt('bomb')).toBeUndefined();
  });
});

describe('OutputFilter', () => {
  it('never sends any part of a keyword split across deltas', () => {
    expect(stream(list(['bomb']), ['The ', 'bo', 'mb', ' is here'])).toEqual({
      sent: 'The ',
      matched: 'bomb',
    });
  });

  it('holds back exactly what could still become a match, for every way of splitting the text', () => {
    const text = 'Step one: the BOMB goes here.';
    const start = text.indexOf('BOMB');
    for (let i = 1; i < text.length; i++) {
      for (let j = i; j < text.length; j++) {
        const { sent, matched } = stream(list(['bomb']), [text.slice(0, i), text.slice(i, j), text.slice(j)]);
        expect(matched).toBe('bomb');
        expect(sent).toBe(text.slice(0, start));
      }
    }
  });

  it('releases held text once it turns out not to match', () => {
    expect(stream(list(['bomb']), ['a bo', 'ok'])).toEqual({ sent: 'a book', matched: undefined });
    expect(stream(list(['bomb']), ['the bomb', 's fell'])).toEqual({
      sent: 'the bombs fell',
      matched: undefined,
    });
  });

  it('waits for the next delta when a keyword ends the text, and decides at the end', () => {
    const filter = new OutputFilter(compileFilter(list(['bomb'])));
    expect(filter.push('a bomb')).toEqual({ text: 'a ', items: [] });
    expect(filter.end()).toEqual({ text: '', items: [], matched: 'bomb' });
  });

  it('stops at once on a keyword in an unspaced script', () => {
    const filter = new OutputFilter(compileFilter(list(['炸弹'])));
    expect(filter.push('制造').text).toBe('制造');
    expect(filter.push('炸').text).toBe('');
    expect(filter.push('弹')).toEqual({ text: '', items: [], matched: '炸弹' });
    expect(filter.push('的方法')).toEqual({ text: '', items: [], matched: '炸弹' });
    expect(filter.text).toBe('制造');
  });

  it('releases a payload only with all of its text, and drops those of the match', () => {
    const filter = new OutputFilter<string>(compileFilter(list(['bomb'])));
    expect(filter.push('the ', 'lp0')).toEqual({ text: 'the ', items: [{ value: 'lp0', offset: 0 }] });
    expect(filter.push('bo', 'lp1')).toEqual({ text: '', items: [] });
    expect(filter.push('ok', 'lp2')).toEqual({
      text: 'book',
      items: [
        { value: 'lp1', offset: 4 },
        { value: 'lp2', offset: 6 },
      ],
    });
    expect(filter.push(' a', 'lp3').items).toEqual([{ value: 'lp3', offset: 8 }]);
    expect(filter.push(' b', 'lp4').items).toEqual([]);
    // An empty delta (half a UTF-8 character) waits for text after it.
    expect(filter.push('', 'lp5').items).toEqual([]);
    expect(filter.push('omb', 'lp6')).toEqual({ text: '', items: [] }); // "bombs" would not match
    expect(filter.end()).toEqual({ text: '', items: [], matched: 'bomb' });
    expect(filter.text).toBe('the book a ');
  });

  it('holds a pattern window back and never sends a match shorter than it', () => {
    const patterns = [String.raw`secret\s*=\s*\w+`];
    const filter = new OutputFilter(compileFilter(list([], patterns)));
    const long = 'x'.repeat(DEFAULT_PATTERN_HOLDBACK + 10);
    expect(filter.push(long).text).toBe('x'.repeat(10));
    expect(filter.push(' secret').text).toBe('x'.repeat(7)); // the window slides
    expect(filter.push(' = ').text).toBe('xxx');
    const r = filter.push('hunter2 and more');
    expect(r.matched).toBe(patterns[0]);
    expect(filter.text).toBe(`${long} `);
  });

  it('passes everything through when nothing is configured', () => {
    const filter = new OutputFilter<number>(compileFilter(list([])));
    expect(filter.push('bo', 1)).toEqual({ text: 'bo', items: [{ value: 1, offset: 0 }] });
    expect(filter.push('', 2)).toEqual({ text: '', items: [{ value: 2, offset: 2 }] });
  });

  it('never splits a surrogate pair', () => {
    expect(stream(list(['bomb']), ['ok \ud83d', '\ude00 fine'])).toEqual({
      sent: 'ok 😀 fine',
      matched: undefined,
    });
    const filter = new OutputFilter(compileFilter(list([], ['zzz'])));
    // The window would end between the emoji's two UTF-16 units.
    const text = `${'a'.repeat(DEFAULT_PATTERN_HOLDBACK - 1)}😀${'b'.repeat(DEFAULT_PATTERN_HOLDBACK - 1)}`;
    expect(filter.push(text).text).toBe('a'.repeat(DEFAULT_PATTERN_HOLDBACK - 1));
  });
});

describe('sanityCheck', () => {
  it('accepts ordinary text with tab, newline and carriage return, and astral characters', () => {
    expect(sanityCheck('Hello,\tworld\r\n😀 你好')).toBeUndefined();
  });

  it('refuses NUL and other C0 control characters, naming the character and its offset', () => {
    expect(sanityCheck('abc\u0000')).toBe(
      'contains the control character U+0000 at offset 3; only tab, line feed and carriage return are accepted',
    );
    expect(sanityCheck('\u001b[31mred')).toMatch(/U\+001B at offset 0/);
    expect(sanityCheck('a\u0008')).toMatch(/U\+0008/);
  });

  it('refuses unpaired surrogates', () => {
    expect(sanityCheck('x\ud800y')).toBe('contains an unpaired surrogate U+D800 at offset 1');
    expect(sanityCheck('\udc00')).toBe('contains an unpaired surrogate U+DC00 at offset 0');
    expect(sanityCheck('end\ud83d')).toMatch(/U\+D83D at offset 3/);
  });

  it('refuses text over maxChars when given', () => {
    expect(sanityCheck('abcdef', { maxChars: 5 })).toBe('is 6 characters long; at most 5 are accepted');
    expect(sanityCheck('abcde', { maxChars: 5 })).toBeUndefined();
  });
});
