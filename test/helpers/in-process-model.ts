/**
 * The bundled tiny model loaded in this thread, without the engine's worker: for tests that drive the
 * scheduler directly and act between two decode steps.
 */
import { readVerified } from '../../service/engine/manifest.js';
import { loadModelFiles } from '../../service/engine/model-files.js';
import { type DecoderModel, loadDecoderModel } from '../../service/engine/onnx.js';
import { TextTokenizer } from '../../service/engine/tokenizer.js';
import { TINY_MODEL_DIR } from './model.js';

export async function loadTinyInProcess(): Promise<{ model: DecoderModel; tokenizer: TextTokenizer }> {
  const files = await loadModelFiles(TINY_MODEL_DIR);
  const graph = await readVerified(files.dir, files.manifest, files.graphFile);
  return {
    model: await loadDecoderModel(graph, [], files.graphFile, {
      intraOpThreads: 1,
      spinThreads: false,
      runtime: 'auto',
      contextLength: files.config.max_position_embeddings ?? 2048,
    }),
    tokenizer: new TextTokenizer(files.tokenizerJson, files.tokenizerConfig),
  };
}
