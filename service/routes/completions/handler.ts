import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { TokenLogprob } from '../../engine/types.js';
import { ApiError } from '../../errors.js';
import { SseWriter } from '../../sse.js';
import { admit } from '../admission.js';
import { type ChoiceEvent, startChoices } from '../choices.js';
import { checkPromptSize, type RouteContext, resolveModel } from '../context.js';
import { toSamplingParams } from '../generation-params.js';
import type { Completion, CompletionRequest } from './schema.js';

type Logprobs = NonNullable<Completion['choices'][number]['logprobs']>;

function refuseUnsupported(body: CompletionRequest): void {
  if (body.echo)
    throw new ApiError('unsupported_parameter', "'echo' is not supported by this server.", 'echo');
  if (body.suffix != null && body.suffix !== '') {
    throw new ApiError(
      'unsupported_parameter',
      "'suffix' (insertion) is not supported by this server.",
      'suffix',
    );
  }
  if (body.best_of != null && body.best_of !== (body.n ?? 1)) {
    throw new ApiError(
      'unsupported_parameter',
      "'best_of' other than n is not supported by this server.",
      'best_of',
    );
  }
}

/** The prompt field's four OpenAI shapes, as token id lists. */
function promptsOf(ctx: RouteContext, prompt: CompletionRequest['prompt']): number[][] {
  if (typeof prompt === 'string') return [ctx.engine.encodeText(prompt)];
  if (prompt.every((p) => typeof p === 'string'))
    return (prompt as string[]).map((p) => ctx.engine.encodeText(p));
  if (prompt.every((p) => typeof p === 'number')) return [prompt as number[]];
  return prompt as number[][];
}

function appendLogprob(target: Logprobs, lp: TokenLogprob, offset: number): void {
  target.tokens.push(lp.token);
  target.token_logprobs.push(lp.logprob);
  target.top_logprobs.push(Object.fromEntries(lp.top.map((t) => [t.token, t.logprob])));
  target.text_offset.push(offset);
}

export async function completion(
  ctx: RouteContext,
  request: FastifyRequest,
  body: CompletionRequest,
  reply: FastifyReply,
): Promise<Completion | undefined> {
  refuseUnsupported(body);
  const alias = resolveModel(ctx, body.model);
  const prompts = promptsOf(ctx, body.prompt);
  const vocab = ctx.engine.info.vocabSize;
  if (prompts.some((ids) => ids.some((id) => id >= vocab))) {
    throw new ApiError(
      'invalid_request',
      `prompt token ids must be below the vocabulary size ${vocab}.`,
      'prompt',
    );
  }
  const disconnected = new AbortController();
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) disconnected.abort();
  });

  // Validate every prompt before starting any, so a bad second prompt never leaves the first one running.
  const plans = prompts.map((promptIds) => {
    checkPromptSize(ctx, promptIds.length, 'prompt');
    const { params, n } = toSamplingParams(body, alias, ctx.defaults, ctx.caps, {
      promptTokens: promptIds.length,
      contextLength: ctx.engine.info.contextLength,
      vocabSize: vocab,
    });
    params.logprobs = body.logprobs != null;
    params.topLogprobs = body.logprobs ?? 0;
    return { promptIds, params, n };
  });
  const n = plans[0]!.n;
  if (plans.length * n > ctx.caps.maxN) {
    throw new ApiError('invalid_request', `prompts × n must be at most ${ctx.caps.maxN}.`, 'n');
  }
  const promptTokens = plans.reduce((sum, p) => sum + p.promptIds.length, 0);
  const estimate = plans.reduce((sum, p) => sum + p.promptIds.length + n * p.params.maxTokens, 0);
  const quota = await admit(ctx.quotas, request, reply, estimate);
  let completionTokens = 0;
  try {
    return await generate();
  } finally {
    // The estimate charged at admission is replaced by what was really used, however the request ended.
    void quota.recordTokens(promptTokens + completionTokens);
  }

  async function generate(): Promise<Completion | undefined> {
    const streams: AsyncIterable<ChoiceEvent>[] = [];
    try {
      for (const { promptIds, params } of plans) {
        streams.push(
          startChoices(ctx.engine, promptIds, params, n, disconnected.signal, ctx.caps.retryAfterSeconds),
        );
      }
    } catch (err) {
      disconnected.abort();
      throw err;
    }

    const id = `cmpl-${randomUUID().replaceAll('-', '')}`;
    const head = {
      id,
      object: 'text_completion' as const,
      created: Math.floor(Date.now() / 1000),
      model: body.model,
      system_fingerprint: ctx.fingerprint,
    };
    const total = plans.length * n;
    const texts = new Array<string>(total).fill('');
    const logprobs: (Logprobs | null)[] = Array.from({ length: total }, () =>
      body.logprobs != null ? { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] } : null,
    );
    const finish = new Array<Completion['choices'][number]['finish_reason']>(total).fill(null);
    const sse = body.stream ? new SseWriter(reply) : undefined;
    const includeUsage = body.stream_options?.include_usage === true;

    await Promise.all(
      streams.map(async (stream, p) => {
        for await (const { index: i, event } of stream) {
          const index = p * n + i;
          if (event.type === 'token' || (event.type === 'finish' && event.text !== '')) {
            const lp = event.type === 'token' ? event.logprob : undefined;
            const single = lp ? { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] } : null;
            if (lp) appendLogprob(single!, lp, texts[index]!.length);
            if (lp) appendLogprob(logprobs[index]!, lp, texts[index]!.length);
            texts[index] += event.text;
            if (sse && (event.text !== '' || lp)) {
              sse.data({
                ...head,
                choices: [{ index, text: event.text, logprobs: single, finish_reason: null }],
                ...(includeUsage ? { usage: null } : {}),
              });
            }
          }
          if (event.type === 'finish') {
            completionTokens += event.completionTokens;
            finish[index] = event.finishReason === 'abort' ? null : event.finishReason;
            if (sse && finish[index]) {
              sse.data({
                ...head,
                choices: [{ index, text: '', logprobs: null, finish_reason: finish[index] }],
                ...(includeUsage ? { usage: null } : {}),
              });
            }
          } else if (event.type === 'error') {
            const err = new ApiError('internal_error', `generation failed: ${event.message}`);
            if (!sse) throw err;
            sse.error(err.toBody());
          }
        }
      }),
    );
    const usage = {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    };
    if (sse) {
      if (disconnected.signal.aborted) {
        sse.close();
        return undefined;
      }
      if (includeUsage) sse.data({ ...head, choices: [], usage });
      sse.done();
      return reply as never;
    }
    return {
      ...head,
      choices: texts.map((text, index) => ({
        index,
        text,
        logprobs: logprobs[index] ?? null,
        finish_reason: finish[index] ?? null,
      })),
      usage,
    };
  }
}
