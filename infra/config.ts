/**
 * The stack configuration as ONE TypeBox schema, in the style of the service's (service/config/schema.ts): types,
 * defaults, bounds and descriptions live here and nowhere else. Each top-level property is one Pulumi config key
 * (`chatmirror:<key>`); nested settings are set with `pulumi config set --path <key>.<field> VALUE`.
 *
 * `parseStackConfig` is pure: it takes the raw key → value map (as in a stack file, or `pulumi.runtime.allConfig()`)
 * and returns a typed object, or throws a `StackConfigError` whose lines each name the key
 * (`chatmirror:serving.memoryMb`), the value and what is allowed.
 */
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { Value, ValueErrorType } from '@sinclair/typebox/value';
import { cidrProblem, describeAllowed } from '../service/config/describe.js';
import { webhookUrlProblem } from './render/alertmanager.js';
import { tableNameProblem } from './render/nftables.js';

export const PROJECT = 'chatmirror';

/** Marks a setting that must be stored encrypted (`pulumi config set --secret`). */
export const SECRET_ANNOTATION = 'x-chatmirror-secret';

export const PROFILES = ['dev', 'staging', 'prod'] as const;
export type Profile = (typeof PROFILES)[number];

// ---- shared shapes -------------------------------------------------------------------------------------------
const DIGEST_REF = '^[a-z0-9]+([._/:-][a-z0-9]+)*@sha256:[0-9a-f]{64}$';
const TAG_REF = '^[a-z0-9]+([._/:-][a-z0-9]+)*:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$';
const SHA256_HEX = '^[0-9a-f]{64}$';
const API_KEY = '^cmk_[A-Za-z0-9_-]{1,64}_[A-Za-z0-9_-]{43}$';
const HOST_PATH = '^(/|~/|\\./|\\.\\./|[A-Za-z0-9_.-]+/)\\S*$';
/** systemd OnCalendar: checked loosely here (`systemd-analyze calendar` is the real judge at apply time). */
const ON_CALENDAR = '^[A-Za-z0-9*.,:/~ -]{3,64}$';

function digestRef(description: string) {
  return Type.String({ pattern: DIGEST_REF, description });
}

function integer(minimum: number, maximum: number, defaultValue: number | undefined, description: string) {
  return Type.Integer({
    minimum,
    maximum,
    description,
    ...(defaultValue === undefined ? {} : { default: defaultValue }),
  });
}

function port(defaultValue: number, description: string) {
  return integer(1, 65535, defaultValue, description);
}

function cidrList(description: string, defaultValue: string[] = []) {
  return Type.Array(Type.String({ minLength: 1 }), { default: defaultValue, description });
}

function secretString(description: string, options: Record<string, unknown> = {}) {
  return Type.String({ minLength: 1, description, [SECRET_ANNOTATION]: true, ...options });
}

// ---- defaults ------------------------------------------------------------------------------------------------
export const DEFAULT_API_PORT = 8443; // the service's own default port, published as is
export const CONTAINER_API_PORT = 8443; // inside the container; never changes
export const DEFAULT_CONTAINER_USER = '10001:10001'; // the image's non-root user (uid:gid)
export const DEFAULT_PROMETHEUS_PORT = 9090;
export const DEFAULT_GRAFANA_PORT = 3000;

// ---- sections ------------------------------------------------------------------------------------------------
const TargetSchema = Type.Object(
  {
    kind: Type.Union([Type.Literal('local'), Type.Literal('ssh')], {
      default: 'local',
      description: 'Where the containers run: the local Docker host, or a remote one over SSH.',
    }),
    host: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9.:-]+$', description: 'SSH host (kind ssh).' })),
    port: port(22, 'SSH port (kind ssh).'),
    user: Type.Optional(
      Type.String({ pattern: '^[a-z_][a-z0-9_-]{0,31}$', description: 'SSH user (kind ssh).' }),
    ),
    hostKey: Type.Optional(
      Type.String({
        pattern:
          '^(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|ssh-rsa) [A-Za-z0-9+/=]+$',
        description:
          'The host\'s public key, "TYPE BASE64" as in known_hosts (ssh-keyscan -t ed25519 HOST), pinned for every ' +
          'connection; required for kind ssh.',
      }),
    ),
    privateKeyPath: Type.Optional(
      Type.String({
        pattern: HOST_PATH,
        description: 'Private key file for SSH (kind ssh); without it the SSH agent is used.',
      }),
    ),
    dataDir: Type.String({
      pattern: HOST_PATH,
      default: '/srv/chatmirror',
      description:
        'Directory on the target host for config, TLS material, textfile metrics and bench history.',
    }),
    sudo: Type.Boolean({
      default: false,
      description: 'Run host commands (nftables, systemd, file ownership) through `sudo -n`.',
    }),
    fileGroup: integer(
      0,
      2 ** 31 - 1,
      10001,
      'Group id that owns the config and secret files on the host; every container runs with it as its group.',
    ),
  },
  { additionalProperties: false, default: {} },
);

const ImagesSchema = Type.Object(
  {
    service: Type.Optional(
      digestRef('The chatmirror service image, repo@sha256:…; default: "service" in images.digestsFile.'),
    ),
    prometheus: Type.Optional(
      digestRef('Prometheus image, repo@sha256:…; default: from images.digestsFile.'),
    ),
    nodeExporter: Type.Optional(
      digestRef('Prometheus node-exporter image, repo@sha256:…; default: from images.digestsFile.'),
    ),
    grafana: Type.Optional(digestRef('Grafana image, repo@sha256:…; default: from images.digestsFile.')),
    alertmanager: Type.Optional(
      digestRef('Prometheus Alertmanager image, repo@sha256:…; default: from images.digestsFile.'),
    ),
    haproxy: Type.Optional(
      digestRef(
        'HAProxy image (load balancer, serving.replicas > 1), repo@sha256:…; default: from images.digestsFile.',
      ),
    ),
    redis: Type.Optional(
      digestRef(
        'Redis image (shared quota store, serving.replicas > 1), repo@sha256:…; default: from images.digestsFile.',
      ),
    ),
    digestsFile: Type.String({
      minLength: 1,
      default: 'images/digests.json',
      description: 'JSON file of image digests written by the image build (relative to the project).',
    }),
    tags: Type.Object(
      {
        service: Type.Optional(
          Type.String({ pattern: TAG_REF, description: 'repo:tag of the service image.' }),
        ),
        prometheus: Type.Optional(Type.String({ pattern: TAG_REF, description: 'repo:tag of Prometheus.' })),
        nodeExporter: Type.Optional(
          Type.String({ pattern: TAG_REF, description: 'repo:tag of node-exporter.' }),
        ),
        grafana: Type.Optional(Type.String({ pattern: TAG_REF, description: 'repo:tag of Grafana.' })),
        alertmanager: Type.Optional(
          Type.String({ pattern: TAG_REF, description: 'repo:tag of Alertmanager.' }),
        ),
        haproxy: Type.Optional(Type.String({ pattern: TAG_REF, description: 'repo:tag of HAProxy.' })),
        redis: Type.Optional(Type.String({ pattern: TAG_REF, description: 'repo:tag of Redis.' })),
      },
      {
        additionalProperties: false,
        default: {},
        description:
          'Tags (repo:tag) whose registry digest is compared with the pinned one on every preview; a difference is reported as drift, never pulled.',
      },
    ),
  },
  { additionalProperties: false, default: {} },
);

const ModelSchema = Type.Object(
  {
    hostPath: Type.String({
      pattern: HOST_PATH,
      description: 'Model directory on the target host (relative paths: to the project, local target only).',
    }),
    id: Type.Optional(
      Type.String({ pattern: '^\\S+$', description: "Served model id; default: the directory's name." }),
    ),
    graphFile: Type.String({
      minLength: 1,
      default: 'onnx/model.onnx',
      description: 'Graph inside hostPath.',
    }),
    manifestSha256: Type.String({
      pattern: SHA256_HEX,
      description:
        "sha256 of the model's SHA256SUMS; every file it lists is checked before the container starts.",
    }),
    sizeBytes: Type.Optional(
      Type.Integer({
        minimum: 1,
        description: 'Size of the model files, for the capacity check; default: measured (local target).',
      }),
    ),
  },
  { additionalProperties: false },
);

const ServingSchema = Type.Object(
  {
    replicas: integer(
      1,
      8,
      1,
      'Service containers. One publishes serving.port itself; more sit behind an HAProxy load balancer on serving.port ' +
        '(rolled one at a time on change) and share a Redis quota store (needs quotaStorePassword).',
    ),
    bindAddresses: Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      default: ['127.0.0.1'],
      description: 'Host addresses the API port is published on (never all interfaces unless listed).',
    }),
    port: port(DEFAULT_API_PORT, 'Host port of the API (the load balancer, or the single replica).'),
    publicHost: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9.-]+$',
        description: 'Host name clients use; default: the first TLS DNS name, else the first bind address.',
      }),
    ),
    memoryMb: integer(256, 1_048_576, 2048, 'Memory limit per replica, in MiB (swap disabled).'),
    cpus: Type.Number({ minimum: 0.25, maximum: 256, default: 2, description: 'CPU limit per replica.' }),
    pidsLimit: integer(
      16,
      65_536,
      256,
      'Process/thread limit, as RLIMIT_NPROC of the service uid (shared by its replicas; the Docker provider has no pids_limit).',
    ),
    restart: Type.Union(
      [Type.Literal('unless-stopped'), Type.Literal('always'), Type.Literal('on-failure')],
      {
        default: 'unless-stopped',
        description: 'Docker restart policy.',
      },
    ),
    user: Type.String({
      pattern: '^[0-9]+:[0-9]+$',
      default: DEFAULT_CONTAINER_USER,
      description: 'uid:gid the service runs as (non-root).',
    }),
    healthStartPeriodSeconds: integer(5, 3600, 60, 'Time the model may take to load before health counts.'),
    waitTimeoutSeconds: integer(10, 3600, 300, 'How long `pulumi up` waits for a replica to turn healthy.'),
    logMaxSizeMb: integer(1, 1024, 20, 'json-file log rotation: size of one file, in MiB.'),
    logMaxFiles: integer(1, 100, 5, 'json-file log rotation: files kept.'),
    engine: Type.Object(
      {
        maxBatchSize: integer(1, 256, 16, 'Sequences decoded together.'),
        maxQueue: integer(0, 10_000, 64, 'Requests that may wait for a slot.'),
        intraOpThreads: integer(0, 256, 0, 'onnxruntime threads; 0 = one per core.'),
        contextLength: Type.Optional(Type.Integer({ minimum: 2, description: "Lower the model's context." })),
      },
      { additionalProperties: false, default: {} },
    ),
    limits: Type.Object(
      {
        maxTokensCap: integer(1, 1_000_000, 2048, 'Server ceiling on max_tokens.'),
        maxN: integer(1, 128, 8, 'Choices per request.'),
        bodyLimitBytes: integer(1024, 64 * 1024 * 1024, 1024 * 1024, 'Largest request body, in bytes.'),
      },
      { additionalProperties: false, default: {} },
    ),
    quotas: Type.Object(
      {
        requestsPerMinute: integer(0, 1_000_000, 60, 'Per subject (0 = no limit).'),
        tokensPerMinute: integer(0, 100_000_000, 40_000, 'Per subject (0 = no limit).'),
        concurrentRequests: integer(0, 10_000, 4, 'Per subject (0 = no limit).'),
      },
      { additionalProperties: false, default: {} },
    ),
    allowlist: cidrList("The service's own client allowlist (network.allowlist); empty = everyone."),
    networkSubnet: Type.String({
      minLength: 1,
      default: '172.29.0.0/24',
      description:
        'Subnet of the private network the service shares with monitoring and the benchmark (added to a non-empty allowlist).',
    }),
    logLevel: Type.Union(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace'].map((level) => Type.Literal(level)),
      { default: 'info', description: 'pino log level.' },
    ),
  },
  { additionalProperties: false, default: {} },
);

const AuthSchema = Type.Object(
  {
    jwt: Type.Optional(
      Type.Object(
        {
          issuer: Type.String({ minLength: 1, description: 'Required `iss` of client tokens.' }),
          audience: Type.String({ minLength: 1, description: 'Required `aud` of client tokens.' }),
          jwksFile: Type.String({
            pattern: HOST_PATH,
            description:
              'JWKS file on the machine running pulumi (e.g. from `chatmirror keygen`); uploaded read-only.',
          }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false, default: {}, description: 'JWT verification for clients (optional).' },
);

const TlsSchema = Type.Object(
  {
    mode: Type.Union([Type.Literal('ca'), Type.Literal('provided')], {
      default: 'ca',
      description:
        'ca: a per-stack CA issues the server certificate; provided: tlsCertificate/tlsPrivateKey from secrets.',
    }),
    dnsNames: Type.Array(Type.String({ pattern: '^[A-Za-z0-9*.-]+$' }), {
      default: ['localhost'],
      description: 'DNS subject alternative names of the server certificate.',
    }),
    ipAddresses: Type.Array(Type.String({ minLength: 1 }), {
      default: ['127.0.0.1'],
      description: 'IP subject alternative names of the server certificate.',
    }),
    organization: Type.String({ minLength: 1, default: 'chatmirror', description: 'Subject O.' }),
    validityDays: integer(1, 825, 90, 'Server certificate lifetime, in days.'),
    renewBeforeDays: integer(1, 365, 30, 'A `pulumi up` this close to expiry issues a new certificate.'),
    caValidityDays: integer(30, 7300, 1825, 'CA lifetime, in days.'),
    keyAlgorithm: Type.Union([Type.Literal('ECDSA'), Type.Literal('RSA')], {
      default: 'ECDSA',
      description: 'Key type (ECDSA P-256 or RSA 3072).',
    }),
  },
  { additionalProperties: false, default: {} },
);

const FirewallSchema = Type.Object(
  {
    enabled: Type.Boolean({
      default: false,
      description: 'Apply the nftables ruleset (needs nft and root/sudo).',
    }),
    apiCidrs: cidrList('Client CIDRs allowed to reach the API port.', ['127.0.0.0/8', '::1/128']),
    adminCidrs: cidrList('CIDRs allowed to reach Prometheus and Grafana.', ['127.0.0.0/8', '::1/128']),
    table: Type.Optional(
      Type.String({
        description:
          'Our own nftables table (family inet); nothing else is touched. Default: `chatmirror_<stack>`, one per stack, so stacks sharing a host keep their own rules.',
      }),
    ),
    priority: integer(
      -300,
      -1,
      -10,
      "Forward/input hook priority; below 0 runs ahead of Docker's filter chains.",
    ),
  },
  { additionalProperties: false, default: {} },
);

const AlertThresholdsSchema = Type.Object(
  {
    errorRatio: Type.Number({
      exclusiveMinimum: 0,
      maximum: 1,
      default: 0.05,
      description: 'Share of 5xx responses over 5 minutes.',
    }),
    p99LatencySeconds: Type.Number({ exclusiveMinimum: 0, default: 30, description: 'p99 HTTP duration.' }),
    ttftP99Seconds: Type.Number({ exclusiveMinimum: 0, default: 5, description: 'p99 time to first token.' }),
    certExpiryDays: integer(1, 365, 14, 'Warn when the server certificate expires sooner.'),
    benchRegressionRatio: Type.Number({
      exclusiveMinimum: 0,
      maximum: 1,
      default: 0.2,
      description: 'Tokens/s below the 7-day average by more than this share.',
    }),
  },
  { additionalProperties: false, default: {} },
);

const MonitoringSchema = Type.Object(
  {
    enabled: Type.Boolean({
      default: true,
      description: 'Run Prometheus, node-exporter, Alertmanager and Grafana.',
    }),
    grafana: Type.Boolean({
      default: true,
      description:
        'Run Grafana too (needs images.grafana: Debian has no Grafana package, so images/build.sh cannot make one).',
    }),
    bindAddresses: Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      default: ['127.0.0.1'],
      description: 'Host addresses Prometheus and Grafana are published on.',
    }),
    prometheusPort: port(DEFAULT_PROMETHEUS_PORT, 'Host port of Prometheus.'),
    grafanaPort: port(DEFAULT_GRAFANA_PORT, 'Host port of Grafana.'),
    scrapeIntervalSeconds: integer(5, 300, 15, 'Prometheus scrape and rule interval.'),
    retentionDays: integer(1, 3650, 15, 'Prometheus TSDB retention time.'),
    retentionSizeGb: integer(1, 10_000, 5, 'Prometheus TSDB size cap.'),
    prometheusMemoryMb: integer(128, 65_536, 1024, 'Prometheus memory limit, in MiB.'),
    grafanaMemoryMb: integer(128, 65_536, 512, 'Grafana memory limit, in MiB.'),
    retainData: Type.Boolean({
      default: true,
      description: 'Keep the Prometheus and Grafana data volumes on destroy (history survives a rebuild).',
    }),
    alerts: AlertThresholdsSchema,
    alertWebhookUrl: Type.Optional(
      Type.String({
        pattern: '^https?://\\S+$',
        description:
          'Where Alertmanager sends firing and resolved alerts (its webhook JSON, http or https); unset: nowhere (the null receiver; alerts are still listed by Alertmanager and Prometheus).',
      }),
    ),
  },
  { additionalProperties: false, default: {} },
);

const BenchmarksSchema = Type.Object(
  {
    enabled: Type.Boolean({ default: false, description: 'Install the benchmark timer (needs systemd).' }),
    schedule: Type.String({
      pattern: ON_CALENDAR,
      default: '*-*-* 03:30:00',
      description: 'systemd OnCalendar expression.',
    }),
    randomizedDelaySeconds: integer(0, 86_400, 600, 'Random start delay, in seconds.'),
    concurrency: Type.Array(Type.Integer({ minimum: 1, maximum: 1024 }), {
      minItems: 1,
      default: [1, 4],
      description: 'Concurrent clients, one run each.',
    }),
    requests: integer(1, 100_000, 32, 'Requests per concurrency level.'),
    maxTokens: integer(1, 100_000, 64, 'max_tokens per request.'),
    historyDays: integer(1, 3650, 90, 'JSON results older than this are deleted.'),
    memoryMb: integer(128, 65_536, 512, 'Memory limit of the benchmark container, in MiB.'),
  },
  { additionalProperties: false, default: {} },
);

const CapacitySchema = Type.Object(
  {
    allowUndersized: Type.Boolean({
      default: false,
      description: 'Turn an undersized host from a preview error into a warning.',
    }),
    dockerDataPath: Type.String({
      pattern: HOST_PATH,
      default: '/var/lib/docker',
      description: 'Where Docker keeps images and volumes (its free space is checked).',
    }),
  },
  { additionalProperties: false, default: {} },
);

const ApiKeyEntrySchema = Type.Object(
  {
    id: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }),
    hash: Type.String({ pattern: '^sha256:[0-9a-f]{64}$' }),
    scopes: Type.Array(
      Type.Union(['chat', 'completions', 'models:read', 'metrics:read', 'admin'].map((s) => Type.Literal(s))),
      { minItems: 1 },
    ),
    limits: Type.Optional(
      Type.Object(
        {
          requestsPerMinute: Type.Optional(Type.Integer({ minimum: 0 })),
          tokensPerMinute: Type.Optional(Type.Integer({ minimum: 0 })),
          concurrentRequests: Type.Optional(Type.Integer({ minimum: 0 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const StackConfigSchema = Type.Object(
  {
    profile: Type.Union(
      PROFILES.map((p) => Type.Literal(p)),
      { description: 'Sizing profile: the capacity floor and what the policy checks expect.' },
    ),
    target: TargetSchema,
    images: ImagesSchema,
    model: ModelSchema,
    serving: ServingSchema,
    auth: AuthSchema,
    tls: TlsSchema,
    firewall: FirewallSchema,
    monitoring: MonitoringSchema,
    benchmarks: BenchmarksSchema,
    capacity: CapacitySchema,
    // ---- secrets (pulumi config set --secret KEY) ----
    grafanaAdminPassword: Type.Optional(
      secretString('Grafana admin password (monitoring.enabled).', { minLength: 12 }),
    ),
    metricsToken: Type.Optional(
      secretString(
        'API key with scope metrics:read that Prometheus scrapes with (`chatmirror keygen --api-key prometheus --scope metrics:read`); its hash is added to the service.',
        { pattern: API_KEY },
      ),
    ),
    benchToken: Type.Optional(
      secretString(
        'API key with scopes chat completions models:read for the benchmark runs (benchmarks.enabled).',
        {
          pattern: API_KEY,
        },
      ),
    ),
    apiKeys: Type.Optional(
      Type.Array(ApiKeyEntrySchema, {
        [SECRET_ANNOTATION]: true,
        description: 'Client API key entries {id, hash, scopes} from `chatmirror keygen --api-key` (JSON).',
      }),
    ),
    quotaStorePassword: Type.Optional(
      secretString(
        'Password of the Redis quota store (serving.replicas > 1), 24+ URL-safe characters: `openssl rand -hex 32`.',
        { pattern: '^[A-Za-z0-9._~-]{24,256}$' },
      ),
    ),
    tlsCertificate: Type.Optional(
      Type.String({ pattern: '-----BEGIN CERTIFICATE-----', description: 'PEM chain (tls.mode provided).' }),
    ),
    tlsPrivateKey: Type.Optional(
      secretString('PEM private key (tls.mode provided).', { pattern: '-----BEGIN [A-Z ]*PRIVATE KEY-----' }),
    ),
    tlsCaCertificate: Type.Optional(
      Type.String({
        pattern: '-----BEGIN CERTIFICATE-----',
        description:
          'PEM of the CA that issued tlsCertificate (tls.mode provided); handed to clients and Prometheus.',
      }),
    ),
  },
  { additionalProperties: false },
);

export type StackConfig = Static<typeof StackConfigSchema>;
export type TargetConfig = StackConfig['target'];
export type ServingConfig = StackConfig['serving'];
export type MonitoringConfig = StackConfig['monitoring'];
export type BenchmarksConfig = StackConfig['benchmarks'];
export type TlsConfig = StackConfig['tls'];
export type FirewallConfig = StackConfig['firewall'];
export type AlertThresholds = MonitoringConfig['alerts'];
export type ImageName =
  | 'service'
  | 'prometheus'
  | 'nodeExporter'
  | 'grafana'
  | 'alertmanager'
  | 'haproxy'
  | 'redis';
export const IMAGE_NAMES: ImageName[] = [
  'service',
  'prometheus',
  'nodeExporter',
  'grafana',
  'alertmanager',
  'haproxy',
  'redis',
];

/** Top-level keys whose value must be stored encrypted. */
export const SECRET_KEYS = Object.entries(StackConfigSchema.properties)
  .filter(([, schema]) => (schema as TSchema)[SECRET_ANNOTATION] === true)
  .map(([key]) => key);

// ---- errors --------------------------------------------------------------------------------------------------

export interface StackConfigIssue {
  /** `chatmirror:serving.memoryMb`, `chatmirror:firewall.apiCidrs[1]`. */
  key: string;
  value: unknown;
  /** What is allowed, e.g. `must be an integer between 256 and 1048576`. */
  problem: string;
}

export class StackConfigError extends Error {
  constructor(readonly issues: StackConfigIssue[]) {
    const lines = issues.map(formatIssue);
    super(
      lines.length === 1
        ? `invalid stack configuration: ${lines[0]}`
        : `invalid stack configuration:\n  - ${lines.join('\n  - ')}`,
    );
    this.name = 'StackConfigError';
  }
}

export interface ParseOptions {
  /** Keys (with or without the `chatmirror:` prefix) that Pulumi holds encrypted. */
  secretKeys?: Iterable<string>;
}

// ---- parsing -------------------------------------------------------------------------------------------------

/**
 * Raw stack config → typed config. `raw` maps `chatmirror:<key>` (other namespaces are ignored) to the value,
 * as a stack file holds it or as a JSON string (how the Pulumi runtime hands over structured values).
 */
export function parseStackConfig(raw: Record<string, unknown>, options: ParseOptions = {}): StackConfig {
  const issues: StackConfigIssue[] = [];
  const tree: Record<string, unknown> = {};
  const prefix = `${PROJECT}:`;
  for (const [fullKey, value] of Object.entries(raw)) {
    if (!fullKey.startsWith(prefix)) continue;
    const key = fullKey.slice(prefix.length);
    tree[key] = decodeValue(key, value);
  }

  const secretKeys = new Set(
    [...(options.secretKeys ?? [])].map((k) => (k.startsWith(prefix) ? k : prefix + k)),
  );
  for (const key of SECRET_KEYS) {
    if (tree[key] !== undefined && options.secretKeys !== undefined && !secretKeys.has(prefix + key)) {
      issues.push({
        key: prefix + key,
        value: '[plaintext]',
        problem: `must be stored encrypted: pulumi config set --secret ${key} …`,
      });
    }
  }

  const config = Value.Default(StackConfigSchema, structuredClone(tree)) as Record<string, unknown>;
  const reported = new Set<string>();
  for (const error of Value.Errors(StackConfigSchema, config)) {
    const path = error.path.split('/').slice(1);
    const key = keyOf(path);
    if (reported.has(key)) continue;
    reported.add(key);
    const schema = error.schema as TSchema;
    const isSecret = SECRET_KEYS.includes(path[0] ?? '');
    let problem: string;
    if (error.type === ValueErrorType.ObjectAdditionalProperties) {
      const parent = path.slice(0, -1);
      const allowed = allowedKeysAt(parent);
      problem = `unknown setting; allowed: ${allowed.map((k) => (parent.length === 0 ? prefix + k : k)).join(', ')}`;
    } else if (error.value === undefined) {
      problem = `is required: ${describe(schema)}`;
    } else {
      problem = describe(schema);
    }
    issues.push({ key, value: isSecret ? '[secret]' : error.value, problem });
  }
  if (issues.length === 0) issues.push(...crossFieldIssues(config as StackConfig));
  if (issues.length > 0) throw new StackConfigError(issues);
  return config as StackConfig;
}

/** The Pulumi runtime hands structured values over as JSON text; a stack file as YAML values. */
function decodeValue(key: string, value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const schema = (StackConfigSchema.properties as Record<string, TSchema>)[key];
  const kind = schema?.type;
  if (
    kind === 'object' ||
    kind === 'array' ||
    kind === 'boolean' ||
    kind === 'integer' ||
    kind === 'number'
  ) {
    try {
      return JSON.parse(value);
    } catch {
      return value; // left as is: validation then reports it against the schema
    }
  }
  return value;
}

/** The service's wording (describeAllowed), plus the string lengths and array sizes it does not spell out. */
function describe(schema: TSchema): string {
  if (schema.type === 'string' && typeof schema.minLength === 'number' && schema.minLength > 1)
    return `must be a string of at least ${schema.minLength} characters`;
  if (schema.type === 'array') {
    const size = schema.minItems === undefined ? '' : ` of at least ${schema.minItems}`;
    return `must be a list${size}${schema.minItems === undefined ? '' : ' entries'}`;
  }
  return describeAllowed(schema);
}

function allowedKeysAt(path: string[]): string[] {
  let schema: TSchema = StackConfigSchema;
  for (const part of path) {
    const next = (schema.properties as Record<string, TSchema> | undefined)?.[part] ?? schema.items;
    if (next === undefined) return [];
    schema = next as TSchema;
  }
  return Object.keys((schema.properties as object) ?? {});
}

/** `['firewall', 'apiCidrs', '1']` → `chatmirror:firewall.apiCidrs[1]`. */
export function keyOf(path: readonly string[]): string {
  const [head = '', ...rest] = path;
  return `${PROJECT}:${head}${rest.map((part) => (/^\d+$/.test(part) ? `[${part}]` : `.${part}`)).join('')}`;
}

const ANY_V4 = '0.0.0.0/0';
const ANY_V6 = '::/0';

function crossFieldIssues(config: StackConfig): StackConfigIssue[] {
  const issues: StackConfigIssue[] = [];
  const add = (path: string[], value: unknown, problem: string) =>
    issues.push({ key: keyOf(path), value, problem });
  const { target, serving, tls, firewall, monitoring, benchmarks, profile } = config;

  if (target.kind === 'ssh') {
    for (const field of ['host', 'user', 'hostKey'] as const) {
      if (target[field] === undefined)
        add(['target', field], undefined, 'is required when chatmirror:target.kind is ssh');
    }
  }
  const addressLists: [string[], string[]][] = [
    [['serving', 'bindAddresses'], serving.bindAddresses],
    [['monitoring', 'bindAddresses'], monitoring.bindAddresses],
    [['tls', 'ipAddresses'], tls.ipAddresses],
  ];
  for (const [path, list] of addressLists) {
    list.forEach((address, i) => {
      if (address.includes('/') || cidrProblem(address) !== undefined)
        add([...path, String(i)], address, 'must be an IPv4 or IPv6 address, e.g. 127.0.0.1 or ::1');
    });
  }
  const cidrLists: [string[], string[]][] = [
    [['firewall', 'apiCidrs'], firewall.apiCidrs],
    [['firewall', 'adminCidrs'], firewall.adminCidrs],
    [['serving', 'allowlist'], serving.allowlist],
  ];
  for (const [path, list] of cidrLists) {
    list.forEach((cidr, i) => {
      const problem = cidrProblem(cidr);
      if (problem !== undefined) add([...path, String(i)], cidr, problem);
    });
  }
  if (firewall.table !== undefined) {
    const problem = tableNameProblem(firewall.table);
    if (problem !== undefined) add(['firewall', 'table'], firewall.table, problem);
  }
  if (firewall.enabled && firewall.apiCidrs.length === 0)
    add(
      ['firewall', 'apiCidrs'],
      [],
      'must list at least one CIDR when chatmirror:firewall.enabled is true (an empty list closes the API to everyone)',
    );

  const subnetProblem = serving.networkSubnet.includes('/')
    ? cidrProblem(serving.networkSubnet)
    : 'must be a CIDR';
  if (subnetProblem !== undefined) add(['serving', 'networkSubnet'], serving.networkSubnet, subnetProblem);
  const gid = Number(serving.user.split(':')[1]);
  if (gid !== target.fileGroup)
    add(
      ['serving', 'user'],
      serving.user,
      `group must be chatmirror:target.fileGroup (${target.fileGroup}): the service reads its key through that group`,
    );
  if (serving.user.startsWith('0:')) add(['serving', 'user'], serving.user, 'must not be root (uid 0)');
  if (target.kind === 'ssh') {
    const remotePaths: [string[], string][] = [
      [['target', 'dataDir'], target.dataDir],
      [['model', 'hostPath'], config.model.hostPath],
    ];
    for (const [path, value] of remotePaths) {
      if (!value.startsWith('/'))
        add(path, value, 'must be an absolute path on the remote host (target.kind ssh)');
    }
  }

  // One host port for the API: the load balancer's (replicas > 1, which publish nothing), or the single replica's.
  const hostPorts = [
    [['serving', 'port'], serving.port] as [string[], number],
    ...(monitoring.enabled
      ? [
          [['monitoring', 'prometheusPort'], monitoring.prometheusPort] as [string[], number],
          [['monitoring', 'grafanaPort'], monitoring.grafanaPort] as [string[], number],
        ]
      : []),
  ];
  const seenPorts = new Map<number, string>();
  for (const [path, hostPort] of hostPorts) {
    const other = seenPorts.get(hostPort);
    if (other !== undefined && other !== keyOf(path))
      add(path, hostPort, `collides with ${other} (port ${hostPort})`);
    seenPorts.set(hostPort, keyOf(path));
  }
  if (serving.replicas > 1 && config.quotaStorePassword === undefined)
    add(
      ['quotaStorePassword'],
      undefined,
      `is required when chatmirror:serving.replicas is above 1 (the replicas share a Redis quota store)${secretHint('quotaStorePassword')}`,
    );

  if (tls.renewBeforeDays >= tls.validityDays)
    add(
      ['tls', 'renewBeforeDays'],
      tls.renewBeforeDays,
      `must be below chatmirror:tls.validityDays (${tls.validityDays})`,
    );
  if (tls.mode === 'ca' && tls.validityDays >= tls.caValidityDays)
    add(
      ['tls', 'validityDays'],
      tls.validityDays,
      `must be below chatmirror:tls.caValidityDays (${tls.caValidityDays})`,
    );
  if (tls.mode === 'provided') {
    for (const key of ['tlsCertificate', 'tlsPrivateKey', 'tlsCaCertificate'] as const) {
      if (config[key] === undefined)
        add([key], undefined, `is required when chatmirror:tls.mode is provided${secretHint(key)}`);
    }
  }
  if (tls.dnsNames.length === 0 && tls.ipAddresses.length === 0)
    add(['tls', 'dnsNames'], [], 'the certificate needs at least one DNS name or IP address');

  if (monitoring.alertWebhookUrl !== undefined) {
    const problem = webhookUrlProblem(monitoring.alertWebhookUrl);
    // Not echoed back: a webhook URL often carries a token in its path.
    if (problem !== undefined) add(['monitoring', 'alertWebhookUrl'], undefined, problem);
  }
  if (monitoring.enabled) {
    if (config.metricsToken === undefined)
      add(
        ['metricsToken'],
        undefined,
        `is required when chatmirror:monitoring.enabled is true${secretHint('metricsToken')}`,
      );
    if (monitoring.grafana && config.grafanaAdminPassword === undefined)
      add(
        ['grafanaAdminPassword'],
        undefined,
        `is required when chatmirror:monitoring.grafana is true${secretHint('grafanaAdminPassword')}`,
      );
  }
  if (benchmarks.enabled) {
    if (config.benchToken === undefined)
      add(
        ['benchToken'],
        undefined,
        `is required when chatmirror:benchmarks.enabled is true${secretHint('benchToken')}`,
      );
    if (!monitoring.enabled)
      add(['benchmarks', 'enabled'], true, 'needs chatmirror:monitoring.enabled (results go to Prometheus)');
  }

  // prod is meant to face a network: its firewall must be on and its admin ports never open to everyone.
  if (profile === 'prod') {
    if (!firewall.enabled) add(['firewall', 'enabled'], false, 'must be true for profile prod');
    firewall.adminCidrs.forEach((cidr, i) => {
      if (cidr === ANY_V4 || cidr === ANY_V6)
        add(
          ['firewall', 'adminCidrs', String(i)],
          cidr,
          'must not open Prometheus/Grafana to every address in prod',
        );
    });
    if (!monitoring.enabled) add(['monitoring', 'enabled'], false, 'must be true for profile prod');
  }
  return issues;
}

function secretHint(key: string): string {
  return SECRET_KEYS.includes(key)
    ? `; set it with: pulumi config set --secret ${key} VALUE`
    : `; set it with: pulumi config set ${key} -- "$(cat FILE)"`;
}

function formatIssue({ key, value, problem }: StackConfigIssue): string {
  const got = value === undefined ? '' : `, got ${describeValue(value)}`;
  return `${key}: ${problem}${got}`;
}

function describeValue(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** The documentation of every setting, walked from the schema: `[key, default, description]` rows. */
export function stackConfigReference(): {
  key: string;
  defaultValue: unknown;
  description: string;
  secret: boolean;
}[] {
  const rows: { key: string; defaultValue: unknown; description: string; secret: boolean }[] = [];
  const walk = (schema: TSchema, path: string[]) => {
    if (schema.type === 'object' && schema.properties !== undefined) {
      for (const [key, child] of Object.entries(schema.properties as Record<string, TSchema>))
        walk(child, [...path, key]);
      return;
    }
    rows.push({
      key: keyOf(path),
      defaultValue: schema.default,
      description: String(schema.description ?? ''),
      secret: schema[SECRET_ANNOTATION] === true,
    });
  };
  walk(StackConfigSchema, []);
  return rows;
}
