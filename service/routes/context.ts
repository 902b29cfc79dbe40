import type { Engine } from '../engine/index.js';
import { ApiError, echo } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';
import type { CompiledFilter } from '../security/content-filter.js';
import type { QuotaManager } from '../security/quotas/quota-manager.js';
import type { SamplingCaps, SamplingDefaults } from './generation-params.js';

export interface ModelAlias extends SamplingDefaults {
  description?: string | undefined;
}

/** What the completion routes need, built once by the app from config and the loaded engine. */
export interface RouteContext {
  engine: Engine;
  quotas: QuotaManager;
  /** Undefined when metrics are switched off. */
  metrics: Metrics | undefined;
  /** Deny-lists, compiled once: prompts matching `prompt` are refused; output matching `output` is stopped. */
  filters: { prompt: CompiledFilter; output: CompiledFilter };
  /** log.prompts: put prompt and completion text (secrets masked) in the completion log line. */
  logPrompts: boolean;
  /** The id the model is served under. */
  modelId: string;
  /** Extra ids for the same model, each with its own sampling defaults. */
  aliases: Readonly<Record<string, ModelAlias>>;
  /** Server-wide sampling defaults, below an alias's. */
  defaults: SamplingDefaults;
  caps: SamplingCaps & {
    maxMessages: number;
    maxPromptTokens?: number | undefined;
    retryAfterSeconds: number;
  };
  /**
   * Streamed responses: what one may buffer before its generation is paused (server.streamBufferBytes), and
   * how long its socket may stay full before it is cut off (server.writeStallMs).
   */
  stream: { writeStallMs: number; heartbeatMs: number; bufferBytes: number };
  /** Identifies the model build and server version in responses (OpenAI's system_fingerprint). */
  fingerprint: string;
  /** Unix seconds the model was loaded (the `created` of /v1/models). */
  loadedAt: number;
}

/** The alias defaults for a requested model id, or a 404 naming it. */
export function resolveModel(ctx: RouteContext, id: string): ModelAlias {
  if (id === ctx.modelId) return {};
  // Own keys only: `constructor` or `__proto__` must not resolve through Object.prototype.
  const alias = Object.hasOwn(ctx.aliases, id) ? ctx.aliases[id] : undefined;
  if (alias) return alias;
  const known = [ctx.modelId, ...Object.keys(ctx.aliases)].join(', ');
  throw new ApiError(
    'model_not_found',
    `The model '${echo(id)}' does not exist. Available: ${known}.`,
    'model',
  );
}

/** Refuses prompts beyond the configured prompt cap (the context check itself is in toSamplingParams). */
export function checkPromptSize(ctx: RouteContext, promptTokens: number, param: string): void {
  const cap = ctx.caps.maxPromptTokens;
  if (cap !== undefined && promptTokens > cap) {
    throw new ApiError(
      'context_length_exceeded',
      `The prompt has ${promptTokens} tokens; this server accepts at most ${cap}.`,
      param,
    );
  }
}
