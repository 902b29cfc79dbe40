import { randomInt } from 'node:crypto';
import { IncrementalDetokenizer } from './detokenizer.js';
import type { RowConstraint } from './grammar/row-constraint.js';
import { logSumExp, topLogprobs } from './logprobs.js';
import { Rng } from './rng.js';
import { adjustLogits, chooseToken } from './sampler.js';
import { StopMatcher } from './stopping.js';
import type { TextTokenizer } from './tokenizer.js';
import type { FinishReason, GenerationEvent, GenerationRequest, TokenLogprob } from './types.js';

export interface SequenceLimits {
  contextLength: number;
  eosTokenIds: ReadonlySet<number>;
}

/**
 * One request's decoding state: history for penalties, its RNG, the detokenizer and the stop matcher. It turns
 * a row of logits into the next token and the events a client sees; the scheduler only moves tensors.
 */
export class Sequence {
  readonly promptIds: readonly number[];
  /** Positions this sequence holds in the KV cache. */
  cached = 0;
  /** The token to feed at the next decode step. */
  nextToken = -1;
  finished: FinishReason | undefined;
  cancelled = false;
  private readonly generated: number[] = [];
  private readonly seen: Set<number>;
  private readonly generatedCounts = new Map<number, number>();
  private readonly rng: Rng;
  private readonly detokenizer: IncrementalDetokenizer;
  private readonly stopper: StopMatcher;

  constructor(
    readonly id: number,
    readonly request: GenerationRequest,
    private readonly tokenizer: TextTokenizer,
    private readonly limits: SequenceLimits,
    /** The row's grammar (response_format, tools), if its output is constrained. */
    private readonly constraint?: RowConstraint,
  ) {
    this.promptIds = request.promptIds;
    this.seen = new Set(request.promptIds);
    this.rng = new Rng(request.params.seed ?? randomInt(2 ** 47));
    this.detokenizer = new IncrementalDetokenizer(tokenizer, request.promptIds);
    this.stopper = new StopMatcher(request.params.stop);
  }

  /** The tokens whose keys and values the cache holds: the prompt and every generated token fed back so far. */
  cachedIds(): number[] {
    return [...this.promptIds, ...this.generated].slice(0, this.cached);
  }

  /** Picks the next token from this row of logits (modified in place) and returns the events it produces. */
  step(logits: Float32Array): GenerationEvent[] {
    const { params } = this.request;
    const raw = params.logprobs ? logits.slice() : undefined;
    adjustLogits(logits, params, { seen: this.seen, generatedCounts: this.generatedCounts });
    // After the adjustments, before truncation and the draw: every sampler setting still applies, within
    // the tokens the grammar allows.
    this.constraint?.mask(logits);
    // min_tokens: no EOS yet. Not for a constrained row, whose grammar alone decides where it may end.
    if (!this.constraint && this.generated.length < (params.minTokens ?? 0)) {
      for (const eos of this.limits.eosTokenIds) logits[eos] = Number.NEGATIVE_INFINITY;
    }
    const id = chooseToken(logits, params, this.rng);
    if (this.constraint && !this.constraint.accept(id)) {
      return [this.fail(`the grammar refused token ${id}, which its mask allowed`)];
    }
    this.generated.push(id);
    this.seen.add(id);
    this.generatedCounts.set(id, (this.generatedCounts.get(id) ?? 0) + 1);
    this.nextToken = id;

    const logprob = raw ? this.logprobOf(raw, id) : undefined;
    // A constrained row's EOS ends its grammar: past it the grammar allows nothing, benchmark or not.
    if ((!params.ignoreEos || this.constraint) && this.limits.eosTokenIds.has(id)) {
      const rest = this.releaseAll();
      return [
        { type: 'token', tokenId: id, text: '', logprob },
        this.finish('stop', rest.text, rest.stopped),
      ];
    }
    const { emit, stopped } = this.stopper.push(this.detokenizer.push(id));
    const events: GenerationEvent[] = [{ type: 'token', tokenId: id, text: emit, logprob }];
    if (stopped !== undefined) {
      events.push(this.finish('stop', '', stopped));
    } else if (
      this.generated.length >= params.maxTokens ||
      this.promptIds.length + this.generated.length >= this.limits.contextLength
    ) {
      const rest = this.releaseAll();
      events.push(this.finish(rest.stopped === undefined ? 'length' : 'stop', rest.text, rest.stopped));
    }
    return events;
  }

  /** Ends a sequence the client gave up on. */
  abort(): GenerationEvent {
    return this.finish('abort', '');
  }

  /** Held text (an unfinished character, a possible stop prefix) released at the end, stops still enforced. */
  private releaseAll(): { text: string; stopped?: string | undefined } {
    const { emit, stopped } = this.stopper.push(this.detokenizer.flush());
    return { text: stopped === undefined ? emit + this.stopper.flush() : emit, stopped };
  }

  private fail(message: string): GenerationEvent {
    this.finished = 'abort';
    this.constraint?.dispose();
    return { type: 'error', message };
  }

  private finish(reason: FinishReason, text: string, stopSequence?: string): GenerationEvent {
    this.finished = reason;
    this.constraint?.dispose();
    return {
      type: 'finish',
      finishReason: reason,
      text,
      promptTokens: this.promptIds.length,
      completionTokens: this.generated.length,
      stopSequence,
    };
  }

  private logprobOf(raw: Float32Array, id: number): TokenLogprob {
    const lse = logSumExp(raw);
    const describe = (tokenId: number, logprob: number) => ({
      tokenId,
      logprob,
      ...this.tokenizer.tokenText(tokenId),
    });
    return {
      ...describe(id, raw[id]! - lse),
      top: topLogprobs(raw, this.request.params.topLogprobs, lse).map((t) => describe(t.tokenId, t.logprob)),
    };
  }
}
