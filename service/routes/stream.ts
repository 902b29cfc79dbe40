import type { FastifyReply, FastifyRequest } from 'fastify';
import { SseWriter } from '../sse.js';
import type { RouteContext } from './context.js';

/** The SSE writer of a streamed generation, with the server's stall limit, its metric and log line. */
export function openStream(ctx: RouteContext, request: FastifyRequest, reply: FastifyReply): SseWriter {
  const { writeStallMs, heartbeatMs } = ctx.stream;
  return new SseWriter(reply, {
    writeStallMs,
    heartbeatMs,
    onStall: () => {
      ctx.metrics?.writeStalls.inc();
      request.log.warn(
        `closing a stream whose client read nothing for ${writeStallMs} ms (server.writeStallMs); its generation is cancelled`,
      );
    },
  });
}
