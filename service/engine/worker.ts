/**
 * The inference thread. onnxruntime's `run` blocks the thread that calls it, so the session, the scheduler
 * and all per-token work live here and the main thread's event loop stays free for HTTP.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BatchScheduler } from './batch.js';
import { EngineError } from './errors.js';
import { GrammarBackend, GrammarCompileError } from './grammar/backend.js';
import type { ConstraintSpec } from './grammar/constraint.js';
import { grammarVocabulary } from './grammar/vocabulary.js';
import { readVerified } from './manifest.js';
import type { ModelFiles } from './model-files.js';
import { type DecoderModel, loadDecoderModel } from './onnx.js';
import type { RuntimeChoice } from './ort-session.js';
import { Sequence, type SequenceLimits } from './sequence.js';
import { TextTokenizer } from './tokenizer.js';
import type { GenerationEvent, GenerationRequest } from './types.js';

export interface WorkerInit {
  files: ModelFiles;
  intraOpThreads: number;
  spinThreads: boolean;
  runtime: RuntimeChoice;
  maxBatchSize: number;
  contextLength: number;
  eosTokenIds: number[];
}

export type ToWorker =
  | { type: 'submit'; id: number; request: GenerationRequest }
  /** Compile (or find in the cache) a constraint's grammar; answered by `compiled`. */
  | { type: 'compile'; id: number; spec: ConstraintSpec }
  | { type: 'cancel'; id: number }
  /** Flow control: stop decoding this sequence (its client is not reading) / carry on. */
  | { type: 'pause'; id: number }
  | { type: 'resume'; id: number }
  | { type: 'close' };

export interface LoadedShape {
  numLayers: number;
  numKeyValueHeads: number;
  headDim: number;
  vocabSize: number;
  runtime: DecoderModel['runtime'];
}

export type FromWorker =
  | { type: 'ready'; shape: LoadedShape }
  | { type: 'init-error'; code: string; message: string }
  | { type: 'scheduled'; id: number }
  /** A `compile` done: `error` is the grammar compiler's reason for refusing it. */
  | { type: 'compiled'; id: number; error?: string | undefined }
  /** The sequence left the batch, paused (parked: true), or rejoined it (false). */
  | { type: 'parked'; id: number; parked: boolean }
  | { type: 'events'; batch: [number, GenerationEvent[]][]; decodeRows: number };

const port = parentPort!;
const init = workerData as WorkerInit;

async function start(): Promise<void> {
  const { files } = init;
  const graph = await readVerified(files.dir, files.manifest, files.graphFile);
  // Optimum and Transformers.js name a graph's external weights <graph>_data; they are verified like the graph.
  const externalData = await Promise.all(
    [`${files.graphFile}_data`, `${files.graphFile}.data`]
      .filter((p) => files.manifest.has(p))
      .map(async (p) => ({
        path: p.split('/').pop()!,
        data: await readVerified(files.dir, files.manifest, p),
      })),
  );
  const model = await loadDecoderModel(graph, externalData, `${files.dir}/${files.graphFile}`, {
    intraOpThreads: init.intraOpThreads,
    spinThreads: init.spinThreads,
    runtime: init.runtime,
    contextLength: init.contextLength,
  });
  const tokenizer = new TextTokenizer(files.tokenizerJson, files.tokenizerConfig);
  const limits: SequenceLimits = {
    contextLength: init.contextLength,
    eosTokenIds: new Set(init.eosTokenIds),
  };
  const scheduler = new BatchScheduler(
    model,
    init.maxBatchSize,
    (batch, decodeRows) => port.postMessage({ type: 'events', batch, decodeRows } satisfies FromWorker),
    (id) => port.postMessage({ type: 'scheduled', id } satisfies FromWorker),
    (id, parked) => port.postMessage({ type: 'parked', id, parked } satisfies FromWorker),
  );
  // Grammars compile here, off the HTTP thread; a compile holds decoding for its duration (tens of ms, once per
  // schema: they are cached).
  const grammars = new GrammarBackend(
    grammarVocabulary(files.tokenizerJson, model.vocabSize),
    init.eosTokenIds,
  );
  /** Constrained submissions waiting for their matcher; a cancel meanwhile is remembered here. */
  const awaitingGrammar = new Map<number, { cancelled: boolean; paused: boolean }>();
  const submitConstrained = async (id: number, request: GenerationRequest, spec: ConstraintSpec) => {
    const state = { cancelled: false, paused: false };
    awaitingGrammar.set(id, state);
    try {
      const row = await grammars.row(spec);
      const seq = new Sequence(id, request, tokenizer, limits, row);
      if (state.cancelled) port.postMessage({ type: 'events', batch: [[id, [seq.abort()]]], decodeRows: 0 });
      else {
        scheduler.submit(seq);
        if (state.paused) scheduler.pause(id);
      }
    } catch (err) {
      const message = err instanceof GrammarCompileError ? err.message : String(err);
      const event: GenerationEvent = { type: 'error', message: `grammar: ${message}` };
      port.postMessage({ type: 'events', batch: [[id, [event]]], decodeRows: 0 } satisfies FromWorker);
    } finally {
      awaitingGrammar.delete(id);
    }
  };
  port.on('message', (msg: ToWorker) => {
    if (msg.type === 'submit') {
      const spec = msg.request.constraint;
      if (spec) void submitConstrained(msg.id, msg.request, spec);
      else scheduler.submit(new Sequence(msg.id, msg.request, tokenizer, limits));
    } else if (msg.type === 'compile') {
      grammars.prepare(msg.spec).then(
        () => port.postMessage({ type: 'compiled', id: msg.id } satisfies FromWorker),
        (err: unknown) =>
          port.postMessage({
            type: 'compiled',
            id: msg.id,
            error: (err as Error).message,
          } satisfies FromWorker),
      );
    } else if (msg.type === 'cancel') {
      const waiting = awaitingGrammar.get(msg.id);
      if (waiting) waiting.cancelled = true;
      else scheduler.cancel(msg.id);
    } else if (msg.type === 'pause' || msg.type === 'resume') {
      const waiting = awaitingGrammar.get(msg.id);
      if (waiting) waiting.paused = msg.type === 'pause';
      else if (msg.type === 'pause') scheduler.pause(msg.id);
      else scheduler.resume(msg.id);
    } else if (msg.type === 'close') scheduler.close();
  });
  const shape: LoadedShape = {
    numLayers: model.numLayers,
    numKeyValueHeads: model.numKeyValueHeads,
    headDim: model.headDim,
    vocabSize: model.vocabSize,
    runtime: model.runtime,
  };
  port.postMessage({ type: 'ready', shape } satisfies FromWorker);
  await scheduler.run();
  port.close();
}

start().catch((err: unknown) => {
  const code = err instanceof EngineError ? err.code : 'model_format';
  port.postMessage({ type: 'init-error', code, message: (err as Error).message } satisfies FromWorker);
  port.close();
});
