/**
 * Constrained decoding in the real engine on the bundled toy model: its free text is nonsense, so every output
 * that parses and validates is the grammar's doing. Rows are constrained independently inside one batch.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConstraintSpec } from '../../service/engine/grammar/constraint.js';
import { Engine, EngineError } from '../../service/engine/index.js';
import { collect } from '../helpers/collect.js';
import { params, TINY_MODEL_DIR } from '../helpers/model.js';
import { RAW_PROMPTS } from '../helpers/prompts.js';

let engine: Engine;

beforeAll(async () => {
  engine = await Engine.load(TINY_MODEL_DIR, { maxBatchSize: 8, maxQueue: 16 });
});

afterAll(async () => {
  await engine?.close();
});

const SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', pattern: '^[A-Z][a-z]{1,8}$' },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    role: { enum: ['king', 'priest', 'prophet'] },
    tags: { type: 'array', items: { type: 'string', maxLength: 6 }, minItems: 1, maxItems: 3 },
    home: {
      type: 'object',
      properties: {
        city: { type: 'string', maxLength: 10 },
        lat: { type: 'integer', minimum: -90, maximum: 90 },
        area: { type: 'number' },
      },
      required: ['city', 'lat', 'area'],
      additionalProperties: false,
    },
  },
  required: ['name', 'age', 'role', 'tags', 'home'],
  additionalProperties: false,
};
const spec: ConstraintSpec = { kind: 'json_schema', schema: JSON.stringify(SCHEMA) };
const ajv = new Ajv2020({ strict: false });
addFormats.default(ajv);
const validate = ajv.compile(SCHEMA);

function chat(content: string) {
  return engine.encodeChat([{ role: 'user', content }]);
}

describe('constrained decoding in the engine', () => {
  it('gives a schema-valid object, ended by the grammar (stop), greedy', async () => {
    await engine.prepareConstraint(spec);
    const out = await collect(
      engine.submit({
        promptIds: chat('Describe a person as JSON.'),
        params: params({ maxTokens: 300 }),
        constraint: spec,
      }),
    );
    expect(out.error).toBeUndefined();
    expect(out.finish?.finishReason).toBe('stop');
    const value = JSON.parse(out.text);
    expect(validate(value), JSON.stringify(validate.errors)).toBe(true);
  });

  it('keeps every sampled generation valid (temperature 1, 24 seeds, all in one batch)', async () => {
    const runs = await Promise.all(
      Array.from({ length: 24 }, (_, seed) =>
        collect(
          engine.submit({
            promptIds: chat(RAW_PROMPTS[seed % RAW_PROMPTS.length]!),
            params: params({ maxTokens: 400, temperature: 1, seed }),
            constraint: spec,
          }),
        ),
      ),
    );
    for (const run of runs) {
      expect(run.finish?.finishReason).toBe('stop');
      let parsed: unknown;
      expect(() => {
        parsed = JSON.parse(run.text);
      }, JSON.stringify(run.text) + JSON.stringify(run.tokens)).not.toThrow();
      expect(validate(parsed), run.text).toBe(true);
    }
  });

  it('gives each row of a mixed batch (constrained and free) exactly what it gets alone, greedy', async () => {
    const choice: ConstraintSpec = { kind: 'choice', choices: ['yes', 'no', 'maybe not'] };
    const regex: ConstraintSpec = { kind: 'regex', pattern: '[0-9]{3}-[a-z]{2,4}' };
    await Promise.all([choice, regex].map((c) => engine.prepareConstraint(c)));
    const jobs = [
      { promptIds: chat('Is it so?'), params: params({ maxTokens: 20 }), constraint: choice },
      { promptIds: engine.encodeText(RAW_PROMPTS[0]!), params: params({ maxTokens: 30, ignoreEos: true }) },
      { promptIds: chat('Describe a person.'), params: params({ maxTokens: 300 }), constraint: spec },
      { promptIds: chat('A code?'), params: params({ maxTokens: 20 }), constraint: regex },
      { promptIds: engine.encodeText(RAW_PROMPTS[3]!), params: params({ maxTokens: 25, ignoreEos: true }) },
    ];
    const alone = [];
    for (const job of jobs) alone.push(await collect(engine.submit(job)));
    const together = await Promise.all(jobs.map((job) => collect(engine.submit(job))));
    expect(together.map((r) => r.tokens)).toEqual(alone.map((r) => r.tokens));
    expect(['yes', 'no', 'maybe not']).toContain(alone[0]!.text);
    expect(alone[3]!.text).toMatch(/^[0-9]{3}-[a-z]{2,4}$/);
    expect(alone[1]!.finish?.finishReason).toBe('length');
  });

  it('applies the sampler settings on top of the mask: logit_bias moves the choice, top_k 1 is greedy', async () => {
    const choice: ConstraintSpec = { kind: 'choice', choices: ['yes', 'no'] };
    const promptIds = chat('Well?');
    const greedy = await collect(engine.submit({ promptIds, params: params(), constraint: choice }));
    const other = greedy.text === 'yes' ? 'no' : 'yes';
    // Banning the greedy answer's first token leaves the grammar one way to go.
    const banned = await collect(
      engine.submit({
        promptIds,
        params: params({ logitBias: { [greedy.tokens[0]!]: -100 } }),
        constraint: choice,
      }),
    );
    expect(banned.text).toBe(other);
    // A bias cannot force a token the grammar forbids.
    const forced = await collect(
      engine.submit({
        promptIds,
        params: params({ logitBias: { [engine.encodeText('the')[0]!]: 100 } }),
        constraint: choice,
      }),
    );
    expect(['yes', 'no']).toContain(forced.text);
    const topK = await collect(
      engine.submit({ promptIds, params: params({ temperature: 1, topK: 1, seed: 9 }), constraint: choice }),
    );
    expect(topK.tokens).toEqual(greedy.tokens);
  });

  it('ends at maxTokens with length, the JSON then cut short', async () => {
    const out = await collect(
      engine.submit({ promptIds: chat('JSON please'), params: params({ maxTokens: 5 }), constraint: spec }),
    );
    expect(out.finish?.finishReason).toBe('length');
    expect(out.tokens).toHaveLength(5);
    expect(() => JSON.parse(out.text)).toThrow();
  });

  it('refuses a grammar the compiler cannot build, with its reason, and keeps compiling afterwards', async () => {
    const bad: ConstraintSpec = { kind: 'regex', pattern: '(?<=a)b' };
    const err = await engine.prepareConstraint(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect((err as EngineError).code).toBe('grammar_refused');
    expect((err as Error).message).toMatch(/Lookbehind is not supported/);
    const ok: ConstraintSpec = { kind: 'choice', choices: ['after'] };
    await engine.prepareConstraint(ok);
    const out = await collect(engine.submit({ promptIds: chat('x'), params: params(), constraint: ok }));
    expect(out.text).toBe('after');
    // A grammar compiled before the refusal still serves new rows.
    const again = await collect(
      engine.submit({ promptIds: chat('x'), params: params({ maxTokens: 300 }), constraint: spec }),
    );
    expect(validate(JSON.parse(again.text))).toBe(true);
  });
});
