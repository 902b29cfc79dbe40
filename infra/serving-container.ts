/**
 * ServingContainer: the API replicas. Each is a hardened `docker.Container` (read-only root, non-root, no
 * capabilities, no privilege escalation, memory/CPU/process limits, rotated logs) that reads its config and TLS
 * material from a read-only mount and the model from another, publishes its port on the configured addresses
 * only, joins the private network under the alias the certificate names, and counts as created only once its
 * healthcheck (/ready over HTTPS) passes.
 */
import type * as docker from '@pulumi/docker';
import * as dockerProvider from '@pulumi/docker';
import * as pulumi from '@pulumi/pulumi';
import { CONTAINER_API_PORT } from './config.js';
import { hardenedContainer } from './hardening.js';
import type { ContainerFeatures } from './render/daemon.js';
import { SERVICE_PATHS } from './render/service-config.js';
import { SERVICE_ALIAS } from './render/tls.js';

export interface ServingContainerArgs {
  stack: string;
  /** repo@sha256:… */
  image: string;
  replicas: number;
  /** Host addresses to publish on; replica i publishes hostPort + i on each. */
  bindAddresses: string[];
  hostPort: number;
  network: pulumi.Input<string>;
  /** Host directory with config.yaml, tls/ and jwks.json (mounted read-only at /etc/chatmirror). */
  configDir: string;
  /** Host model directory (mounted read-only at /models/<modelId>). */
  modelDir: string;
  modelId: string;
  user: string;
  memoryMb: number;
  cpus: number;
  pidsLimit: number;
  restart: 'unless-stopped' | 'always' | 'on-failure';
  logMaxSizeMb: number;
  logMaxFiles: number;
  healthStartPeriodSeconds: number;
  waitTimeoutSeconds: number;
  /** What the target daemon grants (render/daemon.ts): healthcheck start interval, nofile limit. */
  features: ContainerFeatures;
  /** Changes that must restart the replicas (the config files' content hash), so a new config is read. */
  restartTriggers?: pulumi.Input<string>;
  provider: docker.Provider;
  /** What must exist before a replica starts: verified image and model, written config files. */
  dependsOn: pulumi.Input<pulumi.Resource>[];
}

/** The image's entrypoint is `node dist/service/cli.js`; this is its argument list. */
export const SERVE_COMMAND = ['serve', '--config', SERVICE_PATHS.configFile];

/**
 * /ready over HTTPS, verified against the stack CA under the certificate's in-network name: green only when the
 * model is loaded and the server is not draining. Node is the one tool the image certainly has.
 */
export const HEALTHCHECK_SCRIPT = [
  "const fs=require('fs'),https=require('https');",
  `https.get({host:'127.0.0.1',port:${CONTAINER_API_PORT},path:'/ready',servername:'${SERVICE_ALIAS}',`,
  `ca:fs.readFileSync('${SERVICE_PATHS.caFile}'),timeout:4000},`,
  "r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1));",
].join('');

export class ServingContainer extends pulumi.ComponentResource {
  readonly containers: dockerProvider.Container[];
  readonly names: string[];
  /** `alias-or-name:8443` per replica, for Prometheus. */
  readonly targets: string[];

  constructor(name: string, args: ServingContainerArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super('chatmirror:index:ServingContainer', name, {}, opts);
    if (!Number.isInteger(args.replicas) || args.replicas < 1)
      throw new Error(`ServingContainer ${name}: args.replicas must be an integer ≥ 1, got ${args.replicas}`);
    if (args.bindAddresses.length === 0)
      throw new Error(
        `ServingContainer ${name}: args.bindAddresses is empty; say which host addresses to publish on`,
      );
    if (args.bindAddresses.includes('0.0.0.0') || args.bindAddresses.includes('::'))
      pulumi.log.warn(`ServingContainer ${name}: args.bindAddresses publishes on every interface`, this);
    for (const [arg, path] of [
      ['configDir', args.configDir],
      ['modelDir', args.modelDir],
    ] as const) {
      if (!path.startsWith('/'))
        throw new Error(`ServingContainer ${name}: args.${arg} must be absolute, got ${path}`);
    }

    this.names = Array.from({ length: args.replicas }, (_, i) => `chatmirror-${args.stack}-${i}`);
    this.targets = this.names.map((n) => `${n}:${CONTAINER_API_PORT}`);
    this.containers = this.names.map(
      (containerName, i) =>
        new dockerProvider.Container(
          containerName,
          {
            name: containerName,
            image: args.image,
            command: SERVE_COMMAND,
            envs: [`CHATMIRROR_CONFIG=${SERVICE_PATHS.configFile}`, 'NODE_ENV=production'],
            ...hardenedContainer({
              user: args.user,
              memoryMb: args.memoryMb,
              cpus: args.cpus,
              pidsLimit: args.pidsLimit,
              logMaxSizeMb: args.logMaxSizeMb,
              logMaxFiles: args.logMaxFiles,
              nofile: args.features.nofile,
              tmpfs: { '/tmp': 256 },
            }),
            mounts: [
              { type: 'bind', source: args.configDir, target: SERVICE_PATHS.configDir, readOnly: true },
              {
                type: 'bind',
                source: args.modelDir,
                target: `${SERVICE_PATHS.modelsDir}/${args.modelId}`,
                readOnly: true,
              },
            ],
            ports: args.bindAddresses.map((ip) => ({
              internal: CONTAINER_API_PORT,
              external: args.hostPort + i,
              ip,
              protocol: 'tcp',
            })),
            networkMode: args.network,
            networksAdvanced: [{ name: args.network, aliases: [SERVICE_ALIAS, containerName] }],
            restart: args.restart,
            ...(args.restart === 'on-failure' ? { maxRetryCount: 5 } : {}),
            healthcheck: {
              tests: ['CMD', 'node', '-e', HEALTHCHECK_SCRIPT],
              interval: '15s',
              timeout: '5s',
              retries: 3,
              startPeriod: `${args.healthStartPeriodSeconds}s`,
              // Probes every 2 s during the start period (ready in seconds, not after a 15 s interval); only
              // where the daemon's API has it (1.44+), else the create fails.
              ...(args.features.healthStartInterval ? { startInterval: '2s' } : {}),
            },
            wait: true,
            waitTimeout: args.waitTimeoutSeconds,
            stopSignal: 'SIGTERM',
            // The service drains for up to 30 s (server.shutdownGraceMs); give it that and a little more.
            stopTimeout: 40,
            destroyGraceSeconds: 40,
            labels: [
              { label: 'chatmirror.stack', value: args.stack },
              { label: 'chatmirror.role', value: 'api' },
              { label: 'chatmirror.replica', value: String(i) },
              ...(args.restartTriggers === undefined
                ? []
                : [{ label: 'chatmirror.config-sha256', value: args.restartTriggers }]),
            ],
          },
          // A fixed container name and host port cannot exist twice: remove the old replica before its successor.
          { parent: this, provider: args.provider, deleteBeforeReplace: true, dependsOn: args.dependsOn },
        ),
    );
    this.registerOutputs({ names: this.names, targets: this.targets });
  }
}
