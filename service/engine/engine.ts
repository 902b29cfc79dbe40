import type { Worker } from 'node:worker_threads';
import { type ChatMessage, ChatTemplate, type TemplateTool } from './chat-template.js';
import { EngineError, EngineOverloadedError } from './errors.js';
import { EventChannel } from './event-channel.js';
import type { FlowValve } from './flow.js';
import type { ConstraintSpec } from './grammar/constraint.js';
import { eosTokenIds, loadModelFiles } from './model-files.js';
import type { RuntimeChoice } from './ort-session.js';
import { TextTokenizer } from './tokenizer.js';
import { spawnTypeScriptWorker, TokenizerPool } from './tokenizer-pool.js';
import type { EngineStats, GenerationEvent, GenerationRequest, ModelInfo, SamplingParams } from './types.js';
import type { FromWorker, ToWorker, WorkerInit } from './worker.js';

export interface EngineOptions {
  /** Graph inside the model directory; `onnx/model_quantized.onnx` picks an int8 export. */
  graphFile?: string;
  /** onnxruntime intra-op threads; 0 = one per core. */
  intraOpThreads?: number;
  /** Let onnxruntime's threads spin between kernels instead of sleeping (see SessionOptions.spinThreads). */
  spinThreads?: boolean;
  /** Which runtime runs the graph: chatmirror's onnxruntime binding, onnxruntime-node, or the first that loads. */
  runtime?: RuntimeChoice;
  /** Sequences decoded together in one batched step. */
  maxBatchSize?: number;
  /** Requests allowed to wait for a batch slot; beyond that `submit` refuses at once. */
  maxQueue?: number;
  /** Lower the usable context below the model's max_position_embeddings (e.g. to bound memory). */
  contextLength?: number;
  /** Threads that template and tokenize prompts, off the main thread. */
  tokenizerThreads?: number;
}

export const ENGINE_DEFAULTS = {
  graphFile: 'onnx/model.onnx',
  intraOpThreads: 0,
  spinThreads: true,
  runtime: 'auto',
  maxBatchSize: 16,
  maxQueue: 64,
  tokenizerThreads: 1,
} as const;

/** Callbacks for one generation that cannot travel to the worker inside the request. */
export interface SubmitHooks {
  /** The sequence left the queue: its prefill starts (time in queue ends here). */
  onScheduled?: () => void;
  /** Flow control: while paused, the sequence is taken out of the batch and decodes nothing. */
  flow?: FlowValve;
}

interface Pending {
  channel: EventChannel<GenerationEvent>;
  /** Scheduled by the worker (prefilling or decoding), as opposed to waiting in its queue. */
  started: boolean;
  hooks: SubmitHooks;
  /** Set when the caller cancels: tokens already on their way from the worker are dropped, not delivered. */
  cancelled: boolean;
  /** The worker reports it parked out of the batch (paused by its flow valve). */
  parked: boolean;
  detach: () => void;
}

/** Bounds checks the engine needs to stay correct; the API layer applies its own, friendlier caps first. */
function checkParams(p: SamplingParams): void {
  const bad = (name: string, why: string) => {
    throw new EngineError('invalid_generation_params', `${name} ${why}`);
  };
  if (!Number.isInteger(p.maxTokens) || p.maxTokens < 1) bad('maxTokens', 'must be an integer ≥ 1');
  if (!(p.temperature >= 0)) bad('temperature', 'must be ≥ 0');
  if (!(p.topP > 0 && p.topP <= 1)) bad('topP', 'must be in (0, 1]');
  if (!Number.isInteger(p.topK) || p.topK < 0) bad('topK', 'must be an integer ≥ 0');
  if (!(p.minP >= 0 && p.minP <= 1)) bad('minP', 'must be in [0, 1]');
  if (!(p.repetitionPenalty > 0)) bad('repetitionPenalty', 'must be > 0');
  if (!Number.isInteger(p.topLogprobs) || p.topLogprobs < 0 || p.topLogprobs > 20)
    bad('topLogprobs', 'must be 0–20');
}

/**
 * The generation engine as the rest of the service sees it: prompts are templated and tokenized by a tokenizer
 * pool and inference runs in a worker thread, so neither holds the caller's event loop. `submit` admits or
 * refuses at once and streams events as an async iterator. `tokenizer` (the same tokenizer, on this thread) is
 * for cheap per-token work and facts such as the vocabulary.
 */
export class Engine {
  private readonly pending = new Map<number, Pending>();
  /** prepareConstraint calls waiting for the worker's answer. */
  private readonly compiles = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  private nextCompileId = 1;
  /**
   * Decode steps so far and the rows they covered (decodedRows / decodeSteps is the mean batch size), and how
   * often a sequence was parked out of the batch because its client was not reading.
   */
  readonly counters = { decodeSteps: 0, decodedRows: 0, maxDecodeBatch: 0, parks: 0 };
  private readonly decodeStepListeners = new Set<(rows: number) => void>();
  private nextId = 1;
  private failure: string | undefined;
  private closing = false;

  private constructor(
    private readonly worker: Worker,
    readonly info: ModelInfo,
    readonly tokenizer: TextTokenizer,
    readonly chatTemplate: ChatTemplate,
    private readonly prompts: TokenizerPool,
    private readonly maxBatchSize: number,
    private readonly maxQueue: number,
  ) {
    worker.on('message', (msg: FromWorker) => this.onMessage(msg));
    worker.on('error', (err) => this.fail(`inference worker crashed: ${err.message}`));
    worker.on('exit', (code) => {
      if (!this.closing) this.fail(`inference worker exited with code ${code}`);
    });
  }

  static async load(modelDir: string, options: EngineOptions = {}): Promise<Engine> {
    const files = await loadModelFiles(modelDir, options.graphFile ?? ENGINE_DEFAULTS.graphFile);
    const tokenizer = new TextTokenizer(files.tokenizerJson, files.tokenizerConfig);
    const chatTemplate = new ChatTemplate(files.tokenizerConfig);
    const modelContext = files.config.max_position_embeddings ?? 2048;
    const contextLength = Math.min(options.contextLength ?? modelContext, modelContext);
    const eos = eosTokenIds(files);
    const maxBatchSize = options.maxBatchSize ?? ENGINE_DEFAULTS.maxBatchSize;
    const init: WorkerInit = {
      files,
      intraOpThreads: options.intraOpThreads ?? ENGINE_DEFAULTS.intraOpThreads,
      spinThreads: options.spinThreads ?? ENGINE_DEFAULTS.spinThreads,
      runtime: options.runtime ?? ENGINE_DEFAULTS.runtime,
      maxBatchSize,
      contextLength,
      eosTokenIds: eos,
    };
    const maxQueue = options.maxQueue ?? ENGINE_DEFAULTS.maxQueue;
    const prompts = await TokenizerPool.start(
      { tokenizerJson: files.tokenizerJson, tokenizerConfig: files.tokenizerConfig },
      options.tokenizerThreads ?? ENGINE_DEFAULTS.tokenizerThreads,
      // No more prompts in the pool than the engine could take generations.
      maxBatchSize + maxQueue,
    );
    const worker = spawnTypeScriptWorker('./worker', init);
    const shape = await new Promise<Extract<FromWorker, { type: 'ready' }>['shape']>((resolve, reject) => {
      const onMessage = (msg: FromWorker) => {
        if (msg.type === 'ready') resolve(msg.shape);
        else if (msg.type === 'init-error')
          reject(new EngineError(msg.code as EngineError['code'], msg.message));
      };
      worker.once('message', onMessage);
      worker.once('error', reject);
    }).catch(async (err) => {
      await worker.terminate();
      await prompts.close();
      throw err;
    });
    const info: ModelInfo = {
      name: files.name,
      modelType: files.config.model_type ?? 'unknown',
      contextLength,
      vocabSize: shape.vocabSize,
      eosTokenIds: eos,
      numLayers: shape.numLayers,
      numKeyValueHeads: shape.numKeyValueHeads,
      headDim: shape.headDim,
      graphSha256: files.manifest.get(files.graphFile)!,
      runtime: shape.runtime,
    };
    return new Engine(worker, info, tokenizer, chatTemplate, prompts, maxBatchSize, maxQueue);
  }

  /**
   * Renders messages with the model's chat template and tokenizes the result, on the calling thread: for
   * tools and tests. The API uses `tokenizeChat`, which does the same in the tokenizer pool.
   */
  encodeChat(messages: ChatMessage[], tools?: TemplateTool[]): number[] {
    return this.tokenizer.encode(this.chatTemplate.render(messages, true, tools), false);
  }

  /** Tokenizes a raw prompt (with the tokenizer's BOS, if it has one), on the calling thread; see tokenizeText. */
  encodeText(text: string): number[] {
    return this.tokenizer.encode(text, true);
  }

  /** encodeChat in the tokenizer pool: the caller's event loop keeps turning however large the prompt. */
  tokenizeChat(messages: ChatMessage[], tools?: TemplateTool[]): Promise<number[]> {
    return this.prompts.encodeChat(messages, tools);
  }

  /** encodeText in the tokenizer pool. */
  tokenizeText(text: string): Promise<number[]> {
    return this.prompts.encodeText(text);
  }

  /** The text of a token-id prompt, decoded in the tokenizer pool. */
  detokenizePrompt(ids: number[]): Promise<string> {
    return this.prompts.decode(ids);
  }

  /**
   * Compiles a constraint's grammar in the inference worker (cached there by the spec's hash), so that a grammar
   * the compiler refuses is the caller's error (EngineError `grammar_refused`, with the compiler's reason) before
   * anything is submitted. Submitting a constraint without preparing it works too; a refusal then ends that
   * generation with an error event.
   */
  prepareConstraint(spec: ConstraintSpec): Promise<void> {
    if (this.failure !== undefined) {
      return Promise.reject(new EngineError('engine_worker_failed', this.failure));
    }
    if (this.closing) return Promise.reject(new EngineError('engine_closed', 'the engine is shutting down'));
    const id = this.nextCompileId++;
    return new Promise<void>((resolve, reject) => {
      this.compiles.set(id, { resolve, reject });
      this.post({ type: 'compile', id, spec });
    });
  }

  /** Calls `listener` with the batch size of every decode step; returns the unsubscribe function. */
  onDecodeStep(listener: (rows: number) => void): () => void {
    this.decodeStepListeners.add(listener);
    return () => this.decodeStepListeners.delete(listener);
  }

  get healthy(): boolean {
    return this.failure === undefined && !this.closing;
  }

  /** Generations the engine can hold at all (batch slots + queue places), busy or not. */
  get capacity(): number {
    return this.maxBatchSize + this.maxQueue;
  }

  /** Generations `submit` would still accept right now (batch slots + queue places left). */
  capacityLeft(): number {
    return Math.max(0, this.maxBatchSize + this.maxQueue - this.pending.size);
  }

  /** Generations the worker has parked out of the batch because their client is not reading. */
  get pausedCount(): number {
    let paused = 0;
    for (const p of this.pending.values()) if (p.parked) paused++;
    return paused;
  }

  stats(): EngineStats {
    let running = 0;
    for (const p of this.pending.values()) if (p.started) running++;
    return { running, waiting: this.pending.size - running };
  }

  /**
   * Starts a generation, or throws at once: EngineOverloadedError when batch and queue are full, EngineError
   * for a prompt that does not fit the context. Aborting `signal` (or leaving the loop) ends it within a step.
   */
  submit(
    request: GenerationRequest,
    signal?: AbortSignal,
    hooks: SubmitHooks = {},
  ): AsyncIterableIterator<GenerationEvent> {
    if (this.failure !== undefined) throw new EngineError('engine_worker_failed', this.failure);
    if (this.closing) throw new EngineError('engine_closed', 'the engine is shutting down');
    checkParams(request.params);
    if (request.promptIds.length === 0) {
      throw new EngineError('invalid_generation_params', 'the prompt is empty');
    }
    if (request.promptIds.length >= this.info.contextLength) {
      throw new EngineError(
        'invalid_generation_params',
        `the prompt has ${request.promptIds.length} tokens; the context holds ${this.info.contextLength}`,
      );
    }
    if (this.pending.size >= this.maxBatchSize + this.maxQueue) {
      const { running, waiting } = this.stats();
      throw new EngineOverloadedError(running, waiting);
    }
    const id = this.nextId++;
    const cancel = () => {
      const p = this.pending.get(id);
      if (!p || p.cancelled) return;
      p.cancelled = true;
      this.post({ type: 'cancel', id });
    };
    const channel = new EventChannel<GenerationEvent>(cancel);
    const onAbort = () => cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    const unsubscribe = hooks.flow?.subscribe((paused) => {
      if (this.pending.has(id)) this.post({ type: paused ? 'pause' : 'resume', id });
    });
    this.pending.set(id, {
      channel,
      started: false,
      hooks,
      cancelled: false,
      parked: false,
      detach: () => {
        signal?.removeEventListener('abort', onAbort);
        unsubscribe?.();
      },
    });
    this.post({ type: 'submit', id, request });
    if (hooks.flow?.paused) this.post({ type: 'pause', id });
    if (signal?.aborted) cancel();
    return channel;
  }

  /** Stops the worker; in-flight generations end with an error event. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.post({ type: 'close' });
    this.fail('the engine was closed', false);
    await Promise.all([this.worker.terminate(), this.prompts.close()]);
  }

  private post(msg: ToWorker): void {
    this.worker.postMessage(msg);
  }

  private onMessage(msg: FromWorker): void {
    if (msg.type === 'init-error') {
      this.fail(`inference worker failed: ${msg.message}`);
      return;
    }
    if (msg.type === 'compiled') {
      const waiting = this.compiles.get(msg.id);
      this.compiles.delete(msg.id);
      if (msg.error === undefined) waiting?.resolve();
      else waiting?.reject(new EngineError('grammar_refused', msg.error));
      return;
    }
    if (msg.type === 'scheduled') {
      const p = this.pending.get(msg.id);
      if (p && !p.started) {
        p.started = true;
        p.hooks.onScheduled?.();
      }
      return;
    }
    if (msg.type === 'parked') {
      const p = this.pending.get(msg.id);
      if (p) p.parked = msg.parked;
      if (msg.parked) this.counters.parks++;
      return;
    }
    if (msg.type !== 'events') return;
    if (msg.decodeRows > 0) {
      this.counters.decodeSteps++;
      this.counters.decodedRows += msg.decodeRows;
      this.counters.maxDecodeBatch = Math.max(this.counters.maxDecodeBatch, msg.decodeRows);
      for (const listener of this.decodeStepListeners) listener(msg.decodeRows);
    }
    for (const [id, events] of msg.batch) {
      const p = this.pending.get(id);
      if (!p) continue;
      p.started = true;
      for (const event of events) {
        if (p.cancelled && event.type === 'token') continue;
        p.channel.push(event);
        if (event.type !== 'token') this.settle(id, p);
      }
    }
  }

  private settle(id: number, p: Pending): void {
    this.pending.delete(id);
    p.detach();
    p.channel.end();
  }

  private fail(message: string, record = true): void {
    if (record && this.failure === undefined) this.failure = message;
    for (const [id, waiting] of this.compiles) {
      this.compiles.delete(id);
      waiting.reject(new EngineError(record ? 'engine_worker_failed' : 'engine_closed', message));
    }
    for (const [id, p] of this.pending) {
      p.channel.push({ type: 'error', message });
      this.settle(id, p);
    }
  }
}
