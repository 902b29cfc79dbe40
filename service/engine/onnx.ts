/**
 * Turns a decoder-only ONNX graph (the Optimum / Transformers.js `text-generation-with-past` layout, or
 * chatmirror's GGUF builds) into a `DecoderModel` with one operation: run a batch of new tokens against a KV
 * cache and return logits plus the grown cache. The graph runs through an OrtSession (ort-session.ts): the
 * binding to onnxruntime's C API where it is built, onnxruntime-node otherwise.
 */
import { EngineError } from './errors.js';
import { appendPositions, type KvArray, type KvBlock } from './kv-cache.js';
import {
  createSession,
  type OrtSession,
  type SessionOptions,
  type Tensor,
  type TensorData,
  type ValueInfo,
} from './ort-session.js';

export type { SessionOptions } from './ort-session.js';

/** What the engine knows of a model beyond its graph. */
export interface LoadOptions extends SessionOptions {
  /** Positions a sequence may reach (the model's context, or the lower one the engine was given). */
  contextLength: number;
}

export interface DecoderModel {
  readonly contextLength: number;
  readonly numLayers: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  /** Creates an empty cache (length 0) for `batch` rows, the input of a prefill. */
  emptyCache(batch: number): KvBlock;
  /** Allocates zeroed storage for one cache tensor of the given element count, in the graph's KV type. */
  allocKv(elements: number): KvArray;
  /**
   * Runs `tokens` new positions for every row. `attentionMask` covers cache + new tokens (batch × (length +
   * tokens)); `positionIds` is batch × tokens. Returns the logits of each row's last position (batch × vocab),
   * the only ones the engine samples from, and the grown cache. More than one token only for a batch of one
   * (a prefill): onnxruntime's GroupQueryAttention, in graphs built for generation, refuses more.
   * `recycle`: a cache the caller holds no reference to any more, whose storage the grown cache may reuse.
   */
  forward(
    inputIds: BigInt64Array,
    attentionMask: BigInt64Array,
    positionIds: BigInt64Array,
    tokens: number,
    cache: KvBlock,
    recycle?: KvBlock,
  ): Promise<{ logits: Float32Array; cache: KvBlock }>;
  /**
   * Only for graphs that read each row's length from the attention mask and return the positions they add
   * (chatmirror's GGUF builds): one decode step for every row of a right-padded `cache`, row r holding
   * `lengths[r]` positions (fewer than `cache.length`). Each row's new position is written into `cache` at its
   * length, in place, so a step copies nothing of the cache; returns each row's logits (batch × vocab).
   */
  decodeInPlace?(inputIds: BigInt64Array, lengths: readonly number[], cache: KvBlock): Promise<Float32Array>;
  /** Which runtime runs the graph (ort-session.ts). */
  readonly runtime: OrtSession['runtime'];
}

const PAST = /^past_key_values\.(\d+)\.(key|value)$/;
const REQUIRED = ['input_ids', 'attention_mask'];
/**
 * Optional scalar input of newer exports (Transformers.js feeds it too): how many trailing positions get logits.
 * With it a prefill skips the vocabulary projection of every prompt position but the last, which for a 49k
 * vocabulary is a large share of the prefill.
 */
const LOGITS_TO_KEEP = 'num_logits_to_keep';
/**
 * Optional outputs of graphs built for generation (chatmirror's GGUF builds): the positions a run added, beside
 * the whole present. onnxruntime-node copies every output it returns into a fresh JS buffer, which for the whole
 * present is O(context × batch) a step (40 ms of a 95 ms step for SmolLM2 at 16 rows of 100 positions); with
 * these the engine fetches only the new positions and grows the cache itself. Such graphs take each row's length
 * from the attention mask (its ones), so rows of a batch are right-padded and each one's new position lands at
 * its own length: `decodeInPlace` writes it into the batch's cache where it stands (batch-kv.ts SlotBatch).
 */
const NEW_KV = 'new_key_values.';

function tensorMeta(meta: readonly ValueInfo[], name: string) {
  const m = meta.find((x) => x.name === name);
  return m?.type ? m : undefined;
}

const int64 = (data: BigInt64Array, dims: readonly number[]): Tensor => ({ type: 'int64', dims, data });

export async function loadDecoderModel(
  graph: Uint8Array,
  externalData: { path: string; data: Uint8Array }[],
  source: string,
  options: LoadOptions,
): Promise<DecoderModel> {
  return describeAndWrap(await createSession(graph, externalData, options), source, options.contextLength);
}

function describeAndWrap(session: OrtSession, source: string, contextLength: number): DecoderModel {
  const inputs = session.inputs.map((m) => m.name);
  const outputNames = session.outputs.map((m) => m.name);
  const missing = REQUIRED.filter((n) => !inputs.includes(n));
  const pastNames = inputs.filter((n) => PAST.test(n));
  if (missing.length > 0 || pastNames.length === 0) {
    throw new EngineError(
      'model_format',
      `${source} is not a decoder with a KV cache: expected inputs input_ids, attention_mask and ` +
        `past_key_values.N.key/value (an Optimum "text-generation-with-past" export); it has ${inputs.join(', ')}`,
    );
  }
  const hasPositionIds = inputs.includes('position_ids');
  const hasLogitsToKeep = inputs.includes(LOGITS_TO_KEEP);
  const known = new Set([...REQUIRED, 'position_ids', LOGITS_TO_KEEP, ...pastNames]);
  const unknown = inputs.filter((n) => !known.has(n));
  if (unknown.length > 0) {
    throw new EngineError(
      'model_format',
      `${source} has inputs the engine cannot feed: ${unknown.join(', ')}`,
    );
  }
  const numLayers = pastNames.length / 2;
  const presentNames = pastNames.map((n) => n.replace('past_key_values.', 'present.'));
  const newNames = pastNames.map((n) => n.replace('past_key_values.', NEW_KV));
  const fetchNew = newNames.every((n) => outputNames.includes(n));
  // Only what the engine reads: a graph's other outputs would each be copied into JS for nothing.
  const presentOutputs = ['logits', ...presentNames];
  const absent = presentOutputs.filter((n) => !outputNames.includes(n));
  if (absent.length > 0) {
    throw new EngineError('model_format', `${source} lacks outputs ${absent.join(', ')}`);
  }
  const kvMeta = tensorMeta(session.inputs, pastNames[0]!);
  const [, heads, , headDim] = kvMeta?.shape ?? [];
  if (typeof heads !== 'number' || typeof headDim !== 'number') {
    throw new EngineError('model_format', `${source}: ${pastNames[0]} needs fixed head and head-dim axes`);
  }
  const kvType = kvMeta!.type;
  if (kvType !== 'float32' && kvType !== 'float16') {
    throw new EngineError('model_format', `${source}: KV cache type ${kvType} is not supported`);
  }
  const logitsMeta = tensorMeta(session.outputs, 'logits');
  const vocabSize = Number(logitsMeta?.shape[2]);

  const allocKv = (elements: number): KvArray =>
    kvType === 'float32' ? new Float32Array(elements) : new Uint16Array(elements);
  const kvTensor = (data: TensorData, batch: number, length: number): Tensor => ({
    type: kvType,
    dims: [batch, heads, length, headDim],
    data,
  });
  const run = async (feeds: Record<string, Tensor>, fetches: Record<string, Tensor | null>) => {
    const out = await session.run(feeds, fetches);
    if (out.logits!.type !== 'float32') {
      throw new EngineError(
        'model_format',
        `${source}: logits of type ${out.logits!.type} are not supported`,
      );
    }
    return out;
  };
  const unbound = (names: string[]) => Object.fromEntries(names.map((n) => [n, null]));
  /** The feeds of one step: `tokens` new ids per row, a mask as wide as the positions attended, the past. */
  const feedsFor = (
    inputIds: BigInt64Array,
    mask: BigInt64Array,
    positionIds: BigInt64Array,
    tokens: number,
    cache: KvBlock,
  ) => {
    const { batch, length } = cache;
    const feeds: Record<string, Tensor> = {
      input_ids: int64(inputIds, [batch, tokens]),
      attention_mask: int64(mask, [batch, mask.length / batch]),
    };
    if (hasPositionIds) feeds.position_ids = int64(positionIds, [batch, tokens]);
    if (hasLogitsToKeep) feeds[LOGITS_TO_KEEP] = int64(BigInt64Array.of(1n), []);
    pastNames.forEach((name, i) => {
      // The previous step's present (or the slots' own buffer) becomes this past, uncopied.
      feeds[name] = kvTensor(cache.tensors[i]!, batch, length);
    });
    return feeds;
  };
  /** One decode step's feeds: each row's next position after its `lengths[r]` and a mask `width` wide. */
  const decodeFeeds = (
    inputIds: BigInt64Array,
    lengths: readonly number[],
    cache: KvBlock,
    width: number,
  ) => {
    const { batch, length } = cache;
    const mask = new BigInt64Array(batch * width);
    lengths.forEach((len, r) => {
      if (len >= length)
        throw new RangeError(`row ${r} holds ${len} of ${length} positions: no room for one more`);
      mask.fill(1n, r * width, r * width + len + 1);
    });
    return feedsFor(inputIds, mask, BigInt64Array.from(lengths, BigInt), 1, cache);
  };

  /**
   * Where outputs can be bound (the binding): present is bound to the past's own buffer and the mask is as wide
   * as the cache, so present has the past's shape and GroupQueryAttention, seeing one buffer for both, writes
   * each row's new position at its length (the mask's ones) and copies nothing else.
   */
  const decodeShared = async (inputIds: BigInt64Array, lengths: readonly number[], cache: KvBlock) => {
    const fetches: Record<string, Tensor | null> = { logits: null };
    presentNames.forEach((name, i) => {
      fetches[name] = kvTensor(cache.tensors[i]!, cache.batch, cache.length);
    });
    const out = await run(decodeFeeds(inputIds, lengths, cache, cache.length), fetches);
    return out.logits!.data as Float32Array;
  };

  /** Otherwise: the mask is one wider, present is a fresh copy, and the new positions are fetched and copied in. */
  const decodeCopied = async (inputIds: BigInt64Array, lengths: readonly number[], cache: KvBlock) => {
    const { batch, length } = cache;
    const out = await run(
      decodeFeeds(inputIds, lengths, cache, length + 1),
      unbound(['logits', ...newNames]),
    );
    newNames.forEach((name, t) => {
      const added = out[name]!.data as KvArray;
      const dst = cache.tensors[t]!;
      for (let b = 0; b < batch; b++) {
        for (let h = 0; h < heads; h++) {
          const row = b * heads + h;
          dst.set(added.subarray(row * headDim, (row + 1) * headDim), (row * length + lengths[b]!) * headDim);
        }
      }
    });
    return out.logits!.data as Float32Array;
  };

  return {
    contextLength,
    numLayers,
    numKeyValueHeads: heads,
    headDim,
    vocabSize,
    allocKv,
    emptyCache: (batch) => ({ batch, length: 0, tensors: pastNames.map(() => allocKv(0)) }),
    async forward(inputIds, attentionMask, positionIds, tokens, cache, recycle) {
      const { batch, length } = cache;
      const feeds = feedsFor(inputIds, attentionMask, positionIds, tokens, cache);
      const out = await run(feeds, unbound(fetchNew ? ['logits', ...newNames] : presentOutputs));
      const logits = out.logits!;
      return {
        logits: lastPositions(
          logits.data as Float32Array,
          batch,
          Number(logits.dims[1]),
          Number(logits.dims[2]),
        ),
        cache: fetchNew
          ? appendPositions(
              cache,
              newNames.map((name) => out[name]!.data as KvArray),
              tokens,
              heads,
              headDim,
              allocKv,
              recycle,
            )
          : {
              batch,
              length: length + tokens,
              tensors: presentNames.map((name) => out[name]!.data as KvArray),
            },
      };
    },
    ...(fetchNew && hasPositionIds
      ? { decodeInPlace: session.bindsOutputs ? decodeShared : decodeCopied }
      : {}),
    runtime: session.runtime,
  };
}

/** The last position's row of each batch row of [batch, positions, vocab] logits (a view when there is one). */
function lastPositions(data: Float32Array, batch: number, positions: number, vocab: number): Float32Array {
  if (positions === 1) return data;
  if (batch === 1) return data.subarray((positions - 1) * vocab);
  const out = new Float32Array(batch * vocab);
  for (let r = 0; r < batch; r++) {
    const from = (r * positions + positions - 1) * vocab;
    out.set(data.subarray(from, from + vocab), r * vocab);
  }
  return out;
}
