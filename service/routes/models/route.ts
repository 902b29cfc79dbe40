import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from '@sinclair/typebox';
import { type RouteContext, resolveModel } from '../context.js';
import { ErrorResponseSchema } from '../error-schema.js';

const ModelSchema = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('model'),
    created: Type.Integer(),
    owned_by: Type.String(),
    // Beyond OpenAI, as vLLM does: what the id resolves to and how long a prompt + completion may be.
    root: Type.String(),
    parent: Type.Union([Type.String(), Type.Null()]),
    max_model_len: Type.Integer(),
    description: Type.Optional(Type.String()),
  },
  { $id: 'Model' },
);

const ModelListSchema = Type.Object({ object: Type.Literal('list'), data: Type.Array(ModelSchema) });

function describe(ctx: RouteContext, id: string): Static<typeof ModelSchema> {
  const alias = resolveModel(ctx, id);
  const isAlias = id !== ctx.modelId;
  return {
    id,
    object: 'model',
    created: ctx.loadedAt,
    owned_by: 'chatmirror',
    root: ctx.modelId,
    parent: isAlias ? ctx.modelId : null,
    max_model_len: ctx.engine.info.contextLength,
    ...(alias.description ? { description: alias.description } : {}),
  };
}

export const modelsRoute: FastifyPluginAsyncTypebox<{ ctx: RouteContext }> = async (app, { ctx }) => {
  app.get(
    '/v1/models',
    { schema: { operationId: 'listModels', response: { 200: ModelListSchema, '4xx': ErrorResponseSchema } } },
    async () => ({
      object: 'list' as const,
      data: [ctx.modelId, ...Object.keys(ctx.aliases)].map((id) => describe(ctx, id)),
    }),
  );
  app.get(
    '/v1/models/:model',
    {
      schema: {
        operationId: 'retrieveModel',
        params: Type.Object({ model: Type.String() }),
        response: { 200: ModelSchema, '4xx': ErrorResponseSchema },
      },
    },
    async (request) => describe(ctx, request.params.model),
  );
};
