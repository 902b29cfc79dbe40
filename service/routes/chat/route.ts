import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { RouteContext } from '../context.js';
import { ErrorResponseSchema, jsonOrEventStream } from '../error-schema.js';
import { chatCompletion } from './handler.js';
import { ChatCompletionChunkSchema, ChatCompletionRequestSchema, ChatCompletionSchema } from './schema.js';

export const chatRoute: FastifyPluginAsyncTypebox<{ ctx: RouteContext }> = async (app, { ctx }) => {
  app.addSchema(ChatCompletionChunkSchema);
  app.post(
    '/v1/chat/completions',
    {
      schema: {
        operationId: 'createChatCompletion',
        summary: 'Chat completion; with stream: true, Server-Sent Events of ChatCompletionChunk',
        body: ChatCompletionRequestSchema,
        response: {
          200: jsonOrEventStream(ChatCompletionSchema, ChatCompletionChunkSchema),
          '4xx': ErrorResponseSchema,
          '5xx': ErrorResponseSchema,
        },
      },
    },
    (request, reply) => chatCompletion(ctx, request, request.body, reply),
  );
};
