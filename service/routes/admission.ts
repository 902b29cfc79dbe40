import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Metrics } from '../observability/metrics.js';
import { QuotaExceededError, type QuotaManager } from '../security/quotas/quota-manager.js';

/**
 * The quota key of whoever made the request. Credential kinds get their own namespace, since an API key's id
 * could equal some JWT's `sub`; on a route the operator made public, the client address stands in.
 */
export function quotaSubject(request: FastifyRequest): string {
  const p = request.principal;
  return p ? `${p.kind}:${p.subject}` : `ip:${request.ip}`;
}

/**
 * Charges a generation request to its subject before the engine sees it: throws the 429 when a quota is spent,
 * otherwise puts the x-ratelimit-* headers on the response and frees the concurrency slot when the response
 * ends, however it ends (finish, error or client disconnect). The caller charges the real tokens at the end.
 */
export async function admit(
  quotas: QuotaManager,
  request: FastifyRequest,
  reply: FastifyReply,
  estimatedTokens: number,
  metrics: Metrics | undefined,
) {
  const admission = await quotas
    .admit(quotaSubject(request), request.principal?.limits, estimatedTokens)
    .catch((err: unknown) => {
      if (err instanceof QuotaExceededError) metrics?.rateLimited.inc({ reason: err.dimension });
      throw err;
    });
  reply.headers(admission.headers);
  // release() reports store failures itself and never rejects; the catch is the last line, should that change.
  reply.raw.once('close', () => {
    admission
      .release()
      .catch((err: unknown) => request.log.error({ err }, 'releasing the quota slot failed'));
  });
  return admission;
}
