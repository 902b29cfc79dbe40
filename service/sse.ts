import { PassThrough } from 'node:stream';
import type { FastifyReply } from 'fastify';
import type { OpenAIErrorBody } from './errors.js';

export interface SseOptions {
  /**
   * How long the socket may stay full (the client reads nothing) before the connection is closed; closing it
   * cancels the generation through the usual disconnect path, which frees its batch slots.
   */
  writeStallMs: number;
  /** Told once when a stalled connection is closed (a metric, a log line). */
  onStall?: () => void;
  /** After this long without a frame (queued, prefilling), an SSE comment goes out; 0 = never. */
  heartbeatMs?: number;
  /**
   * What this response may hold in its own buffers (frames written, not yet taken by the socket) before it
   * counts as blocked; the socket adds its own 16 KiB. Default 64 KiB.
   */
  bufferBytes?: number;
  /** Told true when the stream blocks (socket full, buffer at its bound) and false when it drains again. */
  onFlow?: (paused: boolean) => void;
}

const DEFAULT_BUFFER_BYTES = 65_536;

/** An SSE comment: clients ignore it, proxies see traffic. */
const HEARTBEAT = ': keep-alive\n\n';

/**
 * The one Server-Sent Events writer: `data:` framing, errors as an `event: error` frame (which the openai SDK
 * raises as APIError), and the final `data: [DONE]`. The body is a stream handed to Fastify, so its hooks
 * (request id, security headers) still apply to the response headers.
 *
 * Backpressure: the stream's buffer is bounded in bytes (`bufferBytes`, its writable and readable halves
 * together). A write that reaches the bound marks the writer blocked: `ready()` then waits for the buffer to
 * drain, so the caller stops pulling events, and `onFlow(true)` pauses the generation itself (the engine parks
 * its sequences out of the batch), so no tokens pile up upstream either. So one connection holds at most
 * `bufferBytes` + one frame + the socket's own buffer, whatever its generation's size. Draining resumes it; a
 * client that stays unreadable for `writeStallMs` is cut off, which cancels the generation.
 */
export class SseWriter {
  private readonly body: PassThrough;
  private ended = false;
  private blocked: Promise<void> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private wroteSinceBeat = false;

  constructor(
    private readonly reply: FastifyReply,
    private readonly options: SseOptions,
  ) {
    // Writable and readable halves each hold half of the bound before write() says stop.
    const half = Math.max(1024, Math.floor((options.bufferBytes ?? DEFAULT_BUFFER_BYTES) / 2));
    this.body = new PassThrough({ highWaterMark: half });
    reply
      .code(200)
      .header('content-type', 'text/event-stream; charset=utf-8')
      .header('cache-control', 'no-cache')
      .header('connection', 'keep-alive')
      // Proxies such as nginx buffer responses by default, which would hold every token back until the end.
      .header('x-accel-buffering', 'no');
    void reply.send(this.body);
    const { heartbeatMs = 0 } = options;
    if (heartbeatMs > 0) {
      this.heartbeat = setInterval(() => {
        if (!this.wroteSinceBeat && !this.blocked) this.write(HEARTBEAT);
        this.wroteSinceBeat = false;
      }, heartbeatMs);
      reply.raw.once('close', () => this.stopHeartbeat());
    }
  }

  data(payload: unknown): void {
    this.write(`data: ${JSON.stringify(payload)}\n\n`);
  }

  error(body: OpenAIErrorBody): void {
    this.write(`event: error\ndata: ${JSON.stringify(body)}\n\n`);
  }

  /** Resolves when more may be written: at once, or once the client has read the backlog (or was cut off). */
  ready(): Promise<void> {
    return this.blocked ?? Promise.resolve();
  }

  done(): void {
    if (this.ended) return;
    this.body.write('data: [DONE]\n\n');
    this.ended = true;
    this.stopHeartbeat();
    this.body.end();
  }

  /** Ends without [DONE], for a client that has gone away. */
  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.stopHeartbeat();
    this.body.end();
  }

  private stopHeartbeat(): void {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  private write(frame: string): void {
    if (this.ended) return;
    if (frame !== HEARTBEAT) this.wroteSinceBeat = true;
    if (this.body.write(frame) || this.blocked) return;
    const raw = this.reply.raw;
    // A client already gone is no stall: its 'close' has cancelled the generation, and nothing will drain.
    if (raw.destroyed) return;
    this.options.onFlow?.(true);
    this.blocked = new Promise<void>((resolve) => {
      const settle = (drained: boolean) => {
        clearTimeout(timer);
        this.body.off('drain', onDrain);
        raw.off('close', onClose);
        this.blocked = undefined;
        if (drained) this.options.onFlow?.(false);
        resolve();
      };
      const onDrain = () => settle(true);
      const onClose = () => settle(false);
      const timer = setTimeout(() => {
        this.options.onStall?.();
        // Destroying the response closes the connection; its 'close' cancels the generation.
        raw.destroy();
        settle(false);
      }, this.options.writeStallMs);
      this.body.once('drain', onDrain);
      raw.once('close', onClose);
    });
  }
}
