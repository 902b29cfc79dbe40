/**
 * Deny-lists (`filters.prompt`, `filters.output`) and input sanity checks; no I/O, no clock.
 *
 * Matching. Text is compared in a normalized view: each code point NFKD-decomposed (full-width ｂｏｍｂ, ligatures
 * and precomposed accents compare equal to their plain forms) and default-ignorable code points (zero-width
 * spaces, soft hyphens, joiners) dropped, so they cannot be slipped inside a word. Keywords match
 * case-insensitively on whole words, where "word" depends on the script: at an edge whose character belongs to
 * a script written with spaces (Latin, Cyrillic, Greek…) the neighbour must not be a letter, digit or mark of
 * such a script, so `ass` does not match `class` yet `bomb` matches in `我要bomb了`; at an edge in a script
 * written without spaces (Han, kana, Hangul, Thai…) there is no boundary to require and the keyword matches
 * as a substring, which is the only workable meaning there (`炸弹` inside `制造炸弹的方法`; Korean particles
 * attach to nouns). Whitespace inside a keyword matches any run of whitespace. Patterns are compiled once with
 * flags `iu` and tried on both the text as written and the normalized view. A match reports the deny-list
 * entry that matched, never the text, so it is safe to log.
 */

export interface FilterList {
  keywords: readonly string[];
  patterns: readonly string[];
}

export interface FilterMatch {
  /** The deny-list entry that matched (a keyword, or a pattern's source); never the input text. */
  matched: string;
  kind: 'keyword' | 'pattern';
  /** Where the match starts in the text (UTF-16 offset). */
  index: number;
}

/** Scripts written without spaces between words: a keyword edge in one of these needs no boundary. */
const UNSPACED = String.raw`\p{sc=Han}\p{sc=Hiragana}\p{sc=Katakana}\p{sc=Hangul}\p{sc=Thai}\p{sc=Lao}\p{sc=Khmer}\p{sc=Myanmar}\p{sc=Tibetan}`;
const UNSPACED_CHAR = new RegExp(`[${UNSPACED}]`, 'u');
const WORD_CHAR = /[\p{L}\p{N}\p{M}_]/u;
/** A letter, digit, mark or underscore of a spaced script: what must not touch a bounded keyword edge. */
const SPACED_WORD = String.raw`(?:(?![${UNSPACED}])[\p{L}\p{N}\p{M}_])`;
const IGNORABLE = /\p{Default_Ignorable_Code_Point}/u;

/** Text as written plus the normalized view, built incrementally, with the source offsets of each view unit. */
class TextViews {
  raw = '';
  norm = '';
  /** Normalizing changed nothing so far (plain ASCII, say): a pattern need not be tried twice. */
  same = true;
  /** For each UTF-16 unit of `norm`: the offset in `raw` of the code point it came from. */
  private readonly starts: number[] = [];
  private consumed = 0;

  append(text: string, final: boolean): void {
    this.raw += text;
    const raw = this.raw;
    let i = this.consumed;
    while (i < raw.length) {
      const cp = raw.codePointAt(i)!;
      const width = cp > 0xffff ? 2 : 1;
      // A high surrogate at the very end may be half of a pair that the next delta completes.
      if (!final && width === 1 && cp >= 0xd800 && cp <= 0xdbff && i === raw.length - 1) break;
      const ch = raw.slice(i, i + width);
      const mapped = IGNORABLE.test(ch) ? '' : ch.normalize('NFKD');
      if (mapped !== ch) this.same = false;
      for (let k = 0; k < mapped.length; k++) this.starts.push(i);
      this.norm += mapped;
      i += width;
    }
    this.consumed = i;
  }

  /** Raw offset where view unit `j` starts (the raw end when `j` is past the view). */
  rawStart(j: number): number {
    return j < this.starts.length ? this.starts[j]! : this.consumed;
  }

  /** The first view unit that comes from raw offset `raw` or later. */
  viewIndex(raw: number): number {
    let lo = 0;
    let hi = this.starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.starts[mid]! < raw) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

interface Found {
  entry: string;
  kind: FilterMatch['kind'];
  /** Raw offsets. */
  start: number;
  /** It ends where the text ends and some continuation would undo it (a word boundary, a lookahead). */
  pending: boolean;
}

/**
 * Continuations tried on a match that ends where the text does: if it survives all of them it stands (`secret.*`,
 * a CJK keyword); if one undoes it (`\bbomb\b` followed by a letter) the next delta decides.
 */
const PROBES = [' ', 'a', '0', '\n'];

function escapeRegExp(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}

function normalizeKeyword(keyword: string): string {
  const views = new TextViews();
  views.append(keyword.trim(), true);
  return views.norm;
}

/** A keyword's code points as regex atoms; a whitespace run becomes `\s+`. */
function keywordAtoms(normalized: string): string[] {
  const atoms: string[] = [];
  for (const ch of normalized) {
    if (/\s/u.test(ch)) {
      if (atoms.at(-1) !== String.raw`\s+`) atoms.push(String.raw`\s+`);
    } else atoms.push(escapeRegExp(ch));
  }
  return atoms;
}

function bounded(ch: string | undefined): boolean {
  return ch !== undefined && WORD_CHAR.test(ch) && !UNSPACED_CHAR.test(ch);
}

/**
 * A keyword match at `index` would start inside a word: both the character there and the one before are word
 * characters of a spaced script. Checked here rather than as a lookbehind in the regex, where V8 would test it
 * for every alternative at every position (a hundredfold slower with 50 keywords).
 */
function insideWord(text: string, index: number): boolean {
  if (index === 0) return false;
  const before = text.codePointAt(index - 1)!;
  const previous = before >= 0xdc00 && before <= 0xdfff && index >= 2 ? text.codePointAt(index - 2)! : before;
  return bounded(String.fromCodePoint(text.codePointAt(index)!)) && bounded(String.fromCodePoint(previous));
}

/**
 * The first non-empty match at or after `from` (an empty match, e.g. of `a*`, is no match), skipping those
 * `reject` refuses.
 */
function firstMatch(
  re: RegExp,
  text: string,
  from = 0,
  reject?: (text: string, index: number) => boolean,
): RegExpExecArray | undefined {
  re.lastIndex = from;
  for (;;) {
    const m = re.exec(text);
    if (!m) return undefined;
    if (m[0] !== '' && !reject?.(text, m.index)) return m;
    re.lastIndex = m.index + ((text.codePointAt(m.index) ?? 0) > 0xffff ? 2 : 1);
  }
}

export class CompiledFilter {
  readonly empty: boolean;
  readonly hasPatterns: boolean;
  private readonly keywords: string[];
  /** All keywords in one alternation, each in its own capture group (group i + 1 is keyword i). */
  private readonly keywordRe: RegExp | undefined;
  /** Matches, at the end of the text, a non-empty proper prefix of some keyword. */
  private readonly prefixRe: RegExp | undefined;
  private readonly patterns: { source: string; re: RegExp }[];
  /** Longest keyword, in normalized units without whitespace. */
  private readonly maxKeyword: number;

  constructor(list: FilterList) {
    const entries = list.keywords
      .map((keyword) => ({ keyword, atoms: keywordAtoms(normalizeKeyword(keyword)) }))
      .filter((k) => k.atoms.length > 0);
    this.keywords = entries.map((k) => k.keyword);
    this.maxKeyword = Math.max(0, ...entries.map((k) => k.atoms.length));
    const alternatives: string[] = [];
    const prefixes: string[] = [];
    for (const { keyword, atoms } of entries) {
      const chars = [...normalizeKeyword(keyword)].filter((c) => !/\s/u.test(c));
      // The leading boundary is insideWord's job; the trailing one is cheap here, after the literal matched.
      const after = bounded(chars.at(-1)) ? `(?!${SPACED_WORD})` : '';
      alternatives.push(`(${atoms.join('')})${after}`);
      // a(?:b(?:c)?)? for "abcd": the text may end inside the keyword.
      let nested = '';
      for (let i = atoms.length - 2; i >= 0; i--) nested = `${atoms[i]}${nested ? `(?:${nested})?` : ''}`;
      if (nested) prefixes.push(nested);
    }
    this.keywordRe = alternatives.length ? new RegExp(alternatives.join('|'), 'giu') : undefined;
    this.prefixRe = prefixes.length ? new RegExp(`(?:${prefixes.join('|')})$`, 'giu') : undefined;
    this.patterns = list.patterns.map((source) => ({ source, re: new RegExp(source, 'giu') }));
    this.hasPatterns = this.patterns.length > 0;
    this.empty = this.keywords.length === 0 && !this.hasPatterns;
  }

  /** The earliest match in a whole text (a prompt, a message). */
  matchPrompt(text: string): FilterMatch | undefined {
    if (this.empty) return undefined;
    const views = new TextViews();
    views.append(text, true);
    const found = this.scan(views, true, 0);
    return found && { matched: found.entry, kind: found.kind, index: found.start };
  }

  /**
   * @internal The earliest match over both views; ties go to the settled one. Keyword matches are looked for
   * from raw offset `keywordsFrom` on (text before it was released, so no keyword can start there).
   */
  scan(views: TextViews, final: boolean, keywordsFrom: number): Found | undefined {
    const candidates: Found[] = [];
    const add = (re: RegExp, text: string, m: RegExpExecArray, entry: string, kind: Found['kind']) => {
      const inView = text === views.norm;
      const atEnd = !final && m.index + m[0].length === text.length;
      const reject = kind === 'keyword' ? insideWord : undefined;
      candidates.push({
        entry,
        kind,
        start: inView ? views.rawStart(m.index) : m.index,
        pending: atEnd && PROBES.some((p) => firstMatch(re, text + p, m.index, reject)?.index !== m.index),
      });
    };
    if (this.keywordRe) {
      const m = firstMatch(this.keywordRe, views.norm, views.viewIndex(keywordsFrom), insideWord);
      if (m) {
        const keyword = this.keywords[m.findIndex((g, i) => i > 0 && g !== undefined) - 1]!;
        add(this.keywordRe, views.norm, m, keyword, 'keyword');
      }
    }
    for (const { source, re } of this.patterns) {
      for (const text of views.same ? [views.raw] : [views.raw, views.norm]) {
        const m = firstMatch(re, text);
        if (m) add(re, text, m, source, 'pattern');
      }
    }
    candidates.sort((a, b) => a.start - b.start || Number(a.pending) - Number(b.pending));
    return candidates[0];
  }

  /** @internal Raw offset from which the text's tail could begin a keyword (the text length if none). */
  keywordTail(views: TextViews): number {
    if (!this.prefixRe) return views.raw.length;
    // A prefix spans at most maxKeyword non-space units; whitespace runs inside it can be any length.
    const norm = views.norm;
    let from = norm.length;
    for (let counted = 0; from > 0 && counted < this.maxKeyword; from--) {
      if (!/\s/u.test(norm[from - 1]!)) counted++;
    }
    const m = firstMatch(this.prefixRe, norm, from, insideWord);
    return m ? views.rawStart(m.index) : views.raw.length;
  }
}

export function compileFilter(list: FilterList): CompiledFilter {
  return new CompiledFilter(list);
}

/**
 * How much output is held back while patterns are configured, in UTF-16 units (about 16 tokens): a pattern
 * match no longer than this is never sent, a longer one is still caught, but its beginning may have been.
 * Keywords need no such window: only a tail that could begin a keyword is held.
 */
export const DEFAULT_PATTERN_HOLDBACK = 64;

export interface FilterRelease<T> {
  /** Text that is now safe to send, in order. */
  text: string;
  /** Payloads (e.g. a token's logprobs) whose text lies entirely in what has been released, with its offset. */
  items: { value: T; offset: number }[];
  /** Set from the moment the output matched: stop the generation, finish_reason `content_filter`. */
  matched?: string | undefined;
}

/**
 * The output side, one per choice: feed each token's text delta (and optionally a payload that must not leak
 * ahead of its text, such as its logprobs); send what comes back. Text that could be the start of a match is
 * held until it is known not to be one, so a match split across deltas is never sent, not even its first
 * half. After a match, nothing more is released.
 */
export class OutputFilter<T = never> {
  private readonly views = new TextViews();
  private released = 0;
  private queue: { value: T; start: number; end: number }[] = [];
  private hit: string | undefined;

  constructor(
    private readonly filter: CompiledFilter,
    private readonly patternHoldback = DEFAULT_PATTERN_HOLDBACK,
  ) {}

  get matched(): string | undefined {
    return this.hit;
  }

  /** Everything released so far. */
  get text(): string {
    return this.views.raw.slice(0, this.released);
  }

  push(delta: string, item?: T): FilterRelease<T> {
    if (this.hit !== undefined) return { text: '', items: [], matched: this.hit };
    const start = this.views.raw.length;
    this.views.append(delta, false);
    if (item !== undefined) this.queue.push({ value: item, start, end: this.views.raw.length });
    if (this.filter.empty) return this.release(this.views.raw.length, true);
    return this.advance(false);
  }

  /** The generation ended: release the rest unless it matches. */
  end(): FilterRelease<T> {
    if (this.hit !== undefined) return { text: '', items: [], matched: this.hit };
    this.views.append('', true);
    if (this.filter.empty) return this.release(this.views.raw.length, true);
    return this.advance(true);
  }

  private advance(final: boolean): FilterRelease<T> {
    const found = this.filter.scan(this.views, final, this.released);
    if (found && !found.pending) {
      this.hit = found.entry;
      return { ...this.release(found.start, false), matched: found.entry };
    }
    if (final) return this.release(this.views.raw.length, true);
    const raw = this.views.raw;
    let safe = Math.min(found ? found.start : raw.length, this.filter.keywordTail(this.views));
    if (this.filter.hasPatterns) safe = Math.min(safe, raw.length - this.patternHoldback);
    // Never split a surrogate pair.
    const unit = raw.charCodeAt(safe - 1);
    if (safe > 0 && unit >= 0xd800 && unit <= 0xdbff) safe--;
    return this.release(safe, false);
  }

  /** Sends text up to `upTo` (never takes back what was sent) and the payloads it now covers. */
  private release(upTo: number, all: boolean): FilterRelease<T> {
    const from = this.released;
    const to = Math.max(from, upTo);
    this.released = to;
    const items: FilterRelease<T>['items'] = [];
    const kept: typeof this.queue = [];
    for (const q of this.queue) {
      // An empty delta (half a UTF-8 character) goes out only once text after it has.
      const covered = all || q.end < to || (q.end === to && q.start < q.end);
      if (covered) items.push({ value: q.value, offset: q.start });
      else kept.push(q);
    }
    this.queue = this.hit === undefined ? kept : [];
    return { text: this.views.raw.slice(from, to), items };
  }
}

/**
 * Refuses text the model should never see: C0 control characters other than tab, line feed and carriage
 * return (NUL included), and unpaired UTF-16 surrogates (JSON can carry `\ud800`; no tokenizer can). Returns
 * the reason, naming the character and its offset, or undefined when the text is fine.
 */
export function sanityCheck(
  text: string,
  options: { maxChars?: number | undefined } = {},
): string | undefined {
  if (options.maxChars !== undefined && text.length > options.maxChars) {
    return `is ${text.length} characters long; at most ${options.maxChars} are accepted`;
  }
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) {
      return `contains the control character ${codePoint(c)} at offset ${i}; only tab, line feed and carriage return are accepted`;
    }
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
      else return `contains an unpaired surrogate ${codePoint(c)} at offset ${i}`;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return `contains an unpaired surrogate ${codePoint(c)} at offset ${i}`;
    }
  }
  return undefined;
}

function codePoint(c: number): string {
  return `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
}
