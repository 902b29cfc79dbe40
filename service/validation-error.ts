import type { FastifySchemaValidationError } from 'fastify/types/schema.js';
import { ApiError, echo } from './errors.js';

/** `/messages/0/content` → `messages[0].content`, the way OpenAI names nested parameters. */
export function paramName(instancePath: string, extra?: string): string {
  const parts = instancePath.split('/').filter(Boolean);
  if (extra) parts.push(extra);
  return parts.reduce(
    (name, part) => (/^\d+$/.test(part) ? `${name}[${part}]` : name ? `${name}.${part}` : part),
    '',
  );
}

/** The first schema violation as an OpenAI invalid_request error naming the parameter. */
export function validationToApiError(errors: FastifySchemaValidationError[], context?: string): ApiError {
  const first = errors[0];
  if (!first) return new ApiError('invalid_request', `Invalid ${context ?? 'request'}.`);
  const params = first.params as Record<string, unknown>;
  if (first.keyword === 'additionalProperty' || first.keyword === 'additionalProperties') {
    const name = paramName(first.instancePath, String(params.additionalProperty));
    return new ApiError('invalid_request', `Unrecognized request argument supplied: ${echo(name)}`, name);
  }
  if (first.keyword === 'required') {
    const name = paramName(first.instancePath, String(params.missingProperty));
    return new ApiError('invalid_request', `Missing required parameter: '${echo(name)}'.`, name);
  }
  const name = paramName(first.instancePath) || (context ?? 'body');
  return new ApiError(
    'invalid_request',
    `Invalid value for '${echo(name)}': ${echo(first.message ?? 'not allowed')}.`,
    name,
  );
}
