/**
 * `buildApp(options)`: the Fastify application — routes, OpenAI-shaped errors for everything (validation,
 * body limits, unknown routes, wrong methods, draining), and the OpenAPI document generated from the same
 * schemas that validate requests. `serve.ts` listens; tests use `app.inject` or listen on port 0.
 */
import { randomUUID } from 'node:crypto';
import type { Server as HttpServer } from 'node:http';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, {
  type FastifyError,
  type FastifyHttpOptions,
  type FastifyInstance,
  type FastifyReply,
} from 'fastify';
import type { ServiceConfig } from './config/schema.js';
import type { Engine } from './engine/index.js';
import { ApiError } from './errors.js';
import { createLifecycle } from './lifecycle.js';
import { chatRoute } from './routes/chat/route.js';
import { completionsRoute } from './routes/completions/route.js';
import type { RouteContext } from './routes/context.js';
import { ErrorResponseSchema } from './routes/error-schema.js';
import { healthRoute } from './routes/health/route.js';
import { modelsRoute } from './routes/models/route.js';
import { fastifyServerOptions, type TlsKeyPair } from './server-options.js';
import { validationToApiError } from './validation-error.js';

export interface AppOptions {
  config: ServiceConfig;
  engine: Engine;
  https?: TlsKeyPair | undefined;
  logger?: boolean | Record<string, unknown>;
}

/** Routes that answer even while draining, so orchestrators can watch the shutdown. */
const ALWAYS_OPEN = new Set(['/health', '/ready']);

/** Fastify's own error codes, in the API's terms. */
const FASTIFY_ERRORS: Record<string, (err: FastifyError) => ApiError> = {
  FST_ERR_CTP_BODY_TOO_LARGE: () => new ApiError('payload_too_large', 'The request body is too large.'),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () =>
    new ApiError('invalid_request', 'Content-Length does not match the body.'),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: () =>
    new ApiError('unsupported_media_type', 'The body must be JSON (Content-Type: application/json).'),
  FST_ERR_CTP_EMPTY_JSON_BODY: () => new ApiError('invalid_json', 'The JSON body is empty.'),
  FST_ERR_CTP_INVALID_JSON_BODY: (err) =>
    new ApiError('invalid_json', `The body is not valid JSON: ${err.message}`),
};

function toApiError(err: FastifyError): ApiError | undefined {
  if (err instanceof ApiError) return err;
  if (err.validation) return validationToApiError(err.validation, err.validationContext);
  const mapped = err.code ? FASTIFY_ERRORS[err.code] : undefined;
  if (mapped) return mapped(err);
  // JSON.parse failures surface as SyntaxError with a 400 status from the content-type parser.
  if (err instanceof SyntaxError || err.statusCode === 400) return new ApiError('invalid_json', err.message);
  if (err.statusCode === 408) return new ApiError('request_timeout', 'The request took too long to arrive.');
  return undefined;
}

function sendError(reply: FastifyReply, err: ApiError): FastifyReply {
  return reply.code(err.status).headers(err.headers).send(err.toBody());
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { config, engine } = options;
  // One type for both: at run time the server is https.Server when TLS material is given (serve.ts relies on it).
  const serverOptions = fastifyServerOptions(config, options.https) as FastifyHttpOptions<HttpServer>;
  const app = Fastify({
    ...serverOptions,
    logger: options.logger ?? false,
    genReqId: () => `req_${randomUUID().replaceAll('-', '')}`,
    requestIdHeader: false,
    // Requests are not coerced or trimmed: "0.5" is not a temperature, and unknown fields are refused by name
    // instead of silently dropped (Fastify's defaults do both).
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.decorate('lifecycle', createLifecycle());
  // Only JSON bodies: a text/plain body gets 415, not a confusing schema error.
  app.removeContentTypeParser('text/plain');
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'chatmirror',
        version: '0.1.0',
        description: 'An OpenAI-compatible API (chat completions, completions, models) served by chatmirror.',
      },
      servers: [],
    },
  });
  app.addSchema(ErrorResponseSchema);

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    if (app.lifecycle.draining && !ALWAYS_OPEN.has(request.routeOptions.url ?? '')) {
      reply.header('connection', 'close');
      throw new ApiError(
        'server_shutting_down',
        'The server is shutting down; retry on another instance.',
        null,
        {
          'retry-after': String(config.limits.retryAfterSeconds),
        },
      );
    }
  });

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const apiError = toApiError(err);
    if (apiError) return sendError(reply, apiError);
    request.log.error({ err }, 'unhandled error');
    return sendError(reply, new ApiError('internal_error', 'The server failed to handle the request.'));
  });

  // A path that exists with another method is a 405 with Allow, not a 404.
  const methodsByPath = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const known = methodsByPath.get(route.url) ?? new Set<string>();
    for (const m of methods) known.add(m);
    methodsByPath.set(route.url, known);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]!;
    const allowed =
      methodsByPath.get(path) ??
      (path.startsWith('/v1/models/') ? methodsByPath.get('/v1/models/:model') : undefined);
    if (allowed) {
      reply.header('allow', [...allowed].join(', '));
      return sendError(
        reply,
        new ApiError(
          'method_not_allowed',
          `${request.method} is not allowed on ${path}; use ${[...allowed].join(' or ')}.`,
        ),
      );
    }
    return sendError(reply, new ApiError('unknown_url', `Unknown request URL: ${request.method} ${path}.`));
  });

  const ctx: RouteContext = {
    engine,
    modelId: config.models.id,
    aliases: config.models.aliases,
    defaults: config.models.defaults,
    caps: {
      ...config.limits,
      maxPromptTokens: config.limits.maxPromptTokens,
    },
    fingerprint: `fp_${engine.info.graphSha256.slice(0, 12)}`,
    loadedAt: Math.floor(Date.now() / 1000),
  };
  await app.register(healthRoute, { ctx });
  await app.register(modelsRoute, { ctx });
  await app.register(chatRoute, { ctx });
  await app.register(completionsRoute, { ctx });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  await app.ready();
  return app;
}
