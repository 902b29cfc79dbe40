/**
 * prometheus.yml: the service over HTTPS (CA file, metrics-scoped bearer token file), node-exporter, itself; the
 * alerts it fires go to the Alertmanagers given.
 */
import { stringify } from 'yaml';

export interface ScrapeConfigOptions {
  stack: string;
  scrapeIntervalSeconds: number;
  /** `host:port` of each service replica on the private network. */
  serviceTargets: string[];
  /** Name the server certificate carries (the replicas' shared network alias). */
  serverName: string;
  /** Paths inside the Prometheus container. */
  caFile: string;
  tokenFile: string;
  ruleFiles: string[];
  nodeExporterTarget: string;
  /** `host:port` of each Alertmanager (plain HTTP on the private network); none: alerts are only evaluated. */
  alertmanagerTargets?: string[];
}

export const PROMETHEUS_CONTAINER_PORT = 9090;

export function renderPrometheusConfig(o: ScrapeConfigOptions): string {
  if (o.serviceTargets.length === 0) throw new Error('renderPrometheusConfig: serviceTargets is empty');
  const interval = `${o.scrapeIntervalSeconds}s`;
  const config = {
    global: {
      scrape_interval: interval,
      evaluation_interval: interval,
      external_labels: { stack: o.stack },
    },
    ...(o.alertmanagerTargets === undefined || o.alertmanagerTargets.length === 0
      ? {}
      : {
          alerting: {
            alertmanagers: [
              { api_version: 'v2', scheme: 'http', static_configs: [{ targets: o.alertmanagerTargets }] },
            ],
          },
        }),
    rule_files: o.ruleFiles,
    scrape_configs: [
      {
        job_name: 'chatmirror',
        scheme: 'https',
        metrics_path: '/metrics',
        // Token and CA are files, not inline values: the token never lands in the config Prometheus serves on
        // /api/v1/status/config, and a rotated token or CA is picked up without a restart.
        authorization: { type: 'Bearer', credentials_file: o.tokenFile },
        tls_config: { ca_file: o.caFile, server_name: o.serverName, min_version: 'TLS12' },
        static_configs: [{ targets: o.serviceTargets, labels: { stack: o.stack } }],
      },
      {
        job_name: 'node',
        static_configs: [{ targets: [o.nodeExporterTarget], labels: { stack: o.stack } }],
      },
      {
        job_name: 'prometheus',
        static_configs: [{ targets: [`localhost:${PROMETHEUS_CONTAINER_PORT}`] }],
      },
    ],
  };
  return stringify(config, { lineWidth: 0 });
}
