import { basename, resolve } from 'node:path';
import { EngineError } from './errors.js';
import { type Manifest, readManifest, readVerified } from './manifest.js';

/** The subset of a Hugging Face `config.json` the engine reads. */
export interface HfModelConfig {
  model_type?: string;
  vocab_size?: number;
  max_position_embeddings?: number;
  num_hidden_layers?: number;
  num_attention_heads?: number;
  num_key_value_heads?: number;
  hidden_size?: number;
  head_dim?: number;
  eos_token_id?: number | number[] | null;
}

export interface GenerationDefaults {
  eos_token_id?: number | number[] | null;
}

/** What the main thread reads from a model directory, every byte checked against SHA256SUMS first. */
export interface ModelFiles {
  dir: string;
  name: string;
  config: HfModelConfig;
  generationConfig: GenerationDefaults;
  tokenizerJson: object;
  tokenizerConfig: Record<string, unknown>;
  /** Graph path relative to `dir`, e.g. `onnx/model.onnx`. */
  graphFile: string;
  /** The manifest entries the worker needs to verify the graph (and its external data) again as it reads them. */
  manifest: Manifest;
}

async function readJson(dir: string, manifest: Manifest, file: string): Promise<Record<string, unknown>> {
  const bytes = await readVerified(dir, manifest, file);
  try {
    return JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new EngineError('model_format', `${file} in ${dir} is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * Loads the Transformers.js / Optimum layout: config.json, generation_config.json (optional), tokenizer.json,
 * tokenizer_config.json and onnx/<graph>.onnx.
 */
export async function loadModelFiles(dirArg: string, graphFile = 'onnx/model.onnx'): Promise<ModelFiles> {
  const dir = resolve(dirArg);
  const manifest = await readManifest(dir);
  const config = (await readJson(dir, manifest, 'config.json')) as HfModelConfig;
  const generationConfig = manifest.has('generation_config.json')
    ? ((await readJson(dir, manifest, 'generation_config.json')) as GenerationDefaults)
    : {};
  const tokenizerJson = await readJson(dir, manifest, 'tokenizer.json');
  const tokenizerConfig = await readJson(dir, manifest, 'tokenizer_config.json');
  if (!manifest.has(graphFile)) {
    throw new EngineError(
      'model_file_unlisted',
      `${graphFile} is not listed in ${dir}/SHA256SUMS (listed: ${[...manifest.keys()].join(', ')})`,
    );
  }
  return {
    dir,
    name: basename(dir),
    config,
    generationConfig,
    tokenizerJson,
    tokenizerConfig,
    graphFile,
    manifest,
  };
}

/** generation_config.json wins over config.json, as in Transformers. */
export function eosTokenIds(files: Pick<ModelFiles, 'config' | 'generationConfig'>): number[] {
  const raw = files.generationConfig.eos_token_id ?? files.config.eos_token_id;
  if (raw === undefined || raw === null) return [];
  return Array.isArray(raw) ? raw : [raw];
}
