import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ChatMessage, TemplateTool } from '../../engine/index.js';
import type { TokenLogprob } from '../../engine/types.js';
import { ApiError, echo } from '../../errors.js';
import { admitRequest } from '../admission.js';
import { checkChoiceCount, refuseWhenFull } from '../choices.js';
import { checkPromptSize, type RouteContext, resolveModel } from '../context.js';
import { startGeneration } from '../generation.js';
import { toSamplingParams } from '../generation-params.js';
import type { ChoiceFinishReason } from '../generation-run.js';
import { checkPromptChars, checkPromptText, inTokenizerPool } from '../prompt-checks.js';
import { openStream } from '../stream.js';
import {
  type ChatCompletion,
  type ChatCompletionChunk,
  type ChatCompletionRequest,
  UNSUPPORTED_CHAT_FIELDS,
} from './schema.js';
import { type OutputPlan, prepareOutput, resolveOutput } from './structured.js';
import { fallbackToolMessages, ToolCallSplitter, type ToolStreamEvent, templateTools } from './tool-calls.js';

/** Refuses, by parameter name, every OpenAI feature this server does not serve. */
function refuseUnsupported(body: ChatCompletionRequest): void {
  for (const field of UNSUPPORTED_CHAT_FIELDS) {
    if (body[field] !== undefined && body[field] !== null) {
      throw new ApiError('unsupported_parameter', `'${field}' is not supported by this server.`, field);
    }
  }
  if (body.top_logprobs != null && body.top_logprobs > 0 && !body.logprobs) {
    throw new ApiError('invalid_request', 'top_logprobs requires logprobs to be true.', 'top_logprobs');
  }
}

/** A replayed call's arguments as the template reads them (an object); text that is not JSON stays text. */
function parsedArguments(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** OpenAI messages → the template's messages: text parts joined, `developer` treated as `system`. */
function toChatMessages(body: ChatCompletionRequest, maxMessages: number): ChatMessage[] {
  if (body.messages.length > maxMessages) {
    throw new ApiError('invalid_request', `At most ${maxMessages} messages are accepted.`, 'messages');
  }
  return body.messages.map((m, i) => {
    if (m.role === 'function') {
      throw new ApiError(
        'unsupported_parameter',
        "Role 'function' (the deprecated functions API) is not supported; use tools and role 'tool'.",
        `messages[${i}].role`,
      );
    }
    if (m.tool_calls !== undefined && m.role !== 'assistant') {
      throw new ApiError(
        'invalid_request',
        'Only assistant messages carry tool_calls.',
        `messages[${i}].tool_calls`,
      );
    }
    if (m.role === 'tool' && m.tool_call_id === undefined) {
      throw new ApiError(
        'invalid_request',
        "A 'tool' message needs tool_call_id.",
        `messages[${i}].tool_call_id`,
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
    const role = m.role === 'developer' ? 'system' : m.role;
    const message: ChatMessage = { role, content };
    if (m.tool_calls?.length) {
      message.tool_calls = m.tool_calls.map((c) => ({
        id: c.id,
        type: 'function',
        function: { name: c.function.name, arguments: parsedArguments(c.function.arguments) },
      }));
    }
    if (m.tool_call_id !== undefined) message.tool_call_id = m.tool_call_id;
    return message;
  });
}

/**
 * The messages and tools as the template gets them: a template that reads `tools` renders them and the tool
 * history itself; for one that does not, the fallback prompt (tool-calls.ts) does.
 */
function forTemplate(
  engine: RouteContext['engine'],
  messages: ChatMessage[],
  plan: OutputPlan,
  body: ChatCompletionRequest,
): { messages: ChatMessage[]; tools: TemplateTool[] | undefined } {
  const offered =
    plan.toolMode === 'none'
      ? []
      : templateTools(
          plan.tools,
          (body.tools ?? []).map((t) => t.function.description),
        );
  if (engine.chatTemplate.supportsTools) {
    return { messages, tools: offered.length > 0 ? offered : undefined };
  }
  const history = messages.some((m) => m.role === 'tool' || m.tool_calls?.length);
  if (offered.length === 0 && !history) return { messages, tools: undefined };
  return { messages: fallbackToolMessages(messages, offered), tools: undefined };
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
  // Schemas are checked before admission: one the grammar cannot enforce is a 400, whatever the load.
  const plan = resolveOutput(body);
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
  // Compiled in the inference worker (cached by schema hash): a grammar it refuses is a 400 with its reason.
  await prepareOutput(ctx.engine, plan);
  const templated = forTemplate(ctx.engine, messages, plan, body);
  // Templated and tokenized in the tokenizer pool: a large prompt never holds the event loop.
  const promptIds = await inTokenizerPool(ctx, ctx.engine.tokenizeChat(templated.messages, templated.tools));
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
    plans: [{ promptIds, params, constraint: plan.constraint }],
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

  const toolAnswers = plan.toolMode !== 'none';
  /** OpenAI's finish reason for an answer that ended in calls. */
  const finishReason = (reason: ChoiceFinishReason, calls: number) =>
    reason === 'stop' && calls > 0 ? 'tool_calls' : reason;

  if (body.stream) {
    const sse = openStream(ctx, request, reply, run.flow);
    const includeUsage = body.stream_options?.include_usage === true;
    const chunk = (choices: ChatCompletionChunk['choices']): ChatCompletionChunk => ({
      ...head,
      object: 'chat.completion.chunk',
      choices,
      ...(includeUsage ? { usage: null } : {}),
    });
    const splitters = Array.from({ length: n }, () => new ToolCallSplitter());
    // Whitespace between calls (their separator) is held: an answer of calls only has no content.
    const heldSpace = new Array<string>(n).fill('');
    const sendContent = (index: number, content: string) =>
      sse.data(chunk([{ index, delta: { content }, logprobs: null, finish_reason: null }]));
    const sendTool = (index: number, event: ToolStreamEvent) => {
      if (event.type === 'text') {
        if (event.text.trim() === '') {
          heldSpace[index] += event.text;
          return;
        }
        sendContent(index, heldSpace[index] + event.text);
        heldSpace[index] = '';
        return;
      }
      heldSpace[index] = '';
      const { id, type, function: fn } = event.call;
      const at = splitters[index]!.calls.length - 1;
      // The call's head (id, type, name), then its arguments, as OpenAI streams a call.
      sse.data(
        chunk([
          {
            index,
            delta: { tool_calls: [{ index: at, id, type, function: { name: fn.name, arguments: '' } }] },
            logprobs: null,
            finish_reason: null,
          },
        ]),
      );
      sse.data(
        chunk([
          {
            index,
            delta: { tool_calls: [{ index: at, function: { arguments: fn.arguments } }] },
            logprobs: null,
            finish_reason: null,
          },
        ]),
      );
    };
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
        if (toolAnswers) {
          for (const event of splitters[index]!.push(update.text)) sendTool(index, event);
          continue;
        }
        const logprobs = params.logprobs
          ? { content: update.logprobs.map((l) => toOpenAILogprob(l.logprob)) }
          : null;
        sse.data(chunk([{ index, delta: { content: update.text }, logprobs, finish_reason: null }]));
      } else if (update.type === 'finish') {
        const splitter = splitters[index]!;
        if (toolAnswers) {
          for (const event of splitter.end()) sendTool(index, event);
          if (splitter.calls.length === 0 && heldSpace[index]) sendContent(index, heldSpace[index]!);
        }
        if (update.reason !== null) {
          const reason = finishReason(update.reason, splitter.calls.length);
          sse.data(chunk([{ index, delta: {}, logprobs: null, finish_reason: reason }]));
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
    choices: texts.map((text, index) => {
      const reason = run.totals.finishReasons[index] ?? null;
      const lp = params.logprobs ? { content: logprobs[index]! } : null;
      if (!toolAnswers) {
        return {
          index,
          message: { role: 'assistant', content: text, refusal: null },
          logprobs: lp,
          finish_reason: reason,
        };
      }
      const splitter = new ToolCallSplitter();
      const events = [...splitter.push(text), ...splitter.end()];
      const content = events.map((e) => (e.type === 'text' ? e.text : '')).join('');
      const { calls } = splitter;
      return {
        index,
        message: {
          role: 'assistant',
          content: calls.length > 0 && content.trim() === '' ? null : content,
          refusal: null,
          ...(calls.length > 0 ? { tool_calls: calls } : {}),
        },
        logprobs: lp,
        finish_reason: finishReason(reason, calls.length),
      };
    }),
    usage: run.usage(),
  };
}
