/**
 * Every way a request can fail before or outside a route handler, answered in the OpenAI error shape: Fastify's
 * own errors (body parsing, validation, router), unknown routes and wrong methods, and the malformed or
 * oversized requests Node rejects before Fastify sees them.
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, echo } from './errors.js';
import { validationToApiError } from './validation-error.js';

/** Fastify's error codes, in the API's terms. */
const FASTIFY_ERRORS: Record<string, (err: FastifyError) => ApiError> = {
  FST_ERR_CTP_BODY_TOO_LARGE: () => new ApiError('payload_too_large', 'The request body is too large.'),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () =>
    new ApiError('invalid_request', 'Content-Length does not match the body.'),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: () =>
    new ApiError('unsupported_media_type', 'The body must be JSON (Content-Type: application/json).'),
  FST_ERR_CTP_EMPTY_JSON_BODY: () => new ApiError('invalid_json', 'The JSON body is empty.'),
  FST_ERR_CTP_INVALID_JSON_BODY: (err) =>
    new ApiError('invalid_json', `The body is not valid JSON: ${echo(err.message)}`),
  FST_ERR_BAD_URL: () => new ApiError('invalid_request', 'The request URL is malformed.'),
  // A path parameter longer than the router accepts cannot name anything that exists.
  FST_ERR_MAX_PARAM_LENGTH: () => new ApiError('unknown_url', 'The request URL is too long.'),
  FST_ERR_ASYNC_CONSTRAINT: () => new ApiError('invalid_request', 'The request could not be routed.'),
};

export function toApiError(err: FastifyError): ApiError | undefined {
  if (err instanceof ApiError) return err;
  if (err.validation) return validationToApiError(err.validation, err.validationContext);
  const mapped = err.code ? FASTIFY_ERRORS[err.code] : undefined;
  if (mapped) return mapped(err);
  // JSON.parse failures surface as SyntaxError from the content-type parser.
  if (err instanceof SyntaxError) return new ApiError('invalid_json', echo(err.message));
  if (err.statusCode === 408) return new ApiError('request_timeout', 'The request took too long to arrive.');
  // Any other client error Fastify raises is the client's mistake, never a 5xx.
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
    return new ApiError('invalid_request', echo(err.message));
  }
  return undefined;
}

export function sendError(reply: FastifyReply, err: ApiError): FastifyReply {
  return reply.code(err.status).headers(err.headers).send(err.toBody());
}

/** Fastify's `frameworkErrors` option: router errors raised before any hook, so the request id is set here. */
export function frameworkErrorHandler(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  reply.header('x-request-id', request.id);
  void sendError(
    reply,
    toApiError(error) ?? new ApiError('invalid_request', 'The request could not be routed.'),
  );
}

/**
 * A not-found handler that knows the routes: a path that exists with another method is a 405 with Allow,
 * anything else a 404. `recordRoute` goes in an onRoute hook.
 */
export function createNotFound() {
  const methodsByPath = new Map<string, Set<string>>();
  const parametric = new Map<string, string>();
  return {
    recordRoute(url: string, method: string | string[]): void {
      const known = methodsByPath.get(url) ?? new Set<string>();
      for (const m of Array.isArray(method) ? method : [method]) known.add(m);
      methodsByPath.set(url, known);
      const colon = url.indexOf('/:');
      if (colon !== -1) parametric.set(url.slice(0, colon + 1), url);
    },
    handler(request: FastifyRequest, reply: FastifyReply): FastifyReply {
      const path = request.url.split('?')[0]!;
      const prefix = [...parametric.keys()].find((p) => path.startsWith(p) && path.length > p.length);
      const allowed =
        methodsByPath.get(path) ?? (prefix ? methodsByPath.get(parametric.get(prefix)!) : undefined);
      if (allowed) {
        const list = [...allowed];
        reply.header('allow', list.join(', '));
        return sendError(
          reply,
          new ApiError(
            'method_not_allowed',
            `${echo(request.method)} is not allowed on ${echo(path)}; use ${list.join(' or ')}.`,
          ),
        );
      }
      return sendError(
        reply,
        new ApiError('unknown_url', `Unknown request URL: ${echo(request.method)} ${echo(path)}.`),
      );
    },
  };
}

/** Node's parser errors, by the status they get. */
function clientErrorFor(err: NodeJS.ErrnoException): ApiError {
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    return new ApiError('request_header_fields_too_large', 'The request headers are too large.');
  }
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return new ApiError('request_timeout', 'The request took too long to arrive.');
  }
  return new ApiError('invalid_request', 'The HTTP request is malformed.');
}

/**
 * Fastify's `clientErrorHandler`: Node rejects these before any request object exists (oversized headers, a
 * slow client, a malformed request line), so the answer is written to the socket directly, still in the API's
 * shape and with a request id to quote.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable || err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const apiError = clientErrorFor(err);
  const body = JSON.stringify(apiError.toBody());
  socket.end(
    `HTTP/1.1 ${apiError.status} ${apiError.code}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      `x-request-id: req_${randomUUID().replaceAll('-', '')}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
}
