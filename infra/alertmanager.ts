/**
 * Alertmanager: receives the alerts Prometheus fires and routes them (render/alertmanager.ts) to the webhook in
 * monitoring.alertWebhookUrl, or to the null receiver. From images/alertmanager (Debian's package on the hardened
 * base), hardened like every container here, one instance (clustering off), on the private network only: no host
 * port. Prometheus reaches it by its container name; an operator through Prometheus's /alerts page or `docker exec
 * chatmirror-<stack>-alertmanager amtool --alertmanager.url=http://127.0.0.1:9093 alert query`. Silences and the
 * notification log are kept on a volume (retained like Prometheus's, monitoring.retainData).
 *
 * A change to its config replaces it delete-first (its hash is a label), as Prometheus's does: Prometheus re-sends
 * every firing alert each minute, so the seconds it takes lose none.
 */
import { createHash } from 'node:crypto';
import type * as docker from '@pulumi/docker';
import * as dockerProvider from '@pulumi/docker';
import * as pulumi from '@pulumi/pulumi';
import { hardenedContainer } from './hardening.js';
import type { HostTarget } from './host.js';
import { HostFiles } from './host-files.js';
import {
  ALERTMANAGER_CONTAINER_PORT,
  ALERTMANAGER_MEMORY_MB,
  renderAlertmanagerConfig,
} from './render/alertmanager.js';

/** The image's runtime user (images/alertmanager/Dockerfile: nobody); it runs with the file group as its group. */
export const ALERTMANAGER_UID = 65534;
const MOUNT = '/etc/alertmanager';
const DATA_DIR = '/alertmanager';

export interface AlertmanagerArgs {
  stack: string;
  target: HostTarget;
  provider: docker.Provider;
  /** repo@sha256:… of the Alertmanager image. */
  image: string;
  network: pulumi.Input<string>;
  /** Host directory for alertmanager.yml (mounted read-only). */
  configDir: string;
  /** The stack's data directory (configDir is inside it): emptied directories up to it go on delete. */
  dataDir?: string | undefined;
  group: number;
  /** monitoring.alertWebhookUrl; undefined: the null receiver. */
  webhookUrl?: string | undefined;
  logMaxSizeMb: number;
  logMaxFiles: number;
  /** Keep the silences and notification log volume when the stack is destroyed. */
  retainData: boolean;
  dependsOn?: pulumi.Input<pulumi.Resource>[];
}

/** The host name (container name and network alias) Prometheus sends alerts to. */
export function alertmanagerHost(stack: string): string {
  return `chatmirror-${stack}-alertmanager`;
}

export class Alertmanager extends pulumi.ComponentResource {
  readonly config: string;
  readonly container: dockerProvider.Container;
  /** `host:port` on the private network (Prometheus's alerting target). */
  readonly address: string;

  constructor(name: string, args: AlertmanagerArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super('chatmirror:index:Alertmanager', name, {}, opts);
    if (!args.configDir.startsWith('/'))
      throw new Error(`Alertmanager ${name}: args.configDir must be absolute, got ${args.configDir}`);

    const host = alertmanagerHost(args.stack);
    this.address = `${host}:${ALERTMANAGER_CONTAINER_PORT}`;
    this.config = renderAlertmanagerConfig({ webhookUrl: args.webhookUrl });
    const files = new HostFiles(
      `${name}-files`,
      {
        target: args.target,
        dir: args.configDir,
        root: args.dataDir,
        group: args.group,
        // A secret: a webhook URL often carries a token.
        files: [{ name: 'alertmanager.yml', content: pulumi.secret(this.config), mode: '0640' }],
      },
      { parent: this },
    );
    const data = new dockerProvider.Volume(
      `${host}-data`,
      { name: `${host}-data`, labels: [{ label: 'chatmirror.stack', value: args.stack }] },
      { parent: this, provider: args.provider, retainOnDelete: args.retainData },
    );
    // Its hash (of a URL that may carry a token: truncated, not reversible in practice) is a label, so a change
    // replaces the container.
    const configHash = createHash('sha256').update(this.config).digest('hex').slice(0, 16);

    this.container = new dockerProvider.Container(
      host,
      {
        name: host,
        image: args.image,
        command: [
          `--config.file=${MOUNT}/alertmanager.yml`,
          `--storage.path=${DATA_DIR}`,
          // One instance: no gossip port (the image's default too).
          '--cluster.listen-address=',
          `--web.listen-address=:${ALERTMANAGER_CONTAINER_PORT}`,
          '--data.retention=120h',
        ],
        ...hardenedContainer({
          user: `${ALERTMANAGER_UID}:${args.group}`,
          memoryMb: ALERTMANAGER_MEMORY_MB,
          cpus: 0.5,
          // RLIMIT_NPROC counts every task of uid 65534, which Prometheus and node-exporter share.
          pidsLimit: 256,
          logMaxSizeMb: args.logMaxSizeMb,
          logMaxFiles: args.logMaxFiles,
        }),
        mounts: [
          { type: 'bind', source: args.configDir, target: MOUNT, readOnly: true },
          // Docker copies the image's /alertmanager (owned by 65534) into a new named volume.
          { type: 'volume', source: data.name, target: DATA_DIR },
        ],
        // No ports: Prometheus reaches it on the private network.
        networkMode: args.network,
        networksAdvanced: [{ name: args.network, aliases: [host] }],
        restart: 'unless-stopped',
        healthcheck: {
          tests: [
            'CMD',
            'wget',
            '-q',
            '-O',
            '/dev/null',
            `http://127.0.0.1:${ALERTMANAGER_CONTAINER_PORT}/-/ready`,
          ],
          interval: '15s',
          timeout: '5s',
          retries: 3,
          startPeriod: '20s',
        },
        wait: true,
        waitTimeout: 60,
        labels: [
          { label: 'chatmirror.stack', value: args.stack },
          { label: 'chatmirror.role', value: 'alertmanager' },
          { label: 'chatmirror.config-sha256', value: configHash },
        ],
      },
      {
        parent: this,
        provider: args.provider,
        deleteBeforeReplace: true,
        dependsOn: [...(args.dependsOn ?? []), files],
      },
    );
    this.registerOutputs({ address: this.address });
  }
}
