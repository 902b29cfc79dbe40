import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ChatMessage } from '../../engine/index.js';
import type { TokenLogprob } from '../../engine/types.js';
import { ApiError, echo } from '../../errors.js';
import { admitRequest } from '../admission.js';
import { checkChoiceCount, refuseWhenFull } from '../choices.js';
import { checkPromptSize, type RouteContext, resolveModel } from '../context.js';
import { startGeneration } from '../generation.js';
import { toSamplingParams } from '../generation-params.js';
import { checkPromptChars, checkPromptText, inTokenizerPool } from '../prompt-checks.js';
import { openStream } from '../stream.js';
import {
  type ChatCompletion,
  type ChatCompletionChunk,
  type ChatCompletionRequest,
  UNSUPPORTED_CHAT_FIELDS,
} from './schema.js';

/** Refuses, by parameter name, every OpenAI feature this server does not serve. */
function refuseUnsupported(body: ChatCompletionRequest): void {
  for (const field of UNSUPPORTED_CHAT_FIELDS) {
    if (body[field] !== undefined && body[field] !== null) {
      throw new ApiError('unsupported_parameter', `'${field}' is not supported by this server.`, field);
    }
  }
  const format = body.response_format?.type;
  if (format !== undefined && format !== 'text') {
    throw new ApiError(
      'unsupported_parameter',
      `response_format '${echo(format)}' is not supported by this server; only 'text' is.`,
      'response_format',
    );
  }
  if (body.top_logprobs != null && body.top_logprobs > 0 && !body.logprobs) {
    throw new ApiError('invalid_request', 'top_logprobs requires logprobs to be true.', 'top_logprobs');
  }
}

/** OpenAI messages → the template's messages: text parts joined, `developer` treated as `system`. */
function toChatMessages(body: ChatCompletionRequest, maxMessages: number): ChatMessage[] {
  if (body.messages.length > maxMessages) {
    throw new ApiError('invalid_request', `At most ${maxMessages} messages are accepted.`, 'messages');
  }
  return body.messages.map((m, i) => {
    if (m.role === 'tool' || m.role === 'function') {
      throw new ApiError(
        'unsupported_parameter',
        `Role '${echo(m.role)}' is not supported (no tool calling).`,
        `messages[${i}].role`,
      );
    }
    if (m.tool_calls !== undefined) {
      throw new ApiError(
        'unsupported_parameter',
        'Tool calls are not supported.',
        `messages[${i}].tool_calls`,
      );
    }
    let content = '';
    if (typeof m.content === 'string') content = m.content;
    else if (Array.isArray(m.content)) {
      content = m.content
        .map((part, j) => {
          if (!('text' in part) || part.type !== 'text' || typeof part.text !== 'string') {
            throw new ApiError(
              'unsupported_parameter',
              `Content parts of type '${echo(part.type)}' are not supported; only 'text' is.`,
              `messages[${i}].content[${j}].type`,
            );
          }
          return part.text;
        })
        .join('');
    }
    return { role: m.role === 'developer' ? 'system' : m.role, content };
  });
}

function toOpenAILogprob(lp: TokenLogprob) {
  return {
    token: lp.token,
    logprob: lp.logprob,
    bytes: lp.bytes,
    top_logprobs: lp.top.map((t) => ({ token: t.token, logprob: t.logprob, bytes: t.bytes })),
  };
}

export async function chatCompletion(
  ctx: RouteContext,
  request: FastifyRequest,
  body: ChatCompletionRequest,
  reply: FastifyReply,
): Promise<ChatCompletion | undefined> {
  refuseUnsupported(body);
  const alias = resolveModel(ctx, body.model);
  // Validation first: a request that can never run is a 400, whatever the load.
  checkChoiceCount(ctx.engine, ctx.caps.maxN, 1, body.n ?? 1);
  refuseWhenFull(ctx.engine, body.n ?? 1, ctx.caps.retryAfterSeconds);
  // The request counts from here: every refusal below still used one of its subject's requests.
  const quota = await admitRequest(ctx.quotas, request, reply, ctx.metrics);
  const messages = toChatMessages(body, ctx.caps.maxMessages);
  checkPromptChars(
    ctx,
    messages.reduce((sum, m) => sum + m.content.length, 0),
    'messages',
  );
  checkPromptText(
    ctx,
    messages.map((m, i) => ({ param: `messages[${i}].content`, text: m.content })),
  );
  // Templated and tokenized in the tokenizer pool: a large prompt never holds the event loop.
  const promptIds = await inTokenizerPool(ctx, ctx.engine.tokenizeChat(messages));
  checkPromptSize(ctx, promptIds.length, 'messages');
  const { params, n } = toSamplingParams(body, alias, ctx.defaults, ctx.caps, {
    promptTokens: promptIds.length,
    contextLength: ctx.engine.info.contextLength,
    vocabSize: ctx.engine.info.vocabSize,
  });
  params.logprobs = body.logprobs === true;
  params.topLogprobs = body.top_logprobs ?? 0;
  const run = await startGeneration(ctx, request, reply, {
    model: body.model,
    plans: [{ promptIds, params }],
    n,
    promptText: messages,
    quota,
  });
  const head = {
    id: `chatcmpl-${randomUUID().replaceAll('-', '')}`,
    created: Math.floor(Date.now() / 1000),
    model: body.model,
    system_fingerprint: ctx.fingerprint,
  };

  if (body.stream) {
    const sse = openStream(ctx, request, reply, run.flow);
    const includeUsage = body.stream_options?.include_usage === true;
    const chunk = (choices: ChatCompletionChunk['choices']): ChatCompletionChunk => ({
      ...head,
      object: 'chat.completion.chunk',
      choices,
      ...(includeUsage ? { usage: null } : {}),
    });
    for (let index = 0; index < n; index++) {
      sse.data(
        chunk([{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]),
      );
    }
    for await (const update of run.updates) {
      // While the client's socket is full, stop pulling events (see SseWriter).
      await sse.ready();
      const { index } = update;
      if (update.type === 'delta') {
        const logprobs = params.logprobs
          ? { content: update.logprobs.map((l) => toOpenAILogprob(l.logprob)) }
          : null;
        sse.data(chunk([{ index, delta: { content: update.text }, logprobs, finish_reason: null }]));
      } else if (update.type === 'finish') {
        if (update.reason !== null) {
          sse.data(chunk([{ index, delta: {}, logprobs: null, finish_reason: update.reason }]));
        }
      } else {
        sse.error(new ApiError('internal_error', update.message).toBody());
      }
    }
    if (run.disconnected.aborted) {
      sse.close();
      return undefined;
    }
    if (includeUsage) sse.data({ ...chunk([]), usage: run.usage() });
    sse.done();
    return reply as never;
  }

  const texts = new Array<string>(n).fill('');
  const logprobs = Array.from({ length: n }, () => [] as ReturnType<typeof toOpenAILogprob>[]);
  for await (const update of run.updates) {
    if (update.type === 'delta') {
      texts[update.index] += update.text;
      logprobs[update.index]!.push(...update.logprobs.map((l) => toOpenAILogprob(l.logprob)));
    } else if (update.type === 'error') {
      throw new ApiError('internal_error', `generation failed: ${update.message}`);
    }
  }
  return {
    ...head,
    object: 'chat.completion',
    choices: texts.map((content, index) => ({
      index,
      message: { role: 'assistant', content, refusal: null },
      logprobs: params.logprobs ? { content: logprobs[index]! } : null,
      finish_reason: run.totals.finishReasons[index] ?? null,
    })),
    usage: run.usage(),
  };
}
