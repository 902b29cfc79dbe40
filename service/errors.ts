/**
 * Every error the HTTP API can return: one code → HTTP status → OpenAI error `type`. Handlers throw `ApiError`
 * with a code from this table; the error handler turns it into `{ error: { message, type, param, code } }`.
 * The `type` strings are OpenAI's, so clients that branch on them (and the openai SDK's status → class
 * mapping) behave as they do against api.openai.com.
 */
export const API_ERRORS = {
  invalid_request: {
    status: 400,
    type: 'invalid_request_error',
    doc: 'a field is missing, malformed or out of range',
  },
  invalid_json: { status: 400, type: 'invalid_request_error', doc: 'the body is not valid JSON' },
  unsupported_parameter: {
    status: 400,
    type: 'invalid_request_error',
    doc: 'an OpenAI feature this server does not provide (images, audio, web search…)',
  },
  unsupported_schema: {
    status: 400,
    type: 'invalid_request_error',
    doc: 'a JSON-Schema keyword or format the constrained decoder cannot enforce (named in the message and param)',
  },
  invalid_grammar: {
    status: 400,
    type: 'invalid_request_error',
    doc: "a schema, regex or choice list the grammar compiler refused (the compiler's reason in the message)",
  },
  context_length_exceeded: {
    status: 400,
    type: 'invalid_request_error',
    doc: "prompt tokens + 1 exceed the model's context",
  },
  content_filter: {
    status: 400,
    type: 'invalid_request_error',
    doc: 'the prompt matched a configured deny-list entry (filters.prompt)',
  },
  invalid_api_key: {
    status: 401,
    type: 'authentication_error',
    doc: 'no credential, or an invalid, expired or unknown token or API key (also one sent in the URL)',
  },
  insufficient_scope: {
    status: 403,
    type: 'permission_error',
    doc: "the credential is valid but lacks the route's scope",
  },
  ip_not_allowed: {
    status: 403,
    type: 'permission_error',
    doc: 'the client address is not in network.allowlist',
  },
  model_not_found: { status: 404, type: 'invalid_request_error', doc: 'no model or alias with that id' },
  unknown_url: { status: 404, type: 'invalid_request_error', doc: 'no such route' },
  method_not_allowed: {
    status: 405,
    type: 'invalid_request_error',
    doc: 'the route exists, not with this method',
  },
  request_timeout: {
    status: 408,
    type: 'invalid_request_error',
    doc: 'the request took longer than the server allows',
  },
  payload_too_large: {
    status: 413,
    type: 'invalid_request_error',
    doc: 'the body exceeds the limit (checked from Content-Length before it is read)',
  },
  request_header_fields_too_large: {
    status: 431,
    type: 'invalid_request_error',
    doc: 'the request headers exceed server.maxHeaderBytes',
  },
  unsupported_media_type: {
    status: 415,
    type: 'invalid_request_error',
    doc: 'the body is not application/json',
  },
  rate_limit_exceeded: {
    status: 429,
    type: 'rate_limit_error',
    doc: 'a per-client quota is used up; see Retry-After',
  },
  server_overloaded: {
    status: 429,
    type: 'rate_limit_error',
    doc: 'every batch slot and queue place is taken; retry after Retry-After',
  },
  server_shutting_down: { status: 503, type: 'server_error', doc: 'the server is draining for shutdown' },
  model_not_ready: { status: 503, type: 'server_error', doc: 'the model is not loaded or its worker failed' },
  quota_store_unavailable: {
    status: 503,
    type: 'server_error',
    doc: 'the quota store (Redis) is unreachable, so requests cannot be metered; see Retry-After',
  },
  internal_error: { status: 500, type: 'server_error', doc: 'a bug: the server failed unexpectedly' },
} as const satisfies Record<string, { status: number; type: string; doc: string }>;

export type ApiErrorCode = keyof typeof API_ERRORS;

/** Most characters of a client's own value (a model id, a field name, a URL) quoted back in an error. */
export const ECHO_LIMIT = 256;
/** A message is never longer than this, whatever it quotes: the backstop for a quote that missed `echo`. */
export const MESSAGE_LIMIT = 2_048;

function truncate(text: string, limit: number): string {
  if (text.length <= limit) return text;
  let cut = text.slice(0, limit);
  // Never end on half a surrogate pair.
  if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1);
  return `${cut}…`;
}

/**
 * A client-supplied value as quoted in an error message: at most ECHO_LIMIT characters, then an ellipsis, so
 * a 900 KB field name costs the answer a few hundred bytes, not 900 KB (twice, with `param`).
 */
export function echo(value: unknown): string {
  return truncate(String(value), ECHO_LIMIT);
}

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export class ApiError extends Error {
  readonly status: number;
  readonly param: string | null;

  constructor(
    readonly code: ApiErrorCode,
    message: string,
    param: string | null = null,
    /** Extra response headers, e.g. Retry-After. */
    readonly headers: Record<string, string> = {},
  ) {
    super(truncate(message, MESSAGE_LIMIT));
    this.name = 'ApiError';
    // A parameter name can be the client's own (an unknown field): quoted as any echoed value.
    this.param = param === null ? null : echo(param);
    this.status = API_ERRORS[code].status;
  }

  toBody(): OpenAIErrorBody {
    return {
      error: { message: this.message, type: API_ERRORS[this.code].type, param: this.param, code: this.code },
    };
  }
}
