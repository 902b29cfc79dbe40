/**
 * `chatmirror check [--config FILE] [--json]`: will `serve` work here, with this configuration, on this machine (or
 * in this container)? Loads the configuration as `serve` does; verifies every file of the model directory against
 * its SHA256SUMS; checks the files the configuration names and the cache directory the server writes to; compares
 * whether the configured ports can be bound; compares the CPUs and memory available (cgroup limits included) with
 * what the model needs at start and in the worst case the batch settings allow. Prints one line per check; fails
 * (exit 1) naming what is wrong. Reads only: it creates nothing, even the cache (a port is bound and released).
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { access, readdir, readFile, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { availableParallelism, totalmem } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { ConfigError, loadConfig } from './config/load.js';
import { cacheDir } from './config/paths.js';
import type { ServiceConfig } from './config/schema.js';
import { EngineError } from './engine/errors.js';
import { ELEMENT_BYTES, GraphFormatError, graphInputTypes } from './engine/graph-inputs.js';
import { MANIFEST_FILE, type Manifest, readManifest } from './engine/manifest.js';
import { type HfModelConfig, loadModelFiles } from './engine/model-files.js';
import { PREFIX_CACHE_BYTES } from './engine/prefix-cache.js';
import { modelDirProblem } from './model-dir.js';
import { type CommandOutput, parsedArgs } from './security/auth/commands.js';

export const CHECK_USAGE = `  chatmirror check [--config FILE] [--json]
                                         will serve work here? config, model files against SHA256SUMS,
                                         certificates, cache, ports, and CPUs and memory against the model's needs`;

export const CHECK_HELP = `usage: chatmirror check [--config FILE] [--json]

Will \`chatmirror serve\` work here, with this configuration, on this machine (or in this container)? Loads the
configuration as serve does, then checks: the model directory against its SHA256SUMS (every file hashed), the TLS
files, auth, the cache directory serve writes to, whether server.port (and metrics.port) can be bound now, and
the CPUs and memory available (cgroup limits included) against what the model needs at start and in the worst
case (every engine.maxBatchSize slot holding engine.contextLength tokens). One line per check (ok, warn, FAIL);
exits 1 when any failed. Reads only: it creates nothing.

options:
  -c, --config FILE   YAML or JSON config file, as serve (default: $CHATMIRROR_CONFIG); CHATMIRROR_<SECTION>_<KEY>
                      environment variables apply too
  --json              print the report as JSON (results, system, needs)
  -h, --help          this help

examples:
  chatmirror check --config /etc/chatmirror/config.yaml
  CHATMIRROR_ENGINE_MODEL_DIR=~/.cache/chatmirror/models/smollm2-135m-instruct chatmirror check`;

/** Node reads a file whole only up to 2 GiB (fs.readFile's limit), and the engine reads each weights file whole. */
export const MAX_WHOLE_FILE_BYTES = 2 ** 31 - 1;
/** Above this share of the available memory the estimate leaves too little margin for the rest. */
export const MEMORY_WARN_FRACTION = 0.8;
/**
 * The process beside the weights and the KV cache: a fixed part (Node, onnxruntime, Fastify, the tokenizer
 * threads; the whole process serving the 1.5 MB test model is ~130 MB) and a part that grows with the model
 * (onnxruntime's arenas for activations, prepacked weights), here 0.6 × its parameters at 4 bytes each. Fitted to
 * SmolLM2-135M-Instruct's measured VmRSS at ready (issue 11): 1694 MiB fp32 and 844 MiB int8, which this puts at
 * 1750 and 820 MiB (+3.3%, −2.8%).
 */
export const RUNTIME_BASE_BYTES = 200 * 1024 * 1024;
export const RUNTIME_BYTES_PER_PARAMETER = 0.6 * 4;
/** When the graph's KV inputs cannot be read, the larger of the two types the engine supports is assumed. */
const FALLBACK_KV_TYPE = 'float32';
const CERT_EXPIRY_WARN_MS = 7 * 24 * 60 * 60 * 1000; // 7 days

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  /** config, model, tls, auth, cache, port, cpu, memory */
  name: string;
  status: CheckStatus;
  detail: string;
}

/** What the process may use, which in a container is less than what the host has. */
export interface SystemResources {
  cpus: number;
  /** `cgroup quota`, `affinity` … */
  cpuSource: string;
  memoryBytes: number;
  /** `cgroup limit` or `physical` */
  memorySource: string;
}

export interface ModelNeeds {
  /** Bytes of the graph and its external data, as loaded. */
  weightsBytes: number;
  /** The process beside the weights and the KV cache (RUNTIME_BASE_BYTES + RUNTIME_BYTES_PER_PARAMETER each). */
  runtimeBytes: number;
  /** Parameters, counted from the model's config (or, without the sizes needed, its weights at 4 bytes each). */
  parameters: number;
  /** The KV cache's element type, as the graph declares its past_key_values inputs (or the fallback). */
  kvType: string;
  /** Where kvType came from: `graph` (read from its inputs) or `assumed`. */
  kvTypeSource: 'graph' | 'assumed';
  /** Tokens per slot in the worst case: engine.contextLength, or the model's context. */
  contextLength: number;
  /** Slots in the worst case: engine.maxBatchSize. */
  batchSize: number;
  /** KV cache with every batch slot at full context, past and present tensors both alive. */
  kvCacheBytes: number;
  /** Prompts' KV kept for reuse (service/engine/prefix-cache.ts), full in the worst case. */
  prefixCacheBytes: number;
  /** At start, before any request: the weights held twice (the verified bytes and onnxruntime's copy) + runtime. */
  startBytes: number;
  /** Every slot holding contextLength tokens: the weights twice, the runtime, the full KV and prefix caches. */
  worstCaseBytes: number;
  /** The figure compared with the memory available: worstCaseBytes. */
  estimatedBytes: number;
}

export interface CheckReport {
  ok: boolean;
  results: CheckResult[];
  system: SystemResources;
  needs?: ModelNeeds;
}

export interface CheckOptions {
  /** As `serve --config`; defaults to `$CHATMIRROR_CONFIG`. */
  configFile?: string | undefined;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Measured from the OS and cgroups when not given (tests give it). */
  system?: SystemResources;
}

/** Exit status 1 with a message naming every failed check. */
export class CheckFailedError extends Error {
  readonly exitCode = 1;
  constructor(readonly report: CheckReport) {
    const failed = report.results.filter((r) => r.status === 'fail');
    super(`check failed: ${failed.map((r) => `${r.name}: ${r.detail}`).join('; ')}`);
    this.name = 'CheckFailedError';
  }
}

export async function runChecks(options: CheckOptions = {}): Promise<CheckReport> {
  const env = options.env ?? process.env;
  const system = options.system ?? (await measureSystem());
  const results: CheckResult[] = [];
  const report = (name: string, status: CheckStatus, detail: string) =>
    results.push({ name, status, detail });
  const done = (needs?: ModelNeeds): CheckReport => ({
    ok: results.every((r) => r.status !== 'fail'),
    results,
    system,
    ...(needs === undefined ? {} : { needs }),
  });

  let config: ServiceConfig;
  try {
    config = loadConfig({ file: options.configFile, env, cwd: options.cwd });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    report('config', 'fail', err.message);
    return done();
  }
  report(
    'config',
    'ok',
    `loaded (${options.configFile ?? (env.CHATMIRROR_CONFIG || 'defaults and environment')})`,
  );

  const needs = await checkModel(config, report);
  await checkTls(config, report);
  await checkAuth(config, report);
  await checkCache(config, env, report);
  await checkPorts(config, report);
  checkCpus(config, system, report);
  if (needs !== undefined) checkMemory(needs, system, report);
  return done(needs);
}

type Report = (name: string, status: CheckStatus, detail: string) => void;

// ---- model -----------------------------------------------------------------------------------------------------

async function checkModel(config: ServiceConfig, report: Report): Promise<ModelNeeds | undefined> {
  const { modelDir, graphFile } = config.engine;
  const missing = await modelDirProblem(modelDir);
  if (missing !== undefined) {
    report('model', 'fail', missing);
    return undefined;
  }
  let manifest: Manifest;
  let hfConfig: HfModelConfig;
  try {
    manifest = await readManifest(modelDir);
    // What Engine.load reads first: the JSON files, verified, and the graph's presence in the manifest.
    hfConfig = (await loadModelFiles(modelDir, graphFile)).config;
  } catch (err) {
    if (!(err instanceof EngineError)) throw err;
    report('model', 'fail', err.message);
    return undefined;
  }

  const problems: string[] = [];
  let totalBytes = 0;
  // One file at a time, streamed: a check should not need the memory the model will.
  for (const [file, expected] of manifest) {
    const path = join(modelDir, file);
    const size = await stat(path).then(
      (s) => s.size,
      () => undefined,
    );
    if (size === undefined) {
      problems.push(`${file} is listed in ${MANIFEST_FILE} but missing`);
      continue;
    }
    totalBytes += size;
    const actual = await sha256File(path);
    if (actual !== expected)
      problems.push(`${file} failed verification: expected sha256 ${expected}, actual ${actual}`);
  }
  const weightFiles = [graphFile, `${graphFile}_data`, `${graphFile}.data`].filter((f) => manifest.has(f));
  const weightSizes = await Promise.all(
    weightFiles.map((f) =>
      stat(join(modelDir, f)).then(
        (s) => s.size,
        () => 0,
      ),
    ),
  );
  weightFiles.forEach((file, i) => {
    if (weightSizes[i]! > MAX_WHOLE_FILE_BYTES) {
      problems.push(
        `${file} is ${formatBytes(weightSizes[i]!)}; the engine reads each weights file whole and Node cannot read ` +
          `more than 2 GiB at once: export the model with its weights split into external data files`,
      );
    }
  });
  if (problems.length > 0) {
    report('model', 'fail', `${modelDir}: ${problems.join('; ')}`);
    return undefined;
  }
  const unlisted = (await listFiles(modelDir)).filter((f) => f !== MANIFEST_FILE && !manifest.has(f));
  const name = config.models.id;
  report(
    'model',
    unlisted.length > 0 ? 'warn' : 'ok',
    `${name} (${modelDir}): ${manifest.size} files, ${formatBytes(totalBytes)}, verified against ${MANIFEST_FILE}` +
      (unlisted.length > 0 ? `; not listed there, so never loaded: ${unlisted.join(', ')}` : ''),
  );
  return modelNeeds(
    hfConfig,
    config,
    weightSizes.reduce((a, b) => a + b, 0),
    await kvTypeOf(join(modelDir, graphFile)),
  );
}

/** The element type of the graph's first past_key_values input, read from the file without loading it. */
async function kvTypeOf(graph: string): Promise<string | undefined> {
  try {
    const inputs = await graphInputTypes(graph);
    for (const [name, type] of inputs) if (name.startsWith('past_key_values.')) return type;
    return undefined;
  } catch (err) {
    if (err instanceof GraphFormatError) return undefined;
    throw err;
  }
}

/**
 * Memory the engine needs for this model and these batch settings, at start and in the worst case (see the
 * constants for what is assumed). `kvType` is the graph's (`float32` when unknown).
 */
export function modelNeeds(
  hf: HfModelConfig,
  config: { engine: Pick<ServiceConfig['engine'], 'contextLength' | 'maxBatchSize'> },
  weightsBytes: number,
  kvType?: string,
): ModelNeeds {
  const layers = hf.num_hidden_layers ?? 0;
  const heads = hf.num_attention_heads ?? 1;
  const kvHeads = hf.num_key_value_heads ?? heads;
  const headDim = hf.head_dim ?? Math.floor((hf.hidden_size ?? 0) / heads);
  const modelContext = hf.max_position_embeddings ?? 2048;
  const contextLength = Math.min(config.engine.contextLength ?? modelContext, modelContext);
  const batchSize = config.engine.maxBatchSize;
  const known = kvType !== undefined && ELEMENT_BYTES[kvType] !== undefined;
  const type = known ? kvType : FALLBACK_KV_TYPE;
  // Keys and values, for the past and the present tensors of a decode step.
  const kvCacheBytes = 2 * 2 * layers * kvHeads * headDim * contextLength * batchSize * ELEMENT_BYTES[type]!;
  const parameters = parameterCount(hf) ?? Math.round(weightsBytes / 4);
  const runtimeBytes = Math.round(RUNTIME_BASE_BYTES + RUNTIME_BYTES_PER_PARAMETER * parameters);
  // The engine keeps the verified bytes it hashed and hands them to onnxruntime, which holds its own copy.
  const startBytes = 2 * weightsBytes + runtimeBytes;
  const worstCaseBytes = startBytes + kvCacheBytes + PREFIX_CACHE_BYTES;
  return {
    weightsBytes,
    runtimeBytes,
    parameters,
    kvType: type,
    kvTypeSource: known ? 'graph' : 'assumed',
    contextLength,
    batchSize,
    kvCacheBytes,
    prefixCacheBytes: PREFIX_CACHE_BYTES,
    startBytes,
    worstCaseBytes,
    estimatedBytes: worstCaseBytes,
  };
}

/** A Llama-style decoder's parameters from its config; undefined when a size it needs is missing. */
export function parameterCount(
  hf: HfModelConfig & { intermediate_size?: number; tie_word_embeddings?: boolean },
): number | undefined {
  const { vocab_size: vocab, hidden_size: hidden, num_hidden_layers: layers, intermediate_size: ffn } = hf;
  if (vocab === undefined || hidden === undefined || layers === undefined || ffn === undefined)
    return undefined;
  const heads = hf.num_attention_heads ?? 1;
  const headDim = hf.head_dim ?? Math.floor(hidden / heads);
  const kvHeads = hf.num_key_value_heads ?? heads;
  const attention = 2 * hidden * heads * headDim + 2 * hidden * kvHeads * headDim; // q, o; k, v
  const mlp = 3 * hidden * ffn; // gate, up, down
  const embeddings = vocab * hidden * (hf.tie_word_embeddings === true ? 1 : 2);
  return embeddings + layers * (attention + mlp + 2 * hidden) + hidden; // + the RMSNorm weights
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

// ---- files the configuration names ----------------------------------------------------------------------------

async function checkTls(config: ServiceConfig, report: Report): Promise<void> {
  const { tls } = config.server;
  if (!tls.enabled) {
    report(
      'tls',
      'warn',
      'server.tls.enabled is false: plain HTTP, for use behind a TLS-terminating proxy only',
    );
    return;
  }
  if (tls.certFile === undefined || tls.keyFile === undefined) {
    report('tls', 'ok', `no certFile/keyFile: a self-signed development certificate in ${tls.devCertDir}`);
    return;
  }
  try {
    const cert = new X509Certificate(await readFile(tls.certFile));
    const key = createPrivateKey(await readFile(tls.keyFile));
    if (!cert.checkPrivateKey(key)) {
      report('tls', 'fail', `${tls.keyFile} is not the private key of ${tls.certFile}`);
      return;
    }
    const left = Date.parse(cert.validTo) - Date.now();
    if (left <= 0) report('tls', 'fail', `${tls.certFile} expired on ${cert.validTo}`);
    else if (left < CERT_EXPIRY_WARN_MS) report('tls', 'warn', `${tls.certFile} expires on ${cert.validTo}`);
    else
      report(
        'tls',
        'ok',
        `${tls.certFile} (${cert.subject.replace(/\n/g, ', ')}), valid until ${cert.validTo}`,
      );
  } catch (err) {
    report('tls', 'fail', `cannot use ${tls.certFile} and ${tls.keyFile}: ${(err as Error).message}`);
  }
}

async function checkAuth(config: ServiceConfig, report: Report): Promise<void> {
  const { jwt, apiKeys } = config.auth;
  if (jwt === undefined && apiKeys.length === 0) {
    report('auth', 'ok', 'nothing configured: a development signing key, with tokens printed at start-up');
    return;
  }
  if (jwt?.jwksFile !== undefined) {
    try {
      const jwks = JSON.parse(await readFile(jwt.jwksFile, 'utf8')) as { keys?: unknown };
      if (!Array.isArray(jwks.keys) || jwks.keys.length === 0) throw new Error('no "keys"');
    } catch (err) {
      report('auth', 'fail', `auth.jwt.jwksFile ${jwt.jwksFile}: ${(err as Error).message}`);
      return;
    }
  }
  const parts = [
    ...(jwt === undefined
      ? []
      : [`JWT from ${jwt.jwksFile ?? jwt.jwksUrl} (iss ${jwt.issuer}, aud ${jwt.audience})`]),
    ...(apiKeys.length === 0 ? [] : [`${apiKeys.length} API key${apiKeys.length === 1 ? '' : 's'}`]),
  ];
  report('auth', 'ok', parts.join(', '));
}

/** The server writes only to the cache, and only for the development certificate and signing key. */
async function checkCache(config: ServiceConfig, env: NodeJS.ProcessEnv, report: Report): Promise<void> {
  const { tls } = config.server;
  const dirs = [
    ...(tls.enabled && (tls.certFile === undefined || tls.keyFile === undefined) ? [tls.devCertDir] : []),
    ...(config.auth.jwt === undefined && config.auth.apiKeys.length === 0
      ? [join(cacheDir(env), 'dev-auth')]
      : []),
  ];
  if (dirs.length === 0) {
    report('cache', 'ok', 'nothing to write: certificates and keys are configured');
    return;
  }
  const unwritable: string[] = [];
  for (const dir of dirs) {
    const why = await whyNotWritable(dir);
    if (why !== undefined) unwritable.push(`${dir} (${why})`);
  }
  if (unwritable.length > 0) {
    report(
      'cache',
      'fail',
      `cannot write ${unwritable.join(', ')}: point CHATMIRROR_CACHE at a writable directory (a tmpfs when the ` +
        'root filesystem is read-only), or configure server.tls.certFile/keyFile and auth',
    );
  } else {
    report('cache', 'ok', `writable: ${dirs.join(', ')}`);
  }
}

/** Why `dir` could not be created or written, judged from its nearest existing ancestor; undefined if it can. */
async function whyNotWritable(dir: string): Promise<string | undefined> {
  let existing = dir;
  for (;;) {
    const info = await stat(existing).catch(() => undefined);
    if (info !== undefined) {
      if (!info.isDirectory()) return `${existing} is not a directory`;
      break;
    }
    const parent = dirname(existing);
    if (parent === existing) return 'no existing ancestor';
    existing = parent;
  }
  try {
    await access(existing, constants.W_OK | constants.X_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'EROFS'
      ? `${existing} is on a read-only filesystem`
      : `${existing}: ${code ?? 'not writable'}`;
  }
}

// ---- capacity ----------------------------------------------------------------------------------------------------

function checkCpus(config: ServiceConfig, system: SystemResources, report: Report): void {
  const threads = config.engine.intraOpThreads;
  const where = `${system.cpus} CPU${system.cpus === 1 ? '' : 's'} (${system.cpuSource})`;
  if (threads > system.cpus) {
    report(
      'cpu',
      'warn',
      `engine.intraOpThreads is ${threads} but ${where} are available: threads will contend; ` +
        `set it to ${system.cpus} or 0 (one per core)`,
    );
  } else {
    report(
      'cpu',
      'ok',
      `${where}; onnxruntime uses ${threads === 0 ? 'one thread per core' : `${threads} threads`}`,
    );
  }
}

function checkMemory(needs: ModelNeeds, system: SystemResources, report: Report): void {
  const kv =
    `KV cache ${formatBytes(needs.kvCacheBytes)} = ${needs.batchSize} slots (engine.maxBatchSize) × ` +
    `${needs.contextLength} tokens (engine.contextLength) of ${needs.kvType}` +
    (needs.kvTypeSource === 'assumed' ? ' (assumed: the graph declares no past_key_values type)' : '');
  const summary =
    `at start ~${formatBytes(needs.startBytes)} (weights ${formatBytes(needs.weightsBytes)} × 2 + runtime ` +
    `${formatBytes(needs.runtimeBytes)} for ${formatCount(needs.parameters)} parameters); worst case ~${formatBytes(needs.worstCaseBytes)} (+ ${kv}, + prefix cache ${formatBytes(needs.prefixCacheBytes)}); ` +
    `${formatBytes(system.memoryBytes)} available (${system.memorySource})`;
  if (needs.startBytes > system.memoryBytes) {
    report(
      'memory',
      'fail',
      `${summary}: the model does not fit even idle: use a smaller (quantized) model, or give the process more memory`,
    );
  } else if (needs.worstCaseBytes > system.memoryBytes) {
    report(
      'memory',
      'fail',
      `${summary}: the worst case does not fit: lower engine.maxBatchSize or engine.contextLength, use a ` +
        'smaller (quantized) model, or give the process more memory',
    );
  } else if (needs.worstCaseBytes > MEMORY_WARN_FRACTION * system.memoryBytes) {
    report('memory', 'warn', `${summary}: little headroom in the worst case`);
  } else {
    report('memory', 'ok', summary);
  }
}

/** Whether `serve` could listen where it is configured to, now: another process on the port fails it. */
async function checkPorts(config: ServiceConfig, report: Report): Promise<void> {
  const host = config.server.host;
  const ports: { key: string; env: string; port: number }[] = [
    { key: 'server.port', env: 'CHATMIRROR_SERVER_PORT', port: config.server.port },
    ...(config.metrics.enabled && config.metrics.port !== undefined
      ? [{ key: 'metrics.port', env: 'CHATMIRROR_METRICS_PORT', port: config.metrics.port }]
      : []),
  ];
  const problems: string[] = [];
  const free: string[] = [];
  for (const { key, env, port } of ports) {
    if (port === 0) {
      free.push(`${key} 0 (a free port is picked at start)`);
      continue;
    }
    const code = await tryListen(host, port);
    if (code === undefined) free.push(`${host}:${port} (${key})`);
    else if (code === 'EADDRINUSE')
      problems.push(`${host}:${port} (${key}) is in use by another process: stop it, or set ${key} (${env})`);
    else if (code === 'EACCES')
      problems.push(`${host}:${port} (${key}) needs privileges to bind: use a port above 1023 (${env})`);
    else if (code === 'EADDRNOTAVAIL')
      problems.push(`${host} (server.host) is not an address of this machine`);
    else problems.push(`${host}:${port} (${key}) cannot be bound: ${code}`);
  }
  if (problems.length > 0) report('port', 'fail', problems.join('; '));
  else report('port', 'ok', `free: ${free.join(', ')}`);
}

/** Binds and releases host:port; the error code when that fails. */
function tryListen(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

/** CPUs and memory this process may use: the OS's figures, lowered by cgroup (v2 or v1) limits when set. */
export async function measureSystem(root = '/sys/fs/cgroup'): Promise<SystemResources> {
  const read = (file: string) =>
    readFile(join(root, file), 'utf8').then(
      (t) => t.trim(),
      () => undefined,
    );
  let cpus = availableParallelism();
  let cpuSource = 'affinity';
  const quota = await cgroupCpuQuota(read);
  if (quota !== undefined && quota < cpus) {
    cpus = Math.max(1, Math.floor(quota)); // 1.5 CPUs of quota run one thread unthrottled, not two
    cpuSource = 'cgroup quota';
  }
  let memoryBytes = totalmem();
  let memorySource = 'physical';
  const limit = Number((await read('memory.max')) ?? (await read('memory/memory.limit_in_bytes')));
  // "max" (v2) parses as NaN; v1 reports "no limit" as a huge page-rounded number.
  if (Number.isFinite(limit) && limit > 0 && limit < memoryBytes) {
    memoryBytes = limit;
    memorySource = 'cgroup limit';
  }
  return { cpus, cpuSource, memoryBytes, memorySource };
}

async function cgroupCpuQuota(
  read: (file: string) => Promise<string | undefined>,
): Promise<number | undefined> {
  const v2 = await read('cpu.max'); // "max 100000" or "150000 100000"
  if (v2 !== undefined) {
    const [quota, period] = v2.split(/\s+/).map(Number);
    return quota! > 0 && period! > 0 ? quota! / period! : undefined;
  }
  const quota = Number(await read('cpu/cpu.cfs_quota_us')); // -1 when unlimited
  const period = Number(await read('cpu/cpu.cfs_period_us'));
  return quota > 0 && period > 0 ? quota / period : undefined;
}

function formatCount(n: number): string {
  return n >= 1e9
    ? `${(n / 1e9).toFixed(1)}B`
    : n >= 1e6
      ? `${(n / 1e6).toFixed(0)}M`
      : `${(n / 1e3).toFixed(0)}k`;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

// ---- command -----------------------------------------------------------------------------------------------------

const MARK: Record<CheckStatus, string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' };

export function formatReport(report: CheckReport): string {
  const width = Math.max(...report.results.map((r) => r.name.length));
  const lines = report.results.map((r) => `  ${MARK[r.status]}  ${r.name.padEnd(width)}  ${r.detail}`);
  const warnings = report.results.filter((r) => r.status === 'warn').length;
  const failures = report.results.filter((r) => r.status === 'fail').length;
  const verdict =
    failures > 0
      ? `${failures} check${failures === 1 ? '' : 's'} failed`
      : `all checks passed${warnings > 0 ? ` (${warnings} warning${warnings === 1 ? '' : 's'})` : ''}`;
  return `${lines.join('\n')}\n${verdict}\n`;
}

/** The `check` subcommand: prints the report (or JSON with --json) and throws CheckFailedError when a check failed. */
export async function check(argv: string[], out: CommandOutput = process.stdout): Promise<void> {
  const { values } = parsedArgs(argv, { config: { type: 'string', short: 'c' }, json: { type: 'boolean' } });
  const report = await runChecks({ configFile: values.config });
  out.write(values.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  if (!report.ok) throw new CheckFailedError(report);
}
