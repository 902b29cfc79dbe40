/**
 * HTTP metrics for every route of the app (the plugin skips Fastify's encapsulation, so its hook is app-wide),
 * and the scrape endpoint: `GET /metrics` on the API app behind a guard, or on its own plain-HTTP listener
 * (`metrics.port`) that only the monitoring network should reach.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyPluginAsync, onRequestHookHandler } from 'fastify';
import type { Metrics } from './metrics.js';

export const METRICS_PATH = '/metrics';
/** Route label of requests that matched no route: the raw URL would give every scanner its own series. */
export const UNMATCHED_ROUTE = 'unmatched';

export interface HttpMetricsOptions {
  metrics: Metrics;
  /** Serve GET /metrics on this app. Default true; false when a separate listener serves it. */
  expose?: boolean | undefined;
  /** Runs before /metrics answers on this app, e.g. the auth check for the metrics:read scope. */
  guard?: onRequestHookHandler | onRequestHookHandler[] | undefined;
}

const plugin: FastifyPluginAsync<HttpMetricsOptions> = async (app, options) => {
  const { metrics } = options;
  app.addHook('onResponse', async (request, reply) => {
    const labels = {
      method: request.method,
      route: request.routeOptions.url ?? UNMATCHED_ROUTE,
      status: String(reply.statusCode),
    };
    metrics.httpRequests.inc(labels);
    metrics.httpRequestDuration.observe(labels, reply.elapsedTime / 1000);
  });

  if (options.expose ?? true) {
    app.get(
      METRICS_PATH,
      { schema: { hide: true }, ...(options.guard ? { onRequest: options.guard } : {}) },
      async (_request, reply) => reply.type(metrics.contentType).send(await metrics.scrape()),
    );
  }
};

/** App-wide hooks: the plugin opts out of encapsulation as fastify-plugin would. */
export const httpMetricsPlugin = Object.assign(plugin, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'chatmirror-http-metrics',
});

export interface MetricsListenerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
}

export interface MetricsListener {
  /** e.g. http://127.0.0.1:9464 */
  address: string;
  port: number;
  close(): Promise<void>;
}

/** `/metrics` alone on its own plain-HTTP port: no auth, so bind it where only Prometheus reaches. */
export async function startMetricsListener(
  metrics: Metrics,
  options: MetricsListenerOptions,
): Promise<MetricsListener> {
  const server = createServer((req, res) => {
    void answer(metrics, req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    address: `http://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

async function answer(metrics: Metrics, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '').split('?')[0];
  if (path !== METRICS_PATH) return plain(res, 404, 'Not found: only GET /metrics is served here.\n');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return plain(res, 405, 'Method not allowed: use GET.\n');
  }
  try {
    const body = await metrics.scrape();
    res.writeHead(200, { 'content-type': metrics.contentType, 'x-content-type-options': 'nosniff' });
    res.end(req.method === 'HEAD' ? undefined : body);
  } catch (err) {
    plain(res, 500, `Collecting metrics failed: ${(err as Error).message}\n`);
  }
}

function plain(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
  res.end(text);
}
