/**
 * LoadBalancer: HAProxy (images/haproxy: Debian's package on the hardened base, entrypoint /usr/sbin/haproxy) in
 * front of the API replicas, the one container that publishes the API port. It terminates TLS with the stack's
 * server certificate, re-encrypts to the replicas (verified against the stack CA under the certificate's in-network
 * name), finds them through Docker's DNS under their shared alias, health-checks /ready, and retries a request a
 * replica refused or a draining one turned away on another replica (render/haproxy.ts says why).
 *
 * Its files (haproxy.cfg, the certificate chain + key, the CA) change without replacing it: a host command sends
 * HAProxy's master SIGUSR2 whenever their hash changes, and it reloads them with no dropped connection (a bad new
 * file leaves the running workers serving). Only a change to the container itself (image, port, limits) replaces
 * it, delete-first, since its host port cannot be bound twice: a gap of a few seconds.
 */
import { createHash } from 'node:crypto';
import type * as docker from '@pulumi/docker';
import * as dockerProvider from '@pulumi/docker';
import * as pulumi from '@pulumi/pulumi';
import { hardenedContainer } from './hardening.js';
import { type HostTarget, hostCommand } from './host.js';
import { HostFiles } from './host-files.js';
import type { ContainerFeatures } from './render/daemon.js';
import { HAPROXY_HEALTH_URI, renderHaproxyConfig } from './render/haproxy.js';
import { shq } from './render/shell.js';

/** The image's runtime user (images/haproxy/Dockerfile); it runs with the file group as its group. */
export const HAPROXY_UID = 99;
/** Inside the container; published on the host's serving.port. */
export const BALANCER_PORT = 8443;
/** The balancer's own health endpoint (127.0.0.1 inside its container; the image's HEALTHCHECK uses it). */
export const BALANCER_HEALTH_PORT = 8404;
const MOUNT = '/etc/haproxy/stack';

export interface LoadBalancerArgs {
  stack: string;
  target: HostTarget;
  provider: docker.Provider;
  /** repo@sha256:… of the HAProxy image. */
  image: string;
  network: pulumi.Input<string>;
  /** Host directory for haproxy.cfg and the TLS files (mounted read-only). */
  configDir: string;
  group: number;
  /** Host addresses the API port is published on. */
  bindAddresses: string[];
  hostPort: number;
  /** How many replicas there are (the balancer keeps slots for twice as many: old and new during a roll). */
  replicas: number;
  /** The alias every replica carries and the name their certificate is verified against. */
  backendHost: string;
  backendPort: number;
  serverName: string;
  /** What clients are served: the server certificate chain and its key, and the CA the replicas are checked with. */
  certChainPem: pulumi.Input<string>;
  keyPem: pulumi.Input<string>;
  caCertPem: pulumi.Input<string>;
  /** How long a response may take to start, and a stream may stay silent, in s. */
  serverTimeoutSeconds: number;
  memoryMb: number;
  cpus: number;
  restart: 'unless-stopped' | 'always' | 'on-failure';
  logMaxSizeMb: number;
  logMaxFiles: number;
  features: ContainerFeatures;
  /** Created after these (the replicas): its healthcheck passes only once one of them is ready. */
  dependsOn: pulumi.Input<pulumi.Resource>[];
}

export class LoadBalancer extends pulumi.ComponentResource {
  readonly container: dockerProvider.Container;
  readonly name: string;
  readonly haproxyConfig: string;

  constructor(name: string, args: LoadBalancerArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super('chatmirror:index:LoadBalancer', name, {}, opts);
    if (args.bindAddresses.length === 0)
      throw new Error(
        `LoadBalancer ${name}: args.bindAddresses is empty; say which host addresses to publish on`,
      );
    if (args.bindAddresses.includes('0.0.0.0') || args.bindAddresses.includes('::'))
      pulumi.log.warn(`LoadBalancer ${name}: args.bindAddresses publishes on every interface`, this);
    if (!args.configDir.startsWith('/'))
      throw new Error(`LoadBalancer ${name}: args.configDir must be absolute, got ${args.configDir}`);
    if (!Number.isInteger(args.replicas) || args.replicas < 1)
      throw new Error(`LoadBalancer ${name}: args.replicas must be an integer ≥ 1, got ${args.replicas}`);

    this.name = `chatmirror-${args.stack}-balancer`;
    const hardStopAfterSeconds = 45;
    this.haproxyConfig = renderHaproxyConfig({
      listenPort: BALANCER_PORT,
      backendHost: args.backendHost,
      backendPort: args.backendPort,
      slots: 2 * args.replicas,
      serverName: args.serverName,
      certFile: `${MOUNT}/tls/server.pem`,
      caFile: `${MOUNT}/tls/ca.crt`,
      healthPort: BALANCER_HEALTH_PORT,
      serverTimeoutSeconds: args.serverTimeoutSeconds,
      hardStopAfterSeconds,
    });

    const serverPem = pulumi.secret(
      pulumi
        .all([args.certChainPem, args.keyPem])
        .apply(([chain, key]) => `${chain.trimEnd()}\n${key.trimEnd()}\n`),
    );
    const files = new HostFiles(
      `${name}-files`,
      {
        target: args.target,
        dir: args.configDir,
        group: args.group,
        files: [
          { name: 'haproxy.cfg', content: this.haproxyConfig, mode: '0640' },
          { name: 'tls/server.pem', content: serverPem, mode: '0640' },
          { name: 'tls/ca.crt', content: args.caCertPem, mode: '0640' },
        ],
      },
      { parent: this },
    );

    this.container = new dockerProvider.Container(
      this.name,
      {
        name: this.name,
        image: args.image,
        // The image's entrypoint is /usr/sbin/haproxy: master-worker in the foreground, our file.
        command: ['-W', '-db', '-f', `${MOUNT}/haproxy.cfg`],
        ...hardenedContainer({
          user: `${HAPROXY_UID}:${args.group}`,
          memoryMb: args.memoryMb,
          cpus: args.cpus,
          pidsLimit: 64,
          logMaxSizeMb: args.logMaxSizeMb,
          logMaxFiles: args.logMaxFiles,
          nofile: args.features.nofile,
          tmpfs: { '/tmp': 16 },
        }),
        mounts: [{ type: 'bind', source: args.configDir, target: MOUNT, readOnly: true }],
        ports: args.bindAddresses.map((ip) => ({
          internal: BALANCER_PORT,
          external: args.hostPort,
          ip,
          protocol: 'tcp',
        })),
        networkMode: args.network,
        // Its own alias only: never the replicas' (it would resolve itself as a backend).
        networksAdvanced: [{ name: args.network, aliases: [this.name] }],
        restart: args.restart,
        ...(args.restart === 'on-failure' ? { maxRetryCount: 5 } : {}),
        healthcheck: {
          tests: [
            'CMD',
            'wget',
            '-q',
            '-O',
            '/dev/null',
            `http://127.0.0.1:${BALANCER_HEALTH_PORT}${HAPROXY_HEALTH_URI}`,
          ],
          interval: '10s',
          timeout: '5s',
          retries: 3,
          startPeriod: '10s',
          ...(args.features.healthStartInterval ? { startInterval: '1s' } : {}),
        },
        wait: true,
        waitTimeout: 120,
        // A soft stop: HAProxy stops listening and lets open connections finish (up to hard-stop-after).
        stopSignal: 'SIGUSR1',
        stopTimeout: hardStopAfterSeconds + 5,
        destroyGraceSeconds: hardStopAfterSeconds + 5,
        labels: [
          { label: 'chatmirror.stack', value: args.stack },
          { label: 'chatmirror.role', value: 'balancer' },
        ],
      },
      {
        parent: this,
        provider: args.provider,
        deleteBeforeReplace: true,
        dependsOn: [...args.dependsOn, files],
      },
    );

    // New files, same container: HAProxy's master reloads them on SIGUSR2 (the new workers take over, the old
    // ones finish their connections). Triggers: the files' hash, so it runs exactly when they change.
    const filesHash = pulumi
      .all([this.haproxyConfig, serverPem, args.caCertPem])
      .apply((parts) => createHash('sha256').update(parts.join('\0')).digest('hex'));
    hostCommand(
      `${name}-reload`,
      args.target,
      {
        create: `docker kill --signal USR2 ${shq(this.name)} >/dev/null`,
        triggers: [filesHash],
      },
      { parent: this, dependsOn: [this.container, files] },
    );
    this.registerOutputs({ name: this.name });
  }
}
