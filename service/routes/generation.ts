import type { FastifyReply, FastifyRequest } from 'fastify';
import { EventChannel } from '../engine/event-channel.js';
import { FlowValve } from '../engine/flow.js';
import type { ConstraintSpec } from '../engine/grammar/constraint.js';
import type { SamplingParams } from '../engine/types.js';
import { observeGeneration } from '../observability/generation-observer.js';
import { logCompletion } from '../observability/logging.js';
import type { StagedAdmission } from '../security/quotas/quota-manager.js';
import { chargeTokens, quotaSubject } from './admission.js';
import { type Choices, startChoices } from './choices.js';
import type { RouteContext } from './context.js';
import { type ChoiceUpdate, type RunTotals, runChoices } from './generation-run.js';

/** One prompt and its settings; a request has one (chat) or several (completions with a list of prompts). */
export interface GenerationPlan {
  promptIds: number[];
  params: SamplingParams;
  /** The output's grammar, prepared (Engine.prepareConstraint) before the plan starts. */
  constraint?: ConstraintSpec | undefined;
}

export interface Generation {
  /** Every choice's updates; choice p·n + i is prompt p's i-th. */
  updates: AsyncIterable<ChoiceUpdate>;
  totals: RunTotals;
  promptTokens: number;
  /** Aborted when the client goes away: the handler then stops writing. */
  disconnected: AbortSignal;
  /** Pauses every sequence of the request while set (the client's socket is full); see openStream. */
  flow: FlowValve;
  /** OpenAI's usage object as of now (final once the updates are drained). */
  usage(): { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

/**
 * The life of one generation request, shared by both completion endpoints: the token charge (the request
 * itself was admitted before tokenizing), the engine submissions, metrics, the output deny-list, then, however it ends,
 * the real token charge and one structured log line. The handlers validate before and format during.
 */
export async function startGeneration(
  ctx: RouteContext,
  request: FastifyRequest,
  reply: FastifyReply,
  options: {
    model: string;
    plans: GenerationPlan[];
    n: number;
    promptText: unknown;
    /** The request's quota admission (admitRequest), made before its prompt was tokenized. */
    quota: StagedAdmission;
  },
): Promise<Generation> {
  const { plans, n, model, quota } = options;
  const promptTokens = plans.reduce((sum, p) => sum + p.promptIds.length, 0);
  const estimate = plans.reduce((sum, p) => sum + p.promptIds.length + n * p.params.maxTokens, 0);
  await chargeTokens(quota, reply, estimate, ctx.metrics);

  // A client that goes away (mid-stream or while waiting for a full response) frees its batch slots.
  const disconnected = new AbortController();
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) disconnected.abort();
  });
  const flow = new FlowValve();
  const started: Choices[] = [];
  const observers = plans.map(() =>
    ctx.metrics ? observeGeneration(ctx.metrics, { model, choices: n }) : undefined,
  );
  try {
    plans.forEach(({ promptIds, params, constraint }, p) => {
      const observer = observers[p];
      started.push(
        startChoices(
          ctx.engine,
          promptIds,
          params,
          n,
          disconnected.signal,
          ctx.caps.retryAfterSeconds,
          { onScheduled: () => observer?.onScheduled(), flow },
          constraint,
        ),
      );
    });
  } catch (err) {
    disconnected.abort();
    // The engine refused (overload, drain, a failed worker) after the estimate was charged: nothing was
    // generated, so the charge is reconciled to zero before the refusal goes out.
    await quota.recordTokens(0);
    throw err;
  }

  const totals: RunTotals = { completionTokens: 0, finishReasons: new Array(plans.length * n).fill(null) };
  const perPlan = started.map((choices, p) => {
    const own: RunTotals = { completionTokens: 0, finishReasons: [] };
    const updates = runChoices(choices, n, ctx.filters.output, observers[p], own, () =>
      ctx.metrics?.contentFiltered.inc({ stage: 'output' }),
    );
    return { updates, own };
  });
  const merged = new EventChannel<ChoiceUpdate>(() => disconnected.abort());
  let open = perPlan.length;
  perPlan.forEach(async ({ updates }, p) => {
    for await (const update of updates) merged.push({ ...update, index: p * n + update.index });
    if (--open === 0) merged.end();
  });

  const texts = new Array<string>(plans.length * n).fill('');
  async function* settled(): AsyncGenerator<ChoiceUpdate> {
    try {
      for await (const update of merged) {
        if (update.type === 'delta') texts[update.index] += update.text;
        yield update;
      }
    } finally {
      perPlan.forEach(({ own }, p) => {
        totals.completionTokens += own.completionTokens;
        own.finishReasons.forEach((reason, i) => {
          totals.finishReasons[p * n + i] = reason;
        });
      });
      // The estimate charged at admission is replaced by what was really used, however the request ended.
      quota
        .recordTokens(promptTokens + totals.completionTokens)
        .catch((err: unknown) => request.log.error({ err }, 'recording token usage failed'));
      logCompletion(
        request.log,
        {
          subject: quotaSubject(request),
          model,
          promptTokens,
          completionTokens: totals.completionTokens,
          latencyMs: reply.elapsedTime,
          status: reply.statusCode,
          finishReason: totals.finishReasons,
          prompt: options.promptText,
          completion: texts,
        },
        ctx.logPrompts,
      );
    }
  }
  return {
    updates: settled(),
    totals,
    promptTokens,
    disconnected: disconnected.signal,
    flow,
    usage: () => ({
      prompt_tokens: promptTokens,
      completion_tokens: totals.completionTokens,
      total_tokens: promptTokens + totals.completionTokens,
    }),
  };
}
