/**
 * ServingContainer: the API replicas. Each is a hardened `docker.Container` (read-only root, non-root, no
 * capabilities, no privilege escalation, memory/CPU/process limits, rotated logs) that reads its config and TLS
 * material from a read-only mount and the model from another, joins the private network under the alias the
 * certificate names, and counts as created only once its healthcheck (/ready over HTTPS) passes.
 *
 * Two ways to reach them:
 * - one replica, `publish` given: it publishes its port on the configured addresses itself, under a fixed name;
 *   a change replaces it delete-first (a short gap: there is no second replica to carry the traffic);
 * - behind the load balancer (`publish` absent, any number): nothing is published, and a change rolls them one at
 *   a time. Each name carries a short hash of everything that replaces it, so the old and new container can
 *   exist together: the engine creates the new replica i (healthy before the create completes: `wait`), only
 *   then replica i+1 (it depends on replica i), and deletes the old ones at the end of the update. The balancer
 *   finds them all under the shared alias and sends traffic to the healthy ones.
 */
import { createHash } from 'node:crypto';
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
  /**
   * A single replica that clients reach directly: its port is published on these host addresses. Absent: the
   * replicas sit behind the load balancer, publish nothing and roll one at a time.
   */
  publish?: { bindAddresses: string[]; hostPort: number };
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
  /** Changes that must replace the replicas (the config files' content hash), so a new config is read. */
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
  /** The containers' names: fixed for a published replica, `<logical>-<hash>` behind the balancer. */
  readonly names: pulumi.Output<string>[];
  /** `chatmirror-<stack>-<i>:8443` per replica (a network alias that survives replacement), for Prometheus. */
  readonly targets: string[];

  constructor(name: string, args: ServingContainerArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super('chatmirror:index:ServingContainer', name, {}, opts);
    if (!Number.isInteger(args.replicas) || args.replicas < 1)
      throw new Error(`ServingContainer ${name}: args.replicas must be an integer ≥ 1, got ${args.replicas}`);
    const publish = args.publish;
    if (publish !== undefined) {
      if (args.replicas !== 1)
        throw new Error(
          `ServingContainer ${name}: args.publish is for a single replica; ${args.replicas} replicas need the load balancer in front (leave publish out)`,
        );
      if (publish.bindAddresses.length === 0)
        throw new Error(
          `ServingContainer ${name}: args.publish.bindAddresses is empty; say which host addresses to publish on`,
        );
      if (publish.bindAddresses.includes('0.0.0.0') || publish.bindAddresses.includes('::'))
        pulumi.log.warn(
          `ServingContainer ${name}: args.publish.bindAddresses publishes on every interface`,
          this,
        );
    }
    for (const [arg, path] of [
      ['configDir', args.configDir],
      ['modelDir', args.modelDir],
    ] as const) {
      if (!path.startsWith('/'))
        throw new Error(`ServingContainer ${name}: args.${arg} must be absolute, got ${path}`);
    }

    const logicalNames = Array.from({ length: args.replicas }, (_, i) => `chatmirror-${args.stack}-${i}`);
    this.targets = logicalNames.map((n) => `${n}:${CONTAINER_API_PORT}`);
    this.containers = [];
    for (const [i, logicalName] of logicalNames.entries()) {
      const spec = {
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
        ports: (publish?.bindAddresses ?? []).map((ip) => ({
          internal: CONTAINER_API_PORT,
          external: publish!.hostPort,
          ip,
          protocol: 'tcp',
        })),
        networkMode: args.network,
        // SERVICE_ALIAS: what the balancer resolves (and the certificate names); the logical name: Prometheus's
        // per-replica target, shared by the old and new container while one replaces the other.
        networksAdvanced: [{ name: args.network, aliases: [SERVICE_ALIAS, logicalName] }],
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
      } satisfies Omit<dockerProvider.ContainerArgs, 'name'>;
      const containerName: pulumi.Input<string> =
        publish === undefined
          ? pulumi.output(spec).apply((resolved) => `${logicalName}-${specHash(resolved)}`)
          : logicalName;
      const previous = this.containers[i - 1];
      this.containers.push(
        new dockerProvider.Container(
          logicalName,
          { name: containerName, ...spec },
          {
            parent: this,
            provider: args.provider,
            dependsOn: [...args.dependsOn, ...(previous === undefined ? [] : [previous])],
            // A published replica has a fixed name and host port, which cannot exist twice: remove the old one
            // first. Behind the balancer the new one is created (and healthy) before the old one goes.
            deleteBeforeReplace: publish !== undefined,
          },
        ),
      );
    }
    this.names = this.containers.map((c) => c.name);
    this.registerOutputs({ names: this.names, targets: this.targets });
  }
}

/**
 * 8 hex digits of sha256 over the container's settings (keys sorted): any change that replaces the container
 * changes its name, so the replacement never collides with the container it replaces.
 */
export function specHash(spec: unknown): string {
  return createHash('sha256').update(stableJson(spec)).digest('hex').slice(0, 8);
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (typeof value === 'object' && value !== null)
    return `{${Object.keys(value)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stableJson((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(value) ?? 'null';
}
