import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FlowValve } from '../engine/index.js';
import { SseWriter } from '../sse.js';
import type { RouteContext } from './context.js';

/**
 * The SSE writer of a streamed generation, with the server's buffer bound and stall limit, its metric and log
 * line; while the client's socket is full, `flow` pauses the generation.
 */
export function openStream(
  ctx: RouteContext,
  request: FastifyRequest,
  reply: FastifyReply,
  flow: FlowValve,
): SseWriter {
  const { writeStallMs, heartbeatMs, bufferBytes } = ctx.stream;
  return new SseWriter(reply, {
    writeStallMs,
    heartbeatMs,
    bufferBytes,
    onFlow: (paused) => flow.set(paused),
    onStall: () => {
      ctx.metrics?.writeStalls.inc();
      request.log.warn(
        `closing a stream whose client read nothing for ${writeStallMs} ms (server.writeStallMs); its generation is cancelled`,
      );
    },
  });
}
