/**
 * Monitoring: Prometheus (scrape config and alert rules rendered by render/, TSDB on a volume with retention by
 * time and size), node-exporter (host metrics plus the textfile collector the certificate and benchmark series
 * land in), Alertmanager (alertmanager.ts: where Prometheus sends the alerts it fires) and Grafana (provisioned
 * datasource and the dashboards from monitoring/, admin password from a secret file, data on a volume). All share
 * the private network with the service; Prometheus and Grafana are published on the admin addresses only,
 * node-exporter and Alertmanager not at all.
 */
import { createHash } from 'node:crypto';
import type * as docker from '@pulumi/docker';
import * as dockerProvider from '@pulumi/docker';
import * as pulumi from '@pulumi/pulumi';
import { Alertmanager } from './alertmanager.js';
import type { AlertThresholds } from './config.js';
import { hardenedContainer } from './hardening.js';
import { type HostTarget, hostCommand } from './host.js';
import { HostFiles } from './host-files.js';
import { renderAlertRules } from './render/alerts.js';
import { type DashboardFile, renderDashboardProvider, renderDatasources } from './render/grafana.js';
import { PROMETHEUS_CONTAINER_PORT, renderPrometheusConfig } from './render/prometheus.js';
import { grafanaPasswordScript } from './render/shell.js';
import { SERVICE_ALIAS } from './render/tls.js';

export const GRAFANA_CONTAINER_PORT = 3000;
export const NODE_EXPORTER_PORT = 9100;
const PROMETHEUS_UID = 65534; // the image's `nobody`
const GRAFANA_UID = 472; // the image's `grafana`
const NODE_EXPORTER_UID = 65534;

export interface MonitoringArgs {
  stack: string;
  target: HostTarget;
  provider: docker.Provider;
  network: pulumi.Input<string>;
  /** grafana absent: no Grafana (its files, volume and container are not declared). */
  images: { prometheus: string; nodeExporter: string; alertmanager: string; grafana?: string };
  /** Host directory for Prometheus and Grafana config (sub-directories prometheus/ and grafana/). */
  configDir: string;
  /** The stack's data directory (configDir is inside it): emptied directories up to it go on delete. */
  dataDir?: string;
  /** Host directory node-exporter's textfile collector reads. */
  textfileDir: string;
  /** Group every file and container shares. */
  group: number;
  bindAddresses: string[];
  prometheusPort: number;
  grafanaPort: number;
  scrapeIntervalSeconds: number;
  retentionDays: number;
  retentionSizeGb: number;
  prometheusMemoryMb: number;
  grafanaMemoryMb: number;
  alerts: AlertThresholds;
  /** monitoring.alertWebhookUrl: where Alertmanager sends alerts; undefined: nowhere (the null receiver). */
  alertWebhookUrl?: string | undefined;
  benchmarks: boolean;
  /** `name:8443` of each service replica. */
  serviceTargets: string[];
  caCertPem: pulumi.Input<string>;
  metricsToken: pulumi.Input<string>;
  grafanaAdminPassword: pulumi.Input<string>;
  dashboards: DashboardFile[];
  logMaxSizeMb: number;
  logMaxFiles: number;
  /** Keep the Prometheus (and Grafana) data volumes when the stack is destroyed. */
  retainData: boolean;
  /** The host firewall, when there is one: Prometheus and Grafana publish their ports only once it is in place. */
  firewall?: pulumi.Resource;
  /**
   * What every container here waits for (its image, the network, the certificate metric file): a component's
   * own dependsOn does not reach the resources it creates, so they are passed down.
   */
  after?: pulumi.Resource[];
}

export class Monitoring extends pulumi.ComponentResource {
  readonly prometheusConfig: string;
  readonly alertRules: string;
  readonly alertmanager: Alertmanager;
  readonly containers: dockerProvider.Container[];

  constructor(name: string, args: MonitoringArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super('chatmirror:index:Monitoring', name, {}, opts);
    if (args.serviceTargets.length === 0) throw new Error(`Monitoring ${name}: args.serviceTargets is empty`);
    if (args.bindAddresses.length === 0) throw new Error(`Monitoring ${name}: args.bindAddresses is empty`);
    if (args.dashboards.length === 0) throw new Error(`Monitoring ${name}: args.dashboards is empty`);
    if (args.prometheusPort === args.grafanaPort)
      throw new Error(
        `Monitoring ${name}: args.prometheusPort and args.grafanaPort are both ${args.grafanaPort}`,
      );

    const parent = { parent: this };
    // What every container waits for: the firewall before any port is published, and what `after` names.
    const waitFor = [...(args.after ?? []), ...(args.firewall === undefined ? [] : [args.firewall])];
    const onHost = { parent: this, provider: args.provider };
    const prefix = `chatmirror-${args.stack}`;
    const nodeExporterName = `${prefix}-node-exporter`;
    const prometheusName = `${prefix}-prometheus`;
    const grafanaName = `${prefix}-grafana`;

    this.alertmanager = new Alertmanager(
      'alertmanager',
      {
        stack: args.stack,
        target: args.target,
        provider: args.provider,
        image: args.images.alertmanager,
        network: args.network,
        configDir: `${args.configDir}/alertmanager`,
        dataDir: args.dataDir,
        group: args.group,
        webhookUrl: args.alertWebhookUrl,
        logMaxSizeMb: args.logMaxSizeMb,
        logMaxFiles: args.logMaxFiles,
        retainData: args.retainData,
        dependsOn: waitFor,
      },
      parent,
    );
    this.prometheusConfig = renderPrometheusConfig({
      stack: args.stack,
      scrapeIntervalSeconds: args.scrapeIntervalSeconds,
      serviceTargets: args.serviceTargets,
      serverName: SERVICE_ALIAS,
      caFile: '/etc/prometheus/tls/ca.crt',
      tokenFile: '/etc/prometheus/secrets/metrics-token',
      ruleFiles: ['/etc/prometheus/rules/*.yml'],
      nodeExporterTarget: `${nodeExporterName}:${NODE_EXPORTER_PORT}`,
      alertmanagerTargets: [this.alertmanager.address],
    });
    this.alertRules = renderAlertRules(args.alerts, {
      benchmarks: args.benchmarks,
      intervalSeconds: args.scrapeIntervalSeconds,
    });

    const prometheusDir = `${args.configDir}/prometheus`;
    const grafanaDir = `${args.configDir}/grafana`;
    const prometheusFiles = new HostFiles(
      'prometheus-files',
      {
        target: args.target,
        dir: prometheusDir,
        root: args.dataDir,
        group: args.group,
        files: [
          { name: 'prometheus.yml', content: this.prometheusConfig, mode: '0640' },
          { name: 'rules/chatmirror.yml', content: this.alertRules, mode: '0640' },
          { name: 'tls/ca.crt', content: args.caCertPem, mode: '0640' },
          { name: 'secrets/metrics-token', content: pulumi.secret(args.metricsToken), mode: '0640' },
        ],
      },
      parent,
    );
    const prometheusData = new dockerProvider.Volume(
      `${prometheusName}-data`,
      { name: `${prometheusName}-data`, labels: [{ label: 'chatmirror.stack', value: args.stack }] },
      { ...onHost, retainOnDelete: args.retainData },
    );
    const log = { logMaxSizeMb: args.logMaxSizeMb, logMaxFiles: args.logMaxFiles };
    const network = (alias: string) => ({
      networkMode: args.network,
      networksAdvanced: [{ name: args.network, aliases: [alias] }],
    });
    const published = (internal: number, external: number) =>
      args.bindAddresses.map((ip) => ({ internal, external, ip, protocol: 'tcp' }));
    const labels = (role: string) => [
      { label: 'chatmirror.stack', value: args.stack },
      { label: 'chatmirror.role', value: role },
    ];

    const nodeExporter = new dockerProvider.Container(
      nodeExporterName,
      {
        name: nodeExporterName,
        image: args.images.nodeExporter,
        command: [
          '--collector.textfile.directory=/textfile',
          '--collector.filesystem.mount-points-exclude=^/(dev|proc|sys|run|var/lib/docker/.+)($|/)',
        ],
        ...hardenedContainer({
          user: `${NODE_EXPORTER_UID}:${args.group}`,
          memoryMb: 128,
          cpus: 0.5,
          pidsLimit: 64,
          ...log,
        }),
        // No host PID namespace and no bind of the host's `/` (the policy pack forbids both): CPU, memory, load
        // and network are the host's anyway (/proc/stat, /proc/meminfo, /proc/loadavg are not namespaced), and
        // the filesystem that matters, the stack's data directory, is bound read-only so its free space is
        // reported (mountpoint /host/data). No host network: Prometheus reaches it on the private network and
        // nothing publishes it.
        mounts: [
          ...(args.dataDir === undefined
            ? []
            : [{ type: 'bind', source: args.dataDir, target: '/host/data', readOnly: true }]),
          { type: 'bind', source: args.textfileDir, target: '/textfile', readOnly: true },
        ],
        ...network(nodeExporterName),
        restart: 'unless-stopped',
        healthcheck: {
          tests: ['CMD', 'wget', '-q', '-O', '/dev/null', `http://127.0.0.1:${NODE_EXPORTER_PORT}/`],
          interval: '15s',
          timeout: '5s',
          retries: 3,
          startPeriod: '10s',
        },
        labels: labels('node-exporter'),
      },
      { ...onHost, deleteBeforeReplace: true, dependsOn: waitFor },
    );
    const prometheus = new dockerProvider.Container(
      prometheusName,
      {
        name: prometheusName,
        image: args.images.prometheus,
        command: [
          '--config.file=/etc/prometheus/prometheus.yml',
          '--storage.tsdb.path=/prometheus',
          `--storage.tsdb.retention.time=${args.retentionDays}d`,
          `--storage.tsdb.retention.size=${args.retentionSizeGb}GB`,
          '--web.listen-address=:9090',
        ],
        ...hardenedContainer({
          user: `${PROMETHEUS_UID}:${args.group}`,
          memoryMb: args.prometheusMemoryMb,
          cpus: 1,
          pidsLimit: 256,
          ...log,
        }),
        mounts: [
          { type: 'bind', source: prometheusDir, target: '/etc/prometheus', readOnly: true },
          { type: 'volume', source: prometheusData.name, target: '/prometheus' },
        ],
        ports: published(PROMETHEUS_CONTAINER_PORT, args.prometheusPort),
        ...network(prometheusName),
        restart: 'unless-stopped',
        healthcheck: {
          tests: ['CMD', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:9090/-/ready'],
          interval: '15s',
          timeout: '5s',
          retries: 3,
          startPeriod: '30s',
        },
        wait: true,
        waitTimeout: 120,
        labels: [
          ...labels('prometheus'),
          { label: 'chatmirror.config-sha256', value: sha256Label(this.prometheusConfig + this.alertRules) },
        ],
      },
      {
        ...onHost,
        deleteBeforeReplace: true,
        dependsOn: [prometheusFiles, nodeExporter, this.alertmanager.container, ...waitFor],
      },
    );
    this.containers = [nodeExporter, prometheus];
    // Grafana only with an image: Debian has no package of it, so the offline image build cannot make one.
    const grafanaImage = args.images.grafana;
    if (grafanaImage !== undefined) {
      const grafanaFiles = new HostFiles(
        'grafana-files',
        {
          target: args.target,
          dir: grafanaDir,
          root: args.dataDir,
          group: args.group,
          files: [
            {
              name: 'provisioning/datasources/prometheus.yml',
              content: renderDatasources({
                prometheusUrl: `http://${prometheusName}:${PROMETHEUS_CONTAINER_PORT}`,
                scrapeIntervalSeconds: args.scrapeIntervalSeconds,
              }),
              mode: '0640',
            },
            {
              name: 'provisioning/dashboards/chatmirror.yml',
              content: renderDashboardProvider({ path: '/etc/grafana/dashboards' }),
              mode: '0640',
            },
            ...args.dashboards.map((d) => ({
              name: `dashboards/${d.name}`,
              content: d.content,
              mode: '0640',
            })),
            {
              name: 'secrets/admin-password',
              content: pulumi.secret(args.grafanaAdminPassword),
              mode: '0640',
            },
          ],
        },
        parent,
      );

      const grafanaData = new dockerProvider.Volume(
        `${grafanaName}-data`,
        { name: `${grafanaName}-data`, labels: [{ label: 'chatmirror.stack', value: args.stack }] },
        { ...onHost, retainOnDelete: args.retainData },
      );
      const grafana = new dockerProvider.Container(
        grafanaName,
        {
          name: grafanaName,
          image: grafanaImage,
          envs: [
            'GF_PATHS_PROVISIONING=/etc/grafana/provisioning',
            // Logs to stdout only: the root filesystem is read-only, and Docker rotates stdout (json-file).
            'GF_LOG_MODE=console',
            'GF_SECURITY_ADMIN_PASSWORD__FILE=/etc/grafana/secrets/admin-password',
            'GF_SECURITY_DISABLE_GRAVATAR=true',
            'GF_AUTH_ANONYMOUS_ENABLED=false',
            'GF_USERS_ALLOW_SIGN_UP=false',
            'GF_ANALYTICS_REPORTING_ENABLED=false',
            'GF_ANALYTICS_CHECK_FOR_UPDATES=false',
            'GF_PLUGINS_PREINSTALL_DISABLED=true',
          ],
          ...hardenedContainer({
            user: `${GRAFANA_UID}:${args.group}`,
            memoryMb: args.grafanaMemoryMb,
            cpus: 1,
            pidsLimit: 256,
            ...log,
          }),
          mounts: [
            {
              type: 'bind',
              source: `${grafanaDir}/provisioning`,
              target: '/etc/grafana/provisioning',
              readOnly: true,
            },
            {
              type: 'bind',
              source: `${grafanaDir}/dashboards`,
              target: '/etc/grafana/dashboards',
              readOnly: true,
            },
            { type: 'bind', source: `${grafanaDir}/secrets`, target: '/etc/grafana/secrets', readOnly: true },
            { type: 'volume', source: grafanaData.name, target: '/var/lib/grafana' },
          ],
          ports: published(GRAFANA_CONTAINER_PORT, args.grafanaPort),
          ...network(grafanaName),
          restart: 'unless-stopped',
          healthcheck: {
            tests: ['CMD', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:3000/api/health'],
            interval: '15s',
            timeout: '5s',
            retries: 3,
            startPeriod: '60s',
          },
          wait: true,
          waitTimeout: 180,
          labels: labels('grafana'),
        },
        { ...onHost, deleteBeforeReplace: true, dependsOn: [grafanaFiles, prometheus, ...waitFor] },
      );
      // GF_SECURITY_ADMIN_PASSWORD__FILE only seeds a new data volume: a changed grafanaAdminPassword (this
      // command's stdin) runs the update, which sets it through Grafana's own CLI inside the running container.
      hostCommand(
        `${name}-grafana-password`,
        args.target,
        {
          create: grafanaPasswordScript(grafanaName),
          update: grafanaPasswordScript(grafanaName),
          stdin: pulumi.secret(args.grafanaAdminPassword),
        },
        { parent: this, dependsOn: [grafana] },
      );

      this.containers.push(grafana);
    }
    this.containers.push(this.alertmanager.container);
    this.registerOutputs({ prometheusConfig: this.prometheusConfig, alertRules: this.alertRules });
  }
}

function sha256Label(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}
