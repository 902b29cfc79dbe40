import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_DIR } from '../infra/plan.js';
import { https, sseData } from './client.js';
import { dockerJson, labelled } from './docker-api.js';
import { Deployment } from './materialise.js';
import { E2E_PORTS, E2E_STACK, type E2eStack, e2eWorkspace, planE2eStack, type Workspace } from './stack.js';

const E2E = process.env.CHATMIRROR_E2E === '1';
const SKIPPED = E2E ? '' : ' [skipped: run `bash images/build.sh`, then set CHATMIRROR_E2E=1]';
const API = `https://127.0.0.1:${E2E_PORTS.api}`;
// Two replicas; no monitoring, which the roll does not touch (deploy.test.ts covers it). The quotas (kept in the
// stack's Redis, shared by the replicas) leave room for two clients streaming back to back.
const SERVING = {
  replicas: 2,
  quotas: { requestsPerMinute: 100_000, tokensPerMinute: 0, concurrentRequests: 8 },
};
const NO_MONITORING = {
  'chatmirror:monitoring': { enabled: false },
  'chatmirror:benchmarks': { enabled: false },
};

interface Outcome {
  ok: boolean;
  why?: string;
  at: number;
}

describe.runIf(E2E).sequential(`deploy proof: two replicas rolled under load${SKIPPED}`, () => {
  let workspace: Workspace | undefined;
  let root: string;
  let before: E2eStack;
  let deployment: Deployment;
  const log = (line: string) => process.stderr.write(`[e2e roll] ${line}\n`);

  beforeAll(async () => {
    workspace = e2eWorkspace('roll');
    root = workspace.root;
    const digests = readFileSync(join(PROJECT_DIR, 'images/digests.json'), 'utf8');
    before = await planE2eStack(root, digests, { serving: SERVING, overrides: NO_MONITORING });
    deployment = new Deployment({ netns: workspace.netns, log });
    await deployment.createAll(before.plan.resources);
  }, 600_000);

  afterAll(async () => {
    await deployment?.destroyAll().catch((err: Error) => log(err.message));
    workspace?.dispose();
  }, 300_000);

  it('a config change replaces the replicas one at a time while a client streams: zero failed requests', async () => {
    const ca = String(before.plan.outputs.caCertificate);
    const outcomes: Outcome[] = [];
    let streaming = true;
    const client = async () => {
      while (streaming) outcomes.push(await streamOnce(ca, before.clientKey));
    };
    const clients = [client(), client()];
    // Healthy replicas, sampled through the roll: never none.
    let minHealthy = Number.POSITIVE_INFINITY;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        minHealthy = Math.min(minHealthy, await healthyReplicas());
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    while (outcomes.filter((o) => o.ok).length < 4) await new Promise((r) => setTimeout(r, 200));

    const after = await planE2eStack(root, readFileSync(join(PROJECT_DIR, 'images/digests.json'), 'utf8'), {
      secrets: before.secrets,
      serving: { ...SERVING, logLevel: 'info' },
      overrides: NO_MONITORING,
    });
    const oldNames = (await replicaNames()).sort();
    const rollStarted = Date.now();
    const counts = await deployment.update(after.plan.resources);
    const rollMs = Date.now() - rollStarted;
    const newNames = (await replicaNames()).sort();
    const duringRoll = outcomes.filter((o) => o.at >= rollStarted).length;
    // A little more traffic on the new replicas, then stop.
    const target = outcomes.length + 4;
    while (outcomes.length < target) await new Promise((r) => setTimeout(r, 200));
    streaming = false;
    sampling = false;
    await Promise.all([...clients, sampler]);

    const failed = outcomes.filter((o) => !o.ok);
    log(
      `roll: ${JSON.stringify(counts)} in ${rollMs} ms; ${outcomes.length} streamed requests, ${duringRoll} of them ` +
        `started during the roll, ${failed.length} failed; fewest healthy replicas seen: ${minHealthy}`,
    );
    expect(oldNames).toHaveLength(2);
    expect(newNames).toHaveLength(2);
    expect(newNames.filter((n) => oldNames.includes(n))).toEqual([]);
    expect(counts.replaced).toBeGreaterThanOrEqual(2);
    expect(duringRoll).toBeGreaterThan(0);
    expect(failed.map((o) => o.why)).toEqual([]);
    expect(minHealthy).toBeGreaterThanOrEqual(1);
  }, 600_000);

  it('teardown leaves nothing of the stack behind', async () => {
    await deployment.destroyAll();
    expect(await labelled(`chatmirror.stack=${E2E_STACK}`)).toEqual({
      containers: [],
      networks: [],
      volumes: [],
    });
  }, 300_000);
});

/** One streamed chat completion through the balancer: ok only with a 200, content and the final [DONE]. */
async function streamOnce(ca: string, token: string): Promise<Outcome> {
  const at = Date.now();
  try {
    const reply = await https(`${API}/v1/chat/completions`, {
      ca,
      token,
      body: {
        model: 'tiny-llama',
        messages: [{ role: 'user', content: 'Tell me' }],
        max_tokens: 24,
        stream: true,
      },
      timeoutMs: 60_000,
    });
    if (reply.status !== 200) return { ok: false, why: `${reply.status} ${reply.body.slice(0, 200)}`, at };
    const events = sseData(reply.body);
    if (events.at(-1) !== '[DONE]')
      return { ok: false, why: `stream ended without [DONE]: ${reply.body.slice(-200)}`, at };
    if (reply.body.includes('event: error'))
      return { ok: false, why: `error event: ${reply.body.slice(-300)}`, at };
    return { ok: true, at };
  } catch (err) {
    return { ok: false, why: (err as Error).message, at };
  }
}

async function apiContainers(): Promise<{ Names: string[]; State: string; Status: string }[]> {
  const filters = encodeURIComponent(
    JSON.stringify({ label: [`chatmirror.stack=${E2E_STACK}`, 'chatmirror.role=api'] }),
  );
  return dockerJson('GET', `/containers/json?filters=${filters}`);
}

async function replicaNames(): Promise<string[]> {
  return (await apiContainers()).flatMap((c) => c.Names.map((n) => n.replace(/^\//, '')));
}

async function healthyReplicas(): Promise<number> {
  return (await apiContainers()).filter((c) => c.Status.includes('(healthy)')).length;
}
