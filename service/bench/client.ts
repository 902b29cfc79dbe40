/**
 * One streamed chat completion over node:http/https, timed. Global fetch cannot be given a CA bundle, and the
 * scheduled run trusts the deployment's private CA through --ca-file, so this speaks HTTP itself through an
 * Agent that carries the CA (and keeps connections alive between a client's requests, as a real client would).
 */
import http from 'node:http';
import https from 'node:https';

/** A stalled stream (no byte for this long) fails the request rather than hanging the scheduled run. */
export const IDLE_TIMEOUT_MS = 120_000; // 2 minutes
/** The same prompt every run, so that runs compare. */
export const BENCH_PROMPT = 'Continue the story: In the beginning';

export interface RequestTarget {
  /** `${url}/v1/chat/completions` */
  endpoint: URL;
  model: string;
  maxTokens: number;
  token?: string | undefined;
  agent: http.Agent;
}

export interface RequestResult {
  ok: boolean;
  /** HTTP status; absent when no response came (connection refused, TLS failure, reset). */
  status?: number;
  /** Why it failed: `HTTP 401: …`, an `event: error` message, a socket error. */
  error?: string;
  /** Seconds from sending to the first non-empty content delta. */
  ttft?: number;
  /** Seconds from sending to the end of the stream. */
  e2e: number;
  /** completion_tokens of the usage chunk. */
  outputTokens: number;
}

export function createAgent(url: URL, options: { ca?: Buffer | undefined; maxSockets: number }): http.Agent {
  return url.protocol === 'https:'
    ? new https.Agent({ keepAlive: true, maxSockets: options.maxSockets, ca: options.ca })
    : new http.Agent({ keepAlive: true, maxSockets: options.maxSockets });
}

export function streamChat(target: RequestTarget): Promise<RequestResult> {
  const body = JSON.stringify({
    model: target.model,
    messages: [{ role: 'user', content: BENCH_PROMPT }],
    max_tokens: target.maxTokens,
    stream: true,
    stream_options: { include_usage: true },
  });
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
    const finish = (result: Omit<RequestResult, 'e2e'>) => {
      if (settled) return;
      settled = true;
      resolve({ ...result, e2e: seconds() });
    };
    const req = request(target.endpoint, { method: 'POST', headers, agent: target.agent }, (res) => {
      const status = res.statusCode ?? 0;
      res.setEncoding('utf8');
      if (status !== 200) {
        let text = '';
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => finish({ ok: false, status, error: httpError(status, text), outputTokens: 0 }));
        return;
      }
      const parser = new StreamParser(seconds);
      res.on('data', (chunk: string) => parser.push(chunk));
      res.on('end', () => finish({ status, ...parser.result() }));
      res.on('error', (err) => finish({ ok: false, status, error: err.message, outputTokens: 0 }));
    });
    req.setTimeout(IDLE_TIMEOUT_MS, () => req.destroy(new Error(`no data for ${IDLE_TIMEOUT_MS / 1000} s`)));
    req.on('error', (err: NodeJS.ErrnoException) =>
      finish({ ok: false, error: err.message, outputTokens: 0 }),
    );
    req.end(body);
  });
}

/** Server-Sent Events as chatmirror (and OpenAI) write them: `event:`/`data:` lines, frames split by a blank line. */
class StreamParser {
  private buffer = '';
  private ttft: number | undefined;
  private outputTokens: number | undefined;
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
    const outputTokens = this.outputTokens ?? 0;
    const ttft = this.ttft;
    if (this.error !== undefined) return { ok: false, error: this.error, ttft, outputTokens };
    if (!this.done) return { ok: false, error: 'stream ended without [DONE]', ttft, outputTokens };
    if (this.outputTokens === undefined) return { ok: false, error: 'no usage chunk', ttft, outputTokens };
    return { ok: true, ttft, outputTokens };
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
    if (this.ttft === undefined && json.choices?.some((c) => (c.delta?.content ?? '') !== '')) {
      this.ttft = this.seconds();
    }
    if (typeof json.usage?.completion_tokens === 'number') this.outputTokens = json.usage.completion_tokens;
  }
}

interface ChunkShape {
  choices?: { delta?: { content?: string | null } }[];
  usage?: { completion_tokens?: number } | null;
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
