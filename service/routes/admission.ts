import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Metrics } from '../observability/metrics.js';
import {
  QuotaExceededError,
  type QuotaManager,
  type StagedAdmission,
} from '../security/quotas/quota-manager.js';

/**
 * The quota key of whoever made the request. Credential kinds get their own namespace, since an API key's id
 * could equal some JWT's `sub`; on a route the operator made public, the client address stands in.
 */
export function quotaSubject(request: FastifyRequest): string {
  const p = request.principal;
  return p ? `${p.kind}:${p.subject}` : `ip:${request.ip}`;
}

function countRefusal(metrics: Metrics | undefined) {
  return (err: unknown): never => {
    if (err instanceof QuotaExceededError) metrics?.rateLimited.inc({ reason: err.dimension });
    throw err;
  };
}

/**
 * Charges a generation request to its subject before its prompt is templated or tokenized (so a subject out of
 * requests gets its 429 without costing the server that work, and a request refused later still counts):
 * throws the 429 when a quota is spent, otherwise puts the x-ratelimit-* headers on the response and frees the
 * concurrency slot when the response ends, however it ends (finish, error or client disconnect). The tokens are
 * charged by `chargeTokens` once the prompt's size is known, and corrected to the real count at the end.
 */
export async function admitRequest(
  quotas: QuotaManager,
  request: FastifyRequest,
  reply: FastifyReply,
  metrics: Metrics | undefined,
): Promise<StagedAdmission> {
  const admission = await quotas
    .admitRequest(quotaSubject(request), request.principal?.limits)
    .catch(countRefusal(metrics));
  reply.headers(admission.headers);
  // release() reports store failures itself and never rejects; the catch is the last line, should that change.
  reply.raw.once('close', () => {
    admission
      .release()
      .catch((err: unknown) => request.log.error({ err }, 'releasing the quota slot failed'));
  });
  return admission;
}

/** Charges the estimated tokens of an admitted request, updating its x-ratelimit-*-tokens headers. */
export async function chargeTokens(
  admission: StagedAdmission,
  reply: FastifyReply,
  estimatedTokens: number,
  metrics: Metrics | undefined,
): Promise<void> {
  reply.headers(await admission.chargeTokens(estimatedTokens).catch(countRefusal(metrics)));
}
