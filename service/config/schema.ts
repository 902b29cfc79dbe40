/**
 * The whole service configuration as ONE TypeBox schema: types, defaults, bounds and descriptions live here and
 * nowhere else. `loadConfig` (load.ts) walks this schema to derive env var names and to coerce their strings, so a
 * new setting needs only a new property below.
 */
import { type Static, Type } from '@sinclair/typebox';
import { ENGINE_DEFAULTS } from '../engine/engine.js';
import { RUNTIMES } from '../engine/ort-session.js';
import { SamplingBounds } from '../sampling-bounds.js';
import { BUNDLED_MODEL_DIR } from './paths.js';

/**
 * Marks a string setting as a filesystem path: a relative path from a config file is resolved against that
 * file's directory (so a config works whatever the working directory of the process), one from an env var
 * against the working directory.
 */
export const PATH_ANNOTATION = 'x-chatmirror-path';

// ---- server ------------------------------------------------------------------------------------------------
export const DEFAULT_HOST = '127.0.0.1'; // loopback: exposing the API is an explicit decision
export const DEFAULT_PORT = 8443;
export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024; // 1 MiB: 256 long messages fit with room to spare
// Node's requestTimeout bounds receiving the whole request (headers + body), not writing the response, so it
// never cuts a long streamed completion short; 5 minutes only stops a client trickling a body forever.
export const DEFAULT_REQUEST_TIMEOUT_MS = 300_000; // 5 minutes
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000; // 10 seconds: slow-loris protection
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 5_000; // 5 seconds, Node's own default (Fastify's is 72 s)
export const DEFAULT_MAX_HEADER_BYTES = 16 * 1024; // 16 KiB, Node's default
export const DEFAULT_SHUTDOWN_GRACE_MS = 30_000; // 30 seconds for in-flight generations before they are aborted
// A streaming client whose socket stays full this long is gone or hostile: 30 s outlasts any real network stall.
export const DEFAULT_WRITE_STALL_MS = 30_000;
/** 64 KiB: what one streamed response may hold in the server's own buffers while its client does not read. */
export const DEFAULT_STREAM_BUFFER_BYTES = 65_536;
// Below the common proxy idle timeouts (nginx proxy_read_timeout 60 s, AWS ALB 60 s) with room to spare.
export const DEFAULT_SSE_HEARTBEAT_MS = 15_000;

// ---- limits ------------------------------------------------------------------------------------------------
export const DEFAULT_MAX_MESSAGES = 256; // messages per chat request
export const DEFAULT_MAX_TOKENS_CAP = 2048; // tokens: ceiling on a request's max_tokens
export const DEFAULT_MAX_N = 8; // choices per request
export const DEFAULT_MAX_STOP = 4; // stop sequences per request, as OpenAI allows
export const DEFAULT_MAX_STOP_LENGTH = 64; // characters per stop sequence
export const DEFAULT_MAX_LOGIT_BIAS_ENTRIES = 300; // token ids in logit_bias, as OpenAI allows
export const DEFAULT_RETRY_AFTER_SECONDS = 1; // seconds, sent in Retry-After when the engine queue is full

// ---- models ------------------------------------------------------------------------------------------------
/** Per-scenario presets served as extra model ids. */
export const DEFAULT_ALIASES = {
  support: { description: 'Focused, repeatable answers for support and extraction', temperature: 0.2 },
  creative: { description: 'Varied, exploratory writing', temperature: 0.9 },
};

// ---- log ---------------------------------------------------------------------------------------------------
export const DEFAULT_LOG_LEVEL = 'info';

function pathString(description: string, options: Record<string, unknown> = {}) {
  return Type.String({ minLength: 1, description, [PATH_ANNOTATION]: true, ...options });
}

function positiveInteger(defaultValue: number, description: string, minimum = 1) {
  return Type.Integer({ minimum, default: defaultValue, description });
}

/** Sampling defaults, named as in the OpenAI request body so a preset reads like the request it shapes. */
export const SamplingPresetSchema = Type.Object(
  {
    description: Type.Optional(
      Type.String({ maxLength: 200, description: 'Shown to clients listing models.' }),
    ),
    temperature: Type.Optional(SamplingBounds.temperature()),
    top_p: Type.Optional(SamplingBounds.top_p()),
    top_k: Type.Optional(SamplingBounds.top_k()),
    min_p: Type.Optional(SamplingBounds.min_p()),
    max_tokens: Type.Optional(SamplingBounds.max_tokens()),
    repetition_penalty: Type.Optional(SamplingBounds.repetition_penalty()),
    presence_penalty: Type.Optional(SamplingBounds.presence_penalty()),
    frequency_penalty: Type.Optional(SamplingBounds.frequency_penalty()),
  },
  { additionalProperties: false },
);

const ServerSchema = Type.Object(
  {
    host: Type.String({ minLength: 1, default: DEFAULT_HOST, description: 'Interface to listen on.' }),
    port: Type.Integer({
      minimum: 0,
      maximum: 65535,
      default: DEFAULT_PORT,
      description: 'TCP port; 0 picks a free one (tests).',
    }),
    tls: Type.Object(
      {
        enabled: Type.Boolean({
          default: true,
          description: 'Serve HTTPS. Plain HTTP only when this is set to false explicitly.',
        }),
        certFile: Type.Optional(
          pathString('PEM certificate chain. Without certFile/keyFile a dev cert is made.'),
        ),
        keyFile: Type.Optional(pathString('PEM private key matching certFile.')),
        // No static default: it depends on the environment, so loadConfig fills it (defaultDevCertDir).
        devCertDir: pathString(
          'Where the self-signed development certificate is kept. Default: $CHATMIRROR_CACHE/dev-tls, ' +
            'else ~/.cache/chatmirror/dev-tls.',
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    bodyLimitBytes: positiveInteger(DEFAULT_BODY_LIMIT_BYTES, 'Largest accepted request body, in bytes.'),
    requestTimeoutMs: positiveInteger(
      DEFAULT_REQUEST_TIMEOUT_MS,
      'Time allowed to receive a whole request, in ms (0 = no limit). Does not bound the response.',
      0,
    ),
    headersTimeoutMs: positiveInteger(
      DEFAULT_HEADERS_TIMEOUT_MS,
      'Time allowed to receive the headers, in ms.',
    ),
    keepAliveTimeoutMs: positiveInteger(
      DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
      'Idle keep-alive connection lifetime, in ms.',
    ),
    maxHeaderBytes: positiveInteger(
      DEFAULT_MAX_HEADER_BYTES,
      'Largest accepted request header block, in bytes.',
      1024,
    ),
    shutdownGraceMs: positiveInteger(
      DEFAULT_SHUTDOWN_GRACE_MS,
      'On SIGTERM/SIGINT, how long in-flight requests may finish before generations are aborted, in ms.',
      0,
    ),
    writeStallMs: positiveInteger(
      DEFAULT_WRITE_STALL_MS,
      'A streamed response whose client reads nothing for this long (socket full) is closed and its generation cancelled, in ms.',
    ),
    streamBufferBytes: positiveInteger(
      DEFAULT_STREAM_BUFFER_BYTES,
      'What one streamed response may buffer in the server before its generation is paused (client not reading), in bytes.',
      4096,
    ),
    sseHeartbeatMs: positiveInteger(
      DEFAULT_SSE_HEARTBEAT_MS,
      'A stream silent this long (queued, prefilling) gets an SSE comment, so idle-timeout proxies keep it, in ms (0 = never).',
      0,
    ),
    publicBaseUrl: Type.Optional(
      Type.String({
        pattern: '^https?://[^\\s/]+(/\\S*)?$',
        description: 'How clients reach the service (behind a proxy), e.g. https://chat.example.com.',
      }),
    ),
  },
  { additionalProperties: false, default: {} },
);

const EngineSchema = Type.Object(
  {
    modelDir: pathString('Model directory (Transformers.js/Optimum layout with SHA256SUMS).', {
      default: BUNDLED_MODEL_DIR,
    }),
    graphFile: Type.String({
      minLength: 1,
      default: ENGINE_DEFAULTS.graphFile,
      description: 'Graph inside modelDir, e.g. onnx/model_quantized.onnx.',
    }),
    intraOpThreads: positiveInteger(
      ENGINE_DEFAULTS.intraOpThreads,
      'onnxruntime intra-op threads; 0 = one per core.',
      0,
    ),
    spinThreads: Type.Boolean({
      default: ENGINE_DEFAULTS.spinThreads,
      description:
        "Let onnxruntime's threads spin between kernels instead of sleeping: much faster decoding, at the cost " +
        'of CPU time spent waiting; false for a host whose cores other work needs.',
    }),
    runtime: Type.Union(
      RUNTIMES.map((r) => Type.Literal(r)),
      {
        default: ENGINE_DEFAULTS.runtime,
        description:
          "What runs the graph: native (chatmirror's binding to onnxruntime's C API, built by npm ci or " +
          '`bash service/native/build.sh`; it writes the KV cache in place, faster), onnxruntime-node, or auto ' +
          '(native where it is built).',
      },
    ),
    maxBatchSize: positiveInteger(ENGINE_DEFAULTS.maxBatchSize, 'Sequences decoded together in one step.'),
    maxQueue: positiveInteger(ENGINE_DEFAULTS.maxQueue, 'Requests that may wait for a batch slot.', 0),
    tokenizerThreads: positiveInteger(
      ENGINE_DEFAULTS.tokenizerThreads,
      'Threads that template and tokenize prompts, off the event loop that serves HTTP.',
    ),
    contextLength: Type.Optional(
      Type.Integer({ minimum: 2, description: "Lower the model's context (tokens), e.g. to bound memory." }),
    ),
  },
  { additionalProperties: false, default: {} },
);

const LimitsSchema = Type.Object(
  {
    maxMessages: positiveInteger(DEFAULT_MAX_MESSAGES, 'Messages per chat request.'),
    maxPromptTokens: Type.Optional(
      Type.Integer({ minimum: 1, description: "Prompt tokens per request. Default: the model's context." }),
    ),
    maxTokensCap: positiveInteger(DEFAULT_MAX_TOKENS_CAP, 'Server ceiling on max_tokens.'),
    maxN: positiveInteger(DEFAULT_MAX_N, 'Choices per request (n).'),
    maxStop: positiveInteger(DEFAULT_MAX_STOP, 'Stop sequences per request.', 0),
    maxStopLength: positiveInteger(DEFAULT_MAX_STOP_LENGTH, 'Characters per stop sequence.'),
    maxLogitBiasEntries: positiveInteger(DEFAULT_MAX_LOGIT_BIAS_ENTRIES, 'Entries in logit_bias.', 0),
    retryAfterSeconds: positiveInteger(DEFAULT_RETRY_AFTER_SECONDS, 'Retry-After on 429/503, in seconds.', 0),
  },
  { additionalProperties: false, default: {} },
);

const ModelsSchema = Type.Object(
  {
    // No static default: it follows engine.modelDir, so loadConfig fills it once the model dir is known.
    id: Type.String({
      minLength: 1,
      pattern: '^\\S+$',
      description: "Served model id. Default: the model directory's name.",
    }),
    aliases: Type.Record(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' }), SamplingPresetSchema, {
      additionalProperties: false,
      default: DEFAULT_ALIASES,
      description:
        'Extra model ids, each a sampling preset over the same model. Setting this replaces the default aliases.',
    }),
    defaults: Type.Object(SamplingPresetSchema.properties, {
      additionalProperties: false,
      default: {},
      description: 'Server-wide sampling defaults; a request field wins over an alias, an alias over these.',
    }),
  },
  { additionalProperties: false, default: {} },
);

const LogSchema = Type.Object(
  {
    level: Type.Union(
      [
        Type.Literal('fatal'),
        Type.Literal('error'),
        Type.Literal('warn'),
        Type.Literal('info'),
        Type.Literal('debug'),
        Type.Literal('trace'),
        Type.Literal('silent'),
      ],
      { default: DEFAULT_LOG_LEVEL, description: 'pino log level.' },
    ),
    prompts: Type.Boolean({
      default: false,
      description: 'Log prompt and completion text (secrets redacted). Off: logs carry token counts only.',
    }),
  },
  { additionalProperties: false, default: {} },
);

// ---- security ------------------------------------------------------------------------------------------------
/** What a credential may do; a route names the one it needs. `admin` implies every other scope. */
export const SCOPES = ['chat', 'completions', 'models:read', 'metrics:read', 'admin'] as const;
// Liveness and readiness probes come from orchestrators and load balancers that hold no credentials.
export const DEFAULT_PUBLIC_ROUTES = ['/health', '/ready'];
export const DEFAULT_JWT_ALGORITHMS = ['EdDSA', 'ES256', 'RS256'];
export const DEFAULT_CLOCK_TOLERANCE_SECONDS = 30; // seconds of clock skew accepted on exp/nbf/iat
export const DEFAULT_MAX_TOKEN_AGE_SECONDS = 3600; // seconds: a token older than this (by iat) is refused
export const DEFAULT_REQUIRED_CLAIMS = ['sub', 'exp', 'iat'];
export const DEFAULT_JWKS_CACHE_MAX_AGE_MS = 600_000; // 10 minutes before a remote JWKS is fetched again
export const DEFAULT_REQUESTS_PER_MINUTE = 60;
export const DEFAULT_TOKENS_PER_MINUTE = 40_000; // prompt + completion tokens, as OpenAI counts TPM
export const DEFAULT_CONCURRENT_REQUESTS = 4;

const ScopeSchema = Type.Union(
  SCOPES.map((s) => Type.Literal(s)),
  { description: `One of ${SCOPES.join(', ')}.` },
);

/** Per-subject limits; each field falls back to quotas.default. */
export const SubjectLimitsSchema = Type.Object(
  {
    requestsPerMinute: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Requests per minute (0 = no limit).' }),
    ),
    tokensPerMinute: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Prompt + completion tokens per minute (0 = no limit).' }),
    ),
    concurrentRequests: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Requests in flight at once.' }),
    ),
  },
  { additionalProperties: false },
);

export const JwtSchema = Type.Object(
  {
    issuer: Type.String({ minLength: 1, description: 'Required `iss`.' }),
    audience: Type.String({ minLength: 1, description: 'Required `aud`.' }),
    algorithms: Type.Array(
      Type.Union(
        ['EdDSA', 'ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'].map((a) =>
          Type.Literal(a),
        ),
      ),
      {
        minItems: 1,
        default: DEFAULT_JWT_ALGORITHMS,
        description: 'Accepted signature algorithms (asymmetric only; `none` and HMAC are never accepted).',
      },
    ),
    jwksFile: Type.Optional(
      pathString('Local JWKS file (e.g. from `chatmirror keygen`); give this or jwksUrl.'),
    ),
    jwksUrl: Type.Optional(
      Type.String({
        pattern: '^https://\\S+$',
        description: 'Remote JWKS (https), cached and refreshed on unknown kid.',
      }),
    ),
    jwksCacheMaxAgeMs: positiveInteger(
      DEFAULT_JWKS_CACHE_MAX_AGE_MS,
      'How long a remote JWKS is cached, in ms.',
    ),
    clockToleranceSeconds: positiveInteger(
      DEFAULT_CLOCK_TOLERANCE_SECONDS,
      'Clock skew allowed, in seconds.',
      0,
    ),
    maxTokenAgeSeconds: positiveInteger(
      DEFAULT_MAX_TOKEN_AGE_SECONDS,
      'Oldest accepted token (by iat), in seconds.',
    ),
    requiredClaims: Type.Array(Type.String({ minLength: 1 }), {
      default: DEFAULT_REQUIRED_CLAIMS,
      description: 'Claims every token must carry.',
    }),
    scopesClaim: Type.String({
      minLength: 1,
      default: 'scope',
      description: 'Claim holding the scopes: a space-separated string or an array.',
    }),
    limitsClaim: Type.String({
      minLength: 1,
      default: 'chatmirror_limits',
      description:
        'Optional claim with per-subject limits ({requestsPerMinute, tokensPerMinute, concurrentRequests}).',
    }),
  },
  { additionalProperties: false },
);

const ApiKeySchema = Type.Object(
  {
    id: Type.String({
      pattern: '^[A-Za-z0-9_-]{1,64}$',
      description: 'Key id: the subject in logs, metrics and quotas.',
    }),
    hash: Type.String({
      pattern: '^sha256:[0-9a-f]{64}$',
      description:
        'sha256 of the key as printed by `chatmirror keygen --api-key`; the key itself is never stored.',
    }),
    scopes: Type.Array(ScopeSchema, { minItems: 1 }),
    limits: Type.Optional(SubjectLimitsSchema),
  },
  { additionalProperties: false },
);

const AuthSchema = Type.Object(
  {
    publicRoutes: Type.Array(Type.String({ pattern: '^/' }), {
      default: DEFAULT_PUBLIC_ROUTES,
      description: 'Routes served without credentials; every other route requires them.',
    }),
    jwt: Type.Optional(JwtSchema),
    apiKeys: Type.Array(ApiKeySchema, {
      default: [],
      description: 'Static API keys, stored as hashes (a secret).',
    }),
  },
  { additionalProperties: false, default: {} },
);

const QuotasSchema = Type.Object(
  {
    store: Type.Union([Type.Literal('memory'), Type.Literal('redis')], {
      default: 'memory',
      description: 'Where counters live: this process, or Redis (shared by replicas).',
    }),
    redisUrl: Type.Optional(
      Type.String({ pattern: '^rediss?://\\S+$', description: 'Needed when store is redis.' }),
    ),
    redisPasswordFile: Type.Optional(
      pathString(
        'File holding the Redis password (its first line), read at start-up; with it, redisUrl must carry no password.',
      ),
    ),
    default: Type.Object(
      {
        requestsPerMinute: positiveInteger(
          DEFAULT_REQUESTS_PER_MINUTE,
          'Requests per minute per subject.',
          0,
        ),
        tokensPerMinute: positiveInteger(
          DEFAULT_TOKENS_PER_MINUTE,
          'Tokens per minute per subject (0 = no limit).',
          0,
        ),
        concurrentRequests: positiveInteger(
          DEFAULT_CONCURRENT_REQUESTS,
          'Requests in flight per subject.',
          0,
        ),
      },
      { additionalProperties: false, default: {}, description: 'Limits for subjects without their own.' },
    ),
  },
  { additionalProperties: false, default: {} },
);

const NetworkSchema = Type.Object(
  {
    allowlist: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: 'Client CIDRs allowed (IPv4 and IPv6); empty allows every address.',
    }),
    trustedProxies: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: 'Proxy CIDRs whose X-Forwarded-For is believed; nobody else can set the client address.',
    }),
  },
  { additionalProperties: false, default: {} },
);

const FilterListSchema = Type.Object(
  {
    keywords: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: 'Case-insensitive words.',
    }),
    patterns: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: 'Regular expressions (JS).',
    }),
  },
  { additionalProperties: false, default: {} },
);

const FiltersSchema = Type.Object(
  {
    prompt: FilterListSchema,
    output: FilterListSchema,
  },
  {
    additionalProperties: false,
    default: {},
    description:
      'Deny-lists: a prompt match is refused (400 content_filter); an output match ends generation.',
  },
);

const MetricsSchema = Type.Object(
  {
    enabled: Type.Boolean({ default: true, description: 'Serve Prometheus metrics.' }),
    port: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 65535,
        description:
          'Serve /metrics on a separate plain-HTTP listener (on server.host) instead of the API port.',
      }),
    ),
  },
  { additionalProperties: false, default: {} },
);

export const ServiceConfigSchema = Type.Object(
  {
    server: ServerSchema,
    engine: EngineSchema,
    limits: LimitsSchema,
    models: ModelsSchema,
    auth: AuthSchema,
    quotas: QuotasSchema,
    network: NetworkSchema,
    filters: FiltersSchema,
    metrics: MetricsSchema,
    log: LogSchema,
  },
  { additionalProperties: false, default: {} },
);

/**
 * What `loadConfig` returns: the settings, plus what it read from the files some of them name
 * (`quotas.redisPassword`, from quotas.redisPasswordFile; never a setting of its own, so never in a config file).
 */
export type ServiceConfig = Static<typeof ServiceConfigSchema> & { quotas: { redisPassword?: string } };
export type SamplingPreset = Static<typeof SamplingPresetSchema>;
export type Scope = (typeof SCOPES)[number];
export type SubjectLimits = Static<typeof SubjectLimitsSchema>;
