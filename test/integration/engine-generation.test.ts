import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IncrementalDetokenizer } from '../../service/engine/detokenizer.js';
import { Engine } from '../../service/engine/index.js';
import { collect } from '../helpers/collect.js';
import { params, TINY_MODEL_DIR } from '../helpers/model.js';

let engine: Engine;

beforeAll(async () => {
  engine = await Engine.load(TINY_MODEL_DIR);
});

afterAll(async () => {
  await engine?.close();
});

const prompt = () => engine.encodeChat([{ role: 'user', content: 'Continue: And God said' }]);

describe('generation', () => {
  it('stops at EOS with finish_reason stop, or at max_tokens with length', async () => {
    const short = await collect(engine.submit({ promptIds: prompt(), params: params({ maxTokens: 3 }) }));
    expect(short.finish).toMatchObject({ finishReason: 'length', completionTokens: 3 });
    const free = await collect(engine.submit({ promptIds: prompt(), params: params({ maxTokens: 200 }) }));
    expect(free.finish?.finishReason).toBe('stop');
    expect(engine.info.eosTokenIds).toContain(free.tokens.at(-1));
    expect(free.finish?.promptTokens).toBe(prompt().length);
  });

  it('same seed and settings give the same tokens; another seed differs', async () => {
    const sampled = (seed: number) =>
      collect(
        engine.submit({
          promptIds: prompt(),
          params: params({ temperature: 1.2, seed, maxTokens: 30, ignoreEos: true }),
        }),
      );
    const [a, b, c] = await Promise.all([sampled(11), sampled(11), sampled(12)]);
    expect(a.tokens).toEqual(b.tokens);
    expect(a.tokens).not.toEqual(c.tokens);
  });

  it('cuts the text before a stop sequence that spans tokens and never emits it', async () => {
    const full = await collect(
      engine.submit({ promptIds: prompt(), params: params({ maxTokens: 40, ignoreEos: true }) }),
    );
    // A stop string taken from the middle of the real output, so it certainly occurs.
    const start = Math.floor(full.text.length / 2);
    const stop = full.text.slice(start, start + 4);
    const cut = await collect(
      engine.submit({
        promptIds: prompt(),
        params: params({ maxTokens: 40, ignoreEos: true, stop: [stop] }),
      }),
    );
    expect(cut.finish).toMatchObject({ finishReason: 'stop', stopSequence: stop });
    expect(cut.text).toBe(full.text.slice(0, full.text.indexOf(stop)));
    expect(cut.tokenEvents.map((e) => e.text).join('')).not.toContain(stop);
  });

  it('reports logprobs of the chosen token and the top alternatives', async () => {
    const r = await collect(
      engine.submit({
        promptIds: prompt(),
        params: params({ maxTokens: 5, logprobs: true, topLogprobs: 3 }),
      }),
    );
    for (const e of r.tokenEvents) {
      const lp = e.logprob!;
      expect(lp.tokenId).toBe(e.tokenId);
      expect(lp.top).toHaveLength(3);
      // Greedy: the chosen token is the most likely one.
      expect(lp.top[0]!.tokenId).toBe(e.tokenId);
      expect(lp.logprob).toBeCloseTo(lp.top[0]!.logprob, 5);
      expect(lp.top[0]!.logprob).toBeGreaterThanOrEqual(lp.top[1]!.logprob);
      expect(lp.logprob).toBeLessThanOrEqual(0);
      expect(lp.bytes.length).toBeGreaterThan(0);
    }
  });

  it('a logit_bias of +100 forces a token', async () => {
    const forced = engine.tokenizer.encode(' light', false)[0]!;
    const r = await collect(
      engine.submit({ promptIds: prompt(), params: params({ maxTokens: 4, logitBias: { [forced]: 100 } }) }),
    );
    expect(r.tokens).toEqual([forced, forced, forced, forced]);
  });

  it('rejects a prompt that does not fit the context', () => {
    const ids = new Array(engine.info.contextLength).fill(engine.encodeText('a')[0]);
    expect(() => engine.submit({ promptIds: ids, params: params() })).toThrow(/context holds/);
  });
});

describe('incremental detokenisation', () => {
  it('never emits half of a UTF-8 character and reproduces the text exactly', () => {
    const text = '床前明月光 🌅🙂 naïve café 👨‍👩‍👧 end';
    const ids = engine.tokenizer.encode(text, false);
    const detok = new IncrementalDetokenizer(engine.tokenizer, []);
    const pieces = ids.map((id) => detok.push(id));
    pieces.push(detok.flush());
    for (const piece of pieces) expect(piece).not.toContain('\uFFFD');
    // Some tokens were byte fragments of a character, so they produced no text on their own.
    expect(pieces.filter((p) => p === '').length).toBeGreaterThan(0);
    expect(pieces.join('')).toBe(text);
  });
});

describe('model loading refuses what it cannot trust or run', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tampered-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function copyModel(name: string): Promise<string> {
    const target = join(dir, name);
    await cp(TINY_MODEL_DIR, target, { recursive: true });
    return target;
  }

  it('a tampered graph: names the file and both hashes', async () => {
    const model = await copyModel('tampered');
    const graph = join(model, 'onnx/model.onnx');
    const bytes = await readFile(graph);
    bytes[bytes.length - 10] = bytes[bytes.length - 10]! ^ 0xff;
    await writeFile(graph, bytes);
    const err = await Engine.load(model).catch((e) => e);
    expect(err.code).toBe('model_hash_mismatch');
    expect(err.message).toMatch(
      /onnx\/model\.onnx failed verification: expected sha256 [0-9a-f]{64}, actual [0-9a-f]{64}/,
    );
  });

  it('a missing manifest', async () => {
    const model = await copyModel('no-manifest');
    await rm(join(model, 'SHA256SUMS'));
    await expect(Engine.load(model)).rejects.toMatchObject({ code: 'model_manifest_missing' });
  });

  it('a graph without past_key_values inputs', async () => {
    const model = await copyModel('no-past');
    const graph = await readFile(new URL('../fixtures/no-past.onnx', import.meta.url));
    await writeFile(join(model, 'onnx/model.onnx'), graph);
    const { sha256 } = await import('../../service/engine/manifest.js');
    const sums = (await readFile(join(model, 'SHA256SUMS'), 'utf8')).replace(
      /^[0-9a-f]{64}(?= {2}onnx\/model\.onnx$)/m,
      sha256(graph),
    );
    await writeFile(join(model, 'SHA256SUMS'), sums);
    const err = await Engine.load(model).catch((e) => e);
    expect(err.code).toBe('model_format');
    expect(err.message).toMatch(/past_key_values/);
  });
});
