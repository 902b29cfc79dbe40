/**
 * Every stack file builds under Pulumi's mocks, and the inputs the program gives each resource show the stack's
 * settings. `planStack` is also what a later step uses to turn the local stack's containers into `docker run`.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { GiB } from '../../infra/render/capacity.js';
import {
  BENCH_TOKEN,
  DIGESTS,
  digest,
  GRAFANA_PASSWORD,
  METRICS_TOKEN,
  stackPlanOptions,
} from './fixtures.js';
import { decodeStdin, find, type Plan, planStack } from './plan.js';

const CONTAINER = 'docker:index/container:Container';

const plans: Record<string, Plan> = {};
beforeAll(async () => {
  for (const stack of ['local', 'staging', 'prod'] as const)
    plans[stack] = await planStack(await stackPlanOptions(stack));
});

describe.each(['local', 'staging', 'prod'])('the %s stack', (stack) => {
  it('builds every component and exports the promised outputs', () => {
    const plan = plans[stack]!;
    const components = plan.resources
      .filter((r) => r.type.startsWith('chatmirror:index:'))
      .map((r) => r.type.split(':')[2]);
    expect(new Set(components)).toEqual(
      new Set([
        'HostCapacity',
        'VerifiedImage',
        'VerifiedModel',
        'Tls',
        'HostFiles',
        'ServingContainer',
        'Monitoring',
        'Alertmanager',
        ...(stack === 'local' ? [] : ['Firewall', 'Benchmarks']),
        ...(stack === 'prod' ? ['LoadBalancer', 'QuotaStore'] : []),
      ]),
    );
    expect(plan.outputs.endpoint).toMatch(/^https:\/\//);
    expect(plan.outputs.caCertificate).toContain('-----BEGIN CERTIFICATE-----');
    const urls = plan.outputs.monitoringUrls as Record<string, string>;
    expect(urls.prometheus).toMatch(/^http:\/\/.+:9090$/);
    if (stack === 'local') expect(urls.grafana).toBeUndefined();
    else expect(urls.grafana).toMatch(/^http:\/\/.+:3000$/);
    // HAProxy and Redis only where there is more than one replica (prod).
    const { grafana, haproxy, redis, ...always } = DIGESTS;
    expect(plan.outputs.imageDigests).toEqual({
      ...always,
      ...(stack === 'local' ? {} : { grafana }),
      ...(stack === 'prod' ? { haproxy, redis } : {}),
    });
    expect(plan.outputs.capacityReport).toMatch(/^resource +need +have/);
  });

  it('creates every container from a digest, hardened', () => {
    for (const container of plans[stack]!.resources.filter((r) => r.type === CONTAINER)) {
      expect(container.inputs.image, container.name).toMatch(/@sha256:[0-9a-f]{64}$/);
      expect(container.inputs, container.name).toMatchObject({
        readOnly: true,
        capabilities: { drops: ['ALL'] },
        securityOpts: ['no-new-privileges:true'],
        logDriver: 'json-file',
      });
      expect(String(container.inputs.user), container.name).not.toMatch(/^0:/);
      expect(container.inputs.memory, container.name).toBe(container.inputs.memorySwap);
      for (const port of (container.inputs.ports ?? []) as { ip: string }[])
        expect(port.ip, container.name).not.toBe('0.0.0.0');
    }
  });

  it('keeps secrets out of clear inputs', () => {
    const plan = plans[stack]!;
    for (const resource of plan.resources) {
      const clear = JSON.stringify(
        Object.fromEntries(
          Object.entries(resource.inputs).filter(([key]) => !resource.secretPaths.includes(key)),
        ),
      );
      for (const secret of [
        GRAFANA_PASSWORD,
        METRICS_TOKEN,
        BENCH_TOKEN,
        Buffer.from(METRICS_TOKEN).toString('base64'),
      ])
        expect(clear, `${resource.type} ${resource.name}`).not.toContain(secret);
    }
  });
});

describe('local', () => {
  it('runs commands here, publishes on loopback and leaves firewall and timer out', () => {
    const plan = plans.local!;
    expect(plan.resources.filter((r) => r.type.startsWith('command:remote'))).toEqual([]);
    expect(find(plan, 'docker').inputs).toEqual({});
    const api = find(plan, 'chatmirror-local-0');
    expect(api.inputs.ports).toEqual([{ internal: 8443, external: 8443, ip: '127.0.0.1', protocol: 'tcp' }]);
    expect(api.inputs).toMatchObject({ memory: 1024, cpus: '2', waitTimeout: 120 });
    expect((api.inputs.mounts as { source: string }[])[1]!.source).toMatch(
      /\/test\/fixtures\/models\/tiny-llama$/,
    );
    expect(plan.resources.some((r) => r.name === 'firewall-nft' || r.name === 'benchmarks-timer')).toBe(
      false,
    );
    // A laptop may be small: allowUndersized turns the check into a warning.
  });

  it('captures inputs that can be materialised: the service config the container reads', () => {
    const files = decodeStdin(find(plans.local!, 'service-files-write'));
    expect(Object.keys(files)).toEqual(['config.yaml', 'tls/server.crt', 'tls/server.key', 'tls/ca.crt']);
    expect(files['config.yaml']).toContain('modelDir: /models/tiny-llama');
    expect(files['config.yaml']).toContain('id: prometheus');
    expect(files['config.yaml']).not.toContain(METRICS_TOKEN);
  });

  it('fails the preview of an undersized host with the table unless allowed', async () => {
    const options = await stackPlanOptions('prod');
    await expect(
      planStack({
        ...options,
        facts: {
          cpuCores: 2,
          memoryBytes: 8 * GiB,
          diskFreeBytes: 20e9,
          diskPath: '/var/lib/docker',
          dockerVersion: '27.0.0',
          dockerApiVersion: '1.46',
          gpus: [],
        },
      }),
    ).rejects.toThrow(/host is undersized for profile prod:[\s\S]*memory +29\.1 GiB +8\.0 GiB +SHORT/);
  });
});

describe('staging', () => {
  it('reaches the host over SSH with the key pinned everywhere', () => {
    const plan = plans.staging!;
    const provider = find(plan, 'docker').inputs as { host: string; sshOpts: string };
    expect(provider.host).toBe('ssh://deploy@198.51.100.20:22');
    // Provider inputs reach the engine JSON-encoded.
    const sshOpts = JSON.parse(provider.sshOpts) as string[];
    expect(sshOpts).toEqual(
      expect.arrayContaining(['StrictHostKeyChecking=yes', 'UserKnownHostsFile=/dev/null']),
    );
    expect(sshOpts.join(' ')).not.toMatch(/StrictHostKeyChecking=(no|accept-new)/);
    const commands = plan.resources.filter((r) => r.type === 'command:remote:Command');
    expect(commands.length).toBeGreaterThan(4);
    for (const command of commands)
      expect(command.inputs.connection, command.name).toMatchObject({
        host: '198.51.100.20',
        user: 'deploy',
        hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL48L/Xqo51/hMtSKnPICyg0dXR/N8az2x08oFvQ8eUG',
      });
  });

  it('opens the API to its CIDRs and the admin ports to the admin CIDRs', () => {
    const nft = String(find(plans.staging!, 'firewall-nft').inputs.stdin);
    expect(nft).toContain('elements = { 10.0.0.0/8, 203.0.113.0/24 }');
    expect(nft).toContain('elements = { 10.20.0.0/16 }');
    expect(nft).toContain('ct original proto-dst 8443 jump api_clients');
    expect(nft).toContain('ct original proto-dst { 3000, 9090 } jump admin_clients');
  });

  it('issues its certificate from the stack CA for the configured names', () => {
    const csr = find(plans.staging!, 'tls-server-csr').inputs;
    expect(csr.dnsNames).toEqual(['staging.chat.example.com', 'chatmirror']);
    expect(csr.ipAddresses).toEqual(['198.51.100.20']);
    expect(find(plans.staging!, 'tls-server').inputs).toMatchObject({
      validityPeriodHours: 90 * 24,
      earlyRenewalHours: 30 * 24,
    });
  });

  it('schedules the benchmarks nightly with results for Prometheus', () => {
    const units = decodeStdin(find(plans.staging!, 'benchmarks-timer'));
    expect(units['chatmirror-bench-staging.timer']).toContain('OnCalendar=*-*-* 02:00:00');
    expect(units['chatmirror-bench-staging.service']).toContain(`${DIGESTS.service} \\\n    bench`);
    const config = decodeStdin(find(plans.staging!, 'service-files-write'))['config.yaml'];
    expect(config).toContain('id: bench');
    expect(config).toContain('id: qa');
  });
});

describe('prod', () => {
  it('runs two replicas with larger limits behind the balancer on the public address', () => {
    const plan = plans.prod!;
    const replicas = plan.resources.filter(
      (r) => r.type === CONTAINER && /^chatmirror-prod-\d$/.test(r.name),
    );
    expect(replicas.map((r) => r.inputs.ports)).toEqual([[], []]);
    expect(find(plan, 'chatmirror-prod-balancer').inputs.ports).toEqual([
      { internal: 8443, external: 8443, ip: '203.0.113.10', protocol: 'tcp' },
    ]);
    expect(replicas[0]!.inputs).toMatchObject({
      memory: 6144,
      cpus: '3',
      restart: 'always',
      waitTimeout: 600,
    });
  });

  it('serves the provided certificate (no CA of its own) and trusts the JWKS it uploads', () => {
    const plan = plans.prod!;
    expect(plan.resources.filter((r) => r.type.startsWith('tls:'))).toEqual([]);
    const files = decodeStdin(find(plan, 'service-files-write'));
    expect(files['tls/server.key']).toContain('PRIVATE KEY');
    expect(files['jwks.json']).toContain('"kid":"k1"');
    expect(files['config.yaml']).toContain('jwksFile: /etc/chatmirror/jwks.json');
    expect(find(plan, 'service-files-write').secretPaths).toContain('stdin');
  });

  it('keeps 90 days of metrics and alerts with its own thresholds', () => {
    const prometheus = find(plans.prod!, 'chatmirror-prod-prometheus').inputs;
    expect(prometheus.command).toEqual(
      expect.arrayContaining(['--storage.tsdb.retention.time=90d', '--storage.tsdb.retention.size=40GB']),
    );
    const files = decodeStdin(find(plans.prod!, 'prometheus-files-write'));
    expect(files['rules/chatmirror.yml']).toContain('> 0.02');
    expect(files['prometheus.yml']).toContain('- chatmirror-prod-1:8443');
    expect(files['secrets/metrics-token']).toBe(METRICS_TOKEN);
  });

  it('reports image drift and never pulls by tag', async () => {
    const options = await stackPlanOptions('prod');
    const plan = await planStack({
      ...options,
      registryDigests: { 'registry.example.com/chatmirror/service:stable': digest('next') },
    });
    expect(plan.outputs.imageDrift).toContainEqual({
      tag: 'registry.example.com/chatmirror/service:stable',
      pinned: digest('service'),
      current: digest('next'),
      drifted: true,
    });
    expect(plan.warnings.join('\n')).toContain('now points at');
    for (const image of plan.resources.filter((r) => r.type === 'docker:index/remoteImage:RemoteImage'))
      expect(image.inputs.name).toMatch(/@sha256:/);
  });

  it('fails without image digests, naming the key', async () => {
    const options = await stackPlanOptions('prod');
    await expect(
      planStack({
        ...options,
        files: { ...options.files, 'images/digests.json': undefined as unknown as string },
      }),
    ).rejects.toThrow(
      'no image digest for chatmirror:images.service, chatmirror:images.prometheus, chatmirror:images.nodeExporter, chatmirror:images.alertmanager, chatmirror:images.grafana',
    );
  });
});
