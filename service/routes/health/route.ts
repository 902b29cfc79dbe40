import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ApiError } from '../../errors.js';
import type { RouteContext } from '../context.js';
import { ErrorResponseSchema } from '../error-schema.js';

/**
 * `/health` answers while the process lives (liveness); `/ready` only while the model is loaded, its worker
 * healthy, the quota store reachable and the server not draining (readiness), so a load balancer stops sending
 * work before shutdown or while this replica cannot meter requests.
 */
export const healthRoute: FastifyPluginAsyncTypebox<{ ctx: RouteContext }> = async (app, { ctx }) => {
  app.get(
    '/health',
    { schema: { operationId: 'health', response: { 200: Type.Object({ status: Type.Literal('ok') }) } } },
    async () => ({ status: 'ok' as const }),
  );
  app.get(
    '/ready',
    {
      schema: {
        operationId: 'ready',
        response: {
          200: Type.Object({
            status: Type.Literal('ready'),
            model: Type.String(),
            running: Type.Integer(),
            waiting: Type.Integer(),
          }),
          503: ErrorResponseSchema,
        },
      },
    },
    async () => {
      if (app.lifecycle.draining) throw new ApiError('server_shutting_down', 'The server is shutting down.');
      if (!ctx.engine.healthy) throw new ApiError('model_not_ready', 'The model worker is not healthy.');
      // Generation requests fail closed while quotas cannot be metered: send them to another replica.
      if (!ctx.quotas.storeAvailable) {
        throw new ApiError('quota_store_unavailable', 'The quota store is unreachable.', null, {
          'retry-after': String(ctx.caps.retryAfterSeconds),
        });
      }
      return { status: 'ready' as const, model: ctx.modelId, ...ctx.engine.stats() };
    },
  );
};
