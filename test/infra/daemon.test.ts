/**
 * The program declares only what the target daemon grants (issue 9, items 2 and 3): a real `pulumi up` against
 * Debian's docker.io 20.10 (Engine API 1.41, nofile hard limit 20000 in this sandbox) failed on
 * healthcheck.startInterval and on a nofile ulimit of 65536.
 */
import { describe, expect, it } from 'vitest';
import { compareApiVersions, containerFeatures } from '../../infra/render/daemon.js';
import { stackPlanOptions } from './fixtures.js';
import { DEFAULT_FACTS, planStack } from './plan.js';

const CONTAINER = 'docker:index/container:Container';

async function containersFor(facts: Partial<typeof DEFAULT_FACTS>) {
  const plan = await planStack({
    ...(await stackPlanOptions('local')),
    facts: { ...DEFAULT_FACTS, ...facts },
  });
  return plan.resources.filter((r) => r.type === CONTAINER);
}

interface ContainerInputs {
  healthcheck?: Record<string, unknown>;
  ulimits?: { name: string; soft: number; hard: number }[];
}

describe('what the daemon grants', () => {
  it('on Engine API 1.41 with a 20000 nofile hard limit: no start interval, nofile 20000', async () => {
    const containers = await containersFor({
      dockerVersion: '20.10.24+dfsg1',
      dockerApiVersion: '1.41',
      dockerNofileHard: 20_000,
    });
    const api = containers.find((c) => c.name === 'chatmirror-local-0')!.inputs as ContainerInputs;
    expect(api.healthcheck).toBeDefined();
    expect(api.healthcheck).not.toHaveProperty('startInterval');
    expect(api.ulimits?.find((u) => u.name === 'nofile')).toEqual({
      name: 'nofile',
      soft: 20_000,
      hard: 20_000,
    });
    for (const c of containers) {
      const nofile = (c.inputs as ContainerInputs).ulimits?.find((u) => u.name === 'nofile');
      if (nofile !== undefined) expect(nofile.hard).toBeLessThanOrEqual(20_000);
    }
  });

  it('on Engine API 1.44+ with a high limit: a 2 s start interval and nofile 65536', async () => {
    const containers = await containersFor({ dockerApiVersion: '1.47', dockerNofileHard: 1_048_576 });
    const api = containers.find((c) => c.name === 'chatmirror-local-0')!.inputs as ContainerInputs;
    expect(api.healthcheck).toMatchObject({ startInterval: '2s' });
    expect(api.ulimits?.find((u) => u.name === 'nofile')?.hard).toBe(65_536);
  });

  it('asks for no nofile limit at all when the daemon did not tell its own', async () => {
    const containers = await containersFor({ dockerApiVersion: '1.41', dockerNofileHard: undefined });
    const api = containers.find((c) => c.name === 'chatmirror-local-0')!.inputs as ContainerInputs;
    expect(api.ulimits?.map((u) => u.name)).toEqual(['nproc']);
  });

  it('an unreachable or too old daemon fails the preview with what to do', async () => {
    const options = await stackPlanOptions('staging');
    await expect(
      planStack({
        ...options,
        facts: { ...DEFAULT_FACTS, dockerVersion: '19.03.15', dockerApiVersion: '1.40' },
      }),
    ).rejects.toThrow(
      /docker +Engine API ≥ 1\.41 +19\.03\.15 \(API 1\.40\) +SHORT +start or upgrade dockerd/,
    );
  });

  it('compares API versions numerically', () => {
    expect(compareApiVersions('1.41', '1.44')).toBe(-1);
    expect(compareApiVersions('1.100', '1.44')).toBe(1);
    expect(compareApiVersions('1.44', '1.44')).toBe(0);
    expect(containerFeatures({})).toEqual({
      healthStartInterval: false,
      nofile: undefined,
    });
  });

  it('gives node-exporter no host namespace and no host root: only the data dir and the textfile dir, read-only', async () => {
    const containers = await containersFor({});
    const exporter = containers.find((c) => c.name === 'chatmirror-local-node-exporter')!.inputs as {
      pidMode?: string;
      networkMode?: string;
      mounts: { source: string; target: string; readOnly: boolean }[];
      healthcheck?: { tests: string[] };
    };
    expect(exporter.pidMode).toBeUndefined();
    expect(exporter.networkMode).not.toBe('host');
    expect(exporter.mounts.map((m) => [m.target, m.readOnly])).toEqual([
      ['/host/data', true],
      ['/textfile', true],
    ]);
    expect(exporter.mounts.some((m) => m.source === '/')).toBe(false);
    expect(exporter.healthcheck?.tests).toContain('http://127.0.0.1:9100/');
  });
});
