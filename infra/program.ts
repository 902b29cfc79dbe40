/**
 * The program: composes the components for one stack from its typed config. `buildEnvironment` does no I/O of its
 * own — local files, host facts and the model's size come in through `ProgramInputs` — so the same function runs
 * under `pulumi up` (index.ts) and under mocks (plan.ts, the tests).
 */
import { createHash } from 'node:crypto';
import { homedir } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import * as docker from '@pulumi/docker';
import * as pulumi from '@pulumi/pulumi';
import { apiKeyId, hashApiKey } from '../service/security/auth/keys.js';
import { Benchmarks } from './benchmarks.js';
import { CONTAINER_API_PORT, type ImageName, keyOf, type StackConfig } from './config.js';
import { Firewall } from './firewall.js';
import { dockerProvider, type HostTarget } from './host.js';
import { HostCapacity } from './host-capacity.js';
import { HostFiles } from './host-files.js';
import { parseDigestsFile, resolveImages } from './images.js';
import { LoadBalancer } from './load-balancer.js';
import { Monitoring } from './monitoring.js';
import { QuotaStore, quotaStoreHost, REDIS_PORT } from './quota-store.js';
import type { HostFacts } from './render/capacity.js';
import { MiB } from './render/capacity.js';
import { containerFeatures } from './render/daemon.js';
import type { DashboardFile } from './render/grafana.js';
import { type ApiKeyEntry, renderRedisPasswordFile, renderServiceConfig } from './render/service-config.js';
import type { SshTarget } from './render/ssh.js';
import { certificateSans, renderCertificateTextfile, SERVICE_ALIAS } from './render/tls.js';
import { ServingContainer } from './serving-container.js';
import { Tls } from './tls.js';
import { VerifiedImage } from './verified-image.js';
import { VerifiedModel } from './verified-model.js';

export interface ProgramInputs {
  stack: string;
  config: StackConfig;
  /** Directory of Pulumi.yaml: relative paths in the config are relative to it. */
  projectDir: string;
  /** Reads a file on the machine running pulumi (digests file, JWKS, SSH key); undefined when it does not exist. */
  readLocalFile: (path: string) => string | undefined;
  /** The target's facts: this machine's (collectLocalFacts) or the remote host's (collectRemoteFacts). */
  facts: HostFacts;
  /** Size of the model files when config does not give it (measured for a local target). */
  modelBytes?: number;
  dashboards: DashboardFile[];
}

export interface ProgramOutputs {
  endpoint: string;
  caCertificate: pulumi.Output<string>;
  /** Prometheus and Grafana addresses, only those deployed (an undefined stack output only draws a warning). */
  monitoringUrls: { prometheus?: string; grafana?: string };
  imageDigests: Record<string, string>;
  imageDrift: pulumi.Output<unknown[]>;
  capacityReport: string;
  /** The API replicas' container names (behind the balancer they change with every rolling replacement). */
  containers: pulumi.Output<string[]>;
}

/** Memory limits of the balancer and the quota store that front several replicas, in MiB. */
const BALANCER_MEMORY_MB = 256;
const QUOTA_STORE_MEMORY_MB = 128;

export const BENCH_SCOPES = ['chat', 'completions', 'models:read'];

export function buildEnvironment(inputs: ProgramInputs): ProgramOutputs {
  const { config: cfg, stack } = inputs;
  /** A path on the target host: relative ones only exist for the local target (relative to the project). */
  const onHost = (p: string) => (isAbsolute(p) ? p : resolve(inputs.projectDir, expandHome(p)));
  const onOperator = (p: string) => operatorPath(p, inputs.projectDir);
  const readRequired = (path: string, key: string[]) => {
    const text = inputs.readLocalFile(onOperator(path));
    if (text === undefined) throw new Error(`${keyOf(key)}: cannot read ${path} on this machine`);
    return text;
  };

  // ---- target -------------------------------------------------------------------------------------------------
  const target: HostTarget =
    cfg.target.kind === 'local'
      ? { kind: 'local', sudo: cfg.target.sudo }
      : {
          kind: 'ssh',
          sudo: cfg.target.sudo,
          ssh: sshTargetOf(cfg, inputs.projectDir)!,
          ...(cfg.target.privateKeyPath === undefined
            ? {}
            : {
                privateKey: pulumi.secret(
                  readRequired(cfg.target.privateKeyPath, ['target', 'privateKeyPath']),
                ),
              }),
        };
  const provider = dockerProvider('docker', target);
  const dataDir = onHost(cfg.target.dataDir);
  const dirs = {
    service: `${dataDir}/service`,
    monitoring: `${dataDir}/monitoring`,
    textfile: `${dataDir}/textfile`,
    bench: `${dataDir}/bench`,
    history: `${dataDir}/bench-history`,
    balancer: `${dataDir}/balancer`,
    quotaStore: `${dataDir}/quota-store`,
  };
  const modelDir = onHost(cfg.model.hostPath);
  const modelId = cfg.model.id ?? modelDir.split('/').filter(Boolean).pop() ?? 'model';
  const group = cfg.target.fileGroup;

  const grafanaOn = cfg.monitoring.enabled && cfg.monitoring.grafana;

  // ---- image refs (pure; the capacity check credits pinned images already on the host) -----------------
  // More than one replica: HAProxy in front publishes the API port, Redis keeps the shared quotas.
  const balanced = cfg.serving.replicas > 1;
  const needed: ImageName[] = [
    'service',
    ...(cfg.monitoring.enabled ? (['prometheus', 'nodeExporter', 'alertmanager'] as const) : []),
    ...(grafanaOn ? (['grafana'] as const) : []),
    ...(balanced ? (['haproxy', 'redis'] as const) : []),
  ];
  const digestsText = inputs.readLocalFile(onOperator(cfg.images.digestsFile));
  const refs = resolveImages({
    configured: cfg.images,
    fromFile: digestsText === undefined ? {} : parseDigestsFile(digestsText, cfg.images.digestsFile),
    file: cfg.images.digestsFile,
    fileFound: digestsText !== undefined,
    needed,
  });

  // ---- capacity -----------------------------------------------------------------------------------------------
  const modelBytes = cfg.model.sizeBytes ?? inputs.modelBytes ?? 0;
  const capacity = new HostCapacity('capacity', {
    inputs: {
      profile: cfg.profile,
      modelBytes,
      replicas: cfg.serving.replicas,
      replicaMemoryMb: cfg.serving.memoryMb,
      ...(cfg.serving.replicas > 1
        ? { surgeReplicas: cfg.serving.replicas, sidecarMemoryMb: BALANCER_MEMORY_MB + QUOTA_STORE_MEMORY_MB }
        : {}),
      replicaCpus: cfg.serving.cpus,
      logBytesPerReplica: cfg.serving.logMaxSizeMb * cfg.serving.logMaxFiles * MiB,
      ...(cfg.monitoring.enabled
        ? {
            monitoring: {
              prometheusMemoryMb: cfg.monitoring.prometheusMemoryMb,
              grafanaMemoryMb: grafanaOn ? cfg.monitoring.grafanaMemoryMb : 0,
              retentionSizeGb: cfg.monitoring.retentionSizeGb,
            },
          }
        : {}),
      ...(cfg.benchmarks.enabled ? { benchmarkMemoryMb: cfg.benchmarks.memoryMb } : {}),
      pinnedImages: needed.map((name) => refs[name]),
    },
    facts: inputs.facts,
    allowUndersized: cfg.capacity.allowUndersized,
  });

  // What the target daemon grants, from the facts read off it: never declare what it would refuse.
  const features = containerFeatures(inputs.facts);

  // ---- images and model ---------------------------------------------------------------------------------------
  const images = Object.fromEntries(
    needed.map((name) => [
      name,
      new VerifiedImage(`image-${name}`, {
        ref: refs[name],
        ...(cfg.images.tags[name] === undefined ? {} : { tag: cfg.images.tags[name] }),
        provider,
      }),
    ]),
  ) as Partial<Record<ImageName, VerifiedImage>>;
  const serviceImage = images.service!;
  const model = new VerifiedModel('model', {
    target,
    hostPath: modelDir,
    manifestSha256: cfg.model.manifestSha256,
  });

  // ---- TLS --------------------------------------------------------------------------------------------------
  const publicHost =
    cfg.serving.publicHost ?? cfg.tls.dnsNames[0] ?? cfg.serving.bindAddresses[0] ?? 'localhost';
  const sans = certificateSans({ dnsNames: cfg.tls.dnsNames, ipAddresses: cfg.tls.ipAddresses, publicHost });
  const tls = new Tls('tls', {
    mode: cfg.tls.mode,
    stack,
    organization: cfg.tls.organization,
    dnsNames: sans.dnsNames,
    ipAddresses: sans.ipAddresses,
    validityDays: cfg.tls.validityDays,
    renewBeforeDays: cfg.tls.renewBeforeDays,
    caValidityDays: cfg.tls.caValidityDays,
    keyAlgorithm: cfg.tls.keyAlgorithm,
    ...(cfg.tls.mode === 'provided'
      ? {
          provided: {
            certPem: cfg.tlsCertificate ?? '',
            keyPem: pulumi.secret(cfg.tlsPrivateKey ?? ''),
            caPem: cfg.tlsCaCertificate ?? '',
          },
        }
      : {}),
  });

  // ---- service config and files -----------------------------------------------------------------------------
  const apiKeys: ApiKeyEntry[] = [
    ...(cfg.metricsToken === undefined ? [] : [ownKey(cfg.metricsToken, ['metrics:read'], 'metricsToken')]),
    ...(cfg.benchmarks.enabled && cfg.benchToken !== undefined
      ? [ownKey(cfg.benchToken, BENCH_SCOPES, 'benchToken')]
      : []),
    ...(cfg.apiKeys ?? []),
  ];
  const duplicate = apiKeys.map((k) => k.id).find((id, i, ids) => ids.indexOf(id) !== i);
  if (duplicate !== undefined)
    throw new Error(
      `${keyOf(['apiKeys'])}: key id ${duplicate} is used twice (the metrics and bench tokens count too)`,
    );
  const endpoint = `https://${bracket(publicHost)}:${cfg.serving.port}`;
  const serviceConfig = renderServiceConfig({
    config: cfg,
    modelId,
    publicBaseUrl: endpoint,
    apiKeys,
    privateSubnet: cfg.serving.networkSubnet,
    ...(balanced
      ? {
          behindBalancer: true,
          quotaStore: { host: quotaStoreHost(stack), port: REDIS_PORT },
        }
      : {}),
  });
  const jwks =
    cfg.auth.jwt === undefined ? undefined : readRequired(cfg.auth.jwt.jwksFile, ['auth', 'jwt', 'jwksFile']);
  const serviceFiles = new HostFiles('service-files', {
    target,
    dir: dirs.service,
    root: dataDir,
    group,
    files: [
      // Key hashes are not keys, but the list says who may call: kept out of plain stack state all the same.
      { name: 'config.yaml', content: pulumi.secret(serviceConfig), mode: '0640' },
      { name: 'tls/server.crt', content: tls.certChainPem, mode: '0640' },
      { name: 'tls/server.key', content: tls.keyPem, mode: '0640' },
      { name: 'tls/ca.crt', content: tls.caCertPem, mode: '0640' },
      ...(jwks === undefined ? [] : [{ name: 'jwks.json', content: jwks, mode: '0640' }]),
      // The quota store's password: a file of its own (quotas.redisPasswordFile), not inside config.yaml.
      ...(balanced
        ? [
            {
              name: 'secrets/redis-password',
              content: pulumi.secret(renderRedisPasswordFile(cfg.quotaStorePassword ?? '')),
              mode: '0640',
            },
          ]
        : []),
    ],
  });

  const network = new docker.Network(
    `chatmirror-${stack}`,
    {
      name: `chatmirror-${stack}`,
      driver: 'bridge',
      ipamConfigs: [{ subnet: cfg.serving.networkSubnet }],
      labels: [{ label: 'chatmirror.stack', value: stack }],
    },
    { provider, deleteBeforeReplace: true },
  );

  // ---- firewall ----------------------------------------------------------------------------------------------
  // Before any container that publishes a port: on the first `up` no port is open before the table exists, and on
  // `destroy` the table goes only after the containers it protects.
  let firewall: Firewall | undefined;
  if (cfg.firewall.enabled) {
    firewall = new Firewall('firewall', {
      target,
      rules: {
        stack,
        table: cfg.firewall.table,
        priority: cfg.firewall.priority,
        // The one published API port: the balancer's, or the single replica's.
        apiPorts: [cfg.serving.port],
        adminPorts: [
          ...(cfg.monitoring.enabled ? [cfg.monitoring.prometheusPort] : []),
          ...(grafanaOn ? [cfg.monitoring.grafanaPort] : []),
        ],
        apiCidrs: cfg.firewall.apiCidrs,
        adminCidrs: cfg.firewall.adminCidrs,
      },
    });
  }

  // ---- containers --------------------------------------------------------------------------------------------
  const quotaStore = balanced
    ? new QuotaStore('quota-store', {
        stack,
        target,
        provider,
        image: images.redis!.ref,
        network: network.name,
        configDir: dirs.quotaStore,
        group,
        password: pulumi.secret(cfg.quotaStorePassword ?? ''),
        memoryMb: QUOTA_STORE_MEMORY_MB,
        restart: cfg.serving.restart,
        logMaxSizeMb: cfg.serving.logMaxSizeMb,
        logMaxFiles: cfg.serving.logMaxFiles,
        features,
        dependsOn: [images.redis!, network],
      })
    : undefined;
  const serving = new ServingContainer('serving', {
    stack,
    image: serviceImage.ref,
    replicas: cfg.serving.replicas,
    // Behind the balancer the replicas publish nothing; a single one publishes the API port itself.
    ...(balanced
      ? {}
      : { publish: { bindAddresses: cfg.serving.bindAddresses, hostPort: cfg.serving.port } }),
    network: network.name,
    configDir: dirs.service,
    modelDir,
    modelId,
    user: cfg.serving.user,
    memoryMb: cfg.serving.memoryMb,
    cpus: cfg.serving.cpus,
    pidsLimit: cfg.serving.pidsLimit,
    restart: cfg.serving.restart,
    logMaxSizeMb: cfg.serving.logMaxSizeMb,
    logMaxFiles: cfg.serving.logMaxFiles,
    healthStartPeriodSeconds: cfg.serving.healthStartPeriodSeconds,
    waitTimeoutSeconds: cfg.serving.waitTimeoutSeconds,
    features,
    restartTriggers: createHash('sha256')
      .update(serviceConfig)
      .update(jwks ?? '')
      // A new quota store password is read only at start-up (a hash of 24+ random characters: not reversible).
      .update(balanced ? (cfg.quotaStorePassword ?? '') : '')
      .digest('hex')
      .slice(0, 16),
    provider,
    dependsOn: [
      capacity,
      serviceImage,
      model,
      serviceFiles,
      network,
      ...(firewall ? [firewall] : []),
      ...(quotaStore ? [quotaStore] : []),
    ],
  });
  if (balanced)
    new LoadBalancer('balancer', {
      stack,
      target,
      provider,
      image: images.haproxy!.ref,
      network: network.name,
      configDir: dirs.balancer,
      group,
      bindAddresses: cfg.serving.bindAddresses,
      hostPort: cfg.serving.port,
      replicas: cfg.serving.replicas,
      backendHost: SERVICE_ALIAS,
      backendPort: CONTAINER_API_PORT,
      serverName: SERVICE_ALIAS,
      certChainPem: tls.certChainPem,
      keyPem: tls.keyPem,
      caCertPem: tls.caCertPem,
      serverTimeoutSeconds: 300,
      memoryMb: BALANCER_MEMORY_MB,
      cpus: 1,
      restart: cfg.serving.restart,
      logMaxSizeMb: cfg.serving.logMaxSizeMb,
      logMaxFiles: cfg.serving.logMaxFiles,
      features,
      dependsOn: [images.haproxy!, network, ...serving.containers, ...(firewall ? [firewall] : [])],
    });

  let monitoring: Monitoring | undefined;
  if (cfg.monitoring.enabled) {
    const certMetric = new HostFiles('tls-textfile', {
      target,
      dir: dirs.textfile,
      root: dataDir,
      group,
      dirMode: '2770',
      files: [
        {
          name: 'chatmirror_tls.prom',
          content: tls.notAfter.apply((notAfter) => renderCertificateTextfile({ stack, notAfter })),
          mode: '0644',
        },
      ],
    });
    monitoring = new Monitoring('monitoring', {
      stack,
      target,
      provider,
      network: network.name,
      images: {
        prometheus: images.prometheus!.ref,
        nodeExporter: images.nodeExporter!.ref,
        alertmanager: images.alertmanager!.ref,
        ...(images.grafana === undefined ? {} : { grafana: images.grafana.ref }),
      },
      configDir: dirs.monitoring,
      dataDir,
      textfileDir: dirs.textfile,
      group,
      bindAddresses: cfg.monitoring.bindAddresses,
      prometheusPort: cfg.monitoring.prometheusPort,
      grafanaPort: cfg.monitoring.grafanaPort,
      scrapeIntervalSeconds: cfg.monitoring.scrapeIntervalSeconds,
      retentionDays: cfg.monitoring.retentionDays,
      retentionSizeGb: cfg.monitoring.retentionSizeGb,
      prometheusMemoryMb: cfg.monitoring.prometheusMemoryMb,
      grafanaMemoryMb: cfg.monitoring.grafanaMemoryMb,
      alerts: cfg.monitoring.alerts,
      alertWebhookUrl: cfg.monitoring.alertWebhookUrl,
      benchmarks: cfg.benchmarks.enabled,
      serviceTargets: serving.targets,
      caCertPem: tls.caCertPem,
      metricsToken: pulumi.secret(cfg.metricsToken ?? ''),
      grafanaAdminPassword: pulumi.secret(cfg.grafanaAdminPassword ?? ''),
      dashboards: inputs.dashboards,
      logMaxSizeMb: cfg.serving.logMaxSizeMb,
      logMaxFiles: cfg.serving.logMaxFiles,
      retainData: cfg.monitoring.retainData,
      ...(firewall ? { firewall } : {}),
      after: [
        images.prometheus!,
        images.nodeExporter!,
        images.alertmanager!,
        ...(images.grafana === undefined ? [] : [images.grafana]),
        certMetric,
        network,
      ],
    });
  }

  if (cfg.benchmarks.enabled) {
    new Benchmarks('benchmarks', {
      stack,
      target,
      bench: cfg.benchmarks,
      image: serviceImage.ref,
      network: network.name,
      endpoint: `https://${SERVICE_ALIAS}:8443`,
      modelId,
      user: cfg.serving.user,
      group,
      secretsDir: dirs.bench,
      caCertPem: tls.caCertPem,
      benchToken: pulumi.secret(cfg.benchToken ?? ''),
      historyDir: dirs.history,
      textfileDir: dirs.textfile,
      keepHistory: cfg.monitoring.retainData,
      dataDir,
      dependsOn: [
        ...serving.containers,
        ...(monitoring ? [monitoring] : []),
        ...(firewall ? [firewall] : []),
      ],
    });
  }

  const adminHost = bracket(cfg.monitoring.bindAddresses[0] ?? '127.0.0.1');
  const drift = Object.values(images).map((image) => image!.drift);
  return {
    endpoint,
    caCertificate: tls.caCertPem,
    monitoringUrls: {
      ...(cfg.monitoring.enabled
        ? { prometheus: `http://${adminHost}:${cfg.monitoring.prometheusPort}` }
        : {}),
      ...(grafanaOn ? { grafana: `http://${adminHost}:${cfg.monitoring.grafanaPort}` } : {}),
    },
    imageDigests: Object.fromEntries(needed.map((name) => [name, refs[name]])),
    imageDrift: pulumi.all(drift).apply((all) => all.filter((d) => d !== undefined)),
    capacityReport: capacity.report.table,
    containers: pulumi.all(serving.names),
  };
}

/** The SSH side of a remote target (undefined for a local one), paths expanded on this machine. */
export function sshTargetOf(cfg: StackConfig, projectDir: string): SshTarget | undefined {
  if (cfg.target.kind !== 'ssh') return undefined;
  return {
    host: cfg.target.host ?? '',
    port: cfg.target.port,
    user: cfg.target.user ?? '',
    hostKey: cfg.target.hostKey ?? '',
    ...(cfg.target.privateKeyPath === undefined
      ? {}
      : { privateKeyPath: operatorPath(cfg.target.privateKeyPath, projectDir) }),
  };
}

function expandHome(p: string): string {
  return p.startsWith('~/') ? resolve(homedir(), p.slice(2)) : p;
}

/** A path on the machine running pulumi: `~/` is its home, relative paths are relative to the project. */
function operatorPath(p: string, projectDir: string): string {
  const expanded = expandHome(p);
  return isAbsolute(expanded) ? expanded : resolve(projectDir, expanded);
}

function ownKey(token: string, scopes: string[], configKey: string): ApiKeyEntry {
  const id = apiKeyId(token);
  if (id === undefined)
    throw new Error(`${keyOf([configKey])}: is not a chatmirror API key (cmk_<id>_<secret>)`);
  return { id, hash: hashApiKey(token), scopes };
}

function bracket(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
