/**
 * The stack the deploy proof materialises: the shipped `local` stack file, with only what a second deployment on
 * a shared machine must change (its own data directory, a copy of the model it can tamper with, host ports that
 * do not collide with a developer's running local stack, a 5 s scrape so the proof does not wait long), the
 * firewall switched on so its command runs, and the secrets an operator would set. Planned under mocks with the
 * real host facts and real TLS material.
 */
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { collectLocalFacts } from '../../infra/host-capacity.js';
import { generateApiKey } from '../../service/security/auth/keys.js';
import { loadStackFile, type Plan, PROJECT_DIR, planStack } from '../infra/plan.js';
import { tlsOutputs } from './tls-outputs.js';

export const E2E_STACK = 'e2e';
export const E2E_PORTS = { api: 18443, prometheus: 19090 };

export interface E2eStack {
  plan: Plan;
  /** A client key with the chat scopes, accepted by the deployed service. */
  clientKey: string;
  modelDir: string;
  dataDir: string;
}

export async function planE2eStack(
  root: string,
  digestsFile: string,
  overrides: Record<string, unknown> = {},
): Promise<E2eStack> {
  const local = loadStackFile('local');
  const dataDir = join(root, 'data');
  const modelDir = join(root, 'models', 'tiny-llama');
  cpSync(join(PROJECT_DIR, 'test/fixtures/models/tiny-llama'), modelDir, { recursive: true });
  const client = generateApiKey('e2e-client');
  const metrics = generateApiKey('prometheus');
  const section = (key: string) => (local[`chatmirror:${key}`] ?? {}) as Record<string, unknown>;
  const config: Record<string, unknown> = {
    ...local,
    'chatmirror:target': { ...section('target'), dataDir },
    'chatmirror:model': { ...section('model'), hostPath: modelDir },
    'chatmirror:serving': { ...section('serving'), port: E2E_PORTS.api },
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
    ...overrides,
  };
  const plan = await planStack({
    stack: E2E_STACK,
    config,
    secretKeys: ['chatmirror:metricsToken', 'chatmirror:apiKeys'],
    facts: await collectLocalFacts('/var/lib/docker'),
    files: { 'images/digests.json': digestsFile },
    outputs: tlsOutputs,
  });
  return { plan, clientKey: client.key, modelDir, dataDir };
}
