/**
 * infra/index.ts as Pulumi loads it (an ES module with top-level await): under mocks, with the local stack's
 * config, it collects this machine's facts with systeminformation, builds the environment and exports the outputs.
 */
import * as pulumi from '@pulumi/pulumi';
import { afterAll, expect, it } from 'vitest';
import { DIGESTS, GRAFANA_PASSWORD, METRICS_TOKEN } from './fixtures.js';
import { installMocks, loadStackFile, resolve } from './plan.js';

const mocks = await installMocks({ stack: 'local' });
afterAll(() => mocks.restore());

it('the program entry runs the local stack and exports every promised output', async () => {
  const config: Record<string, unknown> = {
    ...loadStackFile('local'),
    // images/digests.json (from the image build) may not exist here or may hold the service image only.
    'chatmirror:images': { ...DIGESTS },
    'chatmirror:grafanaAdminPassword': GRAFANA_PASSWORD,
    'chatmirror:metricsToken': METRICS_TOKEN,
  };
  pulumi.runtime.setAllConfig(
    Object.fromEntries(
      Object.entries(config).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
    ),
    ['chatmirror:grafanaAdminPassword', 'chatmirror:metricsToken'],
  );
  const program = await import('../../infra/index.js');
  expect(program.endpoint).toBe('https://localhost:8443');
  expect(await resolve(program.caCertificate)).toContain('BEGIN CERTIFICATE');
  // Grafana is off in the local stack (no offline image of it): no output for it, and no undefined output either.
  expect(program.monitoringUrls).toEqual({ prometheus: 'http://127.0.0.1:9090' });
  expect(Object.entries(program).filter(([, value]) => value === undefined)).toEqual([]);
  // One replica: no Grafana locally, and no balancer or quota store (HAProxy, Redis).
  const { grafana: _grafana, haproxy: _haproxy, redis: _redis, ...localDigests } = DIGESTS;
  expect(program.imageDigests).toEqual(localDigests);
  expect(program.capacityReport).toMatch(/^resource +need +have[\s\S]*cpu cores/);
  expect(await resolve(program.containers)).toEqual(['chatmirror-local-0']);
  await mocks.settle();
  // The replica, Prometheus, node-exporter and Alertmanager.
  expect(mocks.resources.filter((r) => r.type === 'docker:index/container:Container')).toHaveLength(4);
}, 120_000);
