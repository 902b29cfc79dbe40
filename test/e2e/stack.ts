/**
 * The stack the deploy proof materialises: the shipped `local` stack file, with only what a second deployment on
 * a shared machine must change (its own data directory, a copy of the model it can tamper with, host ports that
 * do not collide with a developer's running local stack, a 5 s scrape so the proof does not wait long), the
 * firewall switched on so its command runs, and the secrets an operator would set. Planned under mocks with the
 * real host facts and real TLS material.
 */

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collectLocalFacts } from '../../infra/host-capacity.js';
import { generateApiKey } from '../../service/security/auth/keys.js';
import { loadStackFile, type Plan, PROJECT_DIR, planStack } from '../infra/plan.js';
import { tlsOutputs } from './tls-outputs.js';

export const E2E_STACK = 'e2e';
export const E2E_PORTS = { api: 18443, prometheus: 19090 };

/** A proof's scratch space: a directory for the stack's data and model, and the network namespace for commands. */
export interface Workspace {
  root: string;
  netns: string;
  dispose(): void;
}

export function e2eWorkspace(name: string): Workspace {
  const root = mkdtempSync(join(tmpdir(), `chatmirror-${name}-`));
  chmodSync(root, 0o755); // the containers' users traverse it to their bind mounts
  const netns = `chatmirror-${name}-${process.pid}`;
  execFileSync('ip', ['netns', 'add', netns]);
  return {
    root,
    netns,
    dispose: () => {
      try {
        execFileSync('ip', ['netns', 'del', netns], { stdio: 'ignore' });
      } catch {}
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** What an operator sets once per stack (`pulumi config set --secret`), kept across captures of one deployment. */
export interface E2eSecrets {
  client: { key: string; hash: string };
  metrics: { key: string; hash: string };
  bench: { key: string; hash: string };
  quotaStorePassword: string;
}

export function e2eSecrets(): E2eSecrets {
  return {
    client: generateApiKey('e2e-client'),
    metrics: generateApiKey('prometheus'),
    bench: generateApiKey('bench'),
    quotaStorePassword: randomBytes(24).toString('hex'),
  };
}

export interface E2eStack {
  plan: Plan;
  /** A client key with the chat scopes, accepted by the deployed service. */
  clientKey: string;
  modelDir: string;
  dataDir: string;
  secrets: E2eSecrets;
}

export async function planE2eStack(
  root: string,
  digestsFile: string,
  options: {
    secrets?: E2eSecrets;
    serving?: Record<string, unknown>;
    overrides?: Record<string, unknown>;
  } = {},
): Promise<E2eStack> {
  const local = loadStackFile('local');
  const dataDir = join(root, 'data');
  const modelDir = join(root, 'models', 'tiny-llama');
  cpSync(join(PROJECT_DIR, 'test/fixtures/models/tiny-llama'), modelDir, { recursive: true });
  const secrets = options.secrets ?? e2eSecrets();
  const { client, metrics } = secrets;
  const section = (key: string) => (local[`chatmirror:${key}`] ?? {}) as Record<string, unknown>;
  const config: Record<string, unknown> = {
    ...local,
    'chatmirror:target': { ...section('target'), dataDir },
    'chatmirror:model': { ...section('model'), hostPath: modelDir },
    'chatmirror:serving': { ...section('serving'), port: E2E_PORTS.api, ...options.serving },
    'chatmirror:monitoring': {
      ...section('monitoring'),
      prometheusPort: E2E_PORTS.prometheus,
      scrapeIntervalSeconds: 5,
    },
    'chatmirror:firewall': { enabled: true, apiCidrs: ['127.0.0.0/8'], adminCidrs: ['127.0.0.0/8'] },
    'chatmirror:metricsToken': metrics.key,
    'chatmirror:apiKeys': [
      { id: 'e2e-client', hash: client.hash, scopes: ['chat', 'completions', 'models:read'] },
    ],
    'chatmirror:quotaStorePassword': secrets.quotaStorePassword,
    // A short scenario: the proof triggers one run itself (see deploy.test.ts).
    'chatmirror:benchmarks': { enabled: true, concurrency: [1, 2], requests: 4, maxTokens: 8 },
    'chatmirror:benchToken': secrets.bench.key,
    ...options.overrides,
  };
  const plan = await planStack({
    stack: E2E_STACK,
    config,
    secretKeys: [
      'chatmirror:metricsToken',
      'chatmirror:apiKeys',
      'chatmirror:quotaStorePassword',
      'chatmirror:benchToken',
    ],
    facts: await collectLocalFacts('/var/lib/docker'),
    files: { 'images/digests.json': digestsFile },
    outputs: tlsOutputs,
  });
  return { plan, clientKey: client.key, modelDir, dataDir, secrets };
}
