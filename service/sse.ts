import { PassThrough } from 'node:stream';
import type { FastifyReply } from 'fastify';
import type { OpenAIErrorBody } from './errors.js';

/**
 * The one Server-Sent Events writer: `data:` framing, errors as an `event: error` frame (which the openai SDK
 * raises as APIError), and the final `data: [DONE]`. The body is a stream handed to Fastify, so its hooks
 * (request id, security headers) still apply to the response headers.
 */
export class SseWriter {
  private readonly body = new PassThrough();
  private ended = false;

  constructor(reply: FastifyReply) {
    reply
      .code(200)
      .header('content-type', 'text/event-stream; charset=utf-8')
      .header('cache-control', 'no-cache')
      .header('connection', 'keep-alive')
      // Proxies such as nginx buffer responses by default, which would hold every token back until the end.
      .header('x-accel-buffering', 'no');
    void reply.send(this.body);
  }

  data(payload: unknown): void {
    if (!this.ended) this.body.write(`data: ${JSON.stringify(payload)}\n\n`);
  }

  error(body: OpenAIErrorBody): void {
    if (!this.ended) this.body.write(`event: error\ndata: ${JSON.stringify(body)}\n\n`);
  }

  done(): void {
    if (this.ended) return;
    this.body.write('data: [DONE]\n\n');
    this.ended = true;
    this.body.end();
  }

  /** Ends without [DONE], for a client that has gone away. */
  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.body.end();
  }
}
