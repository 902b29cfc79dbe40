/**
 * What the HTTP(S) server is built with and where it is reached, derived from the config alone so tests can check
 * every timeout and limit without listening.
 */
import type { Server as HttpServer, ServerOptions as NodeHttpOptions } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { type AddressInfo, isIPv6 } from 'node:net';
import type { FastifyHttpOptions, FastifyHttpsOptions } from 'fastify';
import type { ServiceConfig } from './config/schema.js';
import { TLS_POLICY } from './tls/policy.js';

// Node checks header and request timeouts on this period (default 30 s), so a 10 s headersTimeout could take
// 40 s to fire; checking each second keeps the configured value honest at negligible cost.
export const CONNECTIONS_CHECK_INTERVAL_MS = 1_000; // 1 second

export interface TlsKeyPair {
  cert: Buffer;
  key: Buffer;
}

export function fastifyServerOptions(
  config: ServiceConfig,
  tls: TlsKeyPair,
): FastifyHttpsOptions<HttpsServer>;
export function fastifyServerOptions(config: ServiceConfig, tls?: undefined): FastifyHttpOptions<HttpServer>;
export function fastifyServerOptions(
  config: ServiceConfig,
  tls?: TlsKeyPair,
): FastifyHttpsOptions<HttpsServer> | FastifyHttpOptions<HttpServer>;
/**
 * Fastify's own options plus the Node server options it does not expose (headersTimeout, maxHeaderSize), which
 * go in `https`/`http` and reach `https.createServer` / `http.createServer` unchanged. The logger is left to the
 * caller.
 */
export function fastifyServerOptions(
  config: ServiceConfig,
  tls?: TlsKeyPair,
): FastifyHttpsOptions<HttpsServer> | FastifyHttpOptions<HttpServer> {
  const { server } = config;
  const node: NodeHttpOptions = {
    headersTimeout: server.headersTimeoutMs,
    // Also given to Node (not only to Fastify, which sets it after creation) so that Node's own check
    // headersTimeout ≤ requestTimeout sees the configured value.
    requestTimeout: server.requestTimeoutMs,
    keepAliveTimeout: server.keepAliveTimeoutMs,
    maxHeaderSize: server.maxHeaderBytes,
    connectionsCheckingInterval: CONNECTIONS_CHECK_INTERVAL_MS,
  };
  const common = {
    bodyLimit: server.bodyLimitBytes,
    requestTimeout: server.requestTimeoutMs,
    keepAliveTimeout: server.keepAliveTimeoutMs,
    // No socket idle timeout: a non-streamed completion can legitimately be silent for minutes.
    connectionTimeout: 0,
    // On close: idle keep-alive sockets go at once and requests in flight may finish. New requests still reach
    // the app's drain hook, which answers an OpenAI-shaped 503; Fastify's own closing 503 would not be.
    forceCloseConnections: 'idle' as const,
    return503OnClosing: false,
  };
  if (tls === undefined) return { ...common, http: node };
  return { ...common, https: { ...node, ...TLS_POLICY, cert: tls.cert, key: tls.key } };
}

/**
 * The base URL to show users: `publicBaseUrl` when set, else the listening address. A wildcard host is shown as
 * loopback, which is reachable and which the development certificate covers.
 */
export function serviceBaseUrl(config: ServiceConfig, address: AddressInfo | string | null): string {
  if (config.server.publicBaseUrl !== undefined) return config.server.publicBaseUrl.replace(/\/+$/, '');
  const scheme = config.server.tls.enabled ? 'https' : 'http';
  const port = typeof address === 'object' && address !== null ? address.port : config.server.port;
  const wildcard: Record<string, string> = { '0.0.0.0': '127.0.0.1', '::': '::1' };
  const host = wildcard[config.server.host] ?? config.server.host;
  return `${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`;
}
