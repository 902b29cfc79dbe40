/**
 * Alertmanager in the monitoring stack: the rendered alertmanager.yml (the null receiver, or the webhook of
 * monitoring.alertWebhookUrl), judged by the real `amtool check-config` from the stack's own image (run with
 * docker, as test/images does; skipped with a message only where docker or the built image is missing and CHATMIRROR_IMAGE_TESTS
 * is not set), the bad URLs the stack config refuses by key, and Prometheus pointed at it.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseStackConfig } from '../../infra/config.js';
import { renderAlertmanagerConfig, webhookUrlProblem } from '../../infra/render/alertmanager.js';
import { stackPlanOptions } from './fixtures.js';
import { decodeStdin, find, type Plan, PROJECT_DIR, planStack } from './plan.js';

const CONTAINER = 'docker:index/container:Container';
const WEBHOOK = 'https://hooks.example.com/services/chatmirror/T0KEN?stack=prod';

/** The Alertmanager image the image build recorded, or why amtool cannot run here. */
const AMTOOL: { image?: string; missing?: string } = (() => {
  if (spawnSync('docker', ['info'], { stdio: 'ignore' }).status !== 0)
    return { missing: 'no Docker daemon answers' };
  const file = join(PROJECT_DIR, 'images/digests.json');
  if (!existsSync(file)) return { missing: 'images/digests.json is missing (bash images/build.sh)' };
  const digests = JSON.parse(readFileSync(file, 'utf8')) as {
    images?: { alertmanager?: { reference?: string } };
  };
  const image = digests.images?.alertmanager?.reference;
  return image === undefined ? { missing: 'images/digests.json has no alertmanager image' } : { image };
})();
// Like the image tests: the images exist only after images/build.sh, which CI runs after `npm test` and then
// runs this file again with CHATMIRROR_IMAGE_TESTS=1, where a missing image is a failure.
const SKIP_AMTOOL = AMTOOL.missing !== undefined && !process.env.CHATMIRROR_IMAGE_TESTS;
if (SKIP_AMTOOL) console.warn(`amtool check-config is skipped: ${AMTOOL.missing}`);

/** `amtool check-config` from the image on one alertmanager.yml, hardened and without a network. */
function amtool(config: string): { code: number; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'chatmirror-amtool-'));
  try {
    chmodSync(dir, 0o755); // the image's user (65534) reads it
    writeFileSync(join(dir, 'alertmanager.yml'), config, { mode: 0o644 });
    const run = spawnSync(
      'docker',
      [
        'run',
        '--rm',
        '--read-only',
        '--network',
        'none',
        '--cap-drop',
        'ALL',
        '--security-opt',
        'no-new-privileges',
        '--volume',
        `${dir}:/etc/alertmanager:ro`,
        '--entrypoint',
        'amtool',
        AMTOOL.image ?? 'missing',
        'check-config',
        '/etc/alertmanager/alertmanager.yml',
      ],
      { encoding: 'utf8', timeout: 120_000 },
    );
    return { code: run.status ?? -1, output: `${run.stdout}${run.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let local: Plan;
let prod: Plan;
beforeAll(async () => {
  local = await planStack(await stackPlanOptions('local'));
  const options = await stackPlanOptions('prod');
  const monitoring = options.config['chatmirror:monitoring'] as Record<string, unknown>;
  prod = await planStack({
    ...options,
    config: { ...options.config, 'chatmirror:monitoring': { ...monitoring, alertWebhookUrl: WEBHOOK } },
  });
});

describe('renderAlertmanagerConfig', () => {
  it('routes every alert to the null receiver without a webhook', () => {
    const config = parseYaml(renderAlertmanagerConfig());
    expect(config.route).toMatchObject({ receiver: 'null', group_by: ['alertname', 'stack'] });
    expect(config.receivers).toEqual([{ name: 'null' }]);
  });

  it('routes every alert, resolved ones too, to the webhook', () => {
    const config = parseYaml(renderAlertmanagerConfig({ webhookUrl: WEBHOOK }));
    expect(config.route.receiver).toBe('webhook');
    expect(config.receivers).toEqual([
      { name: 'webhook', webhook_configs: [{ url: WEBHOOK, send_resolved: true, max_alerts: 0 }] },
    ]);
  });

  it('refuses what is not an http(s) URL without credentials', () => {
    for (const url of ['ftp://h/x', 'https://user:pw@h/x', 'not a url', 'https://h/a b'])
      expect(webhookUrlProblem(url), url).toBeDefined();
    expect(webhookUrlProblem('http://10.0.0.5:8080/alerts')).toBeUndefined();
    expect(() => renderAlertmanagerConfig({ webhookUrl: 'ftp://h/x' })).toThrow(/webhookUrl must be/);
  });
});

describe('monitoring.alertWebhookUrl in the stack config', () => {
  const base = {
    'chatmirror:profile': 'dev',
    'chatmirror:model': { hostPath: '/m', manifestSha256: 'a'.repeat(64) },
    'chatmirror:metricsToken': `cmk_prometheus_${'A'.repeat(43)}`,
    'chatmirror:grafanaAdminPassword': 'correct horse battery staple',
  };
  const errorOf = (url: unknown): string => {
    try {
      parseStackConfig({ ...base, 'chatmirror:monitoring': { alertWebhookUrl: url } });
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error(`accepted ${String(url)}`);
  };

  it('refuses a bad URL naming the key, without echoing a credential', () => {
    expect(errorOf('mailto:ops@example.com')).toContain('chatmirror:monitoring.alertWebhookUrl:');
    const withCredentials = errorOf('https://ops:s3cret@hooks.example.com/x');
    expect(withCredentials).toBe(
      'invalid stack configuration: chatmirror:monitoring.alertWebhookUrl: must not carry a user or password (user:password@): the stack config holds it in plain text',
    );
    expect(withCredentials).not.toContain('s3cret');
  });

  it('accepts an http(s) URL, and none', () => {
    const parsed = parseStackConfig({ ...base, 'chatmirror:monitoring': { alertWebhookUrl: WEBHOOK } });
    expect(parsed.monitoring.alertWebhookUrl).toBe(WEBHOOK);
    expect(parseStackConfig(base).monitoring.alertWebhookUrl).toBeUndefined();
  });
});

describe('the stacks run Alertmanager, and Prometheus sends to it', () => {
  it('pulls the alertmanager image and runs it hardened, unpublished, on the private network', () => {
    for (const [stack, plan] of [
      ['local', local],
      ['prod', prod],
    ] as const) {
      const container = find(plan, `chatmirror-${stack}-alertmanager`);
      expect(container.type).toBe(CONTAINER);
      expect(container.inputs.ports ?? []).toEqual([]);
      expect(container.inputs).toMatchObject({
        readOnly: true,
        capabilities: { drops: ['ALL'] },
        securityOpts: ['no-new-privileges:true'],
        user: expect.stringMatching(/^65534:/),
        networksAdvanced: [{ name: `chatmirror-${stack}`, aliases: [`chatmirror-${stack}-alertmanager`] }],
      });
      expect(plan.outputs.imageDigests).toHaveProperty('alertmanager', container.inputs.image);
      expect(plan.resources.some((r) => r.name === 'image-alertmanager')).toBe(true);
      // Prometheus's alerting target is that container, by its alias.
      const prometheusYml = parseYaml(decodeStdin(find(plan, 'prometheus-files-write'))['prometheus.yml']!);
      expect(prometheusYml.alerting).toEqual({
        alertmanagers: [
          {
            api_version: 'v2',
            scheme: 'http',
            static_configs: [{ targets: [`chatmirror-${stack}-alertmanager:9093`] }],
          },
        ],
      });
    }
    // The firewall opens no port for it.
    const nft = String(find(prod, 'firewall-nft').inputs.stdin);
    expect(nft).not.toContain('9093');
  });

  it('writes the webhook URL only into a secret file', () => {
    const files = find(prod, 'alertmanager-files-write');
    expect(files.secretPaths).toContain('stdin');
    expect(decodeStdin(files)['alertmanager.yml']).toContain(`url: ${WEBHOOK}`);
    const container = find(prod, 'chatmirror-prod-alertmanager');
    expect(JSON.stringify(container.inputs)).not.toContain('T0KEN');
  });

  it('leaves no Alertmanager when monitoring is off', async () => {
    const options = await stackPlanOptions('local');
    const off = await planStack({
      ...options,
      config: { ...options.config, 'chatmirror:monitoring': { enabled: false } },
    });
    expect(off.resources.some((r) => r.name.includes('alertmanager'))).toBe(false);
  });
});

describe.skipIf(SKIP_AMTOOL)('amtool check-config, from the stack’s Alertmanager image', () => {
  it('accepts the rendered configs: the local stack’s null receiver and prod’s webhook', () => {
    for (const plan of [local, prod]) {
      const config = decodeStdin(find(plan, 'alertmanager-files-write'))['alertmanager.yml']!;
      const checked = amtool(config);
      expect(checked.output).toContain('SUCCESS');
      expect(checked.code, checked.output).toBe(0);
    }
  }, 240_000);

  it('fails a config whose route names a receiver that does not exist', () => {
    const bad = renderAlertmanagerConfig().replace('receiver: "null"', 'receiver: nobody');
    const checked = amtool(bad);
    expect(checked.code).not.toBe(0);
    expect(checked.output).toMatch(/undefined receiver "nobody"/);
  }, 120_000);
});
