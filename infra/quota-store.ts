/**
 * QuotaStore: the Redis the replicas keep their quota counters in (quotas.store redis), so a client's limits
 * hold across replicas instead of multiplying by their number. Redis from images/redis (Debian's package on the
 * hardened base, entrypoint /usr/bin/redis-server), hardened like every container here, on the private network
 * only: no host port. Its whole config, password included, is a secret file mounted read-only (render/redis.ts);
 * nothing is persisted and its only writable paths are small tmpfs mounts.
 *
 * A change to its config (a new password) replaces it delete-first, since replicas find it by one fixed name:
 * for the second or so it takes to start, generation requests get 503 quota_store_unavailable, and the counters
 * of the current minute are forgotten.
 */
import { createHash } from 'node:crypto';
import type * as docker from '@pulumi/docker';
import * as dockerProvider from '@pulumi/docker';
import * as pulumi from '@pulumi/pulumi';
import { hardenedContainer } from './hardening.js';
import type { HostTarget } from './host.js';
import { HostFiles } from './host-files.js';
import type { ContainerFeatures } from './render/daemon.js';
import { renderRedisConfig } from './render/redis.js';

/** The image's runtime user (images/redis/Dockerfile); it runs with the file group as its group. */
export const REDIS_UID = 999;
export const REDIS_PORT = 6379;
const MOUNT = '/etc/redis/stack';
const DATA_DIR = '/data';

export interface QuotaStoreArgs {
  stack: string;
  target: HostTarget;
  provider: docker.Provider;
  /** repo@sha256:… of the Redis image. */
  image: string;
  network: pulumi.Input<string>;
  /** Host directory for redis.conf (mounted read-only). */
  configDir: string;
  group: number;
  /** From the secret config key quotaStorePassword. */
  password: pulumi.Input<string>;
  memoryMb: number;
  restart: 'unless-stopped' | 'always' | 'on-failure';
  logMaxSizeMb: number;
  logMaxFiles: number;
  features: ContainerFeatures;
  dependsOn: pulumi.Input<pulumi.Resource>[];
}

/** The host name (container name and network alias) replicas connect to. */
export function quotaStoreHost(stack: string): string {
  return `chatmirror-${stack}-redis`;
}

export class QuotaStore extends pulumi.ComponentResource {
  readonly container: dockerProvider.Container;
  readonly host: string;
  readonly port = REDIS_PORT;

  constructor(name: string, args: QuotaStoreArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super('chatmirror:index:QuotaStore', name, {}, opts);
    if (!args.configDir.startsWith('/'))
      throw new Error(`QuotaStore ${name}: args.configDir must be absolute, got ${args.configDir}`);
    if (!Number.isInteger(args.memoryMb) || args.memoryMb < 64)
      throw new Error(`QuotaStore ${name}: args.memoryMb must be an integer ≥ 64, got ${args.memoryMb}`);

    this.host = quotaStoreHost(args.stack);
    // Keys get half the container's memory; the rest is Redis itself, its buffers and the healthcheck's client.
    const config = pulumi.secret(
      pulumi.output(args.password).apply((password) =>
        renderRedisConfig({
          password,
          port: REDIS_PORT,
          maxMemoryMb: Math.floor(args.memoryMb / 2),
          dir: DATA_DIR,
        }),
      ),
    );
    const files = new HostFiles(
      `${name}-files`,
      {
        target: args.target,
        dir: args.configDir,
        group: args.group,
        files: [{ name: 'redis.conf', content: config, mode: '0640' }],
      },
      { parent: this },
    );
    // A new config must be read by a new process: its hash (of a 24+ character random password: not reversible)
    // is a label, so a change replaces the container.
    const configHash = config.apply((text) => createHash('sha256').update(text).digest('hex').slice(0, 16));

    this.container = new dockerProvider.Container(
      this.host,
      {
        name: this.host,
        image: args.image,
        // The image's entrypoint is /usr/bin/redis-server; its one argument is our config file.
        command: [`${MOUNT}/redis.conf`],
        ...hardenedContainer({
          user: `${REDIS_UID}:${args.group}`,
          memoryMb: args.memoryMb,
          cpus: 0.5,
          pidsLimit: 64,
          logMaxSizeMb: args.logMaxSizeMb,
          logMaxFiles: args.logMaxFiles,
          nofile: args.features.nofile,
          tmpfs: { [DATA_DIR]: 16, '/tmp': 16 },
        }),
        mounts: [{ type: 'bind', source: args.configDir, target: MOUNT, readOnly: true }],
        // No ports: only containers on the private network reach it.
        networkMode: args.network,
        networksAdvanced: [{ name: args.network, aliases: [this.host] }],
        restart: args.restart,
        ...(args.restart === 'on-failure' ? { maxRetryCount: 5 } : {}),
        healthcheck: {
          // Up and serving, without the password: an authenticating server answers NOAUTH.
          tests: [
            'CMD',
            'sh',
            '-c',
            `redis-cli --no-auth-warning -h 127.0.0.1 -p ${REDIS_PORT} ping | grep -Eq '^(PONG|NOAUTH)'`,
          ],
          interval: '10s',
          timeout: '5s',
          retries: 3,
          startPeriod: '10s',
          ...(args.features.healthStartInterval ? { startInterval: '1s' } : {}),
        },
        wait: true,
        waitTimeout: 60,
        stopTimeout: 10,
        destroyGraceSeconds: 10,
        labels: [
          { label: 'chatmirror.stack', value: args.stack },
          { label: 'chatmirror.role', value: 'quota-store' },
          { label: 'chatmirror.config-sha256', value: configHash },
        ],
      },
      {
        parent: this,
        provider: args.provider,
        deleteBeforeReplace: true,
        dependsOn: [...args.dependsOn, files],
      },
    );
    this.registerOutputs({ host: this.host });
  }
}
