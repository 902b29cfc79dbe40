/**
 * Structured logs (pino, through Fastify): one line per request from Fastify, one per completion from the
 * handlers. Credentials never reach the log: headers are not serialized at all (and redacted should anything
 * log them), query strings are cut from URLs, and error messages are masked. Prompt and completion text
 * appear only when `log.prompts` is on, and then with anything that looks like a secret masked.
 */
import type { FastifyBaseLogger, FastifyLogFn } from 'fastify';
import type { ServiceConfig } from '../config/schema.js';

export const REDACTED = '[REDACTED]';

/** Defence in depth: the serializers below never emit headers, but a stray `log.info({ req: raw })` might. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["proxy-authorization"]',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'headers["proxy-authorization"]',
  'headers.cookie',
  'headers["x-api-key"]',
  'res.headers["set-cookie"]',
];

interface LoggedRequest {
  method?: string | undefined;
  url?: string | undefined;
  host?: string | undefined;
  ip?: string | undefined;
  socket?: { remotePort?: number | undefined } | undefined;
}

/** Method, path (no query: a token passed as `?key=` must not be logged) and peer, never headers. */
export function serializeRequest(request: LoggedRequest) {
  return {
    method: request.method,
    url: typeof request.url === 'string' ? redactSecrets(stripQuery(request.url)) : undefined,
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

/** pino's error shape, with secrets masked in the message and stack (a library may quote a token). */
export function serializeError(err: Error) {
  // pino hands over whatever was logged under `err`; only errors have a message to mask.
  if (!(err instanceof Error)) return err as never;
  const { code, statusCode } = err as Error & { code?: unknown; statusCode?: unknown };
  return {
    type: err.constructor.name,
    message: redactSecrets(err.message),
    stack: redactSecrets(err.stack ?? ''),
    ...(code === undefined ? {} : { code }),
    ...(statusCode === undefined ? {} : { statusCode }),
  };
}

export function stripQuery(url: string): string {
  const q = url.search(/[?#]/);
  return q === -1 ? url : url.slice(0, q);
}

/**
 * Fastify `logger` options: level, redaction and serializers (Fastify keeps its own `res` serializer). String
 * arguments are masked too: Fastify's default error logging uses the error's message as the line's `msg`.
 */
export function loggerOptions(config: Pick<ServiceConfig, 'log'>) {
  return {
    level: config.log.level,
    redact: { paths: REDACT_PATHS, censor: REDACTED },
    serializers: { req: serializeRequest, err: serializeError },
    hooks: {
      logMethod(this: FastifyBaseLogger, args: Parameters<FastifyLogFn>, method: FastifyLogFn) {
        const masked = args.map((a: unknown) => (typeof a === 'string' ? redactSecrets(a) : a));
        method.apply(this, masked as Parameters<FastifyLogFn>);
      },
    },
  };
}

export interface CompletionLogLine {
  /** Key id or token subject; undefined while auth is off. */
  subject?: string | undefined;
  model: string;
  promptTokens: number;
  completionTokens: number;
  latencyMs: number;
  status: number;
  /** One per choice. */
  finishReason?: string | readonly (string | null)[] | undefined;
  /** Logged only with `log.prompts` on, secrets masked: a string, strings, or chat messages. */
  prompt?: unknown;
  completion?: unknown;
}

/** One structured line per completion, on the request's logger (so it carries reqId). */
export function logCompletion(log: FastifyBaseLogger, line: CompletionLogLine, logPrompts = false): void {
  const { prompt, completion, ...fields } = line;
  const text = logPrompts ? { prompt: redactDeep(prompt), completion: redactDeep(completion) } : {};
  log.info({ ...fields, latencyMs: Math.round(line.latencyMs), ...text }, 'completion');
}

/**
 * What looks like a credential in free text, in the order applied (a JWT before the generic runs that would
 * take it piecemeal). Over-masking costs a little log fidelity; under-masking leaks a secret.
 */
const SECRET_PATTERNS: [RegExp, string][] = [
  // JWT / JWS: three base64url parts, the first a JSON header ({" → eyJ).
  [/\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g, '[REDACTED_JWT]'],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, `$1 ${REDACTED}`],
  // API keys with known prefixes: chatmirror's, OpenAI/Anthropic (sk-…), GitHub, GitLab, Slack, AWS key ids.
  [/\b(?:cmk_|sk-|ghp_|gho_|ghs_|ghu_|github_pat_|glpat-|xox[abprs]-)[A-Za-z0-9_-]{8,}/g, REDACTED],
  [/\bAKIA[0-9A-Z]{16}\b/g, REDACTED],
  // key=value and key: value for names that are secrets whatever the value looks like.
  [
    /\b(password|passwd|secret|client[_-]?secret|api[_-]?key|access[_-]?token|auth[_-]?token|refresh[_-]?token)(["']?\s*[:=]\s*["']?)[^\s"',;&]+/gi,
    `$1$2${REDACTED}`,
  ],
  // Hex runs of 128 bits or more (raw keys, hashes of keys).
  [/\b[0-9a-fA-F]{32,}\b/g, REDACTED],
];

/** A run of base64/base64url characters long enough to be a key. */
const LONG_RUN = /[A-Za-z0-9+/_-]{32,}={0,2}/g;
/** Bits per character below which a run reads as a repeated pattern, not a key (random base64: 3.9 or more). */
const MIN_ENTROPY_BITS = 3.5;

/** Masks JWTs, bearer credentials, API keys, secret assignments and long high-entropy base64/hex runs. */
export function redactSecrets(text: string): string {
  let out = text;
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
  return out.replace(LONG_RUN, (run) => (looksRandom(run) ? REDACTED : run));
}

/**
 * Letters with digits, or several capitals among lower case (a random 32-character run has both with odds
 * above 99.5%; a path or a capitalized word has neither), and high entropy. An identifier in camelCase may be
 * masked too: in a log, a masked word costs less than a leaked key.
 */
function looksRandom(run: string): boolean {
  const letters = /[a-zA-Z]/.test(run);
  const digits = /[0-9]/.test(run);
  const capitals = run.match(/[A-Z]/g)?.length ?? 0;
  const mixed = letters && (digits || (capitals >= 2 && /[a-z]/.test(run)));
  return mixed && shannonEntropy(run) >= MIN_ENTROPY_BITS;
}

function shannonEntropy(s: string): number {
  const counts = new Map<string, number>();
  for (const c of s) counts.set(c, (counts.get(c) ?? 0) + 1);
  let bits = 0;
  for (const n of counts.values()) {
    const p = n / s.length;
    bits -= p * Math.log2(p);
  }
  return bits;
}

/** Every string inside a value (a prompt, a list of messages) masked. */
export function redactDeep(value: unknown): unknown {
  if (typeof value === 'string') return redactSecrets(value);
  if (Array.isArray(value)) return value.map(redactDeep);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactDeep(v)]));
  }
  return value;
}
