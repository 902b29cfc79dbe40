/**
 * The local stack previews offline with what images/build.sh makes (issue 9, item 1): the service and the
 * Debian-packaged monitoring images, and no Grafana, which has no Debian package. A real preview failed with
 * "no image digest for chatmirror:images.prometheus, …nodeExporter, …grafana".
 */
import { expect, it } from 'vitest';
import { digest, METRICS_TOKEN } from './fixtures.js';
import { loadStackFile, planStack } from './plan.js';

const BUILT = ['service', 'base', 'prometheus', 'nodeExporter', 'alertmanager', 'haproxy', 'redis'];

it('plans the local stack from a digests file holding only the images the offline build makes', async () => {
  const images = Object.fromEntries(
    BUILT.map((name) => [
      name,
      {
        repository: `127.0.0.1:5000/chatmirror/${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
        digest: digest(name),
        tag: 'x',
      },
    ]),
  );
  const plan = await planStack({
    stack: 'local',
    config: { ...loadStackFile('local'), 'chatmirror:metricsToken': METRICS_TOKEN },
    secretKeys: ['chatmirror:metricsToken'],
    files: { 'images/digests.json': JSON.stringify({ schemaVersion: 1, images }) },
  });
  const containers = plan.resources.filter((r) => r.type === 'docker:index/container:Container');
  expect(containers.map((c) => c.name).sort()).toEqual([
    'chatmirror-local-0',
    'chatmirror-local-alertmanager',
    'chatmirror-local-node-exporter',
    'chatmirror-local-prometheus',
  ]);
  for (const c of containers)
    expect(String(c.inputs.image)).toMatch(/^127\.0\.0\.1:5000\/chatmirror\/.+@sha256:/);
});
