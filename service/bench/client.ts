/**
 * One streamed completion (chat or legacy completions) over node:http/https, timed chunk by chunk. Global fetch
 * cannot be given a CA bundle, and the scheduled run trusts the deployment's private CA through --ca-file, so
 * this speaks HTTP itself through an Agent that carries the CA (and keeps connections alive between a client's
 * requests, as a real client would).
 */
import http from 'node:http';
import https from 'node:https';
import type { Api } from './args.js';

/** A stalled stream (no byte for this long) fails the request rather than hanging the scheduled run. */
export const IDLE_TIMEOUT_MS = 120_000; // 2 minutes

/** Resends of a request whose new connection the server dropped unanswered: llama-server at 16 concurrent drops
 * a few in a row, and a dropped request costs it no work (its log shows no task for one). */
export const FRESH_CONNECTION_RESENDS = 5;

export const API_PATHS: Record<Api, string> = {
  chat: '/v1/chat/completions',
  completions: '/v1/completions',
};

export interface RequestTarget {
  api: Api;
  /** `${url}${API_PATHS[api]}` */
  endpoint: URL;
  model: string;
  maxTokens: number;
  /** Send vLLM's ignore_eos and min_tokens so that every request generates maxTokens tokens. */
  ignoreEos: boolean;
  token?: string | undefined;
  agent: http.Agent;
}

export interface RequestResult {
  ok: boolean;
  /** HTTP status; absent when no response came (connection refused, TLS failure, reset). */
  status?: number | undefined;
  /** Why it failed: `HTTP 401: …`, an `event: error` message, a socket error. */
  error?: string | undefined;
  /** Seconds from sending to the first chunk with content (vLLM's TTFT). */
  ttft?: number | undefined;
  /** Seconds between successive chunks with content after the first (vLLM's ITL: per chunk, not per token). */
  itl: number[];
  /** Seconds from sending to the end of the stream (vLLM's E2EL). */
  e2e: number;
  /** usage.completion_tokens, else the number of chunks with content. */
  outputTokens: number;
  /** usage.prompt_tokens; undefined when the server sent no usage. */
  promptTokens?: number | undefined;
  /** Times it was sent again because the server closed the connection before any response (see streamCompletion). */
  resent?: number | undefined;
}

export function createAgent(url: URL, options: { ca?: Buffer | undefined; maxSockets: number }): http.Agent {
  return url.protocol === 'https:'
    ? new https.Agent({ keepAlive: true, maxSockets: options.maxSockets, ca: options.ca })
    : new http.Agent({ keepAlive: true, maxSockets: options.maxSockets });
}

export function requestBody(
  target: Omit<RequestTarget, 'agent' | 'endpoint' | 'token'>,
  prompt: string,
): string {
  return JSON.stringify({
    model: target.model,
    ...(target.api === 'chat' ? { messages: [{ role: 'user', content: prompt }] } : { prompt }),
    max_tokens: target.maxTokens,
    stream: true,
    stream_options: { include_usage: true },
    ...(target.ignoreEos ? { ignore_eos: true, min_tokens: target.maxTokens } : {}),
  });
}

export function streamCompletion(target: RequestTarget, prompt: string): Promise<RequestResult> {
  const body = requestBody(target, prompt);
  const headers: http.OutgoingHttpHeaders = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    accept: 'text/event-stream',
  };
  if (target.token !== undefined) headers.authorization = `Bearer ${target.token}`;
  const request = target.endpoint.protocol === 'https:' ? https.request : http.request;
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;

  return new Promise((resolve) => {
    let settled = false;
    let resent = 0;
    let freshResends = 0;
    const finish = (result: Omit<RequestResult, 'e2e'>) => {
      if (settled) return;
      settled = true;
      resolve({ ...result, e2e: seconds(), ...(resent > 0 ? { resent } : {}) });
    };
    const failed = (status: number | undefined, error: string) =>
      finish({ ok: false, status, error, itl: [], outputTokens: 0 });
    const send = () => {
      let responded = false;
      const req = request(target.endpoint, { method: 'POST', headers, agent: target.agent }, (res) => {
        responded = true;
        const status = res.statusCode ?? 0;
        res.setEncoding('utf8');
        if (status !== 200) {
          let text = '';
          res.on('data', (chunk: string) => {
            text += chunk;
          });
          res.on('end', () => failed(status, httpError(status, text)));
          return;
        }
        const parser = new StreamParser(seconds);
        res.on('data', (chunk: string) => parser.push(chunk));
        res.on('end', () => finish({ status, ...parser.result() }));
        res.on('error', (err) => failed(status, err.message));
      });
      req.setTimeout(IDLE_TIMEOUT_MS, () =>
        req.destroy(new Error(`no data for ${IDLE_TIMEOUT_MS / 1000} s`)),
      );
      req.on('error', (err: NodeJS.ErrnoException) => {
        // The server closed the connection before any response, so it never served the request, which goes
        // again (the time lost stays in its latency). On a kept-alive socket this is the race Node's docs
        // describe (request.reusedSocket): llama-server announces keep-alive, then closes after each streamed
        // response. Each such resend uses up one dead pooled socket, so they end. llama-server at 16 concurrent
        // also drops some new connections unanswered (its log shows no task for them): those go again up to
        // FRESH_CONNECTION_RESENDS times. The count is reported (LevelResult.resent).
        const unanswered = !responded && err.code === 'ECONNRESET';
        const fresh = !req.reusedSocket;
        if (unanswered && (!fresh || freshResends < FRESH_CONNECTION_RESENDS)) {
          resent += 1;
          if (fresh) freshResends += 1;
          send();
        } else failed(undefined, err.message);
      });
      req.end(body);
    };
    send();
  });
}

/** Server-Sent Events as chatmirror, OpenAI and vLLM write them: `event:`/`data:` lines, frames split by a blank line. */
export class StreamParser {
  private buffer = '';
  private ttft: number | undefined;
  private last: number | undefined;
  private readonly itl: number[] = [];
  private contentChunks = 0;
  private outputTokens: number | undefined;
  private promptTokens: number | undefined;
  private error: string | undefined;
  private done = false;

  constructor(private readonly seconds: () => number) {}

  push(chunk: string): void {
    this.buffer += chunk.replace(/\r\n?/g, '\n');
    let end = this.buffer.indexOf('\n\n');
    while (end !== -1) {
      this.frame(this.buffer.slice(0, end));
      this.buffer = this.buffer.slice(end + 2);
      end = this.buffer.indexOf('\n\n');
    }
  }

  result(): Omit<RequestResult, 'e2e' | 'status'> {
    const partial = { ttft: this.ttft, itl: this.itl, promptTokens: this.promptTokens };
    const outputTokens = this.outputTokens ?? this.contentChunks;
    if (this.error !== undefined) return { ok: false, error: this.error, ...partial, outputTokens };
    if (!this.done) return { ok: false, error: 'stream ended without [DONE]', ...partial, outputTokens };
    return { ok: true, ...partial, outputTokens };
  }

  private frame(text: string): void {
    let event = 'message';
    const data: string[] = [];
    for (const line of text.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    const payload = data.join('\n');
    if (payload === '') return;
    if (payload === '[DONE]') {
      this.done = true;
      return;
    }
    let json: ChunkShape;
    try {
      json = JSON.parse(payload) as ChunkShape;
    } catch {
      this.error ??= `unparseable event: ${payload.slice(0, 80)}`;
      return;
    }
    if (event === 'error' || json.error !== undefined) {
      this.error ??= `error event: ${json.error?.message ?? payload.slice(0, 200)}`;
      return;
    }
    if (json.choices?.some((c) => (c.delta?.content ?? c.text ?? '') !== '')) {
      const now = this.seconds();
      if (this.ttft === undefined) this.ttft = now;
      else this.itl.push(now - this.last!);
      this.last = now;
      this.contentChunks += 1;
    }
    if (typeof json.usage?.completion_tokens === 'number') this.outputTokens = json.usage.completion_tokens;
    if (typeof json.usage?.prompt_tokens === 'number') this.promptTokens = json.usage.prompt_tokens;
  }
}

interface ChunkShape {
  choices?: { delta?: { content?: string | null }; text?: string }[];
  usage?: { completion_tokens?: number; prompt_tokens?: number } | null;
  error?: { message?: string };
}

function httpError(status: number, text: string): string {
  let message = text.trim().slice(0, 200);
  try {
    const parsed = JSON.parse(text) as { error?: { message?: string } };
    if (typeof parsed.error?.message === 'string') message = parsed.error.message;
  } catch {
    // not JSON (a proxy's HTML page): keep the start of the text
  }
  return message === '' ? `HTTP ${status}` : `HTTP ${status}: ${message}`;
}
