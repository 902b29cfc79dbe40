/**
 * `buildApp(options)`: the Fastify application. In request order: security headers, request id and drain,
 * client address allowlist, authentication and scopes, then the routes (which charge quotas and feed metrics).
 * Everything that fails answers in the OpenAI error shape. `serve.ts` listens; tests use `app.inject` or
 * listen on port 0.
 */
import { randomUUID } from 'node:crypto';
import type { Server as HttpServer } from 'node:http';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyError, type FastifyHttpOptions, type FastifyInstance } from 'fastify';
import type { Scope, ServiceConfig } from './config/schema.js';
import type { Engine } from './engine/index.js';
import { ApiError } from './errors.js';
import {
  clientErrorHandler,
  createNotFound,
  frameworkErrorHandler,
  sendError,
  toApiError,
} from './http-errors.js';
import { createLifecycle } from './lifecycle.js';
import { httpMetricsPlugin, METRICS_PATH } from './observability/http-metrics-plugin.js';
import { createMetrics, type Metrics } from './observability/metrics.js';
import { chatRoute } from './routes/chat/route.js';
import { completionsRoute } from './routes/completions/route.js';
import type { RouteContext } from './routes/context.js';
import { ErrorResponseSchema } from './routes/error-schema.js';
import { healthRoute } from './routes/health/route.js';
import { modelsRoute } from './routes/models/route.js';
import { type Authenticator, createAuthenticator } from './security/auth/credentials.js';
import { authPlugin } from './security/auth/plugin.js';
import { compileFilter } from './security/content-filter.js';
import { registerSecurityHeaders } from './security/helmet.js';
import { ipAllowlistPlugin, trustProxyFunction } from './security/network.js';
import { MemoryStore } from './security/quotas/memory-store.js';
import { QuotaManager } from './security/quotas/quota-manager.js';
import { RedisStore } from './security/quotas/redis-store.js';
import type { QuotaStore } from './security/quotas/store.js';
import { describeStoreError, StoreHealth } from './security/quotas/store-health.js';
import { fastifyServerOptions, type TlsKeyPair } from './server-options.js';

export interface AppOptions {
  config: ServiceConfig;
  engine: Engine;
  https?: TlsKeyPair | undefined;
  /** pino options (see loggerOptions) or false; the default is silent, for tests. */
  logger?: boolean | Record<string, unknown>;
}

/** The scope each authenticated route needs; routes in auth.publicRoutes need none. */
export const ROUTE_SCOPES: Record<string, Scope> = {
  '/health': 'models:read',
  '/ready': 'models:read',
  '/v1/models': 'models:read',
  '/v1/models/:model': 'models:read',
  '/v1/chat/completions': 'chat',
  '/v1/completions': 'completions',
  '/openapi.json': 'models:read',
  [METRICS_PATH]: 'metrics:read',
};

declare module 'fastify' {
  interface FastifyInstance {
    authenticator: Authenticator;
    metrics: Metrics | undefined;
  }
}

async function createQuotaStore(config: ServiceConfig, health: StoreHealth): Promise<QuotaStore> {
  if (config.quotas.store === 'memory') return new MemoryStore();
  // Connection errors are reported through `health` (one log line per outage), not one per reconnect attempt.
  const { redisUrl, redisPassword } = config.quotas;
  return RedisStore.connect(redisUrl!, {
    health,
    ...(redisPassword === undefined ? {} : { password: redisPassword }),
  });
}

/** Quota store failures: counted each, logged once when an outage starts and once when it ends. */
function createStoreHealth(app: FastifyInstance, metrics: Metrics | undefined): StoreHealth {
  return new StoreHealth({
    onFailure: (operation) => metrics?.quotaStoreErrors.inc({ operation }),
    onOutage: (operation, err) =>
      app.log.error(
        { operation, error: describeStoreError(err) },
        `quota store unreachable: generation requests get 503 quota_store_unavailable until it answers (${describeStoreError(err)})`,
      ),
    onRecovery: (outageMs, failures) =>
      app.log.info(
        { outageMs: Math.round(outageMs), failures },
        `quota store reachable again after ${Math.round(outageMs)} ms (${failures} failed calls)`,
      ),
  });
}

/** Routes that answer even while draining, so orchestrators can watch the shutdown. */
const ALWAYS_OPEN = new Set(['/health', '/ready']);

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
    frameworkErrors: frameworkErrorHandler,
    clientErrorHandler,
    // Only configured proxies may speak for a client through X-Forwarded-For; nobody else can pick an address.
    trustProxy: trustProxyFunction(config.network.trustedProxies),
  }).withTypeProvider<TypeBoxTypeProvider>();
  const notFound = createNotFound();

  // Headers first: a hook that answers early (404, drain, auth refusal) skips the hooks after it.
  await registerSecurityHeaders(app, { tls: options.https !== undefined });
  const authenticator = await createAuthenticator(config.auth);
  app.decorate('authenticator', authenticator);
  const metrics = config.metrics.enabled ? createMetrics({ engine }) : undefined;
  app.decorate('metrics', metrics);
  const storeHealth = createStoreHealth(app, metrics);
  const quotas = new QuotaManager(await createQuotaStore(config, storeHealth), config.quotas.default, {
    health: storeHealth,
    retryAfterSeconds: config.limits.retryAfterSeconds,
  });
  app.addHook('onClose', async () => {
    await quotas.close();
    metrics?.close();
  });

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
    // Overload refusals come from two places (the early check and the engine); they are counted here, once.
    if (apiError?.code === 'server_overloaded') metrics?.rateLimited.inc({ reason: 'server_overloaded' });
    if (apiError) return sendError(reply, apiError);
    request.log.error({ err }, 'unhandled error');
    return sendError(reply, new ApiError('internal_error', 'The server failed to handle the request.'));
  });

  app.addHook('onRoute', (route) => notFound.recordRoute(route.url, route.method));
  app.setNotFoundHandler(notFound.handler);

  await app.register(ipAllowlistPlugin, { allowlist: config.network.allowlist });
  await app.register(authPlugin, {
    authenticator,
    publicRoutes: config.auth.publicRoutes,
    routeScopes: ROUTE_SCOPES,
    onAuthFailure: (reason) => metrics?.authFailures.inc({ reason }),
  });
  // Unknown routes and wrong methods are answered only once the caller is authenticated (an anonymous one got
  // 401 above), so nobody can map the routes without a credential; still an onRequest hook, before Fastify's
  // body checks (e.g. QUERY without a Content-Type) can turn them into a misleading 400.
  app.addHook('onRequest', async (request, reply) => {
    if (request.is404) return notFound.handler(request, reply);
  });
  if (metrics) {
    await app.register(httpMetricsPlugin, { metrics, expose: config.metrics.port === undefined });
  }

  const ctx: RouteContext = {
    engine,
    quotas,
    metrics,
    filters: { prompt: compileFilter(config.filters.prompt), output: compileFilter(config.filters.output) },
    logPrompts: config.log.prompts,
    modelId: config.models.id,
    aliases: config.models.aliases,
    defaults: config.models.defaults,
    caps: config.limits,
    stream: {
      writeStallMs: config.server.writeStallMs,
      heartbeatMs: config.server.sseHeartbeatMs,
      bufferBytes: config.server.streamBufferBytes,
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
