import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ChatMessage } from '../../engine/index.js';
import type { TokenLogprob } from '../../engine/types.js';
import { ApiError } from '../../errors.js';
import { SseWriter } from '../../sse.js';
import { admit } from '../admission.js';
import { startChoices } from '../choices.js';
import { checkPromptSize, type RouteContext, resolveModel } from '../context.js';
import { toSamplingParams } from '../generation-params.js';
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
      `response_format '${format}' is not supported by this server; only 'text' is.`,
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
        `Role '${m.role}' is not supported (no tool calling).`,
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
              `Content parts of type '${part.type}' are not supported; only 'text' is.`,
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
  const messages = toChatMessages(body, ctx.caps.maxMessages);
  const promptIds = ctx.engine.encodeChat(messages);
  checkPromptSize(ctx, promptIds.length, 'messages');
  const { params, n } = toSamplingParams(body, alias, ctx.defaults, ctx.caps, {
    promptTokens: promptIds.length,
    contextLength: ctx.engine.info.contextLength,
    vocabSize: ctx.engine.info.vocabSize,
  });
  params.logprobs = body.logprobs === true;
  params.topLogprobs = body.top_logprobs ?? 0;
  const quota = await admit(ctx.quotas, request, reply, promptIds.length + n * params.maxTokens);
  let completionTokens = 0;
  try {
    // A client that goes away (mid-stream or while waiting for a full response) frees its batch slots.
    const disconnected = new AbortController();
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) disconnected.abort();
    });
    const choices = startChoices(
      ctx.engine,
      promptIds,
      params,
      n,
      disconnected.signal,
      ctx.caps.retryAfterSeconds,
    );
    const id = `chatcmpl-${randomUUID().replaceAll('-', '')}`;
    const created = Math.floor(Date.now() / 1000);
    const head = { id, created, model: body.model, system_fingerprint: ctx.fingerprint };

    if (body.stream) {
      const sse = new SseWriter(reply);
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
      for await (const { index, event } of choices) {
        if (event.type === 'token') {
          if (event.text === '' && !event.logprob) continue;
          const logprobs = event.logprob ? { content: [toOpenAILogprob(event.logprob)] } : null;
          sse.data(chunk([{ index, delta: { content: event.text }, logprobs, finish_reason: null }]));
        } else if (event.type === 'finish') {
          completionTokens += event.completionTokens;
          if (event.text !== '') {
            sse.data(chunk([{ index, delta: { content: event.text }, logprobs: null, finish_reason: null }]));
          }
          if (event.finishReason !== 'abort') {
            sse.data(chunk([{ index, delta: {}, logprobs: null, finish_reason: event.finishReason }]));
          }
        } else {
          sse.error(new ApiError('internal_error', event.message).toBody());
        }
      }
      if (disconnected.signal.aborted) {
        sse.close();
        return undefined;
      }
      if (includeUsage) {
        sse.data({ ...chunk([]), usage: usage(promptIds.length, completionTokens) });
      }
      sse.done();
      return reply as never;
    }

    const texts = new Array<string>(n).fill('');
    const logprobs = Array.from({ length: n }, () => [] as ReturnType<typeof toOpenAILogprob>[]);
    const finish = new Array<ChatCompletion['choices'][number]['finish_reason']>(n).fill(null);
    for await (const { index, event } of choices) {
      if (event.type === 'token') {
        texts[index] += event.text;
        if (event.logprob) logprobs[index]!.push(toOpenAILogprob(event.logprob));
      } else if (event.type === 'finish') {
        texts[index] += event.text;
        completionTokens += event.completionTokens;
        finish[index] = event.finishReason === 'abort' ? null : event.finishReason;
      } else {
        throw new ApiError('internal_error', `generation failed: ${event.message}`);
      }
    }
    return {
      ...head,
      object: 'chat.completion',
      choices: texts.map((content, index) => ({
        index,
        message: { role: 'assistant', content, refusal: null },
        logprobs: params.logprobs ? { content: logprobs[index]! } : null,
        finish_reason: finish[index] ?? null,
      })),
      usage: usage(promptIds.length, completionTokens),
    };
  } finally {
    // The estimate charged at admission is replaced by what was really used, however the request ended.
    void quota.recordTokens(promptIds.length + completionTokens);
  }
}

function usage(prompt: number, completion: number) {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}
