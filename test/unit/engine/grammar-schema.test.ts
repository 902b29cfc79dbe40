/**
 * The grammar engine (xgrammar 0.1.27, WebAssembly) over the bundled model's vocabulary, without the model:
 * strings are tokenized and fed to a matcher, which must accept exactly what the schema allows. This is the
 * evidence behind schema-keywords.ts: every keyword it lets through constrains, and the ones it refuses would
 * have been ignored.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { GrammarBackend } from '../../../service/engine/grammar/backend.js';
import type { ConstraintSpec } from '../../../service/engine/grammar/constraint.js';
import { repairSchemaGrammar } from '../../../service/engine/grammar/grammar-repairs.js';
import {
  checkSchemaKeywords,
  UnsupportedSchemaError,
} from '../../../service/engine/grammar/schema-keywords.js';
import { grammarVocabulary } from '../../../service/engine/grammar/vocabulary.js';
import { loadModelFiles } from '../../../service/engine/model-files.js';
import { TextTokenizer } from '../../../service/engine/tokenizer.js';
import { TINY_MODEL_DIR } from '../../helpers/model.js';

const EOS = 2;
let tokenizer: TextTokenizer;
let backend: GrammarBackend;

beforeAll(async () => {
  const files = await loadModelFiles(TINY_MODEL_DIR);
  tokenizer = new TextTokenizer(files.tokenizerJson, files.tokenizerConfig);
  backend = new GrammarBackend(grammarVocabulary(files.tokenizerJson, 2048), [EOS, 0]);
});

/** Whether the grammar accepts `text` as a whole output (its tokens, then EOS). */
async function accepts(spec: ConstraintSpec, text: string): Promise<boolean> {
  const row = await backend.row(spec);
  try {
    return tokenizer.encode(text, false).every((id) => row.accept(id)) && row.accept(EOS);
  } finally {
    row.dispose();
  }
}

const schema = (s: object): ConstraintSpec => ({ kind: 'json_schema', schema: JSON.stringify(s) });

/** [keyword, schema, accepted outputs, refused outputs] for every constraining keyword schema-keywords allows. */
const ENFORCED: [string, object, string[], string[]][] = [
  ['type', { type: ['integer', 'null'] }, ['1', 'null'], ['"x"', '1.5']],
  ['enum', { enum: ['a', 2] }, ['"a"', '2'], ['"b"', '3']],
  ['const', { const: 'x' }, ['"x"'], ['"y"']],
  ['anyOf', { anyOf: [{ type: 'integer' }, { type: 'boolean' }] }, ['1', 'true'], ['"x"']],
  ['oneOf', { oneOf: [{ type: 'integer' }, { type: 'boolean' }] }, ['1', 'false'], ['null']],
  ['allOf', { allOf: [{ type: 'integer' }] }, ['1'], ['"x"']],
  [
    '$ref',
    { $defs: { p: { type: 'integer' } }, type: 'array', items: { $ref: '#/$defs/p' } },
    ['[1, 2]'],
    ['["x"]'],
  ],
  [
    'properties',
    { type: 'object', properties: { a: { type: 'integer' } } },
    ['{"a": 1}', '{}'],
    ['{"a": "x"}'],
  ],
  [
    'required',
    { type: 'object', properties: { a: { type: 'integer' } }, required: ['a'] },
    ['{"a": 1}'],
    ['{}'],
  ],
  [
    'additionalProperties',
    { type: 'object', additionalProperties: { type: 'integer' } },
    ['{"q": 1}'],
    ['{"q": "x"}'],
  ],
  [
    'minProperties',
    { type: 'object', additionalProperties: { type: 'integer' }, minProperties: 1 },
    ['{"a": 1}'],
    ['{}'],
  ],
  [
    'maxProperties',
    { type: 'object', additionalProperties: { type: 'integer' }, maxProperties: 1 },
    ['{"a": 1}'],
    ['{"a": 1, "b": 2}'],
  ],
  ['items', { type: 'array', items: { type: 'integer' } }, ['[1]', '[]'], ['["x"]']],
  [
    'prefixItems',
    { type: 'array', prefixItems: [{ type: 'integer' }, { type: 'string' }], items: false },
    ['[1, "a"]'],
    ['[1, 2]', '[1, "a", 3]'],
  ],
  ['minItems', { type: 'array', items: { type: 'integer' }, minItems: 1 }, ['[1]'], ['[]']],
  ['maxItems', { type: 'array', items: { type: 'integer' }, maxItems: 2 }, ['[1, 2]'], ['[1, 2, 3]']],
  ['minLength', { type: 'string', minLength: 2 }, ['"ab"'], ['"a"']],
  ['maxLength', { type: 'string', maxLength: 3 }, ['"abc"'], ['"abcd"']],
  ['pattern', { type: 'string', pattern: '^[a-z]+[0-9]$' }, ['"ab1"'], ['"ab"', '"1"']],
  ['format', { type: 'string', format: 'date' }, ['"2024-01-31"'], ['"31.01.2024"']],
  ['minimum', { type: 'integer', minimum: 3 }, ['3', '40'], ['2', '-3']],
  ['maximum', { type: 'integer', maximum: 3 }, ['3', '-40'], ['4']],
  ['exclusiveMinimum', { type: 'integer', exclusiveMinimum: 3 }, ['4'], ['3']],
  ['exclusiveMaximum', { type: 'integer', exclusiveMaximum: 3 }, ['2'], ['3']],
];

describe('JSON-Schema keywords the grammar enforces', () => {
  it.each(ENFORCED)('%s', async (_keyword, s, good, bad) => {
    for (const text of good) expect(await accepts(schema(s), text), text).toBe(true);
    for (const text of bad) expect(await accepts(schema(s), text), text).toBe(false);
  });

  it('integer bounds are exact, one-sided, two-sided and exclusive (checked -30…30 against the bounds)', async () => {
    const cases: Record<string, number>[] = [
      { minimum: 3 },
      { minimum: -5 },
      { maximum: 7 },
      { maximum: -12 },
      { exclusiveMinimum: -3, exclusiveMaximum: 14 },
      { minimum: -20, maximum: -3 },
      { minimum: 1.5, exclusiveMaximum: 9.5 },
    ];
    for (const bounds of cases) {
      const spec = schema({ type: 'integer', ...bounds });
      for (let n = -30; n <= 30; n++) {
        const want =
          (bounds.minimum === undefined || n >= bounds.minimum) &&
          (bounds.maximum === undefined || n <= bounds.maximum) &&
          (bounds.exclusiveMinimum === undefined || n > bounds.exclusiveMinimum) &&
          (bounds.exclusiveMaximum === undefined || n < bounds.exclusiveMaximum);
        expect(await accepts(spec, String(n)), `${JSON.stringify(bounds)} ${n}`).toBe(want);
      }
      expect(await accepts(spec, '-')).toBe(false);
    }
  });

  it('each format it accepts constrains', async () => {
    const formats: [string, string, string][] = [
      ['date', '"2024-01-02"', '"x"'],
      ['time', '"03:04:05Z"', '"x"'],
      ['date-time', '"2024-01-02T03:04:05Z"', '"x"'],
      ['duration', '"P3D"', '"x"'],
      ['email', '"a@b.com"', '"ab"'],
      ['hostname', '"a.example.com"', '"a b"'],
      ['ipv4', '"10.0.0.1"', '"x"'],
      ['ipv6', '"::1"', '"x"'],
      ['uri', '"http://x.org/a"', '"nope"'],
      ['uri-reference', '"/a/b"', '"a b"'],
      ['uuid', '"123e4567-e89b-12d3-a456-426614174000"', '"x"'],
    ];
    for (const [format, good, bad] of formats) {
      expect(await accepts(schema({ type: 'string', format }), good), format).toBe(true);
      expect(await accepts(schema({ type: 'string', format }), bad), format).toBe(false);
    }
  });
});

describe('keywords refused by name', () => {
  // Each of these, given to xgrammar 0.1.27, would be ignored (the second output would be accepted).
  const IGNORED: [string, object][] = [
    ['uniqueItems', { type: 'array', uniqueItems: true }],
    ['multipleOf', { type: 'integer', multipleOf: 3 }],
    ['not', { not: { type: 'integer' } }],
    // biome-ignore lint/suspicious/noThenProperty: the JSON-Schema keyword under test.
    ['if', { type: 'integer', if: { minimum: 5 }, then: { maximum: 6 } }],
    ['contains', { type: 'array', contains: { const: 1 } }],
    ['dependentRequired', { type: 'object', dependentRequired: { a: ['b'] } }],
    ['patternProperties', { type: 'object', patternProperties: { '^a': { type: 'integer' } } }],
    ['propertyNames', { type: 'object', propertyNames: { pattern: '^a' } }],
    [
      'allOf',
      {
        allOf: [
          { minimum: 0, type: 'integer' },
          { type: 'integer', maximum: 5 },
        ],
      },
    ],
    ['format', { type: 'string', format: 'credit-card' }],
    ['maximum', { type: 'number', maximum: 3 }],
    ['maxLength', { type: 'string', maxLength: 65 }],
    ['pattern', { type: 'string', pattern: '^[a-z]{1,100}$' }],
    ['frobnicate', { type: 'string', frobnicate: true }],
  ];
  it.each(IGNORED)('%s', (keyword, s) => {
    let caught: unknown;
    try {
      checkSchemaKeywords({ type: 'object', properties: { x: s } });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(UnsupportedSchemaError);
    expect((caught as UnsupportedSchemaError).keyword).toBe(keyword);
    expect((caught as UnsupportedSchemaError).path).toBe('/properties/x');
  });

  it('what xgrammar would do with them: uniqueItems and multipleOf are ignored (why they are refused)', async () => {
    expect(
      await accepts(schema({ type: 'array', items: { type: 'integer' }, uniqueItems: true }), '[1, 1]'),
    ).toBe(true);
    expect(await accepts(schema({ type: 'integer', multipleOf: 3 }), '4')).toBe(true);
    expect(await accepts(schema({ type: 'number', minimum: -3, maximum: 3 }), '3.2')).toBe(true);
  });
});

describe('outputs always parse as JSON', () => {
  it('a length-bounded string never takes a raw control character or a quote', async () => {
    const s = schema({ type: 'string', maxLength: 8 });
    expect(await accepts(s, '"ab c"')).toBe(true);
    for (const bad of ['"a\u001bb"', '"a\tb"', '"a"b"', '"a\\b"'])
      expect(await accepts(s, bad), bad).toBe(false);
  });

  it("a pattern's dot never takes a quote or a control character", async () => {
    const s = schema({ type: 'string', pattern: '^a.c$' });
    expect(await accepts(s, '"abc"')).toBe(true);
    for (const bad of ['"a"c"', '"a\nc"', '"a\u0007c"']) expect(await accepts(s, bad), bad).toBe(false);
  });

  it('a fractional bound keeps its decimal point a point (repairSchemaGrammar)', () => {
    expect(repairSchemaGrammar('root ::= ( "0" [\\u0000-\\U0010FFFF] "5" )')).toBe(
      'root ::= ( "0" "." "5" )',
    );
    // Literals are left alone, lookaheads too.
    expect(repairSchemaGrammar('a ::= "[^x" (= [ \\n\\t]* [,}\\]:])')).toBe(
      'a ::= "[^x" (= [ \\n\\t]* [,}\\]:])',
    );
  });

  it('a special token (<|im_start|>) is never text inside the JSON', async () => {
    const row = await backend.row({ kind: 'json_object' });
    for (const id of tokenizer.encode('{"a": "', false)) expect(row.accept(id)).toBe(true);
    const logits = new Float32Array(2048);
    row.mask(logits);
    expect(logits[1]).toBe(Number.NEGATIVE_INFINITY);
    expect(logits[EOS]).toBe(Number.NEGATIVE_INFINITY);
    expect(logits.filter((l) => l === 0).length).toBeGreaterThan(100);
    row.dispose();
  });
});

describe('tool calls', () => {
  const params = JSON.stringify({ type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] });
  const tools = [
    { name: 'alpha', parameters: params },
    { name: 'beta', parameters: params },
  ];
  const call = (name: string) => `<tool_call>\n{"name": "${name}", "arguments": {"n": 1}}\n</tool_call>`;

  it('required: only calls of the tools, with valid arguments', async () => {
    const spec: ConstraintSpec = { kind: 'tool_calls', mode: 'required', tools, parallel: true };
    expect(await accepts(spec, call('alpha'))).toBe(true);
    expect(await accepts(spec, `${call('alpha')}\n${call('beta')}`)).toBe(true);
    expect(await accepts(spec, 'hello')).toBe(false);
    expect(await accepts(spec, call('gamma'))).toBe(false);
    expect(await accepts(spec, call('alpha').replace('1', '"x"'))).toBe(false);
  });

  it('parallel false: one call', async () => {
    const spec: ConstraintSpec = { kind: 'tool_calls', mode: 'required', tools, parallel: false };
    expect(await accepts(spec, call('beta'))).toBe(true);
    expect(await accepts(spec, `${call('alpha')}\n${call('beta')}`)).toBe(false);
  });

  it('auto: free text, and once a call opens it is constrained', async () => {
    const spec: ConstraintSpec = { kind: 'tool_calls', mode: 'auto', tools, parallel: true };
    expect(await accepts(spec, 'just words')).toBe(true);
    expect(await accepts(spec, `Let me see. ${call('beta')}`)).toBe(true);
    expect(await accepts(spec, `Let me see. ${call('gamma')}`)).toBe(false);
    expect(await accepts(spec, `Let me see. ${call('alpha').replace('"n"', '"m"')}`)).toBe(false);
  });
});

describe('regex and choice', () => {
  it('regex matches the whole output', async () => {
    const spec: ConstraintSpec = { kind: 'regex', pattern: '[A-Z]{2}-[0-9]{3}' };
    expect(await accepts(spec, 'AB-123')).toBe(true);
    expect(await accepts(spec, 'AB-1234')).toBe(false);
  });

  it('choice is exactly one of the strings', async () => {
    const spec: ConstraintSpec = { kind: 'choice', choices: ['yes', 'no way'] };
    expect(await accepts(spec, 'no way')).toBe(true);
    expect(await accepts(spec, 'no')).toBe(false);
  });
});
