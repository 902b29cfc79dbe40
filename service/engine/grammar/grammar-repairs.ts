/**
 * Keeps xgrammar's JSON-Schema grammars inside JSON. xgrammar 0.1.27 writes the characters of some strings as
 * the raw characters the schema allows, not as JSON text: a length-bounded string (minLength/maxLength) is
 * `[^"\\\r\n]{m,n}` and a pattern's `.` is any character, so a tab, an ESC or a quote could be sampled there
 * and the output would not parse (seen with the toy model: an ESC inside a maxLength string). Every character
 * class of the grammar is narrowed here to characters a JSON string may hold unescaped; literals are kept.
 * The output stays valid for the schema (it only has fewer ways to spell some strings), and always parses.
 */

/**
 * xgrammar 0.1.27 writes a fractional bound's decimal point as a regex `.` (any character): `minimum: 0.5`
 * gives `"0" [\u0000-\U0010FFFF] "5"`, which let the toy model write `2,5` for a number. Between two digit
 * literals the class is the decimal point. (In a string the same form narrows "any character" to ".", which
 * is still a valid string.)
 */
const BOUND_POINT = /("[0-9]+") \[\\u0000-\\U0010FFFF\] ("[0-9]+")/g;

/** Characters a JSON string must escape, as an xgrammar character-class fragment. */
const JSON_UNSAFE = '\\0-\\x1f\\"\\\\';

/** Narrows one character class's body (between the brackets, without the `^`). */
function narrow(body: string, negated: boolean): string {
  if (negated) return `[^${body}${JSON_UNSAFE}]`;
  // `.` becomes the full range [\u0000-\U0010FFFF]: the JSON-safe characters are its complement of the unsafe.
  if (body.includes('\\U') || body.includes('\\u0000')) return `[^${JSON_UNSAFE}]`;
  // Otherwise the unsafe members are dropped ([ \t0-9] keeps the space and the digits). A range written to
  // span them ([\x00-\x7f]) is not split: see docs/structured-outputs.md.
  const kept = body.replace(/\\[tnr"\\]|"/g, '');
  return `[${kept || body}]`;
}

/** Index just past the `)` closing the group that opens at `i` (classes and literals skipped whole). */
function groupEnd(ebnf: string, i: number): number {
  let depth = 0;
  let j = i;
  while (j < ebnf.length) {
    const c = ebnf[j]!;
    if (c === '"' || c === '[') {
      const close = c === '"' ? '"' : ']';
      j++;
      while (j < ebnf.length && ebnf[j] !== close) j += ebnf[j] === '\\' ? 2 : 1;
    } else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return j + 1;
    j++;
  }
  return j;
}

/**
 * Rewrites every character class of an EBNF grammar outside string literals and lookahead assertions (see the
 * module comment; a lookahead such as `(= [ \n\t]* [,}\]:])` only looks at what follows a string).
 */
export function repairSchemaGrammar(grammar: string): string {
  const ebnf = grammar.replace(BOUND_POINT, '$1 "." $2');
  let out = '';
  let i = 0;
  while (i < ebnf.length) {
    const c = ebnf[i]!;
    if (c === '(' && ebnf[i + 1] === '=') {
      const end = groupEnd(ebnf, i);
      out += ebnf.slice(i, end);
      i = end;
    } else if (c === '"') {
      // A literal: copied through, escapes included.
      let j = i + 1;
      while (j < ebnf.length && ebnf[j] !== '"') j += ebnf[j] === '\\' ? 2 : 1;
      out += ebnf.slice(i, j + 1);
      i = j + 1;
    } else if (c === '#') {
      const end = ebnf.indexOf('\n', i);
      i = end === -1 ? ebnf.length : end;
    } else if (c === '[') {
      let j = i + 1;
      const negated = ebnf[j] === '^';
      if (negated) j++;
      const start = j;
      while (j < ebnf.length && ebnf[j] !== ']') j += ebnf[j] === '\\' ? 2 : 1;
      out += narrow(ebnf.slice(start, j), negated);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/**
 * xgrammar 0.1.27's integer ranges are exact only with both ends: `minimum: 3` alone gives `[3-9] | [1-9]
 * [0-9]*` (so 1 and 2 pass) and `minimum: -5` alone a broken `"-" ( )`. Every bounded integer is given both
 * ends here, inclusive (exclusive bounds moved in by one), the open end at ±Number.MAX_SAFE_INTEGER. Returns a
 * copy; subschemas are walked as schema-keywords walks them.
 */
export function closeIntegerBounds(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closeIntegerBounds);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    out[key] =
      key === 'enum' || key === 'const' || key === 'default' || key === 'examples'
        ? value
        : closeIntegerBounds(value);
  }
  const bounded = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'].some(
    (k) => typeof out[k] === 'number',
  );
  if (out.type !== 'integer' || !bounded) return out;
  const lows = [Number.MIN_SAFE_INTEGER];
  const highs = [Number.MAX_SAFE_INTEGER];
  if (typeof out.minimum === 'number') lows.push(Math.ceil(out.minimum));
  if (typeof out.exclusiveMinimum === 'number') lows.push(Math.floor(out.exclusiveMinimum) + 1);
  if (typeof out.maximum === 'number') highs.push(Math.floor(out.maximum));
  if (typeof out.exclusiveMaximum === 'number') highs.push(Math.ceil(out.exclusiveMaximum) - 1);
  delete out.exclusiveMinimum;
  delete out.exclusiveMaximum;
  out.minimum = Math.max(...lows);
  out.maximum = Math.min(...highs);
  return out;
}
