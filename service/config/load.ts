/**
 * Builds the service config from, in rising precedence: schema defaults, an optional YAML/JSON file, and
 * `CHATMIRROR_<SECTION>_<KEY>` environment variables. The env var names, their coercion and the messages for bad
 * values are all derived from `ServiceConfigSchema`, so nothing here lists settings by hand.
 */
import { readFileSync } from 'node:fs';
import { basename, dirname, extname, resolve } from 'node:path';
import { Kind, type TSchema } from '@sinclair/typebox';
import { Value, type ValueError, ValueErrorType } from '@sinclair/typebox/value';
import { parse as parseYaml } from 'yaml';
import { cidrProblem, describeAllowed } from './describe.js';
import { defaultDevCertDir } from './paths.js';
import { PATH_ANNOTATION, type ServiceConfig, ServiceConfigSchema } from './schema.js';

const ENV_PREFIX = 'CHATMIRROR_';
/** Names the config file when `loadConfig` is not given one. */
export const CONFIG_FILE_ENV = 'CHATMIRROR_CONFIG';

export interface ConfigIssue {
  /** Dotted key path, e.g. `server.port`; empty for problems with the file as a whole. */
  path: string;
  value: unknown;
  /** What is wrong or what is allowed, e.g. `must be an integer between 0 and 65535`. */
  problem: string;
  /** `env CHATMIRROR_SERVER_PORT`, `file /etc/chatmirror.yaml` or `default`. */
  source: string;
}

export class ConfigError extends Error {
  constructor(readonly issues: ConfigIssue[]) {
    const lines = issues.map(formatIssue);
    super(
      lines.length === 1
        ? `invalid configuration: ${lines[0]}`
        : `invalid configuration:\n  - ${lines.join('\n  - ')}`,
    );
    this.name = 'ConfigError';
  }
}

export interface LoadConfigOptions {
  /** YAML (or JSON, by `.json` extension) config file; defaults to `$CHATMIRROR_CONFIG`, else none. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Base for relative paths given in env vars; defaults to `process.cwd()`. */
  cwd?: string;
}

export interface EnvSetting {
  name: string;
  /** Key path inside the config, e.g. `['server', 'tls', 'enabled']`. */
  path: string[];
  schema: TSchema;
}

type Tree = Record<string, unknown>;

export function loadConfig(options: LoadConfigOptions = {}): ServiceConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const fileArg = options.file ?? (env[CONFIG_FILE_ENV] || undefined);
  const file =
    fileArg === undefined
      ? undefined
      : {
          path: resolve(cwd, fileArg),
          source:
            options.file === undefined ? `file ${fileArg} (from ${CONFIG_FILE_ENV})` : `file ${fileArg}`,
        };

  const fromFile = file === undefined ? {} : readConfigFile(file.path, file.source);
  if (file !== undefined) resolvePaths(ServiceConfigSchema, fromFile, dirname(file.path));

  const envSources = new Map<string, string>();
  const issues: ConfigIssue[] = [];
  const merged = structuredClone(fromFile);
  applyEnv(merged, env, cwd, envSources, issues);

  const sourceOf = (path: string[]): string => {
    for (let i = path.length; i > 0; i--) {
      const source = envSources.get(path.slice(0, i).join('.'));
      if (source !== undefined) return source;
    }
    return file !== undefined && hasPath(fromFile, path) ? file.source : 'default';
  };

  const givenRecords = envSettings()
    .filter((setting) => setting.schema[Kind] === 'Record' && hasPath(merged, setting.path))
    .map((setting) => ({ path: setting.path, value: getPath(merged, setting.path) }));
  const config = Value.Default(ServiceConfigSchema, merged) as Tree;
  // TypeBox merges a default object into a given one; for a record (models.aliases) that would make the default
  // entries impossible to remove, so a given record replaces the default whole.
  for (const { path, value } of givenRecords) setPath(config, path, value);
  fillDerivedDefaults(config, env);

  issues.push(...schemaIssues(config, sourceOf));
  if (issues.length === 0) issues.push(...crossFieldIssues(config as ServiceConfig, sourceOf));
  if (issues.length === 0) issues.push(...readSecretFiles(config as ServiceConfig, sourceOf));
  if (issues.length > 0) throw new ConfigError(issues);
  return config as ServiceConfig;
}

/** `['server', 'bodyLimitBytes']` → `CHATMIRROR_SERVER_BODY_LIMIT_BYTES`; snake_case keys keep their words. */
export function envVarName(path: readonly string[]): string {
  return ENV_PREFIX + path.map((key) => key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

let envTable: EnvSetting[] | undefined;

/**
 * Every env var the config reads: one per scalar setting, found by walking the schema's objects. A record
 * (`models.aliases`) has free-form keys that an env var name cannot spell unambiguously, so it is one variable
 * holding JSON.
 */
export function envSettings(): EnvSetting[] {
  if (envTable !== undefined) return envTable;
  const table: EnvSetting[] = [];
  const walk = (schema: TSchema, path: string[]) => {
    if (schema[Kind] === 'Object') {
      for (const [key, child] of Object.entries(schema.properties as Record<string, TSchema>)) {
        walk(child, [...path, key]);
      }
    } else {
      table.push({ name: envVarName(path), path, schema });
    }
  };
  walk(ServiceConfigSchema, []);
  const seen = new Map<string, string>();
  for (const { name, path } of table) {
    const other = seen.get(name);
    // Two keys differing only in case or underscores would silently share a variable.
    if (other !== undefined)
      throw new Error(`config keys ${other} and ${path.join('.')} both map to ${name}`);
    seen.set(name, path.join('.'));
  }
  envTable = table;
  return table;
}

// ---- sources -------------------------------------------------------------------------------------------------

function readConfigFile(path: string, source: string): Tree {
  const fail = (problem: string): never => {
    throw new ConfigError([{ path: '', value: undefined, problem, source }]);
  };
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    fail(`cannot read the config file: ${(err as Error).message}`);
  }
  let data: unknown;
  try {
    data = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    fail(`cannot parse the config file: ${(err as Error).message}`);
  }
  // An empty YAML file parses to null: treat it as "no settings".
  if (data === null || data === undefined) return {};
  if (!isTree(data))
    return fail(`the config file must hold a mapping of sections, got ${describeValue(data)}`);
  return data;
}

/** Makes relative path settings from the file relative to the file, not to wherever the process started. */
function resolvePaths(schema: TSchema, data: unknown, base: string): void {
  if (!isTree(data) || schema[Kind] !== 'Object') return;
  for (const [key, child] of Object.entries(schema.properties as Record<string, TSchema>)) {
    const value = data[key];
    if (child[PATH_ANNOTATION] === true && typeof value === 'string' && value !== '')
      data[key] = resolve(base, value);
    else resolvePaths(child, value, base);
  }
}

function applyEnv(
  target: Tree,
  env: NodeJS.ProcessEnv,
  cwd: string,
  sources: Map<string, string>,
  issues: ConfigIssue[],
): void {
  const settings = envSettings();
  const known = new Set(settings.map((s) => s.name));
  for (const { name, path, schema } of settings) {
    const raw = env[name];
    // Empty counts as unset: `KEY=` in a compose file or unit usually means "no override", not "empty string".
    if (raw === undefined || raw === '') continue;
    const source = `env ${name}`;
    let value: unknown;
    try {
      value = coerce(raw, schema, cwd);
    } catch (err) {
      issues.push({ path: path.join('.'), value: raw, problem: (err as Error).message, source });
      continue;
    }
    if (setPath(target, path, value)) sources.set(path.join('.'), source);
  }
  // Variables under a section prefix belong to the config, so a typo there is an error rather than a no-op.
  const sectionPrefixes = Object.keys(ServiceConfigSchema.properties).map((key) => `${envVarName([key])}_`);
  for (const name of Object.keys(env)) {
    if (known.has(name) || !sectionPrefixes.some((prefix) => name.startsWith(prefix))) continue;
    const stem = (envName: string) => envName.slice(ENV_PREFIX.length);
    const near = nearest(stem(name), [...known].map(stem));
    issues.push({
      path: '',
      value: undefined,
      problem:
        `${name}=${describeValue(env[name])} is not a config setting` +
        (near === undefined ? '' : `; did you mean ${ENV_PREFIX}${near}?`),
      source: 'environment',
    });
  }
}

/** Env vars are strings; turn one into what the schema expects, leaving it as is when it cannot be. */
function coerce(raw: string, schema: TSchema, cwd: string): unknown {
  const text = raw.trim();
  switch (schema[Kind]) {
    case 'Integer':
    case 'Number':
      return /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(text) ? Number(text) : raw;
    case 'Boolean': {
      const lower = text.toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(lower)) return true;
      if (['false', '0', 'no', 'off'].includes(lower)) return false;
      return raw;
    }
    case 'Record':
    case 'Array':
      try {
        return JSON.parse(text);
      } catch (err) {
        const shape = schema[Kind] === 'Array' ? 'a JSON array' : 'a JSON object';
        throw new Error(`must be ${shape} (${(err as Error).message})`);
      }
    default:
      return schema[PATH_ANNOTATION] === true ? resolve(cwd, raw) : raw;
  }
}

function fillDerivedDefaults(config: Tree, env: NodeJS.ProcessEnv): void {
  const tls = (config.server as Tree | undefined)?.tls;
  if (isTree(tls) && tls.devCertDir === undefined) tls.devCertDir = defaultDevCertDir(env);
  const models = config.models;
  const modelDir = (config.engine as Tree | undefined)?.modelDir;
  if (isTree(models) && models.id === undefined && typeof modelDir === 'string') {
    // A model id travels in JSON and URLs; whitespace in a directory name would make a confusing one.
    models.id = basename(resolve(modelDir)).replace(/\s+/g, '-');
  }
}

// ---- validation ----------------------------------------------------------------------------------------------

function schemaIssues(config: Tree, sourceOf: (path: string[]) => string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const reported = new Set<string>();
  for (const error of Value.Errors(ServiceConfigSchema, config)) {
    const path = pointerToPath(error.path);
    const key = path.join('.');
    // TypeBox may report several failed keywords for one value; the first says enough.
    if (reported.has(key)) continue;
    reported.add(key);
    issues.push({
      path: key,
      value: error.value,
      problem: describeError(error, path),
      source: sourceOf(path),
    });
  }
  return issues;
}

function crossFieldIssues(config: ServiceConfig, sourceOf: (path: string[]) => string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const add = (path: string[], value: unknown, problem: string) =>
    issues.push({ path: path.join('.'), value, problem, source: sourceOf(path) });
  const { server, engine, limits, models, auth, quotas, network, filters } = config;

  if (auth.jwt !== undefined && (auth.jwt.jwksFile === undefined) === (auth.jwt.jwksUrl === undefined)) {
    add(['auth', 'jwt'], '…', 'needs exactly one of auth.jwt.jwksFile and auth.jwt.jwksUrl');
  }
  const keyIds = new Set<string>();
  auth.apiKeys.forEach((key, i) => {
    if (keyIds.has(key.id)) add(['auth', 'apiKeys', String(i), 'id'], key.id, 'is used by another key');
    keyIds.add(key.id);
  });
  if (quotas.store === 'redis' && quotas.redisUrl === undefined) {
    add(['quotas', 'redisUrl'], undefined, 'is required when quotas.store is redis');
  }
  if (quotas.redisUrl !== undefined && quotas.redisPasswordFile !== undefined) {
    const inUrl = urlPassword(quotas.redisUrl);
    if (inUrl !== '')
      add(
        ['quotas', 'redisUrl'],
        quotas.redisUrl.replace(`:${inUrl}@`, ':***@'),
        'must not carry a password when quotas.redisPasswordFile is set (the file holds it)',
      );
  }
  for (const list of ['allowlist', 'trustedProxies'] as const) {
    network[list].forEach((cidr, i) => {
      const problem = cidrProblem(cidr);
      if (problem) add(['network', list, String(i)], cidr, problem);
    });
  }
  for (const side of ['prompt', 'output'] as const) {
    filters[side].patterns.forEach((pattern, i) => {
      try {
        new RegExp(pattern, 'iu');
      } catch (err) {
        add(
          ['filters', side, 'patterns', String(i)],
          pattern,
          `is not a valid regular expression: ${(err as Error).message}`,
        );
      }
    });
  }

  if ((server.tls.certFile === undefined) !== (server.tls.keyFile === undefined)) {
    const [given, missing] =
      server.tls.certFile === undefined ? ['keyFile', 'certFile'] : ['certFile', 'keyFile'];
    add(['server', 'tls', given], server.tls[given as 'certFile'], `needs server.tls.${missing} as well`);
  }
  // Node refuses to create the server otherwise (ERR_OUT_OF_RANGE); say it here, in config terms.
  if (server.requestTimeoutMs > 0 && server.headersTimeoutMs > server.requestTimeoutMs) {
    add(
      ['server', 'headersTimeoutMs'],
      server.headersTimeoutMs,
      `must not exceed server.requestTimeoutMs (${server.requestTimeoutMs})`,
    );
  }
  if (
    limits.maxPromptTokens !== undefined &&
    engine.contextLength !== undefined &&
    limits.maxPromptTokens >= engine.contextLength
  ) {
    add(
      ['limits', 'maxPromptTokens'],
      limits.maxPromptTokens,
      `must be below engine.contextLength (${engine.contextLength}) to leave room for the completion`,
    );
  }
  const presets: [string[], { max_tokens?: number }][] = [
    [['models', 'defaults'], models.defaults],
    ...Object.entries(models.aliases).map(([name, preset]): [string[], { max_tokens?: number }] => [
      ['models', 'aliases', name],
      preset,
    ]),
  ];
  for (const [path, preset] of presets) {
    if (preset.max_tokens !== undefined && preset.max_tokens > limits.maxTokensCap) {
      add(
        [...path, 'max_tokens'],
        preset.max_tokens,
        `must not exceed limits.maxTokensCap (${limits.maxTokensCap})`,
      );
    }
  }
  if (Object.hasOwn(models.aliases, models.id)) {
    add(['models', 'aliases', models.id], models.id, `alias name is the served model id (models.id)`);
  }
  return issues;
}

/** The password part of a redis:// URL's userinfo, as written (still percent-encoded); '' when none. */
function urlPassword(url: string): string {
  try {
    return new URL(url).password;
  } catch {
    return '';
  }
}

/**
 * Reads the secrets that settings name by file, after everything else is valid: `quotas.redisPassword` from
 * quotas.redisPasswordFile (its first line). An unreadable or empty file is an issue at the setting's key.
 */
function readSecretFiles(config: ServiceConfig, sourceOf: (path: string[]) => string): ConfigIssue[] {
  const { redisPasswordFile } = config.quotas;
  if (redisPasswordFile === undefined) return [];
  const path = ['quotas', 'redisPasswordFile'];
  const issue = (problem: string): ConfigIssue[] => [
    { path: path.join('.'), value: redisPasswordFile, problem, source: sourceOf(path) },
  ];
  let text: string;
  try {
    text = readFileSync(redisPasswordFile, 'utf8');
  } catch (err) {
    return issue(`cannot read the password file: ${(err as Error).message}`);
  }
  const password = (text.split('\n')[0] ?? '').replace(/\r$/, '');
  if (password === '') return issue('the password file is empty: its first line must hold the password');
  config.quotas.redisPassword = password;
  return [];
}

function describeError(error: ValueError, path: string[]): string {
  const { schema } = error;
  if (error.type === ValueErrorType.ObjectAdditionalProperties) {
    const key = path[path.length - 1] ?? '';
    if (schema[Kind] === 'Record') {
      const pattern = Object.keys(schema.patternProperties as object)[0];
      return `invalid name "${key}": names must match /${pattern}/`;
    }
    const keys = Object.keys(schema.properties as object);
    const near = nearest(key, keys);
    return `unknown key${near === undefined ? '' : ` (did you mean "${near}"?)`}; allowed: ${keys.join(', ')}`;
  }
  if (error.type === ValueErrorType.ObjectRequiredProperty) return `is required: ${describeAllowed(schema)}`;
  return describeAllowed(schema);
}

export { cidrProblem, describeAllowed };

// ---- helpers ---------------------------------------------------------------------------------------------------

function formatIssue({ path, value, problem, source }: ConfigIssue): string {
  const got = value === undefined ? '' : `, got ${describeValue(value)}`;
  return `${path === '' ? '' : `${path}: `}${problem}${got} (${source})`;
}

function describeValue(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function isTree(value: unknown): value is Tree {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hasPath(tree: Tree, path: string[]): boolean {
  let node: unknown = tree;
  for (const key of path) {
    if (!isTree(node) || !Object.hasOwn(node, key)) return false;
    node = node[key];
  }
  return true;
}

function getPath(tree: Tree, path: string[]): unknown {
  let node: unknown = tree;
  for (const key of path) node = isTree(node) ? node[key] : undefined;
  return node;
}

/** Sets a nested value, creating sections; returns false when the file has a non-mapping in the way. */
function setPath(tree: Tree, path: string[], value: unknown): boolean {
  let node = tree;
  for (const key of path.slice(0, -1)) {
    if (node[key] === undefined) node[key] = {};
    const next = node[key];
    // Leave the file's bad value in place so validation reports it at its own path.
    if (!isTree(next)) return false;
    node = next;
  }
  node[path[path.length - 1]!] = value;
  return true;
}

/** `/server/tls/enabled` → `['server', 'tls', 'enabled']`, undoing JSON Pointer escapes. */
function pointerToPath(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((key) => key.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** The closest candidate by edit distance, ignoring case and `_`, if close enough to be a likely typo. */
function nearest(word: string, candidates: string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/_/g, '');
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(norm(word).length / 3)) + 1;
  for (const candidate of candidates) {
    const [a, b] = [norm(word), norm(candidate)];
    // A shortened name (`bodyLimit` for `bodyLimitBytes`) is as likely a slip as a typo.
    const distance = a.length >= 4 && (b.startsWith(a) || a.startsWith(b)) ? 1 : editDistance(a, b);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length]!;
}
