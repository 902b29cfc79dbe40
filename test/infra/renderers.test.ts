/** Pure renderers: nftables, prometheus.yml, alert rules, Grafana provisioning and dashboard, service config. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseStackConfig } from '../../infra/config.js';
import { alertRules, renderAlertRules } from '../../infra/render/alerts.js';
import { readDashboards, renderDashboardProvider, renderDatasources } from '../../infra/render/grafana.js';
import { knownSeries, metricNamesIn, SERVICE_METRICS } from '../../infra/render/metrics.js';
import { deleteTableCommand, type FirewallRules, renderNftables } from '../../infra/render/nftables.js';
import { renderPrometheusConfig } from '../../infra/render/prometheus.js';
import { renderServiceConfig } from '../../infra/render/service-config.js';
import { certificateSans, renderCertificateTextfile } from '../../infra/render/tls.js';
import { loadConfig } from '../../service/config/load.js';
import { hashApiKey } from '../../service/security/auth/keys.js';
import { METRICS_TOKEN, stackPlanOptions } from './fixtures.js';

const RULES: FirewallRules = {
  stack: 'prod',
  table: 'chatmirror',
  priority: -10,
  apiPorts: [8443, 8444],
  adminPorts: [9090, 3000],
  apiCidrs: ['10.0.0.0/8', '192.0.2.0/24', '2001:db8::/32'],
  adminCidrs: ['10.99.0.0/24'],
};

function nftAvailable(): boolean {
  try {
    execFileSync('nft', ['-c', '-f', '-'], { input: 'table inet chatmirror_probe {}\n', stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

describe('nftables', () => {
  const ruleset = renderNftables(RULES);

  it('renders the prod ruleset', () => {
    expect(ruleset).toMatchSnapshot();
  });

  it('touches only our own table', () => {
    const tableLines = ruleset
      .split('\n')
      .filter((line) => /^\s*(table|delete|flush|add|insert)\b/.test(line));
    expect(tableLines).toEqual([
      'table inet chatmirror',
      'delete table inet chatmirror',
      'table inet chatmirror {',
    ]);
    expect(ruleset).not.toMatch(/flush ruleset|DOCKER|table ip /);
    expect(deleteTableCommand('chatmirror', 'sudo -n ')).toBe(
      'if sudo -n nft list table inet chatmirror >/dev/null 2>&1; then sudo -n nft delete table inet chatmirror; fi',
    );
  });

  it("filters published ports in forward, ahead of Docker, by the connection's original destination", () => {
    expect(ruleset).toContain('type filter hook forward priority -10; policy accept;');
    expect(ruleset).toContain(
      'ct direction original ct status dnat meta l4proto tcp ct original proto-dst { 8443, 8444 } jump api_clients',
    );
    expect(ruleset).toContain('ct original proto-dst { 3000, 9090 } jump admin_clients');
    expect(ruleset).toMatch(
      /set api_v4 \{\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\tauto-merge\n\t\telements = \{ 10\.0\.0\.0\/8, 192\.0\.2\.0\/24 \}/,
    );
    expect(ruleset).toMatch(/set admin_v6 \{\n\t\ttype ipv6_addr\n\t\tflags interval\n\t\tauto-merge\n\t\}/);
    expect(ruleset).toMatch(
      /chain admin_clients \{\n\t\tip saddr @admin_v4 accept\n\t\tip6 saddr @admin_v6 accept\n\t\tcounter drop/,
    );
  });

  it('leaves admin ports out when monitoring is off', () => {
    expect(renderNftables({ ...RULES, adminPorts: [] })).not.toContain('jump admin_clients');
  });

  it.skipIf(!nftAvailable())('is accepted by nft -c', () => {
    execFileSync('nft', ['-c', '-f', '-'], { input: ruleset, stdio: 'pipe' });
  });
});

describe('prometheus.yml', () => {
  const config = parseYaml(
    renderPrometheusConfig({
      stack: 'prod',
      scrapeIntervalSeconds: 15,
      serviceTargets: ['chatmirror-prod-0:8443', 'chatmirror-prod-1:8443'],
      serverName: 'chatmirror',
      caFile: '/etc/prometheus/tls/ca.crt',
      tokenFile: '/etc/prometheus/secrets/metrics-token',
      ruleFiles: ['/etc/prometheus/rules/*.yml'],
      nodeExporterTarget: 'chatmirror-prod-node-exporter:9100',
    }),
  );

  it('scrapes the service over HTTPS with the CA file and the metrics token file', () => {
    const job = config.scrape_configs.find((j: { job_name: string }) => j.job_name === 'chatmirror');
    expect(job).toMatchObject({
      scheme: 'https',
      metrics_path: '/metrics',
      authorization: { type: 'Bearer', credentials_file: '/etc/prometheus/secrets/metrics-token' },
      tls_config: { ca_file: '/etc/prometheus/tls/ca.crt', server_name: 'chatmirror' },
      static_configs: [{ targets: ['chatmirror-prod-0:8443', 'chatmirror-prod-1:8443'] }],
    });
    expect(JSON.stringify(config)).not.toContain('insecure_skip_verify');
  });

  it('scrapes node-exporter and itself, and loads the rules', () => {
    expect(config.scrape_configs.map((j: { job_name: string }) => j.job_name)).toEqual([
      'chatmirror',
      'node',
      'prometheus',
    ]);
    expect(config.rule_files).toEqual(['/etc/prometheus/rules/*.yml']);
    expect(config.global).toMatchObject({ scrape_interval: '15s', external_labels: { stack: 'prod' } });
  });
});

describe('alert rules', () => {
  const thresholds = {
    errorRatio: 0.02,
    p99LatencySeconds: 30,
    ttftP99Seconds: 3,
    certExpiryDays: 21,
    benchRegressionRatio: 0.15,
  };

  it('cover error rate, p99 latency, TTFT, service down, cert expiry and benchmark regression', () => {
    const names = alertRules(thresholds, { benchmarks: true }).map((r) => r.alert);
    expect(names).toEqual(
      expect.arrayContaining([
        'ChatmirrorHighErrorRate',
        'ChatmirrorHighLatencyP99',
        'ChatmirrorSlowTimeToFirstToken',
        'ChatmirrorDown',
        'ChatmirrorCertificateExpiresSoon',
        'ChatmirrorBenchmarkRegression',
      ]),
    );
    const byName = Object.fromEntries(
      alertRules(thresholds, { benchmarks: true }).map((r) => [r.alert, r.expr]),
    );
    expect(byName.ChatmirrorHighErrorRate).toMatch(/status=~"5\.\."\}\[5m\]\)\) \/ .* > 0\.02$/);
    expect(byName.ChatmirrorSlowTimeToFirstToken).toContain('chatmirror_time_to_first_token_seconds_bucket');
    expect(byName.ChatmirrorSlowTimeToFirstToken).toMatch(/> 3$/);
    expect(byName.ChatmirrorCertificateExpiresSoon).toContain('< 21 * 86400');
    expect(byName.ChatmirrorBenchmarkRegression).toContain('< 0.85 * avg_over_time(');
  });

  it('use only metric names that exist', () => {
    const known = knownSeries();
    for (const rule of alertRules(thresholds, { benchmarks: true }))
      for (const name of metricNamesIn(rule.expr)) expect(known, `${rule.alert}: ${name}`).toContain(name);
  });

  it('leave the benchmark alerts out without benchmarks, and render as a rule file', () => {
    expect(alertRules(thresholds, { benchmarks: false }).map((r) => r.alert)).not.toContain(
      'ChatmirrorBenchmarkRegression',
    );
    const file = parseYaml(renderAlertRules(thresholds, { benchmarks: true, intervalSeconds: 15 }));
    expect(file.groups[0]).toMatchObject({ name: 'chatmirror', interval: '15s' });
    expect(file.groups[0].rules.length).toBe(9);
  });
});

describe('Grafana', () => {
  it('provisions the Prometheus datasource under a fixed uid', () => {
    const ds = parseYaml(
      renderDatasources({
        prometheusUrl: 'http://chatmirror-prod-prometheus:9090',
        scrapeIntervalSeconds: 15,
      }),
    );
    expect(ds.datasources).toEqual([
      expect.objectContaining({
        uid: 'chatmirror-prometheus',
        type: 'prometheus',
        url: 'http://chatmirror-prod-prometheus:9090',
        editable: false,
      }),
    ]);
    const provider = parseYaml(renderDashboardProvider({ path: '/etc/grafana/dashboards' }));
    expect(provider.providers[0]).toMatchObject({
      type: 'file',
      options: { path: '/etc/grafana/dashboards' },
      allowUiUpdates: false,
    });
  });

  it('keeps a dashboard whose every panel query uses real metric names', () => {
    const known = knownSeries();
    const [dashboard] = readDashboards();
    const json = JSON.parse(dashboard!.content) as {
      uid: string;
      panels: { title: string; datasource: { uid: string }; targets: { expr: string }[] }[];
    };
    expect(json.uid).toBe('chatmirror-overview');
    expect(json.panels.length).toBeGreaterThanOrEqual(10);
    const used = new Set<string>();
    for (const panel of json.panels) {
      expect(panel.datasource.uid, panel.title).toBe('chatmirror-prometheus');
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets) {
        const names = metricNamesIn(target.expr);
        expect(names.length, `${panel.title}: ${target.expr}`).toBeGreaterThan(0);
        for (const name of names) {
          expect(known, `${panel.title}: ${name}`).toContain(name);
          used.add(name.replace(/_(bucket|sum|count)$/, ''));
        }
      }
    }
    // Every service metric has a panel.
    for (const name of Object.values(SERVICE_METRICS)) expect(used, name).toContain(name);
  });

  it("names the service's metrics as docs/observability.md's table does", () => {
    const readme = readFileSync(new URL('../../docs/observability.md', import.meta.url), 'utf8');
    for (const name of Object.values(SERVICE_METRICS)) expect(readme).toContain(`| \`${name}\` |`);
  });
});

describe('certificates', () => {
  it('add the public host and the in-network alias to the configured names', () => {
    expect(
      certificateSans({
        dnsNames: ['chat.example.com'],
        ipAddresses: ['203.0.113.10'],
        publicHost: 'chat.example.com',
      }),
    ).toEqual({
      dnsNames: ['chat.example.com', 'chatmirror'],
      ipAddresses: ['203.0.113.10'],
    });
  });

  it('export the expiry for the textfile collector', () => {
    expect(renderCertificateTextfile({ stack: 'prod', notAfter: '2030-01-01T00:00:00Z' })).toContain(
      'chatmirror_tls_certificate_not_after_seconds{stack="prod"} 1893456000',
    );
  });
});

describe('service config', () => {
  it.each(['local', 'staging', 'prod'] as const)(
    'the %s stack renders a config the service itself accepts',
    async (stack) => {
      const o = await stackPlanOptions(stack);
      const config = parseStackConfig(o.config, { secretKeys: o.secretKeys ?? [] });
      const text = renderServiceConfig({
        config,
        modelId: config.model.id ?? 'model',
        publicBaseUrl: 'https://chat.example.com:8443',
        apiKeys: [{ id: 'prometheus', hash: hashApiKey(METRICS_TOKEN), scopes: ['metrics:read'] }],
        privateSubnet: config.serving.networkSubnet,
      });
      const dir = mkdtempSync(join(tmpdir(), 'chatmirror-config-'));
      writeFileSync(join(dir, 'config.yaml'), text);
      const loaded = loadConfig({ file: join(dir, 'config.yaml'), env: {} });
      expect(loaded.server).toMatchObject({
        host: '0.0.0.0',
        port: 8443,
        tls: { certFile: '/etc/chatmirror/tls/server.crt' },
      });
      expect(loaded.engine.modelDir).toBe(`/models/${config.model.id}`);
      expect(loaded.engine.maxBatchSize).toBe(config.serving.engine.maxBatchSize);
      expect(loaded.auth.apiKeys[0]).toMatchObject({ id: 'prometheus', scopes: ['metrics:read'] });
      expect(loaded.log.prompts).toBe(false);
      if (stack === 'prod') {
        expect(loaded.auth.jwt).toMatchObject({
          issuer: 'https://chat.example.com',
          jwksFile: '/etc/chatmirror/jwks.json',
        });
        expect(loaded.network.allowlist).toEqual(['10.0.0.0/8', '192.0.2.0/24', '172.29.0.0/24']);
      } else {
        expect(loaded.network.allowlist).toEqual([]);
      }
    },
  );
});
