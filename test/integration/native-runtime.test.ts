/**
 * chatmirror's onnxruntime binding (service/native/ort.c) against onnxruntime-node on the same graphs: the same
 * greedy tokens batched and with rows joining and leaving. The bundled test model is a plain Optimum export
 * (present outputs, no in-place step): there both runtimes run the same feeds. SmolLM2's int8 graph (the one
 * llama.cpp's q8_0 is measured against) has GroupQueryAttention: there the binding's decode step writes the KV
 * cache in place (onnx.ts decodeShared) and onnxruntime-node's copies it (decodeCopied), so equal tokens say the
 * in-place path attends exactly the positions the copying one does (binding a copy of the cache fails both).
 *
 * With CHATMIRROR_NATIVE=1 (CI, where npm ci's postinstall builds it) a missing binding fails instead of skipping.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../service/engine/index.js';
import { BINDING_PATH } from '../../service/engine/ort-native.js';
import { collect, staggered } from '../helpers/collect.js';
import { params, TINY_MODEL_DIR } from '../helpers/model.js';
import { SMOLLM2_BUILT, SMOLLM2_DIR } from '../helpers/smollm2.js';

const BUILT = existsSync(BINDING_PATH);
const REQUIRED = process.env.CHATMIRROR_NATIVE === '1';

if (!BUILT && !REQUIRED) {
  console.warn(
    `native-runtime.test.ts: skipped, ${BINDING_PATH} is not built (bash service/native/build.sh)`,
  );
}

describe.runIf(REQUIRED && !BUILT)('the onnxruntime binding (required)', () => {
  it('is built', () => {
    expect.fail(`CHATMIRROR_NATIVE=1 but ${BINDING_PATH} is not built: run bash service/native/build.sh`);
  });
});

const PROMPTS = [
  'What is the capital of France?',
  'Write a haiku about the sea.',
  'List three prime numbers.',
  'Explain recursion to a child in one sentence.',
  'Translate "good morning" into Spanish.',
  'What is 12 times 12?',
];

function compareRuntimes(label: string, modelDir: string, graphFile?: string) {
  describe(label, () => {
    let native: Engine;
    let node: Engine;
    let ids: number[][];

    beforeAll(async () => {
      const options = { graphFile, maxBatchSize: 4, intraOpThreads: 2 };
      native = await Engine.load(modelDir, { ...options, runtime: 'auto' });
      node = await Engine.load(modelDir, { ...options, runtime: 'onnxruntime-node' });
      ids = PROMPTS.map((content) => native.encodeChat([{ role: 'user', content }]));
    }, 300_000);

    afterAll(async () => {
      await Promise.all([native?.close(), node?.close()]);
    });

    it('auto picks the binding where it is built; onnxruntime-node when asked', () => {
      expect(native.info.runtime).toBe('native');
      expect(node.info.runtime).toBe('onnxruntime-node');
    });

    it('batched: the same greedy tokens on both runtimes', async () => {
      const run = (engine: Engine) =>
        Promise.all(
          ids.map((promptIds) =>
            collect(engine.submit({ promptIds, params: params({ maxTokens: 24, ignoreEos: true }) })),
          ),
        );
      const [a, b] = [await run(native), await run(node)];
      a.forEach((out, i) => {
        expect(out.error).toBeUndefined();
        expect(out.tokens).toHaveLength(24);
        expect(out.tokens, `prompt ${i}`).toEqual(b[i]!.tokens);
      });
    }, 300_000);

    it('staggered: rows join and leave at different steps, the same tokens on both runtimes', async () => {
      const maxTokens = (i: number) => 24 - (i % 3) * 5;
      const [a, b] = [await staggered(native, ids, maxTokens), await staggered(node, ids, maxTokens)];
      a.forEach((out, i) => {
        expect(out.error).toBeUndefined();
        expect(out.tokens, `prompt ${i}`).toEqual(b[i]!.tokens);
      });
    }, 300_000);
  });
}

describe.runIf(BUILT)('the onnxruntime binding against onnxruntime-node', () => {
  compareRuntimes('the bundled test model (fp32)', TINY_MODEL_DIR);
  describe.runIf(SMOLLM2_BUILT)('SmolLM2-135M-Instruct', () => {
    compareRuntimes('int8 graph', SMOLLM2_DIR, 'onnx/model_quantized.onnx');
  });
});
