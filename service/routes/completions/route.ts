import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { RouteContext } from '../context.js';
import { ErrorResponseSchema, jsonOrEventStream } from '../error-schema.js';
import { completion } from './handler.js';
import { CompletionRequestSchema, CompletionSchema } from './schema.js';

export const completionsRoute: FastifyPluginAsyncTypebox<{ ctx: RouteContext }> = async (app, { ctx }) => {
  app.post(
    '/v1/completions',
    {
      schema: {
        operationId: 'createCompletion',
        summary: 'Text completion (legacy); with stream: true, Server-Sent Events of Completion',
        body: CompletionRequestSchema,
        response: {
          200: jsonOrEventStream(CompletionSchema),
          '4xx': ErrorResponseSchema,
          '5xx': ErrorResponseSchema,
        },
      },
    },
    (request, reply) => completion(ctx, request, request.body, reply),
  );
};
