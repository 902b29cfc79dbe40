/**
 * Each ComponentResource under Pulumi's mocks: the argument checks, and the inputs its children receive. Values
 * are read only after `settle()` (never asserted inside an `apply`); computed outputs come from the mocks.
 */
import * as docker from '@pulumi/docker';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Benchmarks } from '../../infra/benchmarks.js';
import { parseStackConfig } from '../../infra/config.js';
import { Firewall } from '../../infra/firewall.js';
import type { HostTarget } from '../../infra/host.js';
import { collectRemoteFacts, HostCapacity } from '../../infra/host-capacity.js';
import { HostFiles } from '../../infra/host-files.js';
import { Monitoring } from '../../infra/monitoring.js';
import { GiB } from '../../infra/render/capacity.js';
import { readDashboards } from '../../infra/render/grafana.js';
import { ServingContainer } from '../../infra/serving-container.js';
import { Tls } from '../../infra/tls.js';
import { VerifiedImage } from '../../infra/verified-image.js';
import { VerifiedModel } from '../../infra/verified-model.js';
import { DIGESTS, digest, providedCertificate } from './fixtures.js';
import { installMocks, type MockRecorder, resolve } from './plan.js';

const LOCAL: HostTarget = { kind: 'local', sudo: false };
const REMOTE: HostTarget = {
  kind: 'ssh',
  sudo: true,
  ssh: {
    host: '198.51.100.20',
    port: 22,
    user: 'deploy',
    hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL48L/Xqo51/hMtSKnPICyg0dXR/N8az2x08oFvQ8eUG',
  },
  privateKey: 'KEY',
};
const FACTS = {
  cpuCores: 8,
  memoryBytes: 32 * GiB,
  diskFreeBytes: 200e9,
  diskPath: '/var/lib/docker',
  dockerVersion: '27.3.1',
  dockerApiVersion: '1.47',
  gpus: [],
};

let mocks: MockRecorder;
beforeEach(async () => {
  mocks = await installMocks({ stack: 'test', facts: FACTS, pinned: DIGESTS });
});
afterEach(async () => {
  await mocks.settle();
  mocks.restore();
});

const byType = (type: string) => mocks.resources.filter((r) => r.type === type);
const named = (name: string) => {
  const found = mocks.resources.find((r) => r.name === name);
  if (found === undefined)
    throw new Error(`no resource ${name}; have ${mocks.resources.map((r) => r.name).join(', ')}`);
  return found;
};

describe('HostCapacity', () => {
  const inputs = {
    profile: 'prod' as const,
    modelBytes: 1e9,
    replicas: 1,
    replicaMemoryMb: 8192,
    replicaCpus: 4,
    logBytesPerReplica: 0,
  };

  it('reports need vs have for a host that fits', () => {
    const capacity = new HostCapacity('capacity', { inputs, facts: FACTS, allowUndersized: false });
    expect(capacity.report.ok).toBe(true);
    expect(capacity.report.table).toMatch(/^resource +need +have/);
  });

  it('stops an undersized host with the table, or warns when allowed', () => {
    const small = { ...FACTS, memoryBytes: 8 * GiB, cpuCores: 2 };
    expect(() => new HostCapacity('strict', { inputs, facts: small, allowUndersized: false })).toThrow(
      /host is undersized for profile prod:\nresource .*\n.*\nmemory +16\.0 GiB +8\.0 GiB +SHORT/,
    );
    const lenient = new HostCapacity('lenient', { inputs, facts: small, allowUndersized: true });
    expect(lenient.report.ok).toBe(false);
    expect(mocks.warnings.join('\n')).toContain('capacity.allowUndersized is true: going on');
  });

  it('probes a remote host over SSH with the pinned key (an invoke, so during preview too)', async () => {
    const facts = await collectRemoteFacts(
      { host: '203.0.113.10', port: 22, user: 'deploy', hostKey: 'ssh-ed25519 AAAA' },
      '/var/lib/docker',
    );
    expect(facts).toEqual(FACTS);
    expect(mocks.calls[0]?.inputs.command).toMatch(/^ssh '-o' 'StrictHostKeyChecking=yes'/);
    expect(mocks.calls[0]?.inputs.stdin).toContain("df -P -B1 '/var/lib/docker'");
  });
});

describe('VerifiedImage', () => {
  const provider = () => new docker.Provider('docker', {});

  it('pulls by digest only', async () => {
    const image = new VerifiedImage('image-service', { ref: DIGESTS.service, provider: provider() });
    await resolve(image.imageId);
    await mocks.settle();
    expect(byType('docker:index/remoteImage:RemoteImage').map((r) => r.inputs)).toEqual([
      expect.objectContaining({ name: DIGESTS.service, keepLocally: true }),
    ]);
    expect(
      () =>
        new VerifiedImage('tagged', {
          ref: 'registry.example.com/chatmirror/service:1.0',
          provider: provider(),
        }),
    ).toThrow(
      'VerifiedImage tagged: args.ref must be repo@sha256:<64 hex digits>, got "registry.example.com/chatmirror/service:1.0"',
    );
  });

  it("reports drift when the tag's registry digest moved", async () => {
    mocks.restore();
    mocks = await installMocks({
      stack: 'test',
      registryDigests: { 'registry.example.com/chatmirror/service:stable': digest('newer') },
    });
    const image = new VerifiedImage('image-service', {
      ref: DIGESTS.service,
      tag: 'registry.example.com/chatmirror/service:stable',
      provider: provider(),
    });
    const drift = await resolve(image.drift);
    expect(drift).toEqual({
      tag: 'registry.example.com/chatmirror/service:stable',
      pinned: digest('service'),
      current: digest('newer'),
      drifted: true,
    });
    expect(mocks.warnings.join()).toContain(
      `registry.example.com/chatmirror/service:stable now points at ${digest('newer')}`,
    );
  });
});

describe('VerifiedModel', () => {
  it('checks the manifest pin and every file on the target before use', async () => {
    const model = new VerifiedModel('model', {
      target: REMOTE,
      hostPath: '/srv/models/m',
      manifestSha256: 'a'.repeat(64),
    });
    await resolve(model.verified);
    await mocks.settle();
    const check = named('model-sha256');
    expect(check.type).toBe('command:remote:Command');
    expect(check.inputs.create).toContain(
      `printf '%s  SHA256SUMS\\n' '${'a'.repeat(64)}' | sha256sum --check --strict`,
    );
    expect(check.inputs.create).toContain('sha256sum --check --strict --quiet SHA256SUMS');
    expect(check.inputs.triggers).toEqual(['/srv/models/m', 'a'.repeat(64)]);
    expect(check.inputs.connection).toMatchObject({
      host: '198.51.100.20',
      hostKey: REMOTE.kind === 'ssh' ? REMOTE.ssh.hostKey : '',
    });
    // The connection carries the SSH key: Pulumi keeps all of it secret.
    expect(check.secretPaths).toEqual(['connection']);
    expect(
      () => new VerifiedModel('rel', { target: LOCAL, hostPath: 'models/m', manifestSha256: 'a'.repeat(64) }),
    ).toThrow('VerifiedModel rel: args.hostPath must be absolute, got models/m');
  });
});

describe('Tls', () => {
  const base = {
    stack: 'staging',
    organization: 'chatmirror',
    dnsNames: ['staging.chat.example.com', 'chatmirror'],
    ipAddresses: ['198.51.100.20'],
    validityDays: 90,
    renewBeforeDays: 30,
    caValidityDays: 1825,
    keyAlgorithm: 'ECDSA' as const,
  };

  it('issues a server certificate from a per-stack CA, renewed before expiry', async () => {
    const tls = new Tls('tls', { ...base, mode: 'ca' });
    expect(await resolve(tls.caCertPem)).toContain('BEGIN CERTIFICATE');
    await resolve(tls.certChainPem);
    await mocks.settle();
    expect(named('tls-ca').inputs).toMatchObject({
      isCaCertificate: true,
      validityPeriodHours: 1825 * 24,
      allowedUses: ['cert_signing', 'crl_signing', 'digital_signature'],
    });
    expect(named('tls-server-csr').inputs).toMatchObject({
      dnsNames: base.dnsNames,
      ipAddresses: base.ipAddresses,
      subject: { commonName: 'staging.chat.example.com' },
    });
    expect(named('tls-server').inputs).toMatchObject({
      validityPeriodHours: 90 * 24,
      earlyRenewalHours: 30 * 24,
      allowedUses: ['digital_signature', 'key_encipherment', 'server_auth'],
    });
    expect(named('tls-server-key').inputs).toMatchObject({ algorithm: 'ECDSA', ecdsaCurve: 'P256' });
    expect(await resolve(tls.notAfter)).toMatch(/^20\d\d-/);
  });

  it('uses a provided certificate, checking it covers the DNS names', async () => {
    const pems = await providedCertificate();
    const tls = new Tls('tls', {
      ...base,
      dnsNames: ['chat.example.com'],
      mode: 'provided',
      provided: { certPem: pems.cert, keyPem: pems.key, caPem: pems.ca },
    });
    expect(await resolve(tls.certChainPem)).toBe(pems.cert);
    expect(Date.parse((await resolve(tls.notAfter)) ?? '')).toBeGreaterThan(Date.now());
    expect(mocks.resources.filter((r) => r.type.startsWith('tls:'))).toEqual([]);
    expect(
      () =>
        new Tls('other', {
          ...base,
          dnsNames: ['other.example.com'],
          mode: 'provided',
          provided: { certPem: pems.cert, keyPem: pems.key, caPem: pems.ca },
        }),
    ).toThrow(
      'Tls other: the provided certificate does not cover DNS name other.example.com (args.dnsNames)',
    );
    expect(() => new Tls('none', { ...base, mode: 'provided' })).toThrow(
      'Tls none: args.provided is required when args.mode is provided',
    );
  });
});

describe('HostFiles', () => {
  it('writes secrets through stdin, never on the command line', async () => {
    const files = new HostFiles('service-files', {
      target: REMOTE,
      dir: '/srv/chatmirror/prod/service',
      group: 10001,
      files: [{ name: 'tls/server.key', content: 'SECRET-KEY', mode: '0640' }],
    });
    await resolve(files.written);
    await mocks.settle();
    const write = named('service-files-write');
    expect(write.inputs.create).not.toContain('SECRET');
    expect(write.inputs.stdin).toBe(`0640 tls/server.key ${Buffer.from('SECRET-KEY').toString('base64')}\n`);
    expect(write.inputs.delete).toBe(
      "sudo -n rm -f '/srv/chatmirror/prod/service/tls/server.key' '/srv/chatmirror/prod/service/.chatmirror-files'\nsudo -n rmdir '/srv/chatmirror/prod/service/tls' 2>/dev/null || true\nsudo -n rmdir '/srv/chatmirror/prod/service' 2>/dev/null || true",
    );
    expect(write.secretPaths).toEqual(['connection']);
    expect(
      () =>
        new HostFiles('x', {
          target: LOCAL,
          dir: 'relative',
          group: 1,
          files: [{ name: 'a', content: '', mode: '0640' }],
        }),
    ).toThrow('HostFiles x: args.dir must be absolute');
  });
});

describe('ServingContainer', () => {
  const args = () => ({
    stack: 'prod',
    image: DIGESTS.service,
    replicas: 1,
    publish: { bindAddresses: ['203.0.113.10'], hostPort: 8443 },
    network: 'chatmirror-prod',
    configDir: '/srv/chatmirror/prod/service',
    modelDir: '/srv/models/chat-1b-int8',
    modelId: 'chat-1b',
    user: '10001:10001',
    memoryMb: 6144,
    cpus: 3,
    pidsLimit: 512,
    restart: 'always' as const,
    logMaxSizeMb: 50,
    logMaxFiles: 10,
    healthStartPeriodSeconds: 180,
    waitTimeoutSeconds: 600,
    features: { healthStartInterval: true, nofile: 65_536 },
    provider: new docker.Provider('docker', {}),
    dependsOn: [],
  });

  it('creates a hardened replica with its port on the configured addresses only', async () => {
    const serving = new ServingContainer('serving', args());
    expect(serving.targets).toEqual(['chatmirror-prod-0:8443']);
    await resolve(serving.containers[0]!.id);
    await mocks.settle();
    const [first] = byType('docker:index/container:Container');
    expect(first!.inputs).toMatchObject({
      name: 'chatmirror-prod-0',
      image: DIGESTS.service,
      command: ['serve', '--config', '/etc/chatmirror/config.yaml'],
      user: '10001:10001',
      readOnly: true,
      capabilities: { drops: ['ALL'] },
      securityOpts: ['no-new-privileges:true'],
      memory: 6144,
      memorySwap: 6144,
      cpus: '3',
      ulimits: expect.arrayContaining([{ name: 'nproc', soft: 512, hard: 512 }]),
      restart: 'always',
      logDriver: 'json-file',
      logOpts: { 'max-size': '50m', 'max-file': '10' },
      wait: true,
      waitTimeout: 600,
      ports: [{ internal: 8443, external: 8443, ip: '203.0.113.10', protocol: 'tcp' }],
      networkMode: 'chatmirror-prod',
      networksAdvanced: [{ name: 'chatmirror-prod', aliases: ['chatmirror', 'chatmirror-prod-0'] }],
      mounts: [
        { type: 'bind', source: '/srv/chatmirror/prod/service', target: '/etc/chatmirror', readOnly: true },
        { type: 'bind', source: '/srv/models/chat-1b-int8', target: '/models/chat-1b', readOnly: true },
      ],
    });
    expect(first!.inputs.healthcheck).toMatchObject({
      startPeriod: '180s',
      tests: ['CMD', 'node', '-e', expect.stringContaining("path:'/ready'")],
    });
  });

  it('behind the balancer: publishes nothing, hashed names, each replica after the previous one', async () => {
    const { publish: _, ...rest } = args();
    const serving = new ServingContainer('serving', { ...rest, replicas: 2 });
    expect(serving.targets).toEqual(['chatmirror-prod-0:8443', 'chatmirror-prod-1:8443']);
    const names = await Promise.all(serving.names.map((n) => resolve(n)));
    expect(names).toEqual([
      expect.stringMatching(/^chatmirror-prod-0-[0-9a-f]{8}$/),
      expect.stringMatching(/^chatmirror-prod-1-[0-9a-f]{8}$/),
    ]);
    await mocks.settle();
    const [first, second] = byType('docker:index/container:Container');
    expect(first!.inputs.ports).toEqual([]);
    expect(second!.options.dependencies).toContain(first!.urn);
    expect(second!.options.deleteBeforeReplace).toBe(false);
  });

  it('checks its arguments first', () => {
    expect(() => new ServingContainer('s', { ...args(), replicas: 0 })).toThrow(
      'ServingContainer s: args.replicas must be an integer ≥ 1, got 0',
    );
    expect(
      () => new ServingContainer('s', { ...args(), publish: { bindAddresses: [], hostPort: 8443 } }),
    ).toThrow('ServingContainer s: args.publish.bindAddresses is empty');
    expect(() => new ServingContainer('s', { ...args(), replicas: 2 })).toThrow(
      'ServingContainer s: args.publish is for a single replica; 2 replicas need the load balancer in front',
    );
    expect(() => new ServingContainer('s', { ...args(), user: '0:0' })).toThrow(/non-root/);
  });
});

describe('Firewall', () => {
  const rules = {
    stack: 'prod',
    table: 'chatmirror',
    priority: -10,
    apiPorts: [8443],
    adminPorts: [9090, 3000],
    apiCidrs: ['10.0.0.0/8'],
    adminCidrs: ['10.99.0.0/24'],
  };

  it('applies our table from stdin after a check, and deletes only our table', async () => {
    const firewall = new Firewall('firewall', { target: REMOTE, rules });
    await mocks.settle();
    const nft = named('firewall-nft');
    expect(nft.inputs.stdin).toBe(firewall.ruleset);
    expect(nft.inputs.create).toContain('sudo -n nft -c -f -');
    expect(nft.inputs.update).toBe(nft.inputs.create);
    expect(nft.inputs.delete).toBe(
      'if sudo -n nft list table inet chatmirror >/dev/null 2>&1; then sudo -n nft delete table inet chatmirror; fi',
    );
    expect(() => new Firewall('open', { target: REMOTE, rules: { ...rules, apiCidrs: [] } })).toThrow(
      /args.rules.apiCidrs is empty/,
    );
  });
});

describe('Monitoring', () => {
  const alerts = parseStackConfig({
    'chatmirror:profile': 'dev',
    'chatmirror:model': { hostPath: '/m', manifestSha256: 'a'.repeat(64) },
    'chatmirror:monitoring': { enabled: false },
  }).monitoring.alerts;

  it('runs Prometheus, node-exporter, Alertmanager and Grafana, provisioned, with admin ports on admin addresses only', async () => {
    const monitoring = new Monitoring('monitoring', {
      stack: 'prod',
      target: REMOTE,
      provider: new docker.Provider('docker', {}),
      network: 'chatmirror-prod',
      images: {
        prometheus: DIGESTS.prometheus,
        nodeExporter: DIGESTS.nodeExporter,
        alertmanager: DIGESTS.alertmanager,
        grafana: DIGESTS.grafana,
      },
      alertWebhookUrl: 'https://hooks.example.com/chatmirror/T0KEN',
      configDir: '/srv/chatmirror/prod/monitoring',
      textfileDir: '/srv/chatmirror/prod/textfile',
      group: 10001,
      bindAddresses: ['10.99.0.5'],
      prometheusPort: 9090,
      grafanaPort: 3000,
      scrapeIntervalSeconds: 15,
      retentionDays: 90,
      retentionSizeGb: 40,
      prometheusMemoryMb: 2048,
      grafanaMemoryMb: 512,
      alerts,
      benchmarks: true,
      serviceTargets: ['chatmirror-prod-0:8443'],
      retainData: true,
      caCertPem: 'CA',
      metricsToken: 'TOKEN',
      grafanaAdminPassword: 'PASSWORD',
      dashboards: readDashboards(),
      logMaxSizeMb: 20,
      logMaxFiles: 5,
    });
    await resolve(monitoring.containers[2]!.id);
    await mocks.settle();
    const prometheus = named('chatmirror-prod-prometheus').inputs;
    expect(prometheus.command).toEqual(
      expect.arrayContaining(['--storage.tsdb.retention.time=90d', '--storage.tsdb.retention.size=40GB']),
    );
    expect(prometheus.ports).toEqual([{ internal: 9090, external: 9090, ip: '10.99.0.5', protocol: 'tcp' }]);
    expect(prometheus).toMatchObject({
      readOnly: true,
      user: '65534:10001',
      capabilities: { drops: ['ALL'] },
    });
    const grafana = named('chatmirror-prod-grafana').inputs;
    expect(grafana.envs).toContain('GF_SECURITY_ADMIN_PASSWORD__FILE=/etc/grafana/secrets/admin-password');
    expect(grafana.ports).toEqual([{ internal: 3000, external: 3000, ip: '10.99.0.5', protocol: 'tcp' }]);
    expect(JSON.stringify(grafana)).not.toContain('PASSWORD"');
    const nodeExporter = named('chatmirror-prod-node-exporter').inputs;
    expect(nodeExporter.ports).toBeUndefined();
    expect(nodeExporter.command).toContain('--collector.textfile.directory=/textfile');
    expect(
      byType('docker:index/volume:Volume')
        .map((v) => v.inputs.name)
        .sort(),
    ).toEqual([
      'chatmirror-prod-alertmanager-data',
      'chatmirror-prod-grafana-data',
      'chatmirror-prod-prometheus-data',
    ]);
    // Alertmanager: hardened, unpublished, its config a secret file; Prometheus sends to it and waits for it.
    const alertmanager = named('chatmirror-prod-alertmanager');
    expect(alertmanager.inputs.ports).toBeUndefined();
    expect(alertmanager.inputs).toMatchObject({
      image: DIGESTS.alertmanager,
      user: '65534:10001',
      readOnly: true,
      capabilities: { drops: ['ALL'] },
      securityOpts: ['no-new-privileges:true'],
      memory: 128,
      networksAdvanced: [{ name: 'chatmirror-prod', aliases: ['chatmirror-prod-alertmanager'] }],
      mounts: [
        {
          type: 'bind',
          source: '/srv/chatmirror/prod/monitoring/alertmanager',
          target: '/etc/alertmanager',
          readOnly: true,
        },
        { type: 'volume', source: 'chatmirror-prod-alertmanager-data', target: '/alertmanager' },
      ],
      wait: true,
    });
    expect(alertmanager.inputs.command).toContain('--config.file=/etc/alertmanager/alertmanager.yml');
    expect(alertmanager.options.deleteBeforeReplace).toBe(true);
    const amFiles = named('alertmanager-files-write');
    expect(amFiles.secretPaths).toContain('stdin');
    expect(monitoring.alertmanager.config).toContain('url: https://hooks.example.com/chatmirror/T0KEN');
    expect(named('chatmirror-prod-prometheus').options.dependencies).toContain(alertmanager.urn);
    expect(monitoring.prometheusConfig).toContain('- chatmirror-prod-alertmanager:9093');
    const promFiles = named('prometheus-files-write');
    expect(promFiles.secretPaths).toContain('stdin');
    expect(String(promFiles.inputs.stdin)).toContain(
      `secrets/metrics-token ${Buffer.from('TOKEN').toString('base64')}`,
    );
    expect(String(named('grafana-files-write').inputs.stdin)).toContain('dashboards/chatmirror.json');
    expect(monitoring.prometheusConfig).toContain('credentials_file: /etc/prometheus/secrets/metrics-token');
  });
});

describe('Benchmarks', () => {
  it('installs a systemd timer that runs the pinned image, after the endpoint is up', async () => {
    const bench = parseStackConfig({
      'chatmirror:profile': 'staging',
      'chatmirror:model': { hostPath: '/m', manifestSha256: 'a'.repeat(64) },
      'chatmirror:monitoring': { enabled: false },
    }).benchmarks;
    // The endpoint it must wait for: a replica container, as the program passes them.
    const replica = new docker.Container('chatmirror-staging-0', {
      name: 'chatmirror-staging-0',
      image: DIGESTS.service,
    });
    const benchmarks = new Benchmarks('benchmarks', {
      stack: 'staging',
      target: REMOTE,
      bench: { ...bench, enabled: true },
      image: DIGESTS.service,
      network: 'chatmirror-staging',
      endpoint: 'https://chatmirror:8443',
      modelId: 'm',
      user: '10001:10001',
      group: 10001,
      secretsDir: '/srv/chatmirror/staging/bench',
      caCertPem: 'CA',
      benchToken: 'BENCH',
      historyDir: '/srv/chatmirror/staging/bench-history',
      keepHistory: true,
      textfileDir: '/srv/chatmirror/staging/textfile',
      dependsOn: [replica],
    });
    await mocks.settle();
    const timer = named('benchmarks-timer');
    expect(timer.options.dependencies).toContain(named('chatmirror-staging-0').urn);
    expect(timer.inputs.create).toContain('sudo -n systemctl enable --now chatmirror-bench-staging.timer');
    expect(timer.inputs.delete).toContain('sudo -n systemctl disable --now chatmirror-bench-staging.timer');
    expect(String(timer.inputs.stdin)).toContain(
      `chatmirror-bench-staging.timer ${Buffer.from(benchmarks.timerUnit).toString('base64')}`,
    );
    expect(await resolve(benchmarks.serviceUnit)).toContain(DIGESTS.service);
    expect(named('bench-files-write').secretPaths).toContain('stdin');
    expect(() => new Benchmarks('b', { ...benchmarks_args(), endpoint: 'http://x' })).toThrow(
      'Benchmarks b: args.endpoint must be https://, got http://x',
    );

    function benchmarks_args() {
      return {
        stack: 'staging',
        target: REMOTE,
        bench,
        image: DIGESTS.service,
        network: 'n',
        endpoint: 'https://chatmirror:8443',
        modelId: 'm',
        user: '10001:10001',
        group: 10001,
        secretsDir: '/s',
        caCertPem: 'CA',
        benchToken: 'B',
        historyDir: '/h',
        keepHistory: true,
        textfileDir: '/t',
        dependsOn: [],
      };
    }
  });
});
