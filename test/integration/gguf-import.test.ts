/**
 * `bash test/fixtures/models/build.sh gguf FILE`: a Llama-family GGUF converted the way the SmolLM2 build converts
 * its own. Refusals (another architecture, a tensor type the converter lacks) run wherever the builder's venv
 * exists; the conversion of SmolLM2's GGUF runs where the smollm2 build downloaded it, and must give the smollm2
 * build's files byte for byte. CHATMIRROR_REAL_MODEL=1 turns the skips into failures.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../service/engine/index.js';
import { collect } from '../helpers/collect.js';
import { params } from '../helpers/model.js';

const CACHE = process.env.CHATMIRROR_CACHE || join(homedir(), '.cache', 'chatmirror');
const PYTHON = join(CACHE, 'venv-smollm2', 'bin', 'python');
const BUILD = fileURLToPath(new URL('../fixtures/models/build.sh', import.meta.url));
const MAKE = fileURLToPath(new URL('../fixtures/models/make_test_gguf.py', import.meta.url));
const GGUF = join(CACHE, 'downloads', 'SmolLM2-135M-Instruct.Q4_1.gguf');
const SMOLLM2 = process.env.CHATMIRROR_SMOLLM2_DIR || join(CACHE, 'models', 'smollm2-135m-instruct');
const REQUIRED = process.env.CHATMIRROR_REAL_MODEL === '1';
const HAVE_VENV = existsSync(PYTHON);
const HAVE_GGUF = existsSync(GGUF) && existsSync(join(SMOLLM2, 'SHA256SUMS'));

const scratch = mkdtempSync(join(tmpdir(), 'chatmirror-gguf-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function build(...args: string[]) {
  const run = spawnSync('bash', [BUILD, 'gguf', ...args], { encoding: 'utf8', env: process.env });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

function manifest(dir: string): Map<string, string> {
  return new Map(
    readFileSync(join(dir, 'SHA256SUMS'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => {
        const [digest = '', name = ''] = line.split('  ');
        return [name, digest];
      }),
  );
}

describe.runIf(HAVE_VENV || REQUIRED)('build.sh gguf refuses what it cannot convert', () => {
  it.each([
    ['--arch', 'gpt2', /unsupported GGUF architecture 'gpt2' \(this converter handles llama/],
    [
      '--tensor-type',
      'IQ2_XXS',
      /unsupported GGUF tensor types IQ2_XXS \(1 tensors\); this converter dequantises/,
    ],
  ])('%s %s', (flag, value, message) => {
    const file = join(scratch, `refuse-${value}.gguf`);
    const made = spawnSync(PYTHON, [MAKE, file, flag, value], { encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    const out = join(scratch, `out-${value}`);
    const run = build(file, '--out', out);
    expect(run.status).toBe(1);
    expect(run.output).toMatch(message);
    expect(run.output).not.toMatch(/Traceback/);
    expect(existsSync(out)).toBe(false); // refused before any work
  });
});

describe.runIf(HAVE_GGUF || REQUIRED)("build.sh gguf on SmolLM2's GGUF", () => {
  const out = join(scratch, 'smollm2-import');

  it("converts it to the smollm2 build's files, byte for byte", () => {
    const run = build(GGUF, '--out', out);
    expect(run.status, run.output).toBe(0);
    expect(run.output).toMatch(/\[convert\][\s\S]*\[quantise\][\s\S]*\[verify\][\s\S]*\[write\]/);
    const imported = manifest(out);
    const built = manifest(SMOLLM2);
    for (const file of [
      'onnx/model.onnx',
      'onnx/model_quantized.onnx',
      'config.json',
      'generation_config.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'special_tokens_map.json',
    ])
      expect(imported.get(file), file).toBe(built.get(file));
    expect(readFileSync(join(out, 'README.md'), 'utf8')).toContain(
      'b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53',
    );
  }, 600_000);

  // Germany, not France: int8 flips fp32's near-tie on the France question (see smollm2.test.ts).
  it('serves the int8 graph through the engine: Berlin', async () => {
    const engine = await Engine.load(out, { graphFile: 'onnx/model_quantized.onnx', intraOpThreads: 2 });
    try {
      const promptIds = engine.encodeChat([{ role: 'user', content: 'What is the capital of Germany?' }]);
      const { text } = await collect(
        engine.submit({ promptIds, params: params({ maxTokens: 24, temperature: 0 }) }),
      );
      expect(text).toContain('Berlin');
    } finally {
      await engine.close();
    }
  }, 120_000);
});
