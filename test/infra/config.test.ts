/** The stack config schema: every stack file parses, bad values fail naming the key, the value and what is allowed. */

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  PROJECT,
  parseStackConfig,
  SECRET_KEYS,
  StackConfigError,
  StackConfigSchema,
  stackConfigReference,
} from '../../infra/config.js';
import { stackPlanOptions } from './fixtures.js';
import { loadStackFile, PROJECT_DIR } from './plan.js';

const STACKS = ['local', 'staging', 'prod'] as const;
/** sha256 of SHA256SUMS and the size of the files it lists, from `bash test/fixtures/models/build.sh smollm2`. */
const SMOLLM2_MANIFEST_SHA256 = 'b00883b2c6402fc4559d0e3b38ccc58c5d8c900a2e019b525eaf854d0244910e';
const SMOLLM2_SIZE_BYTES = 923904285;

async function parsed(stack: (typeof STACKS)[number]) {
  const o = await stackPlanOptions(stack);
  return parseStackConfig(o.config, { secretKeys: o.secretKeys ?? [] });
}

function errorOf(raw: Record<string, unknown>, secretKeys?: string[]): string {
  try {
    parseStackConfig(raw, secretKeys === undefined ? {} : { secretKeys });
  } catch (err) {
    expect(err).toBeInstanceOf(StackConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a StackConfigError');
}

const minimal = {
  'chatmirror:profile': 'dev',
  'chatmirror:model': { hostPath: '/srv/models/m', manifestSha256: 'a'.repeat(64) },
  'chatmirror:monitoring': { enabled: false },
};

describe('stack files', () => {
  it.each(STACKS)('%s parses with the secrets the README tells operators to set', async (stack) => {
    const config = await parsed(stack);
    expect(config.profile).toBe(stack === 'local' ? 'dev' : stack);
  });

  it('differ where environments differ', async () => {
    const [local, staging, prod] = (await Promise.all(STACKS.map(parsed))) as [
      Awaited<ReturnType<typeof parsed>>,
      Awaited<ReturnType<typeof parsed>>,
      Awaited<ReturnType<typeof parsed>>,
    ];
    expect(local.target.kind).toBe('local');
    expect(local.firewall.enabled).toBe(false);
    expect(local.benchmarks.enabled).toBe(false);
    expect(local.serving.bindAddresses).toEqual(['127.0.0.1']);

    expect(staging.target).toMatchObject({ kind: 'ssh', sudo: true });
    expect(staging.target.hostKey).toMatch(/^ssh-ed25519 /);
    expect(staging.tls.mode).toBe('ca');
    expect(staging.benchmarks).toMatchObject({ enabled: true, schedule: '*-*-* 02:00:00' });

    expect(prod.tls.mode).toBe('provided');
    expect(prod.firewall).toMatchObject({ enabled: true, adminCidrs: ['10.99.0.0/24'] });
    expect(prod.serving.replicas).toBe(2);
    expect(prod.serving.memoryMb).toBeGreaterThan(staging.serving.memoryMb);
    expect(prod.monitoring.retentionDays).toBeGreaterThan(staging.monitoring.retentionDays);
    expect(prod.benchmarks.enabled).toBe(true);
    expect(prod.auth.jwt?.issuer).toBe('https://chat.example.com');
  });

  it('hold no secret values in clear', () => {
    for (const stack of STACKS) {
      const config = loadStackFile(stack);
      for (const key of SECRET_KEYS) expect(config[`${PROJECT}:${key}`]).toBeUndefined();
    }
  });

  it('the local stack pins the bundled model as it is', () => {
    const model = loadStackFile('local')['chatmirror:model'] as { hostPath: string; manifestSha256: string };
    const manifest = readFileSync(`${PROJECT_DIR}/${model.hostPath}/SHA256SUMS`);
    expect(model.manifestSha256).toBe(createHash('sha256').update(manifest).digest('hex'));
  });

  // The SmolLM2 build is deterministic (build.sh smollm2): where it is built here, the remote stacks' pin must be
  // its manifest's hash and size; CHATMIRROR_REAL_MODEL=1 (CI, which builds it) makes a missing build a failure.
  it('the staging and prod stacks pin the int8 SmolLM2-135M-Instruct build', () => {
    const built = join(
      process.env.CHATMIRROR_CACHE || join(homedir(), '.cache', 'chatmirror'),
      'models',
      'smollm2-135m-instruct',
    );
    for (const stack of ['staging', 'prod'] as const) {
      const model = loadStackFile(stack)['chatmirror:model'] as Record<string, unknown>;
      expect(model, stack).toEqual({
        hostPath: '/srv/models/smollm2-135m-instruct',
        id: 'smollm2-135m-instruct',
        graphFile: 'onnx/model_quantized.onnx',
        manifestSha256: SMOLLM2_MANIFEST_SHA256,
        sizeBytes: SMOLLM2_SIZE_BYTES,
      });
    }
    if (!existsSync(join(built, 'SHA256SUMS')) && process.env.CHATMIRROR_REAL_MODEL !== '1') return;
    const manifest = readFileSync(join(built, 'SHA256SUMS'));
    expect(createHash('sha256').update(manifest).digest('hex')).toBe(SMOLLM2_MANIFEST_SHA256);
    const size = manifest
      .toString('utf8')
      .trim()
      .split('\n')
      .reduce((sum, line) => sum + statSync(join(built, line.slice(66))).size, 0);
    expect(size).toBe(SMOLLM2_SIZE_BYTES);
  });

  it('without its secrets a stack names the missing key and how to set it', () => {
    const message = errorOf(loadStackFile('local'), []);
    expect(message).toContain(
      'chatmirror:metricsToken: is required when chatmirror:monitoring.enabled is true; set it with: pulumi config set --secret metricsToken VALUE',
    );
    // Grafana is off in the local stack, so its password is not asked for there.
    expect(message).not.toContain('grafanaAdminPassword');
    expect(errorOf(loadStackFile('staging'), [])).toContain(
      'chatmirror:grafanaAdminPassword: is required when chatmirror:monitoring.grafana is true; set it with: pulumi config set --secret grafanaAdminPassword VALUE',
    );
    const prod = errorOf(loadStackFile('prod'), []);
    expect(prod).toContain('chatmirror:tlsPrivateKey: is required when chatmirror:tls.mode is provided');
    expect(prod).toContain('chatmirror:benchToken: is required when chatmirror:benchmarks.enabled is true');
  });
});

describe('Pulumi.yaml', () => {
  const project = parseYaml(readFileSync(`${PROJECT_DIR}/Pulumi.yaml`, 'utf8')) as {
    runtime: { name: string; options: Record<string, unknown> };
    main: string;
    stackConfigDir: string;
    config: Record<string, { type?: string; description?: string; default?: unknown }>;
  };

  it('runs infra/ with tsx under ESM and keeps stack files in stacks/', () => {
    expect(project.runtime.name).toBe('nodejs');
    expect(project.runtime.options).toMatchObject({ typescript: false, nodeargs: '--import tsx' });
    expect(project.main).toBe('infra/');
    expect(project.stackConfigDir).toBe('stacks');
  });

  it('declares every non-secret key of the schema, each with a description, and no secret', () => {
    const schemaKeys = Object.keys(StackConfigSchema.properties).filter(
      (key) => !SECRET_KEYS.includes(key) && key !== 'tlsCertificate' && key !== 'tlsCaCertificate',
    );
    expect(Object.keys(project.config).sort()).toEqual(schemaKeys.map((k) => `${PROJECT}:${k}`).sort());
    for (const declaration of Object.values(project.config)) expect(declaration.description).toBeTruthy();
    // Required keys (no default) are the ones every stack file sets.
    const required = Object.entries(project.config)
      .filter(([, d]) => d.default === undefined)
      .map(([k]) => k);
    for (const stack of STACKS) for (const key of required) expect(loadStackFile(stack)[key]).toBeDefined();
  });
});

describe('bad values', () => {
  it('name the key, the value and what is allowed', () => {
    expect(errorOf({ ...minimal, 'chatmirror:serving': { memoryMb: 100 } })).toBe(
      'invalid stack configuration: chatmirror:serving.memoryMb: must be an integer between 256 and 1048576, got 100',
    );
    expect(
      errorOf({ ...minimal, 'chatmirror:firewall': { apiCidrs: ['10.0.0.0/8', '10.0.0.0/33'] } }),
    ).toContain(
      'chatmirror:firewall.apiCidrs[1]: has a prefix length that must be 0 to 32, got "10.0.0.0/33"',
    );
    expect(errorOf({ ...minimal, 'chatmirror:tls': { mode: 'acme' } })).toContain(
      'chatmirror:tls.mode: must be one of "ca", "provided", got "acme"',
    );
    expect(errorOf({ ...minimal, 'chatmirror:serving': { bindAddresses: ['0.0.0.0/0'] } })).toContain(
      'chatmirror:serving.bindAddresses[0]: must be an IPv4 or IPv6 address',
    );
    expect(
      errorOf({ ...minimal, 'chatmirror:images': { service: 'registry.example.com/chatmirror:latest' } }),
    ).toContain('chatmirror:images.service: must be a string (matching /');
  });

  it('name unknown keys and list the allowed ones', () => {
    expect(errorOf({ ...minimal, 'chatmirror:serving': { memory: 1024 } })).toContain(
      'chatmirror:serving.memory: unknown setting; allowed: replicas, bindAddresses, port,',
    );
    expect(errorOf({ ...minimal, 'chatmirror:monitor': {} })).toContain(
      'chatmirror:monitor: unknown setting; allowed: chatmirror:profile',
    );
  });

  it('decode the JSON strings the Pulumi runtime hands over', () => {
    const config = parseStackConfig({
      ...minimal,
      'chatmirror:serving': JSON.stringify({ replicas: 3, cpus: 1.5 }),
      'chatmirror:quotaStorePassword': 'q'.repeat(24),
    });
    expect(config.serving).toMatchObject({ replicas: 3, cpus: 1.5, memoryMb: 2048 });
    expect(errorOf({ ...minimal, 'chatmirror:serving': '{"replicas": 0}' })).toContain(
      'chatmirror:serving.replicas: must be an integer between 1 and 8, got 0',
    );
  });

  it('check combinations across keys', () => {
    expect(errorOf({ ...minimal, 'chatmirror:profile': 'prod' })).toContain(
      'chatmirror:firewall.enabled: must be true for profile prod, got false',
    );
    expect(
      errorOf({
        ...minimal,
        'chatmirror:profile': 'prod',
        'chatmirror:firewall': { enabled: true, adminCidrs: ['0.0.0.0/0'] },
      }),
    ).toContain(
      'chatmirror:firewall.adminCidrs[0]: must not open Prometheus/Grafana to every address in prod',
    );
    const ssh = errorOf({
      ...minimal,
      'chatmirror:target': { kind: 'ssh', host: 'h.example.com', user: 'deploy', dataDir: 'data/chatmirror' },
    });
    expect(ssh).toContain('chatmirror:target.hostKey: is required when chatmirror:target.kind is ssh');
    expect(ssh).toContain(
      'chatmirror:target.dataDir: must be an absolute path on the remote host (target.kind ssh), got "data/chatmirror"',
    );
    expect(
      errorOf({
        ...minimal,
        'chatmirror:serving': { port: 9090 },
        'chatmirror:monitoring': { enabled: true, prometheusPort: 9090 },
        'chatmirror:grafanaAdminPassword': 'x'.repeat(12),
        'chatmirror:metricsToken': `cmk_p_${'a'.repeat(43)}`,
      }),
    ).toContain('chatmirror:monitoring.prometheusPort: collides with chatmirror:serving.port (port 9090');
    expect(errorOf({ ...minimal, 'chatmirror:serving': { user: '10001:20000' } })).toContain(
      'chatmirror:serving.user: group must be chatmirror:target.fileGroup (10001)',
    );
    expect(errorOf({ ...minimal, 'chatmirror:tls': { validityDays: 30, renewBeforeDays: 30 } })).toContain(
      'chatmirror:tls.renewBeforeDays: must be below chatmirror:tls.validityDays (30), got 30',
    );
  });

  it('refuse secrets stored in plain text, without echoing them', () => {
    const message = errorOf(
      {
        ...minimal,
        'chatmirror:monitoring': { enabled: true },
        'chatmirror:grafanaAdminPassword': 'hunter2hunter2',
        'chatmirror:metricsToken': `cmk_p_${'a'.repeat(43)}`,
      },
      ['chatmirror:metricsToken'],
    );
    expect(message).toContain(
      'chatmirror:grafanaAdminPassword: must be stored encrypted: pulumi config set --secret grafanaAdminPassword',
    );
    expect(message).not.toContain('hunter2');
    expect(errorOf({ ...minimal, 'chatmirror:metricsToken': 'not-a-key' })).toContain(
      'chatmirror:metricsToken: must be a string',
    );
    expect(errorOf({ ...minimal, 'chatmirror:metricsToken': 'not-a-key' })).not.toContain('not-a-key');
  });
});

describe('reference', () => {
  it('documents every setting with its key', () => {
    const rows = stackConfigReference();
    for (const row of rows) expect(row.description, row.key).not.toBe('');
    const keys = rows.map((r) => r.key);
    expect(keys).toContain('chatmirror:serving.memoryMb');
    expect(keys).toContain('chatmirror:monitoring.alerts.ttftP99Seconds');
    expect(rows.filter((r) => r.secret).map((r) => r.key)).toEqual(
      expect.arrayContaining([
        'chatmirror:grafanaAdminPassword',
        'chatmirror:metricsToken',
        'chatmirror:tlsPrivateKey',
      ]),
    );
  });
});
