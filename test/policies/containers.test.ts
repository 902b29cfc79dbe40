/** Container and image policies: each on a compliant resource and on one with the one setting it forbids. */
import { describe, expect, it } from 'vitest';
import { containerPolicies } from '../../policies/containers.js';
import { imagePolicies } from '../../policies/images.js';
import { type ContainerProps, docker } from '../../policies/lib/resources.js';
import { container, DIGEST, hardened } from './fixtures.js';
import { analyze, fabricate, type PackConfig } from './harness.js';

const byName = (name: string) => {
  const policy = [...containerPolicies, ...imagePolicies].find((p) => p.name === name);
  if (policy === undefined) throw new Error(`no policy ${name}`);
  return policy;
};

async function messages(policy: string, props: ContainerProps, config: PackConfig = {}) {
  const violations = await analyze([byName(policy)], [container('chatmirror-staging-0', props)], config);
  return violations.map((v) => v.message);
}

// policy, the violating change, what its message must say
const CASES: [string, Partial<ContainerProps>, RegExp][] = [
  [
    'container-image-digest',
    { image: 'registry.example.com/chatmirror/service:latest' },
    /names latest, not an @sha256: digest/,
  ],
  ['container-image-digest', { image: 'docker.io/grafana/grafana:12.1.0' }, /names a tag/],
  ['container-read-only-rootfs', { readOnly: false }, /root filesystem is writable.*Fix: set readOnly: true/],
  ['container-non-root-user', { user: '0:0' }, /runs as root.*Fix: set user to a non-root uid:gid/],
  ['container-non-root-user', { user: undefined }, /sets no user/],
  ['container-not-privileged', { privileged: true }, /is privileged/],
  [
    'container-capabilities-dropped',
    { capabilities: { drops: ['NET_RAW'] } },
    /keeps the default capabilities.*drops: \["ALL"\]/,
  ],
  [
    'container-capabilities-dropped',
    { capabilities: { drops: ['ALL'], adds: ['SYS_ADMIN'] } },
    /adds back capabilities SYS_ADMIN/,
  ],
  ['container-no-new-privileges', { securityOpts: [] }, /no-new-privileges:true/],
  ['container-resource-limits', { memory: undefined }, /no memory limit/],
  ['container-resource-limits', { ulimits: [] }, /no process limit.*nproc ulimit/],
  ['container-restart-policy', { restart: 'no' }, /restart "no"/],
  ['container-healthcheck', { healthcheck: undefined }, /no healthcheck/],
  ['container-healthcheck', { healthcheck: { tests: ['NONE'] } }, /no healthcheck/],
  ['container-log-rotation', { logOpts: {} }, /logs are not rotated/],
  ['container-log-rotation', { logDriver: 'syslog' }, /logDriver syslog/],
  [
    'container-no-host-namespaces',
    { networkMode: 'host' },
    /host's network namespace \(networkMode: "host"\)/,
  ],
  ['container-no-host-namespaces', { pidMode: 'host' }, /host's PID namespace/],
  ['container-no-host-namespaces', { ipcMode: 'host' }, /host's IPC namespace/],
  [
    'container-no-dangerous-mounts',
    { mounts: [{ type: 'bind', source: '/var/run/docker.sock', target: '/var/run/docker.sock' }] },
    /mounts the Docker socket/,
  ],
  [
    'container-no-dangerous-mounts',
    { volumes: [{ hostPath: '/', containerPath: '/host' }] },
    /host root filesystem/,
  ],
];

describe('container policies', () => {
  it.each([...imagePolicies, ...containerPolicies].map((p) => p.name))(
    '%s passes the hardened container',
    async (policy) => {
      expect(await messages(policy, hardened('api'))).toEqual([]);
    },
  );

  it.each(CASES)('%s rejects %j', async (policy, change, expected) => {
    const found = await messages(policy, hardened('api', change));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^chatmirror-staging-0: /);
    expect(found[0]).toMatch(expected);
    expect(found[0]).toContain('Fix: ');
  });

  it('adds back a capability the config names', async () => {
    const props = hardened('api', { capabilities: { drops: ['ALL'], adds: ['CAP_NET_BIND_SERVICE'] } });
    expect(await messages('container-capabilities-dropped', props)).toHaveLength(1);
    expect(
      await messages('container-capabilities-dropped', props, {
        'container-capabilities-dropped': { allowedAdds: ['NET_BIND_SERVICE'] },
      }),
    ).toEqual([]);
  });

  it('leaves other resource types alone', async () => {
    const image = fabricate(docker.RemoteImage, 'image-service', { name: 'registry.example.com/x:latest' });
    expect(await analyze(containerPolicies, [image])).toEqual([]);
  });

  it('disables a policy through config, as --policy-pack-config does', async () => {
    const config: PackConfig = { 'container-read-only-rootfs': { enforcementLevel: 'disabled' } };
    expect(
      await messages('container-read-only-rootfs', hardened('api', { readOnly: false }), config),
    ).toEqual([]);
  });
});

describe('image policies', () => {
  it('passes digests and rejects tags on RemoteImage', async () => {
    const policy = byName('remote-image-digest');
    const pinned = fabricate(docker.RemoteImage, 'image-grafana', {
      name: `docker.io/grafana/grafana@${DIGEST}`,
    });
    const tagged = fabricate(docker.RemoteImage, 'image-grafana', { name: 'docker.io/grafana/grafana' });
    expect(await analyze([policy], [pinned])).toEqual([]);
    const [violation, ...rest] = await analyze([policy], [tagged]);
    expect(rest).toEqual([]);
    expect(violation).toMatchObject({ policy: 'remote-image-digest', level: 'mandatory', urn: tagged.urn });
    expect(violation!.message).toMatch(/^image-grafana: name "docker.io\/grafana\/grafana" names latest/);
  });
});
