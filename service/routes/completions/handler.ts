import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { TokenLogprob } from '../../engine/types.js';
import { ApiError } from '../../errors.js';
import { admitRequest } from '../admission.js';
import { checkChoiceCount, refuseWhenFull } from '../choices.js';
import { checkPromptSize, type RouteContext, resolveModel } from '../context.js';
import { startGeneration } from '../generation.js';
import { toSamplingParams } from '../generation-params.js';
import { checkPromptChars, checkPromptText, inTokenizerPool } from '../prompt-checks.js';
import { openStream } from '../stream.js';
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

/** The prompt field's four OpenAI shapes, as token id lists (text tokenized in the tokenizer pool). */
function promptsOf(ctx: RouteContext, prompt: CompletionRequest['prompt']): Promise<number[][]> {
  if (typeof prompt === 'string') return inTokenizerPool(ctx, Promise.all([ctx.engine.tokenizeText(prompt)]));
  if (prompt.every((p) => typeof p === 'string'))
    return inTokenizerPool(ctx, Promise.all((prompt as string[]).map((p) => ctx.engine.tokenizeText(p))));
  if (prompt.every((p) => typeof p === 'number')) return Promise.resolve([prompt as number[]]);
  return Promise.resolve(prompt as number[][]);
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
  const promptCount =
    Array.isArray(body.prompt) && typeof body.prompt[0] !== 'number' ? body.prompt.length : 1;
  // Validation first: a request that can never run is a 400, whatever the load.
  checkChoiceCount(ctx.engine, ctx.caps.maxN, promptCount, body.n ?? 1);
  refuseWhenFull(ctx.engine, promptCount * (body.n ?? 1), ctx.caps.retryAfterSeconds);
  // The request counts from here: every refusal below still used one of its subject's requests.
  const quota = await admitRequest(ctx.quotas, request, reply, ctx.metrics);
  // Text prompts are bounded by length before they are tokenized (each one must fit on its own).
  const textPrompts =
    typeof body.prompt === 'string' ? [body.prompt] : body.prompt.filter((p) => typeof p === 'string');
  textPrompts.forEach((text, i) => {
    checkPromptChars(ctx, text.length, textPrompts.length > 1 ? `prompt[${i}]` : 'prompt');
  });
  const prompts = await promptsOf(ctx, body.prompt);
  const vocab = ctx.engine.info.vocabSize;
  if (prompts.some((ids) => ids.some((id) => id >= vocab))) {
    throw new ApiError(
      'invalid_request',
      `prompt token ids must be below the vocabulary size ${vocab}.`,
      'prompt',
    );
  }
  // Token-id prompts are checked as the text they stand for, so the deny-list cannot be sidestepped.
  const decoded = await inTokenizerPool(
    ctx,
    Promise.all(prompts.map((ids) => ctx.engine.detokenizePrompt(ids))),
  );
  checkPromptText(
    ctx,
    decoded.map((text, i) => ({ param: prompts.length > 1 ? `prompt[${i}]` : 'prompt', text })),
  );
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
  const run = await startGeneration(ctx, request, reply, {
    model: body.model,
    plans,
    n,
    promptText: body.prompt,
    quota,
  });
  const head = {
    id: `cmpl-${randomUUID().replaceAll('-', '')}`,
    object: 'text_completion' as const,
    created: Math.floor(Date.now() / 1000),
    model: body.model,
    system_fingerprint: ctx.fingerprint,
  };
  const total = plans.length * n;
  const emptyLogprobs = (): Logprobs => ({
    tokens: [],
    token_logprobs: [],
    top_logprobs: [],
    text_offset: [],
  });
  const texts = new Array<string>(total).fill('');
  const logprobs: (Logprobs | null)[] = Array.from({ length: total }, () =>
    body.logprobs != null ? emptyLogprobs() : null,
  );
  const sse = body.stream ? openStream(ctx, request, reply, run.flow) : undefined;
  const includeUsage = body.stream_options?.include_usage === true;
  const send = (choice: Completion['choices'][number]) =>
    sse?.data({ ...head, choices: [choice], ...(includeUsage ? { usage: null } : {}) });

  for await (const update of run.updates) {
    // While the client's socket is full, stop pulling events (see SseWriter).
    await sse?.ready();
    const { index } = update;
    if (update.type === 'delta') {
      const own = body.logprobs != null ? emptyLogprobs() : null;
      for (const { logprob, offset } of update.logprobs) {
        appendLogprob(logprobs[index]!, logprob, offset);
        appendLogprob(own!, logprob, offset);
      }
      texts[index] += update.text;
      send({ index, text: update.text, logprobs: own, finish_reason: null });
    } else if (update.type === 'finish') {
      if (update.reason !== null) send({ index, text: '', logprobs: null, finish_reason: update.reason });
    } else {
      const err = new ApiError('internal_error', `generation failed: ${update.message}`);
      if (!sse) throw err;
      sse.error(err.toBody());
    }
  }
  if (sse) {
    if (run.disconnected.aborted) {
      sse.close();
      return undefined;
    }
    if (includeUsage) sse.data({ ...head, choices: [], usage: run.usage() });
    sse.done();
    return reply as never;
  }
  return {
    ...head,
    choices: texts.map((text, index) => ({
      index,
      text,
      logprobs: logprobs[index] ?? null,
      finish_reason: run.totals.finishReasons[index] ?? null,
    })),
    usage: run.usage(),
  };
}
