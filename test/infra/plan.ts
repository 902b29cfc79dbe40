/**
 * The planned resources of a stack without a Pulumi engine: runs `buildEnvironment` under Pulumi's mocks (as
 * Pulumi's unit-testing guide does) and returns every resource's type, name, inputs and options (parent,
 * provider, dependencies, deleteBeforeReplace, retainOnDelete), as the SDK sends them to the engine, plus the
 * outputs. Tests assert on it, and the deploy proof (test/e2e/) creates exactly that on a real dockerd.
 * Test-only: the deployed program (infra/index.ts) never imports it.
 */

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as pulumi from '@pulumi/pulumi';
import { getMonitor } from '@pulumi/pulumi/runtime/settings.js';
import { parse as parseYaml } from 'yaml';
import { PROJECT } from '../../infra/config.js';
import { parseDigestsFile } from '../../infra/images.js';
import { buildEnvironment, type ProgramOutputs } from '../../infra/program.js';
import type { HostFacts } from '../../infra/render/capacity.js';
import { readDashboards } from '../../infra/render/grafana.js';
import { readStackConfig } from '../../infra/stack-config.js';

export interface PlannedResource {
  type: string;
  name: string;
  /** The URN the engine would give it (parent chain included). */
  urn: string;
  /** Custom (provider-managed) or a component. */
  custom: boolean;
  inputs: Record<string, unknown>;
  /** Input paths (`stdin`, `connection.privateKey`) that held secrets; their values are in `inputs` in clear. */
  secretPaths: string[];
  options: ResourceOptionsSeen;
}

/** The resource options as they reach the engine in RegisterResourceRequest (what orders create/replace/delete). */
export interface ResourceOptionsSeen {
  parent: string;
  /** `urn::id` of the provider, '' for the default. */
  provider: string;
  /** URNs of the custom resources this one waits for: dependsOn (components expanded) and input dependencies. */
  dependencies: string[];
  deleteBeforeReplace: boolean;
  retainOnDelete: boolean;
  replaceOnChanges: string[];
  ignoreChanges: string[];
}

export interface PlanOptions {
  stack: string;
  /** Stack config as in a stack file's `config:` (e.g. from loadStackFile), secrets included. */
  config: Record<string, unknown>;
  /** Keys held encrypted (e.g. `chatmirror:metricsToken`); plaintext values of secret keys are refused. */
  secretKeys?: string[];
  /** Facts the local host reports (and, as the probe's answer, a remote host). */
  facts?: HostFacts;
  /** Files on the machine running pulumi, by path suffix (`images/digests.json`, `jwks.json`). */
  files?: Record<string, string>;
  projectDir?: string;
  modelBytes?: number;
  /** Current registry digest per tag, for the drift check; default: the pinned digest (no drift). */
  registryDigests?: Record<string, string>;
  /** Computes a resource's outputs instead of the fakes (the deploy proof's real TLS material). */
  outputs?: OutputsHook;
}

/** Real outputs for a resource type, or undefined to fall back to the plausible fakes. */
export type OutputsHook = (
  type: string,
  inputs: Record<string, unknown>,
) => Promise<Record<string, unknown> | undefined>;

export interface Plan {
  resources: PlannedResource[];
  outputs: Record<string, unknown>;
  /** Warnings the program logged (undersized host with allowUndersized, drift). */
  warnings: string[];
}

export const PROJECT_DIR = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');

/** A stack file's `config:` mapping. */
export function loadStackFile(stack: string, projectDir = PROJECT_DIR): Record<string, unknown> {
  const doc = parseYaml(readFileSync(`${projectDir}/stacks/Pulumi.${stack}.yaml`, 'utf8')) as {
    config?: Record<string, unknown>;
  };
  return doc.config ?? {};
}

export const DEFAULT_FACTS: HostFacts = {
  cpuCores: 8,
  memoryBytes: 32 * 1024 ** 3,
  diskFreeBytes: 200e9,
  diskPath: '/var/lib/docker',
  dockerVersion: '27.3.1',
  dockerApiVersion: '1.47',
  gpus: [],
  held: { images: [], volumesBytes: 0, dataDirBytes: 0 },
};

export interface MockOptions {
  stack: string;
  /** What the facts probe (command:local:run) answers. */
  facts?: HostFacts;
  /** tag → current registry digest; default: `pinned` for that repository, else zeros. */
  registryDigests?: Record<string, string>;
  pinned?: Record<string, string>;
  outputs?: OutputsHook;
}

export interface MockRecorder {
  resources: PlannedResource[];
  /** Invokes (function calls) the program made, with their inputs. */
  calls: { token: string; inputs: Record<string, unknown> }[];
  warnings: string[];
  /** Waits until every registration so far has reached the mocks. */
  settle(): Promise<void>;
  /** Puts pulumi.log.warn back. */
  restore(): void;
}

/**
 * Installs Pulumi's mocks: every resource registration is recorded with its inputs (secrets unwrapped, their
 * paths listed), computed outputs get plausible fakes, and warnings are captured instead of printed.
 */
export async function installMocks(o: MockOptions): Promise<MockRecorder> {
  const resources: PlannedResource[] = [];
  const calls: MockRecorder['calls'] = [];
  const warnings: string[] = [];
  const facts = o.facts ?? DEFAULT_FACTS;
  // The mocks' newResource sees type, name and inputs only; the options travel in the request beside them.
  const pending: ResourceOptionsSeen[] = [];
  await pulumi.runtime.setMocks(
    {
      newResource: async (args) => {
        const secretPaths: string[] = [];
        const inputs = unwrapSecrets(args.inputs, '', secretPaths) as Record<string, unknown>;
        const options = pending.shift();
        if (options === undefined) throw new Error(`no options recorded for ${args.type} ${args.name}`);
        resources.push({
          type: args.type,
          name: args.name,
          urn: urnOf(options.parent, args.type, args.name, o.stack),
          custom: args.custom ?? false,
          inputs,
          secretPaths,
          options,
        });
        return {
          id: `${args.name}-id`,
          state: {
            ...args.inputs,
            ...((await o.outputs?.(args.type, inputs)) ?? computedOutputs(args.type, args.name, inputs)),
          },
        };
      },
      call: (args) => {
        calls.push({ token: args.token, inputs: args.inputs as Record<string, unknown> });
        if (args.token === 'docker:index/getRegistryImage:getRegistryImage') {
          const name = String(args.inputs.name);
          const repo = name.replace(/:[^:/]+$/, '');
          const pinned = Object.values(o.pinned ?? {}).find((ref) => ref.startsWith(`${repo}@`));
          return {
            ...args.inputs,
            sha256Digest: o.registryDigests?.[name] ?? pinned?.split('@')[1] ?? `sha256:${'0'.repeat(64)}`,
          };
        }
        if (args.token === 'command:local:run')
          return {
            ...args.inputs,
            stdout: `${JSON.stringify({ ...facts, gpus: facts.gpus.join('|') })}\n`,
            stderr: '',
          };
        return args.inputs;
      },
    },
    PROJECT,
    o.stack,
    false,
  );
  recordOptions(pending);
  const log = pulumi.log as { warn: (message: string) => Promise<void> };
  const originalWarn = log.warn;
  log.warn = (message: string) => {
    warnings.push(message);
    return Promise.resolve();
  };
  return {
    resources,
    calls,
    warnings,
    settle: async () => {
      await (pulumi.runtime as unknown as { waitForRPCs?: () => Promise<void> }).waitForRPCs?.();
    },
    restore: () => {
      log.warn = originalWarn;
    },
  };
}

export async function planStack(o: PlanOptions): Promise<Plan> {
  const files = o.files ?? {};
  const digestsFile = Object.entries(files).find(([path]) => path.endsWith('digests.json'))?.[1];
  const recorder = await installMocks({
    stack: o.stack,
    ...(o.facts === undefined ? {} : { facts: o.facts }),
    ...(o.registryDigests === undefined ? {} : { registryDigests: o.registryDigests }),
    ...(o.outputs === undefined ? {} : { outputs: o.outputs }),
    pinned: {
      ...(digestsFile === undefined ? {} : parseDigestsFile(digestsFile, 'digests.json')),
      ...((o.config[`${PROJECT}:images`] ?? {}) as Record<string, string>),
    },
  });
  pulumi.runtime.setAllConfig(
    Object.fromEntries(
      Object.entries(o.config).map(([key, value]) => [
        key,
        typeof value === 'string' ? value : JSON.stringify(value),
      ]),
    ),
    o.secretKeys ?? [],
  );
  try {
    const config = readStackConfig();
    const outputs = buildEnvironment({
      stack: o.stack,
      config,
      projectDir: o.projectDir ?? PROJECT_DIR,
      readLocalFile: (path) => Object.entries(files).find(([suffix]) => path.endsWith(suffix))?.[1],
      facts: o.facts ?? DEFAULT_FACTS,
      modelBytes: o.modelBytes ?? 1_700_000,
      dashboards: readDashboards(),
    });
    const resolved = await resolveOutputs(outputs);
    await recorder.settle();
    return { resources: recorder.resources, outputs: resolved, warnings: recorder.warnings };
  } finally {
    recorder.restore();
  }
}

/**
 * Wraps the mock monitor's registerResource so each request's options are queued for newResource, which the
 * monitor calls next for that very request (registerResource awaits nothing before it).
 */
function recordOptions(pending: ResourceOptionsSeen[]): void {
  const monitor = getMonitor() as unknown as {
    registerResource: (req: RegisterRequest, callback: unknown) => Promise<void>;
  };
  const original = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, callback) => {
    pending.push({
      parent: req.getParent(),
      provider: req.getProvider(),
      dependencies: [
        ...new Set([
          ...req.getDependenciesList(),
          ...[...req.getPropertydependenciesMap().values()].flatMap((deps) => deps.getUrnsList()),
        ]),
      ],
      deleteBeforeReplace: req.getDeletebeforereplace(),
      retainOnDelete: req.getRetainondelete() ?? false,
      replaceOnChanges: req.getReplaceonchangesList(),
      ignoreChanges: req.getIgnorechangesList(),
    });
    return original(req, callback);
  };
}

interface RegisterRequest {
  getParent(): string;
  getProvider(): string;
  getDependenciesList(): string[];
  getPropertydependenciesMap(): Map<string, { getUrnsList(): string[] }>;
  getDeletebeforereplace(): boolean;
  getRetainondelete(): boolean | undefined;
  getReplaceonchangesList(): string[];
  getIgnorechangesList(): string[];
}

/** The mock monitor's URN scheme (runtime/mocks.js newUrn): the parent's type chain, then this type and name. */
function urnOf(parent: string, type: string, name: string, stack: string): string {
  let qualified = type;
  if (parent !== '') qualified = `${(parent.split('::')[2] ?? '').split('$').pop()}$${type}`;
  return `urn:pulumi:${stack}::${PROJECT}::${qualified}::${name}`;
}

/** Pulumi hands secret inputs to mocks as `{<sig>: <secret sig>, value}`; record the value and where it was. */
function unwrapSecrets(value: unknown, path: string, secretPaths: string[]): unknown {
  if (Array.isArray(value)) return value.map((item, i) => unwrapSecrets(item, `${path}[${i}]`, secretPaths));
  if (typeof value !== 'object' || value === null) return value;
  const record = value as Record<string, unknown>;
  if (record[SECRET_SIG_KEY] === SECRET_SIG) {
    secretPaths.push(path.replace(/^\./, ''));
    return unwrapSecrets(record.value, path, []);
  }
  return Object.fromEntries(
    Object.entries(record).map(([k, v]) => [k, unwrapSecrets(v, `${path}.${k}`, secretPaths)]),
  );
}

// Pulumi's wire encoding of a secret value (sdk/nodejs/runtime/rpc.ts: specialSigKey / specialSecretSig).
const SECRET_SIG_KEY = '4dabf18193072939515e22adb298388d';
const SECRET_SIG = '1b47061264138c4ac30d75fd1eb44270';

async function resolveOutputs(outputs: ProgramOutputs): Promise<Record<string, unknown>> {
  const entries = await Promise.all(
    Object.entries(outputs).map(async ([key, value]) => [key, await resolve(value)] as const),
  );
  return Object.fromEntries(entries);
}

/** Waits for an Output's value (the mocks resolve every output); plain values pass through. */
export function resolve<T>(value: pulumi.Input<T> | undefined): Promise<T | undefined> {
  if (pulumi.Output.isInstance(value))
    return new Promise((done) => (value as pulumi.Output<T>).apply((v) => done(v)));
  return Promise.resolve(value as T | undefined);
}

const MOCK_NOT_AFTER_HOURS = 24;

/** Computed outputs the real providers would return, as plausible fakes. */
function computedOutputs(
  type: string,
  name: string,
  inputs: Record<string, unknown>,
): Record<string, unknown> {
  const fake = (label: string) => `-----BEGIN ${label}-----\nmock-${name}\n-----END ${label}-----\n`;
  const hours = Number(inputs.validityPeriodHours ?? MOCK_NOT_AFTER_HOURS);
  const notAfter = new Date(Date.UTC(2030, 0, 1) + hours * 3_600_000).toISOString();
  switch (type) {
    case 'docker:index/remoteImage:RemoteImage':
      return {
        imageId: `sha256:${createHash('sha256').update(String(inputs.name)).digest('hex')}`,
        repoDigest: inputs.name,
      };
    case 'tls:index/privateKey:PrivateKey':
      return { privateKeyPem: fake('PRIVATE KEY'), publicKeyPem: fake('PUBLIC KEY') };
    case 'tls:index/selfSignedCert:SelfSignedCert':
    case 'tls:index/locallySignedCert:LocallySignedCert':
      return { certPem: fake('CERTIFICATE'), validityEndTime: notAfter };
    case 'tls:index/certRequest:CertRequest':
      return { certRequestPem: fake('CERTIFICATE REQUEST') };
    case 'command:local:Command':
    case 'command:remote:Command':
      return { stdout: name.endsWith('-sha256') ? 'verified' : '', stderr: '' };
    default:
      return {};
  }
}

/** The one custom resource of that name (components share names with their children). */
export function find(plan: Plan, name: string): PlannedResource {
  const found = plan.resources.find((r) => r.name === name && !r.type.startsWith('chatmirror:'));
  if (found === undefined) throw new Error(`no resource ${name}`);
  return found;
}

/** The files a host command writes, by name: its stdin's `MODE NAME BASE64` lines (render/shell.ts filesToStdin). */
export function decodeStdin(resource: PlannedResource): Record<string, string> {
  return Object.fromEntries(
    String(resource.inputs.stdin)
      .trim()
      .split('\n')
      .map((line) => {
        const [, name = '', b64 = ''] = line.split(' ');
        return [name, Buffer.from(b64, 'base64').toString('utf8')];
      }),
  );
}
