/**
 * Every resource the local, staging and prod stacks declare, captured under Pulumi's mocks with their options
 * (test/infra/plan.ts), through the whole pack: the shipped stacks pass every mandatory policy but the known
 * violations listed below, and each deliberately unsafe config (one the program itself accepts) triggers
 * exactly the violations expected of it, each naming the resource and the fix.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { policies } from '../../policies/policies.js';
import { materialIn, SECRET_CHANNELS } from '../../policies/secrets.js';
import { stackPlanOptions } from '../infra/fixtures.js';
import { DEFAULT_FACTS, type Plan, planStack } from '../infra/plan.js';
import { analyze, fromPlan, type Violation } from './harness.js';

type Stack = 'local' | 'staging' | 'prod';
const STACKS: Stack[] = ['local', 'staging', 'prod'];

const summary = (violations: Violation[]) =>
  violations.map((v) => `${v.level} ${v.policy}: ${v.message}`).sort();

function expectExactly(violations: Violation[], expected: [policy: string, message: RegExp][]) {
  const mandatory = violations.filter((v) => v.level === 'mandatory');
  expect(mandatory, summary(violations).join('\n')).toHaveLength(expected.length);
  for (const [policy, message] of expected)
    expect(
      mandatory.filter((v) => v.policy === policy && message.test(v.message)),
      `${policy} ${message} in\n${summary(violations).join('\n')}`,
    ).toHaveLength(1);
}

async function plan(
  stack: Stack,
  override: Record<string, unknown> = {},
  secretKeys: string[] = [],
  facts = DEFAULT_FACTS,
) {
  const options = await stackPlanOptions(stack);
  return planStack({
    ...options,
    facts,
    config: { ...options.config, ...override },
    secretKeys: [...(options.secretKeys ?? []), ...secretKeys],
  });
}

const plans: Partial<Record<Stack, Plan>> = {};
beforeAll(async () => {
  for (const stack of STACKS) plans[stack] = await plan(stack);
});

describe.each(STACKS)('the shipped %s stack', (stack) => {
  it('passes every policy', async () => {
    const violations = await analyze(policies, plans[stack]!.resources.map(fromPlan));
    expectExactly(violations, []);
    expect(summary(violations.filter((v) => v.level !== 'mandatory'))).toEqual([]);
  });

  it('keeps the secret channels secret: every one that carries secret material is a secret input', () => {
    // The analyzer sees secrets unwrapped, so secrets-in-secret-channels checks placement; the mocks see
    // secretness, so this checks the program wraps what travels in those channels.
    for (const resource of plans[stack]!.resources) {
      for (const [key, value] of Object.entries(resource.inputs)) {
        const channel = SECRET_CHANNELS.some(
          ([type, path]) => type.test(resource.type) && [...paths(value, key)].some((p) => path.test(p)),
        );
        if (!channel || !/^(stdin|connection)$/.test(key)) continue;
        if (materialIn(JSON.stringify(value)) === undefined && !decodedHoldsMaterial(value)) continue;
        expect(resource.secretPaths, `${resource.name}.${key}`).toContain(key);
      }
    }
  });
});

function* paths(value: unknown, path: string): Generator<string> {
  yield path;
  if (typeof value === 'object' && value !== null)
    for (const [k, v] of Object.entries(value)) yield* paths(v, `${path}.${k}`);
}

/** The file channel base64-encodes contents; look inside. */
function decodedHoldsMaterial(value: unknown): boolean {
  return String(value)
    .split('\n')
    .some((line) => {
      const b64 = line.split(' ')[2];
      return b64 !== undefined && materialIn(Buffer.from(b64, 'base64').toString('utf8')) !== undefined;
    });
}

// stack, what the operator changed, the config, the violations it must add to the known ones
const UNSAFE: [Stack, string, Record<string, unknown>, [string, RegExp][]][] = [
  [
    'staging',
    'monitoring bound on every interface',
    { 'chatmirror:monitoring': { enabled: true, bindAddresses: ['0.0.0.0'] } },
    [
      [
        'admin-ports-not-public',
        /^chatmirror-staging-prometheus: prometheus port 9090 is published on 0\.0\.0\.0\. Fix: .*monitoring\.bindAddresses/,
      ],
      [
        'admin-ports-not-public',
        /^chatmirror-staging-grafana: grafana port 3000 is published on 0\.0\.0\.0\. Fix: /,
      ],
    ],
  ],
  [
    'staging',
    'the firewall turned off',
    { 'chatmirror:firewall': { enabled: false } },
    [
      [
        'api-port-firewalled',
        /^chatmirror-staging-0: publishes the API on 198\.51\.100\.20:8443 and no resource of this stack applies a firewall\. Fix: set firewall\.enabled: true/,
      ],
    ],
  ],
  [
    'prod',
    'the API open to 0.0.0.0/0',
    {
      'chatmirror:firewall': {
        enabled: true,
        apiCidrs: ['0.0.0.0/0'],
        adminCidrs: ['10.99.0.0/24'],
        priority: -10,
      },
    },
    [
      [
        'api-port-firewalled',
        /^chatmirror-prod-balancer: publishes the API on 203\.0\.113\.10:8443 and no firewall of this stack restricts that port to listed client networks/,
      ],
      [
        'firewall-no-accept-all',
        /^firewall-nft: rule "chatmirror_prod\/api_clients: ip saddr @api_v4 accept" admits every source to API port 8443\. Fix: .*firewall\.apiCidrs/,
      ],
    ],
  ],
  [
    'prod',
    "the firewall in the host's firewalld table",
    {
      'chatmirror:firewall': {
        enabled: true,
        apiCidrs: ['10.0.0.0/8'],
        adminCidrs: ['10.99.0.0/24'],
        table: 'firewalld',
      },
    },
    [
      [
        'firewall-own-table',
        /^firewall-nft: its ruleset touches inet firewalld, not only the stack's own table inet chatmirror_prod\. Fix: /,
      ],
    ],
  ],
  [
    'staging',
    'no benchmark schedule',
    { 'chatmirror:benchmarks': { enabled: false } },
    [
      [
        'benchmark-schedule',
        /^stack: stack staging installs no benchmark timer.*Fix: set benchmarks\.enabled: true and benchmarks\.schedule/,
      ],
    ],
  ],
];

describe.each(UNSAFE)('the %s stack with %s', (stack, _, override, expected) => {
  it('is accepted by the program and stopped by exactly the expected policies', async () => {
    const unsafe = await plan(stack, override);
    const violations = await analyze(policies, unsafe.resources.map(fromPlan));
    expectExactly(violations, expected);
  });
});

describe('the shipped staging stack with two replicas', () => {
  it('passes with the quota store the program adds', async () => {
    const replicated = await plan(
      'staging',
      {
        'chatmirror:serving': { replicas: 2, bindAddresses: ['198.51.100.20'], port: 8443 },
        'chatmirror:quotaStorePassword': 'f3c1a9d0e8b7465a9c2d1e0f7a6b5c4d',
      },
      ['chatmirror:quotaStorePassword'],
    );
    expect(replicated.resources.filter((r) => r.name === 'chatmirror-staging-balancer')).toHaveLength(1);
    expectExactly(await analyze(policies, replicated.resources.map(fromPlan)), []);
  });
});
