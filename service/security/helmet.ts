/**
 * Security headers on every response (errors and streams included), via @fastify/helmet registered at the
 * root so its hooks are app-wide. The API serves JSON and event streams, never HTML, so there is no
 * Content-Security-Policy to write; what matters is nosniff (a JSON body must not be sniffed into a script),
 * framing denied, and HSTS when, and only when, the server itself speaks TLS: over plain HTTP the header is
 * ignored by browsers, and sent from behind a plain-HTTP test listener it would only mislead.
 */
import helmet from '@fastify/helmet';
import type { FastifyInstance } from 'fastify';

export const HSTS_MAX_AGE_SECONDS = 31_536_000; // 1 year, the preload list's minimum

export interface SecurityHeadersOptions {
  /** The server terminates TLS itself (server.tls.enabled). */
  tls: boolean;
}

export function helmetOptions(options: SecurityHeadersOptions) {
  return {
    global: true,
    contentSecurityPolicy: false,
    xContentTypeOptions: true,
    strictTransportSecurity: options.tls
      ? { maxAge: HSTS_MAX_AGE_SECONDS, includeSubDomains: true, preload: false }
      : false,
    xFrameOptions: { action: 'deny' as const },
    xPoweredBy: true,
  };
}

export async function registerSecurityHeaders(
  app: FastifyInstance,
  options: SecurityHeadersOptions,
): Promise<void> {
  await app.register(helmet, helmetOptions(options));
}
