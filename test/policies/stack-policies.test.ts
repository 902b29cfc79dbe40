/**
 * The policies that read more than one resource (exposure, firewall, service settings, model, secrets), each on
 * a compliant fabricated staging stack and on that stack with the one thing it forbids.
 */
import { describe, expect, it } from 'vitest';
import { exposurePolicies } from '../../policies/exposure.js';
import { firewallPolicies } from '../../policies/firewall.js';
import { accessTo, parseRuleset, tablesTouched } from '../../policies/lib/nft.js';
import { type ContainerProps, command, docker, TYPES } from '../../policies/lib/resources.js';
import { modelPolicies } from '../../policies/model.js';
import { policies } from '../../policies/policies.js';
import { secretPolicies } from '../../policies/secrets.js';
import { servicePolicies } from '../../policies/service.js';
import { container, firewall, hardened, RULESET, SERVICE_CONFIG, stack } from './fixtures.js';
import { type AnalyzedResource, analyze, fabricate } from './harness.js';

const all = [
  ...exposurePolicies,
  ...firewallPolicies,
  ...servicePolicies,
  ...modelPolicies,
  ...secretPolicies,
];
const policy = (name: string) => all.find((p) => p.name === name)!;

async function found(name: string, resources: AnalyzedResource[]) {
  return (await analyze([policy(name)], resources)).map((v) => v.message);
}

describe('the compliant staging stack', () => {
  it('passes every policy of the pack', async () => {
    expect(await analyze(policies, stack())).toEqual([]);
  });
});

describe('admin-ports-not-public', () => {
  it.each([
    ['0.0.0.0', /prometheus port 9090 is published on 0.0.0.0/],
    ['::', /published on ::/],
    [undefined, /every interface \(no ip\)/],
  ])('rejects Prometheus published on %s', async (ip, expected) => {
    const props = hardened('prometheus', {
      ports: [{ internal: 9090, external: 9090, ...(ip === undefined ? {} : { ip }) }],
    });
    const [message, ...rest] = await found('admin-ports-not-public', [
      container('chatmirror-staging-prometheus', props),
    ]);
    expect(rest).toEqual([]);
    expect(message).toMatch(expected);
    expect(message).toMatch(/^chatmirror-staging-prometheus: .*Fix: .*monitoring\.bindAddresses/);
  });

  it('knows the role by image when the label is missing, and lets the API bind anywhere', async () => {
    const grafana = hardened('grafana', {
      labels: [],
      image: `docker.io/grafana/grafana@sha256:${'b'.repeat(64)}`,
      ports: [{ internal: 3000, ip: '0.0.0.0' }],
    });
    expect(await found('admin-ports-not-public', [container('g', grafana)])).toHaveLength(1);
    const api = hardened('api', { ports: [{ internal: 8443, ip: '0.0.0.0' }] });
    expect(await found('admin-ports-not-public', [container('a', api)])).toEqual([]);
  });
});

describe('api-port-firewalled', () => {
  it('rejects a published API without a firewall, naming the container', async () => {
    const [message, ...rest] = await found('api-port-firewalled', stack({ without: ['firewall-nft'] }));
    expect(rest).toEqual([]);
    expect(message).toMatch(
      /^chatmirror-staging-0: publishes the API on 198.51.100.20:8443 and no resource of this stack applies a firewall\. Fix: set firewall.enabled: true/,
    );
  });

  it('rejects a firewall that does not cover the published port', async () => {
    const resources = stack({ api: { ports: [{ internal: 8443, external: 9443, ip: '198.51.100.20' }] } });
    expect(await found('api-port-firewalled', resources)).toEqual([
      expect.stringMatching(/:9443 and no firewall of this stack restricts that port/),
    ]);
  });

  it('needs no firewall for an API published on loopback only', async () => {
    const loopback = stack({
      without: ['firewall-nft'],
      api: { ports: [{ internal: 8443, external: 8443, ip: '127.0.0.1' }] },
    });
    expect(await found('api-port-firewalled', loopback)).toEqual([]);
  });

  it('does not apply to the local stack, unless it reaches another machine', async () => {
    const local = stack({ stack: 'local', without: ['firewall-nft'] }).filter(
      (r) => r.type !== TYPES.remoteCommand,
    );
    expect(await found('api-port-firewalled', local)).toEqual([]);
    expect(
      await found('api-port-firewalled', stack({ stack: 'local', without: ['firewall-nft'] })),
    ).toHaveLength(1);
  });
});

describe('firewall-own-table', () => {
  it('rejects a ruleset that touches another table or flushes the ruleset', async () => {
    for (const [extra, table] of [
      ['flush ruleset\n', '(the whole ruleset)'],
      ['delete table inet filter\n', 'inet filter'],
      ['table ip nat {\n}\n', 'ip nat'],
    ] as const) {
      const [message, ...rest] = await found('firewall-own-table', [firewall(`${extra}${RULESET}`)]);
      expect(rest).toEqual([]);
      expect(message).toContain(`touches ${table}, not only the stack's own table inet chatmirror_staging`);
    }
  });

  it('passes the stack table, and one named in allowedTables', async () => {
    expect(await found('firewall-own-table', [firewall()])).toEqual([]);
    const custom = firewall(RULESET.replaceAll('chatmirror_staging', 'chatmirror_edge'));
    expect(await found('firewall-own-table', [custom])).toHaveLength(1);
    expect(
      await analyze([policy('firewall-own-table')], [custom], {
        'firewall-own-table': { allowedTables: ['chatmirror_edge'] },
      }),
    ).toEqual([]);
  });
});

describe('firewall-no-accept-all', () => {
  it.each([
    [
      'a 0.0.0.0/0 client network',
      RULESET.replace('10.0.0.0/8, 203.0.113.0/24', '0.0.0.0/0'),
      /ip saddr @api_v4 accept" admits every source to API port 8443/,
    ],
    [
      'an accept without a source',
      RULESET.replace('ct state established,related accept', 'tcp dport 8443 accept'),
      /tcp dport 8443 accept/,
    ],
  ])('rejects %s', async (_, ruleset, expected) => {
    const resources = stack({ without: ['firewall-nft'], extra: [firewall(ruleset)] });
    const [message, ...rest] = await found('firewall-no-accept-all', resources);
    expect(rest).toEqual([]);
    expect(message).toMatch(/^firewall-nft: /);
    expect(message).toMatch(expected);
    expect(message).toContain('Fix: list the client networks in firewall.apiCidrs');
  });
});

describe('the nft reader', () => {
  it('reads tables, sets and who reaches a port', () => {
    const ruleset = parseRuleset(RULESET);
    expect(tablesTouched(ruleset)).toEqual(['inet chatmirror_staging']);
    expect(ruleset.tables[0]!.sets[0]!.elements).toEqual(['10.0.0.0/8', '203.0.113.0/24']);
    expect(accessTo(ruleset, 8443)).toEqual({ restricted: true, acceptsAll: [] });
    expect(accessTo(ruleset, 9090)).toEqual({ restricted: false, acceptsAll: [] });
  });
});

describe('service settings outside the local stack', () => {
  const config = (from: string, to: string) => {
    if (!SERVICE_CONFIG.includes(from)) throw new Error(`fixture lacks ${from}`);
    return stack({ serviceConfig: SERVICE_CONFIG.replace(from, to) });
  };

  it.each([
    ['service-tls', 'enabled: true', 'enabled: false', /turns TLS off/],
    ['service-tls', '    certFile: /etc/chatmirror/tls/server.crt\n', '', /names no certificate/],
    [
      'service-auth',
      /apiKeys:[\s\S]*?quotas/.exec(SERVICE_CONFIG)![0],
      'apiKeys: []\nquotas',
      /accepts no credentials/,
    ],
    [
      'service-auth',
      'auth:\n',
      'auth:\n  publicRoutes: [/health, /ready, /v1/models]\n',
      /routes \/v1\/models are served without credentials/,
    ],
    [
      'service-http-off',
      'metrics:\n  enabled: true',
      'metrics:\n  enabled: true\n  port: 9464',
      /plain-HTTP listener \(metrics.port 9464\)/,
    ],
    ['service-http-off', 'https://staging', 'http://staging', /clients are told to use http:/],
    [
      'service-metrics-protected',
      'auth:\n',
      'auth:\n  publicRoutes: [/health, /ready, /metrics]\n',
      /\/metrics is served without credentials/,
    ],
  ] as const)('%s rejects a config with %j → %j', async (name, from, to, expected) => {
    const [message, ...rest] = await found(name, config(from, to));
    expect(rest).toEqual([]);
    expect(message).toMatch(/^chatmirror-staging-0: /);
    expect(message).toMatch(expected);
  });

  it('says so when the config the container reads is not written by the stack', async () => {
    expect(await found('service-tls', stack({ without: ['service-files-write'] }))).toEqual([
      expect.stringMatching(
        /its service config cannot be read: no resource of this stack writes \/srv\/chatmirror\/staging\/service\/config.yaml/,
      ),
    ]);
  });

  it('leaves the local stack alone, unless it deploys over SSH', async () => {
    const plainHttp = SERVICE_CONFIG.replace('enabled: true', 'enabled: false');
    const overSsh = stack({ stack: 'local', serviceConfig: plainHttp });
    expect(await found('service-tls', overSsh)).toHaveLength(1);
    // The same stack with its commands run on this machine (command:local:Command, no connection).
    const here = overSsh.map((r) => {
      if (r.type !== TYPES.remoteCommand) return r;
      const { connection: _, ...props } = r.props;
      return { ...r, type: TYPES.localCommand, props };
    });
    expect(await found('service-tls', here)).toEqual([]);
  });

  it('benchmark-schedule rejects a stack without a benchmark timer', async () => {
    expect(await found('benchmark-schedule', stack({ without: ['benchmarks-timer'] }))).toEqual([
      expect.stringMatching(
        /^stack: stack staging installs no benchmark timer.*Fix: set benchmarks.enabled: true/,
      ),
    ]);
  });
});

describe('replicas', () => {
  const replica = (i: number, ports: { internal: number; external?: number; ip?: string }[] = []) =>
    container(
      `chatmirror-prod-${i}`,
      {
        ...(stack({ stack: 'prod' }).find((r) => r.name === 'chatmirror-prod-0')!.props as ContainerProps),
        ports,
      },
      { stack: 'prod' },
    );

  it('rejects two replicas with their own quotas and two endpoints, mandatory in prod', async () => {
    const resources = [
      ...stack({ stack: 'prod', without: ['chatmirror-prod-0'] }),
      replica(0, [{ internal: 8443, external: 8443, ip: '203.0.113.10' }]),
      replica(1, [{ internal: 8443, external: 8444, ip: '203.0.113.10' }]),
    ];
    const violations = await analyze(
      [policy('replicas-shared-state'), policy('replicas-shared-state-advisory')],
      resources,
    );
    expect(violations.map((v) => [v.policy, v.level, v.message.replace(/\. Fix:.*/, '')])).toEqual([
      [
        'replicas-shared-state',
        'mandatory',
        'chatmirror-prod-0: 2 replicas each count quotas on their own (quotas.store is not redis), so a client gets 2× its quota',
      ],
      [
        'replicas-shared-state',
        'mandatory',
        'chatmirror-prod-1: 2 replicas each count quotas on their own (quotas.store is not redis), so a client gets 2× its quota',
      ],
      [
        'replicas-shared-state',
        'mandatory',
        'chatmirror-prod-0: 2 replicas are reached through 2 published endpoints (chatmirror-prod-0:8443; chatmirror-prod-1:8444)',
      ],
    ]);
  });

  it('only warns in staging', async () => {
    const resources = [
      ...stack(),
      container('chatmirror-staging-1', stack()[3]!.props as ContainerProps, { stack: 'staging' }),
    ];
    const violations = await analyze(
      [policy('replicas-shared-state'), policy('replicas-shared-state-advisory')],
      resources,
    );
    expect(new Set(violations.map((v) => `${v.policy} ${v.level}`))).toEqual(
      new Set(['replicas-shared-state-advisory advisory']),
    );
  });

  it('passes replicas on a Redis quota store behind one balancer', async () => {
    const shared = SERVICE_CONFIG.replace(
      'store: memory',
      'store: redis\n  redisUrl: redis://chatmirror-prod-redis:6379/0',
    );
    const resources = [
      ...stack({ stack: 'prod', serviceConfig: shared, api: { ports: [] } }),
      replica(1),
      container('chatmirror-prod-redis', hardened('redis'), { stack: 'prod' }),
      container(
        'chatmirror-prod-balancer',
        hardened('balancer', { ports: [{ internal: 8443, external: 8443, ip: '203.0.113.10' }] }),
        { stack: 'prod' },
      ),
    ];
    // replica 1 reads the same config (same mount) as replica 0.
    expect(await analyze([policy('replicas-shared-state')], resources)).toEqual([]);
  });
});

describe('model-manifest-verified', () => {
  it('rejects a model nobody checks, a writable model mount, and a container that does not wait', async () => {
    expect(await found('model-manifest-verified', stack({ without: ['model-sha256'] }))).toEqual([
      expect.stringMatching(
        /^chatmirror-staging-0: nothing checks \/srv\/models\/smollm2 against a sha256 manifest.*model.manifestSha256/,
      ),
    ]);
    const writable = stack({
      api: {
        command: ['serve', '--config', '/etc/chatmirror/config.yaml'],
        mounts: [
          {
            type: 'bind',
            source: '/srv/chatmirror/staging/service',
            target: '/etc/chatmirror',
            readOnly: true,
          },
          { type: 'bind', source: '/srv/models/smollm2', target: '/models/smollm2' },
        ],
      },
    });
    expect(await found('model-manifest-verified', writable)).toEqual([
      expect.stringMatching(/the model mount .* is writable/),
    ]);
    const impatient = stack().map((r) =>
      r.name === 'chatmirror-staging-0' ? { ...r, dependencies: [] } : r,
    );
    expect(await found('model-manifest-verified', impatient)).toEqual([
      expect.stringMatching(/does not wait for model-sha256/),
    ]);
  });
});

describe('secrets-in-secret-channels', () => {
  it.each([
    [
      'a Grafana password in the environment',
      { envs: ['GF_SECURITY_ADMIN_PASSWORD=hunter2hunter2'] },
      /envs\[0\] holds a password or token in an environment assignment/,
    ],
    [
      'an API key on the command line',
      { command: ['bench', `--token=cmk_bench_${'B'.repeat(43)}`] },
      /command\[1\] holds a chatmirror API key/,
    ],
    [
      'a private key in a label',
      { labels: [{ label: 'key', value: '-----BEGIN EC PRIVATE KEY-----' }] },
      /labels\[0\]\.value holds a PEM private key/,
    ],
    ['a Redis password in a URL', { envs: ['REDIS_URL=redis://:s3cret@redis:6379'] }, /a password in a URL/],
  ])('rejects %s', async (_, change, expected) => {
    const [message, ...rest] = await found('secrets-in-secret-channels', [
      container('c', hardened('api', change)),
    ]);
    expect(rest).toEqual([]);
    expect(message).toMatch(expected);
    expect(message).toContain('Fix: pass it as a file written through HostFiles');
  });

  it('passes a *_FILE variable, stdin files, SSH keys and TLS key inputs', async () => {
    const grafana = container(
      'g',
      hardened('grafana', { envs: ['GF_SECURITY_ADMIN_PASSWORD__FILE=/etc/grafana/secrets/admin-password'] }),
    );
    const tlsKey = {
      type: 'tls:index/locallySignedCert:LocallySignedCert',
      name: 'tls-server',
      urn: 'urn:pulumi:staging::chatmirror::tls:index/locallySignedCert:LocallySignedCert::tls-server',
      props: { caPrivateKeyPem: '-----BEGIN PRIVATE KEY-----' },
    };
    expect(await found('secrets-in-secret-channels', [...stack(), grafana, tlsKey])).toEqual([]);
  });

  it('rejects a secret in a command script or its triggers', async () => {
    const cmd = fabricate(command.local.Command, 'grafana-password', {
      create: `grafana cli admin reset-admin-password --password hunter2`,
      triggers: [],
    });
    expect(await found('secrets-in-secret-channels', [cmd])).toEqual([
      expect.stringMatching(/^grafana-password: create holds a password or token on a command line/),
    ]);
    const image = fabricate(docker.RemoteImage, 'img', { name: `r/x@sha256:${'a'.repeat(64)}` });
    expect(await found('secrets-in-secret-channels', [image])).toEqual([]);
  });
});
