import type { ConstraintSpec } from './grammar/constraint.js';

/**
 * Engine-level vocabulary shared by the main thread and the inference worker. Everything here must survive
 * structured cloning (postMessage), so: plain objects, arrays and numbers only.
 */

/** Fully resolved sampling settings for one sequence; the API layer fills defaults before it gets here. */
export interface SamplingParams {
  /** Upper bound on generated tokens; the engine also stops at the model's context length. */
  maxTokens: number;
  /** 0 means greedy (argmax); otherwise logits are divided by it before sampling. */
  temperature: number;
  /** Nucleus sampling: keep the smallest set of tokens whose probability mass reaches topP (1 = off). */
  topP: number;
  /** Keep only the topK most likely tokens (0 = off). */
  topK: number;
  /** Drop tokens whose probability is below minP × the top token's probability (0 = off). */
  minP: number;
  /** Hugging Face style multiplicative penalty on tokens seen in prompt or output (1 = off). */
  repetitionPenalty: number;
  /** OpenAI style additive penalty for any token already generated (0 = off). */
  presencePenalty: number;
  /** OpenAI style additive penalty proportional to how often a token was generated (0 = off). */
  frequencyPenalty: number;
  /** token id → bias added to its logit, as in OpenAI's logit_bias (-100 bans, +100 forces). */
  logitBias: Record<number, number>;
  /** Same seed and settings give the same tokens; undefined draws a random seed. */
  seed?: number | undefined;
  /** Strings that end generation when they appear in the output; they are never emitted. */
  stop: string[];
  /** Keep generating past EOS (benchmarks only). */
  ignoreEos: boolean;
  /** EOS is masked out until this many tokens are generated (0 = off); a constrained row ignores it. */
  minTokens?: number | undefined;
  /** Report the chosen token's log-probability. */
  logprobs: boolean;
  /** How many alternatives to report per position (0–20), when logprobs is on. */
  topLogprobs: number;
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface TopLogprob {
  tokenId: number;
  token: string;
  bytes: number[];
  logprob: number;
}

export interface TokenLogprob extends TopLogprob {
  top: TopLogprob[];
}

/** One generated token. `text` is the newly printable text, which may be empty while UTF-8 or a stop is pending. */
export interface TokenEvent {
  type: 'token';
  tokenId: number;
  text: string;
  logprob?: TokenLogprob | undefined;
}

export interface FinishEvent {
  type: 'finish';
  finishReason: FinishReason;
  /** Text released at the end (held back for a possible stop sequence or an unfinished UTF-8 character). */
  text: string;
  promptTokens: number;
  completionTokens: number;
  /** The stop string that ended generation, if one did. */
  stopSequence?: string | undefined;
}

export interface ErrorEvent {
  type: 'error';
  message: string;
}

export type GenerationEvent = TokenEvent | FinishEvent | ErrorEvent;

export interface GenerationRequest {
  promptIds: number[];
  params: SamplingParams;
  /**
   * The output must match this grammar: each step's logits are masked to the tokens it allows, and EOS is
   * allowed only where it may end. Prepare it first (Engine.prepareConstraint), so a refusal is the caller's.
   */
  constraint?: ConstraintSpec | undefined;
}

/** What the API needs to know about a loaded model. */
export interface ModelInfo {
  /** Directory name, used as the default model id. */
  name: string;
  modelType: string;
  contextLength: number;
  vocabSize: number;
  eosTokenIds: number[];
  numLayers: number;
  numKeyValueHeads: number;
  headDim: number;
  /** sha256 of the ONNX graph, from the verified manifest. */
  graphSha256: string;
  /** What runs the graph: chatmirror's onnxruntime binding (native) or onnxruntime-node. */
  runtime: 'native' | 'onnxruntime-node';
}

export interface EngineStats {
  running: number;
  waiting: number;
}
